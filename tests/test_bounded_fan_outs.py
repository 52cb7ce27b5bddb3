"""Fan-outs under a cap hold at most the cap's elements, and read their input lazily.

Under `@flow(concurrency=N)` a compiled fan-out runs at most N elements at
once and takes the next item only when one finishes (`gather(bound=N)`, a
pool of workers; `amap(bound=N)` for `async for`); the order of results and
of failures is the sequential run's. Structure only: counts of elements in
flight and of items read, never wall-clock times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from kiln import amap, fan_out, gather
from tests.probes import library_module
from tests.test_differential import compiled_and_source


@dataclass
class Gauge:
    """Elements in flight now and at most, and items the input gave out."""

    now: int = 0
    most: int = 0
    read: int = 0

    async def element(self, x: int) -> int:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.001 * (1 + x % 3))
        self.now -= 1
        return x * 2

    def items(self, n: int) -> Iterator[int]:
        for x in range(n):
            self.read += 1
            yield x


@pytest.mark.parametrize("bound", [1, 3, 50])
def test_gather_keeps_at_most_bound_elements_and_reads_as_they_finish(
    bound: int,
) -> None:
    gauge = Gauge()
    work = (gauge.element(x) for x in gauge.items(20))
    results = asyncio.run(gather(work, bound=bound))
    assert results == [2 * x for x in range(20)]
    assert gauge.most == min(bound, 20)
    assert gauge.read == 20


def test_gather_reads_no_item_before_a_worker_is_free() -> None:
    gate = asyncio.Event()
    read: list[int] = []

    async def blocked(x: int) -> int:
        await gate.wait()
        return x

    def items() -> Iterator[int]:
        for x in range(1000):
            read.append(x)
            yield x

    async def main() -> list[int]:
        run = asyncio.ensure_future(gather((blocked(x) for x in items()), bound=4))
        for _ in range(5):
            await asyncio.sleep(0)
        assert read == [0, 1, 2, 3]  # four workers, each holding one element
        gate.set()
        return await run

    assert asyncio.run(main()) == list(range(1000))


def test_after_a_failure_a_bounded_gather_reads_no_more() -> None:
    read: list[int] = []

    async def element(x: int) -> int:
        await asyncio.sleep(0)
        if x == 2:
            raise ValueError("element 2")
        return x

    def items() -> Iterator[int]:
        for x in range(1000):
            read.append(x)
            yield x

    with pytest.raises(ValueError, match="element 2"):
        asyncio.run(gather((element(x) for x in items()), bound=2))
    assert len(read) < 10


def test_a_bound_below_one_is_refused() -> None:
    async def main() -> None:
        await gather(iter([]), bound=0)

    with pytest.raises(ValueError, match="at least 1"):
        asyncio.run(main())


@pytest.mark.parametrize("bound", [1, 3])
def test_amap_keeps_at_most_bound_elements_and_reads_as_they_finish(
    bound: int,
) -> None:
    gauge = Gauge()
    reads_ahead: list[int] = []

    async def arriving() -> AsyncIterator[int]:
        for x in range(20):
            reads_ahead.append(gauge.now)
            yield x

    results = asyncio.run(amap(arriving(), gauge.element, bound=bound))
    assert results == [2 * x for x in range(20)]
    assert gauge.most <= bound
    assert max(reads_ahead) < bound  # an item is read only into a free slot


FLOW = """
import asyncio
from collections.abc import AsyncIterator, Iterator
from kiln import flow, node

in_flight = [0, 0]  # now, most
read = [0]

@node
async def work(x: int) -> int:
    in_flight[0] += 1
    in_flight[1] = max(in_flight)
    await asyncio.sleep(0.001 * (x % 4))
    in_flight[0] -= 1
    return x + 1

@node
async def double(x: int) -> int:
    return 2 * x

@node
async def numbers(n: int) -> AsyncIterator[int]:
    for x in range(n):
        yield x

def items(n: int) -> Iterator[int]:
    for x in range(n):
        read[0] += 1
        yield x

@flow(concurrency=3)
async def capped(n: int) -> list[int]:
    return [await work(x) for x in items(n)]

@flow(concurrency=3)
async def capped_pairs(n: int) -> list[int]:
    return [await double(await work(x)) for x in items(n) if x % 2 == 0]

@flow(concurrency=3)
async def capped_table(n: int) -> dict[int, int]:
    return {x: await double(await work(x)) for x in items(n) if x != 4}

@flow(concurrency=2)
async def capped_stream(n: int) -> list[int]:
    return [await work(x) async for x in numbers(n)]

@flow
async def free(n: int) -> list[int]:
    return [await work(x) for x in items(n)]
