"""A stream that fails mid-iteration leaves its flow with the note naming its call.

A stream node's code runs where its generator is read: at the `for` (the
`async for`) that iterates it, the fan-out that draws it, the node it is
handed to, and not at the line that made it (`_kiln_rows_value = rows(n)`).
Each of those lines notes the stream's failure as the stream's (trial Q9 §4);
a line that makes two calls names the one whose code raised: the element of
a fan-out over a stream, or the node the stream is handed to, when they fail.
"""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from tests.test_differential import compiled_and_source

SOURCE = """\
import asyncio
from collections.abc import AsyncIterator, Iterator

from kiln import flow, node


@node
def rows(n: int) -> Iterator[int]:
    for i in range(n):
        if i == 2:
            raise ConnectionResetError("rows broke at 2")
        yield i


@node
async def ticks(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        if i == 2:
            raise BrokenPipeError("ticks broke at 2")
        yield i


@node
def consume(xs: Iterator[int]) -> int:
    return sum(xs)


@node
def refuse(xs: Iterator[int]) -> int:
    raise LookupError("refused")


@node
async def double(x: int) -> int:
    return 2 * x


@node(timeout=0.05)
async def stuck(x: int) -> int:
    await asyncio.sleep(5)
    return x


@flow
async def summed(n: int) -> int:
    total = 0
    for v in rows(n):
        total += v
    return total


@flow
def summed_sync(n: int) -> int:
    total = 0
    for v in rows(n):
        total += v
    return total


@flow
async def asummed(n: int) -> int:
    total = 0
    async for v in ticks(n):
        total += v
    return total


@flow
async def handed_on(n: int) -> int:
    return consume(rows(n))


@flow
async def handed_on_refused(n: int) -> int:
    return refuse(rows(n))


@flow
async def fanned(n: int) -> list[int]:
    return [await double(v) for v in rows(n)]


@flow
async def afanned(n: int) -> list[int]:
    return [await double(v) async for v in ticks(n)]


@flow
async def timed_out(n: int) -> list[int]:
    return [await stuck(v) async for v in ticks(n)]


@flow
async def streamed(n: int) -> AsyncIterator[int]:
    async for v in ticks(n):
        yield v


@flow
async def through_a_subflow(n: int) -> int:
    total = 0
    async for v in streamed(n):
        total += v
    return total


@flow
def streamed_sync(n: int) -> Iterator[int]:
    for v in rows(n):
        yield v


@flow
def through_a_sync_subflow(n: int) -> int:
    total = 0
    for v in streamed_sync(n):
        total += v
    return total
"""

NOTE = re.compile(
    r"kiln: (node|flow) '(\w+)' failed; defined at \S+, called at \S+:(\d+)"
)


def called_at(name: str, flow: str) -> tuple[str, int]:
    """The note's (name, line) for the call of `name` in the flow `flow`."""
    lines = SOURCE.splitlines()
    start = next(i for i, line in enumerate(lines) if f"def {flow}(" in line)
    found = next(i for i in range(start, len(lines)) if f"{name}(n)" in lines[i])
    return name, found + 1


CASES = {
    flow: [called_at(name, flow)]
    for flow, name in [
        ("summed", "rows"),
        ("summed_sync", "rows"),
        ("asummed", "ticks"),
        ("handed_on", "rows"),
        ("fanned", "rows"),
        ("afanned", "ticks"),
    ]
}
# A line that makes two calls: the one that raised.
CASES["handed_on_refused"] = [("refuse", called_at("rows", "handed_on_refused")[1])]
CASES["timed_out"] = [("stuck", called_at("ticks", "timed_out")[1])]
# The innermost call first: the stream node in the subflow, then the subflow.
CASES["through_a_subflow"] = [
    called_at("ticks", "streamed"),
    called_at("streamed", "through_a_subflow"),
]
CASES["through_a_sync_subflow"] = [
    called_at("rows", "streamed_sync"),
    called_at("streamed_sync", "through_a_sync_subflow"),
]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compiled_and_source(SOURCE, tmp_path_factory.mktemp("stream_notes"))[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_failing_stream_is_noted_at_its_call(compiled: ModuleType, name: str) -> None:
    with pytest.raises((OSError, LookupError)) as raised:
        getattr(compiled, name)(5)
    notes = [m for n in raised.value.__notes__ if (m := NOTE.search(n))]
    assert [(m[2], int(m[3])) for m in notes] == CASES[name]
