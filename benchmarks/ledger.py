"""Benchmarks: the ledger behind `cache=True`, cold against warm, and what one call costs.

    python benchmarks/ledger.py [--repeats N] [--calls N]

Loads, each on a fresh ledger file in a temporary directory:

a. a cached fan-out of 1,000 async calls of 10 ms each through `Ledger.call`:
   the cold run (every call computes, and is committed before it returns)
   and the warm rerun (every call a hit), at three widths: every call at
   once, at most 100 and at most 10 in flight (a rate-limited service). The
   same fan-out without a ledger is the floor. The ledger is closed between
   the runs, so the warm rerun opens it as a new process would.
b. the cost of one hit, in a loop of sequential calls: `call` and
   `call_sync` with an int argument and an int result, and `call` with a
   str argument and a nested dataclass result (decoding is most of it);
c. the cost of one miss with a trivial computation: sequential (one commit
   per call, ``synchronous=FULL``: an fsync each) and 1,000 at once (the
   writer thread commits them in a few transactions).

Every figure is the median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln.ledger import Ledger

CALL_SECONDS = 0.010
WIDTHS: tuple[int | None, ...] = (None, 100, 10)


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Summary:
    title: str
    words: int
    points: tuple[Point, ...]


async def fetch(index: int) -> int:
    await asyncio.sleep(CALL_SECONDS)
    return index * index


async def square(index: int) -> int:
    return index * index


def square_sync(index: int) -> int:
    return index * index


async def summarize(text: str) -> Summary:
    return Summary(text[:10], len(text.split()), (Point(1, 2), Point(3, 4)))


async def fan_out(ledger: Ledger | None, calls: int, width: int | None) -> float:
    """Seconds for `calls` cached calls of `fetch`, at most `width` in flight."""
    gate = asyncio.Semaphore(width or calls)
    run = uuid.uuid4().hex

    async def one(index: int) -> int:
        async with gate:
            if ledger is None:
                return await fetch(index)
            value, _ = await ledger.call(
                "fetch", "v1", fetch, (index,), {}, lambda: fetch(index), run=run
            )
            return value

    start = time.perf_counter()
    results = await asyncio.gather(*(one(index) for index in range(calls)))
    elapsed = time.perf_counter() - start
    assert results == [index * index for index in range(calls)]
    return elapsed


def cold_and_warm(
    directory: Path, calls: int, width: int | None
) -> tuple[float, float]:
    ledger = Ledger.at(directory / f"fan-out-{width}-{uuid.uuid4().hex}.db")
    cold = asyncio.run(fan_out(ledger, calls, width))
    ledger.close()
    warm = asyncio.run(fan_out(ledger, calls, width))
    ledger.close()
    return cold, warm


async def per_call(
    ledger: Ledger,
    node: str,
    fn: Callable[..., Awaitable[Any]],
    argument: object,
    loops: int,
    classes: tuple[type, ...] = (),
) -> float:
    """Microseconds per hit of one stored call, awaited in a loop.

    `classes` are those the compiler would list for `fn`'s return annotation.
    """
    run = uuid.uuid4().hex

    async def hit() -> bool:
        _, found = await ledger.call(
            node,
            "v1",
            fn,
            (argument,),
            {},
            lambda: fn(argument),
            classes=classes,
            run=run,
        )
        return found

    await hit()
    start = time.perf_counter()
    for _ in range(loops):
        found = await hit()
    elapsed = time.perf_counter() - start
    assert found
    return elapsed / loops * 1e6


def per_sync_call(ledger: Ledger, loops: int) -> float:
    ledger.call_sync("square_sync", "v1", square_sync, (7,), {}, lambda: square_sync(7))
    start = time.perf_counter()
    for _ in range(loops):
        ledger.call_sync(
            "square_sync", "v1", square_sync, (7,), {}, lambda: square_sync(7)
        )
    return (time.perf_counter() - start) / loops * 1e6


async def misses(ledger: Ledger, calls: int, *, at_once: bool) -> float:
    """Microseconds per stored result of a trivial computation."""
    offset = uuid.uuid4().int % 10**9

    async def one(index: int) -> None:
        key = offset + index
        _, hit = await ledger.call(
            "square", "v1", square, (key,), {}, lambda: square(key)
        )
        assert not hit

    start = time.perf_counter()
    if at_once:
        await asyncio.gather(*(one(index) for index in range(calls)))
    else:
        for index in range(calls):
            await one(index)
    return (time.perf_counter() - start) / calls * 1e6


def median(measure: Callable[[], float], repeats: int) -> float:
    return statistics.median(measure() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    repeats, calls = args.repeats, args.calls
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.machine()}, {platform.system()}; median of {repeats} runs\n"
    )
    with tempfile.TemporaryDirectory(prefix="kiln-ledger-bench-") as name:
        directory = Path(name)
        print(f"a. {calls:,} cached calls of {CALL_SECONDS * 1000:g} ms each\n")
        print("| in flight | no ledger | cold run | warm rerun | warm / cold |")
        print("|---|---|---|---|---|")
        for width in WIDTHS:
            floor = median(
                lambda w=width: asyncio.run(fan_out(None, calls, w)), repeats
            )
            runs = [cold_and_warm(directory, calls, width) for _ in range(repeats)]
            cold = statistics.median(c for c, _ in runs)
            warm = statistics.median(w for _, w in runs)
            print(
                f"| {width or 'all'} | {floor * 1000:,.0f} ms | {cold * 1000:,.0f} ms "
                f"| {warm * 1000:,.1f} ms | {warm / cold:.1%} |"
            )

        ledger = Ledger.at(directory / "calls.db")
        loops = 20_000
        text = "the quick brown fox jumps over the lazy dog " * 5
        rows = [
            (
                "hit: `call`, int -> int",
                lambda: asyncio.run(per_call(ledger, "sq", square, 7, loops)),
            ),
            ("hit: `call_sync`, int -> int", lambda: per_sync_call(ledger, loops)),
            (
                "hit: `call`, str -> nested dataclass",
                lambda: asyncio.run(
                    per_call(
                        ledger, "summarize", summarize, text, loops, (Summary, Point)
                    )
                ),
            ),
            (
                "miss, stored: sequential (a commit each)",
                lambda: asyncio.run(misses(ledger, 300, at_once=False)),
            ),
            (
                f"miss, stored: {calls:,} at once (group commit)",
                lambda: asyncio.run(misses(ledger, calls, at_once=True)),
            ),
        ]
        print("\nb, c. one call\n")
        print("| call | cost |")
        print("|---|---|")
        for title, measure in rows:
            print(f"| {title} | {median(measure, repeats):,.1f} µs |")
        ledger.close()


if __name__ == "__main__":
    sys.exit(main())
