"""Hand-written asyncio for the benchmarks: what kiln's compiled flows are measured against.

Each function does the same work as a flow the runner compiles, written the
way a careful person would write it without kiln.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


async def step(x: int) -> int:
    return x + 1


async def chain(x: int, length: int) -> int:
    """`x = await step(x)`, `length` times."""
    for _ in range(length):
        x = await step(x)
    return x


async def wait(index: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return index


async def fanout(n: int, seconds: float) -> list[int]:
    """`n` concurrent waits with `asyncio.gather`."""
    return list(await asyncio.gather(*(wait(index, seconds) for index in range(n))))


async def pooled(n: int, workers: int) -> list[int]:
    """`step(x)` for each x in range(n), `workers` at a time: that many tasks pull x from
    one shared iterator, each writing its results at their indices."""
    results = [0] * n
    todo = iter(range(n))

    async def worker() -> None:
        for x in todo:
            results[x] = await step(x)

    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())
    return results


async def gathered(n: int) -> list[int]:
    """`step(x)` for each x in range(n), all at once with `asyncio.gather`."""
    return list(await asyncio.gather(*(step(x) for x in range(n))))


async def work(delay: float, inputs: list[int]) -> int:
    await asyncio.sleep(delay)
    return sum(inputs) + 1


async def dag(
    delays: Sequence[float], inputs: Sequence[Sequence[int]], sinks: Sequence[int]
) -> list[int]:
    """Run a DAG of waits: one task per node, started at once, each waiting on the
    events of its inputs; the values of the sinks."""
    done = [asyncio.Event() for _ in delays]
    values: list[int] = [0] * len(delays)

    async def run(node: int) -> None:
        for other in inputs[node]:
            await done[other].wait()
        values[node] = await work(
            delays[node], [values[other] for other in inputs[node]]
        )
        done[node].set()

    async with asyncio.TaskGroup() as group:
        for node in range(len(delays)):
            group.create_task(run(node))
    return [values[sink] for sink in sinks]


async def a(x: int) -> int:
    return x + 2


async def b(i: int, x: int) -> int:
    return i + 1 if x >= 0 else i


async def c(i: int) -> int:
    return i + 1


async def loop(x: int, iterations: int) -> int:
    """`while i < iterations: x = await a(x); i = await b(i, x)`, with no visit counting."""
    i = 0
    while i < iterations:
        x = await a(x)
        i = await b(i, x)
    return x


async def loop_gathered(x: int, iterations: int) -> int:
    """Two independent calls per iteration, overlapped by hand with `asyncio.gather`."""
    i = 0
    while i < iterations:
        x, i = await asyncio.gather(a(x), c(i))
    return x
