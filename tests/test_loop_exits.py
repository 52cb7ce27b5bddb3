"""A `break` or `continue` in a loop's `else:` is the enclosing loop's.

`for t in ...: for i in ...: pass else: break; n = await check(n)` leaves the
outer loop before `check` is called. kiln read every `break` inside the inner
loop statement as the inner loop's own, so the outer iteration's later node
call did not wait for it: it started at once as a task, and its error (or its
side effects) came where the source never calls it (trial Q7). The same for
an inner `while ... else:` that calls no node, and for `continue`. A `break`
of the inner loop's own body still holds nothing back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.test_differential import compiled_and_source

SOURCE = """
from kiln import flow, node

calls: list[int] = []


@node
async def check(a: int) -> int:
    calls.append(a)
    raise ValueError(f"check {a}")


@flow
async def for_else_break(n: int) -> str:
    for t in range(2):
        for i in range(0):
            pass
        else:
            break
        n = await check(n)
    return "ok"


@flow
async def while_else_break(n: int) -> str:
    for t in range(2):
        k = 0
        while k < 0:
            k += 1
        else:
            break
        n = await check(n)
    return "ok"


@flow
async def for_else_continue(n: int) -> str:
    for t in range(2):
        for i in range(0):
            pass
        else:
            continue
        n = await check(n)
    return "ok"


@flow
async def if_in_the_else(n: int) -> str:
    for t in range(2):
        for i in range(1):
            pass
        else:
            if n > 0:
                break
        n = await check(n)
    return "ok"


@flow
async def the_inner_loop_s_own_break(n: int) -> str:
    for t in range(1):
        for i in range(3):
            break
        n = await check(n)
    return "ok"
"""

FLOWS = [
    "for_else_break",
    "while_else_break",
    "for_else_continue",
    "if_in_the_else",
    "the_inner_loop_s_own_break",
]


def outcome(run: object) -> str:
    try:
        return str(asyncio.run(run))  # type: ignore[arg-type]
    except ValueError as error:
        return f"ValueError: {error}"


@pytest.mark.parametrize("name", FLOWS)
def test_a_loop_s_exits_keep_the_source_s_calls(tmp_path: Path, name: str) -> None:
    compiled, source = compiled_and_source(SOURCE, tmp_path)
    expected = outcome(getattr(source, name)(1))
    assert outcome(getattr(compiled, name).aforward(1)) == expected
    assert compiled.calls == source.calls  # no call the source does not make


STREAMING = """
from collections.abc import AsyncIterator

from kiln import flow, node

trace: list[int] = []


@node
async def record(v: int) -> int:
    trace.append(v)
    return v


@flow
async def after_a_for(n: int) -> AsyncIterator[int]:
    for v in range(n):
        yield v
    yield await record(100)


@flow
async def after_a_while(n: int) -> AsyncIterator[int]:
    k = 0
    while k < n:
        yield k
        k += 1
    yield await record(200)
"""


@pytest.mark.parametrize("name", ["after_a_for", "after_a_while"])
def test_a_call_after_a_loop_of_yields_waits_for_the_consumer(
    tmp_path: Path, name: str
) -> None:
    """A consumer that takes one item and stops: the source never calls `record`;
    the compiled stream started it while the consumer held the first item, as
    a `yield` in a loop held nothing after the loop back (trial Q7)."""
    compiled, source = compiled_and_source(STREAMING, tmp_path)

    async def first(stream: Any) -> int:
        async for item in stream:
            return int(item)
        return -1

    assert asyncio.run(first(getattr(source, name)(2))) == 0
    assert asyncio.run(first(getattr(compiled, name).astream(2))) == 0
    assert compiled.trace == source.trace == []
