"""A lambda or generator made in a flow reads its names when it runs, as Python's closures do.

`k = lambda: x; x = await g(x); await use(k)`: `use` calls `k`, which reads the
`x` bound after it. kiln once ran `use` beside `g`, so `k` saw the old `x` (or
none). A step given such a closure now runs where the source runs it, in the
flow's own frame, after every step before it; one given a closure whose names
are not bound again still overlaps what it does not read. A task's coroutine
that binds such a name binds the flow's (`nonlocal`): the closure, made in the
flow's frame, reads the flow's names, not the task's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
from collections.abc import Callable, Iterable

from kiln import flow, node


@node
async def g(x: int) -> int:
    await asyncio.sleep(0.02)
    return x * 10


@node
async def use(k: Callable[[], int]) -> int:
    return k()


@node
async def consume(items: Iterable[int]) -> list[int]:
    return list(items)


@node
async def consume_later(items: Iterable[int]) -> list[int]:
    await asyncio.sleep(0.05)
    return list(items)


@node
async def call_later(functions: list[Callable[[], int]]) -> list[int]:
    await asyncio.sleep(0.05)
    return [function() for function in functions]


@flow
async def lambda_read_after(x: int) -> int:
    k = lambda: x
    x = await g(x)
    return await use(k)


@flow
async def generator_read_after(n: int) -> list[int]:
    base = 0
    gen = (v + base for v in range(n))
    base = await g(1)
    return await consume(gen)


@flow
async def lambda_calling_a_lambda(x: int) -> int:
    inner = lambda: x
    outer = lambda: inner() + 1
    x = await g(x)
    return await use(outer)


@flow
async def lambda_of_a_name_not_bound_again(x: int) -> tuple[int, int]:
    k = lambda: x
    y = await g(x)
    return y, await use(k)


@flow
async def lambda_read_after_beside(x: int) -> int:
    k = lambda: x
    x = await g(x)
    y = await g(1)
    return await use(k) + y


@flow
async def generator_given_then_bound_again(x: int) -> tuple[int, list[int]]:
    gen = (v + x for v in range(3))
    seen = await consume_later(gen)
    x = await g(x)
    return x, seen


@flow
async def lambdas_held_then_bound_again(x: int) -> tuple[int, list[int]]:
    functions = [lambda: x, lambda: x + 1]
    held = functions
    seen = await call_later(held)
    x = await g(x)
    return x, seen


@flow
async def lambda_read_by_a_task(x: int) -> list[int]:
    later = lambda: x * 2
    x = await g(x)
    v = await use(later)
    table: dict[str, int] = {}
    w = await g(v)
    u = await g(w)
    return [x, v, w, u, len(table)]


@flow
async def lambda_default_read_now(base: int) -> int:
    base = await g(base)
    k = lambda v, b=base: v + b
    base = await g(base)
    return k(0) * 1000 + base


@flow
async def lambda_default_of_a_name_bound_by_a_step(x: int) -> int:
    base = await g(x)
    k = lambda v, b=base: v + b
    base = await g(base)
    return k(0) * 1000 + base


@flow
async def keyword_default_given_to_a_step(x: int) -> tuple[int, int]:
    x = await g(x)
    k = lambda *, b=x: b
    seen = await use(k)
    x = await g(x)
    return seen, x


@flow
async def default_holding_a_closure(x: int) -> int:
    inner = lambda: x
    k = lambda f=inner: f()
    x = await g(x)
    return await use(k)
"""

CASES = [
    ("lambda_read_after", (2,)),
    ("generator_read_after", (2,)),
    ("lambda_calling_a_lambda", (2,)),
    ("lambda_of_a_name_not_bound_again", (2,)),
    ("lambda_read_after_beside", (2,)),
    # The closure is given to a step that reads it late, and its name is bound
    # again after: the binding waits for the step, as a write waits for a read.
    ("generator_given_then_bound_again", (2,)),
    ("lambdas_held_then_bound_again", (2,)),
    # Found by Hypothesis: `use` ran in a task that bound `x` for itself, and
    # the lambda, made in the flow's frame, read the flow's `x`, never bound.
    ("lambda_read_by_a_task", (2,)),
    # A default is read as the lambda is made, not when it is called (trial M):
    # kiln once made the lambda before the step binding the name it reads.
    ("lambda_default_read_now", (2,)),
    ("lambda_default_of_a_name_bound_by_a_step", (2,)),
    ("keyword_default_given_to_a_step", (2,)),
    # What a default holds reads late all the same.
    ("default_holding_a_closure", (2,)),
]


@pytest.mark.parametrize(("name", "args"), CASES)
def test_a_closure_sees_the_names_as_the_source_binds_them(
    name: str, args: tuple[int, ...], tmp_path: Path
) -> None:
    compiled, source = compiled_and_source(FLOWS, tmp_path)
    expected = asyncio.run(getattr(source, name)(*args))
    assert getattr(compiled, name)(*args) == expected
    capped = type(getattr(compiled, name))(concurrency=2)
    assert capped(*args) == expected


def test_the_warning_names_the_closure_and_the_name_bound_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.py"
    path.write_text(FLOWS, encoding="utf-8")
    warned = {
        (d.span.line, d.message)
        for d in compile_file(path).diagnostics
        if d.code is Code.EFFECT_ORDER
    }
    lines = FLOWS.splitlines()
    use_k = lines.index("    return await use(k) + y") + 1
    assert any(
        line == use_k and "is given k, which reads x when it runs" in message
        for line, message in warned
    ), warned
    # `x` is not bound again after `k`: nothing keeps `use` back.
    unbound_again = lines.index("    return y, await use(k)") + 1
    assert all(line != unbound_again for line, _ in warned), warned


def test_a_node_call_in_a_lambdas_default_is_refused_at_the_call(
    tmp_path: Path,
) -> None:
    source = FLOWS + dedent("""

        @flow
        async def awaited_default(x: int) -> int:
            k = lambda b=await g(x): b
            return k()
        """)
    path = tmp_path / "late.py"
    path.write_text(source, encoding="utf-8")
    (refused,) = [
        d for d in compile_file(path).diagnostics if d.code is Code.UNORDERED_CALL
    ]
    line = source.splitlines().index("    k = lambda b=await g(x): b") + 1
    assert (refused.span.line, refused.span.column) == (line, 24)
    assert refused.message == "a node call in a lambda cannot be ordered by kiln"