"""


@pytest.mark.parametrize(
    ("flow", "construct", "expected_most"),
    [
        ("capped", {}, 3),
        ("capped", {"concurrency": 1}, 1),
        ("capped_pairs", {}, 3),
        ("capped_table", {}, 3),
        ("capped_stream", {}, 2),
        ("free", {}, 30),
    ],
)
def test_a_compiled_fan_out_under_a_cap_keeps_to_it(
    flow: str, construct: dict[str, int], expected_most: int, tmp_path: Path
) -> None:
    """The same result as the source's, with no more elements in flight than the cap."""
    compiled, source = compiled_and_source(FLOW, tmp_path)
    expected = asyncio.run(getattr(source, flow)(30))
    compiled.in_flight[:] = [0, 0]
    instance = type(getattr(compiled, flow))(**construct)
    assert asyncio.run(instance.aforward(30)) == expected
    assert compiled.in_flight[1] == expected_most


SHARED = """
import asyncio
from collections.abc import Iterator
from kiln import flow, node
import probe

finished: list[str] = []

@node
async def work(x: int) -> int:
    probe.entered()
    await asyncio.sleep(0.001 * (1 + x % 3))
    probe.left()
    finished.append(f"work {x}")
    if x == 13:
        raise ValueError("item 13")
    return x + 1

@node
async def early(n: int) -> int:
    probe.entered()
    await asyncio.sleep(0.004)
    probe.left()
    return n

@node
async def side(n: int) -> int:
    probe.entered()
    finished.append("side starts")
    await asyncio.sleep(0.001)
    probe.left()
    return -n

def items(n: int) -> Iterator[int]:
    for x in range(n):
        probe.drawn()
        yield x

@flow(concurrency=2)
async def shared(n: int) -> tuple[list[int], int]:
    later = await side(await early(n))
    return [await work(x) for x in items(n)], later
"""

# What the calls in flight are, kept in a library kiln does not read: the
# probe's reads and writes are outside effects, which leave the elements
# concurrent (a generator reading module state the elements change would
# keep them in order, as the source runs them).
PROBE = """
in_flight = [0, 0]  # now, most: of every node call of the run
reads_ahead: list[int] = []  # the calls in flight as each item is read


def reset() -> None:
    in_flight[:] = [0, 0]
    reads_ahead.clear()


def entered() -> None:
    in_flight[0] += 1
    in_flight[1] = max(in_flight)


def left() -> None:
    in_flight[0] -= 1


def drawn() -> None:
    reads_ahead.append(in_flight[0])
"""


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return library_module(tmp_path, monkeypatch, "probe", PROBE)


def test_a_capped_fan_out_shares_the_cap_with_the_runs_other_calls(
    tmp_path: Path, probe: ModuleType
) -> None:
    """The fan-out's workers hold the run's cap for its calls: with a call outside it
    in flight, no more than the cap run at once, no item is read without a free
    slot, and a call waiting for the cap gets the next slot an element frees,
    not the last."""
    compiled, source = compiled_and_source(SHARED, tmp_path / "project")
    assert "_kiln.fan_out(work, items(n))" in (tmp_path / "project/out.py").read_text()
    expected = asyncio.run(source.shared(12))
    probe.reset()
    assert asyncio.run(compiled.shared.aforward(12)) == expected
    assert probe.in_flight[1] == 2
    assert max(probe.reads_ahead) < 2
    # `side` waits for a slot once `early` is done; the two workers hold both.
    started = compiled.finished.index("side starts")
    assert sum(entry.startswith("work") for entry in compiled.finished[:started]) <= 6


def test_a_capped_fan_out_raises_the_first_failure_and_reads_no_more(
    tmp_path: Path, probe: ModuleType
) -> None:
    compiled, _ = compiled_and_source(SHARED, tmp_path / "project")
    with pytest.raises(ValueError, match="item 13"):
        asyncio.run(compiled.shared.aforward(1000))
    assert len(probe.reads_ahead) < 20  # read up to the failure, and a slot past it


def test_a_capped_fan_out_counts_a_visit_per_call(
    tmp_path: Path, probe: ModuleType
) -> None:
    """`fan_out` calls the node itself in a capped run, and counts the visits its
    wrapped call would have counted."""
    compiled, _ = compiled_and_source(SHARED, tmp_path / "project")
    instance = compiled.shared
    sites = [site.node for site in instance._kiln_sites]

    async def main() -> list[int]:
        with instance._kiln_bind(instance._kiln_sites) as calls:
            work = calls[sites.index("work")]
            assert await fan_out(work, range(5)) == [1, 2, 3, 4, 5]
            return list(work.__self__.visits)

    visits = asyncio.run(main())
    assert visits[sites.index("work")] == 5
