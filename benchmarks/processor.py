"""Benchmarks: kiln's Processor against lionagi's and a plain asyncio.Semaphore, in one run.

    python benchmarks/processor.py [--repeats N]

Loads, the same for each system:

a. throughput under a rate limit: 200 events, at most 20 starts per 0.1 s,
   measured over the start times, (200 - 20) / (last start - first start),
   against the ideal 20 / 0.1 = 200 events/s; once with trivial events and
   once with events that take 50 ms (where lionagi's batch barrier shows);
b. start latency of a lone event with free capacity, refresh 0.2 s: from
   enqueue to the event's work starting, the processor already executing, at
   a random phase of the refresh cycle;
c. overhead: an uncontended acquire + release pair (kiln's gate, the
   Semaphore's; lionagi has no such call), and enqueue + one process() pass
   per trivial event in batches of 1,000;
d. kiln only: a NodeEvent created, recorded in an Executor, started and ended,
   which is what an observed node call of a compiled flow pays for its event.

The Semaphore stands in for a hand-written limiter: for (a) a Semaphore(20)
whose slot is released 0.1 s after each start (loop.call_later), for (b) and
(c) a task that acquires it. Every figure is the median of repeated runs, the
systems interleaved so that drift hits all alike.

lionagi is measured when importable (benchmarks/requirements.txt). kiln's
runtime is standard library only, so when `kiln` is not installed in the
interpreter running this file, it is imported from this checkout's runtime/:
the benchmark also runs from a virtualenv that holds lionagi and not kiln.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

try:
    import kiln
except (
    ImportError
):  # a venv with lionagi but not kiln: the stdlib-only runtime from here
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "runtime"))
    import kiln

from kiln import Event, EventStatus, Executor, NodeEvent, Processor

EVENTS, CAPACITY, REFRESH = 200, 20, 0.1
SLOW_EVENT = 0.05
LATENCY_REFRESH = 0.2
BATCH = 1_000
PAIRS = 20_000
NODE_EVENTS = 1_000

Measure = Callable[[], Awaitable[float]]


def _lionagi() -> tuple[str, Any, Any] | None:
    """lionagi's version, its Processor, and its Event doing KilnWork's work; None if absent."""
    try:
        event = importlib.import_module("lionagi.protocols.generic.event")
        processor = importlib.import_module("lionagi.protocols.generic.processor")
        pydantic = importlib.import_module("pydantic")  # a dependency of lionagi
    except ImportError:
        return None
    PrivateAttr = pydantic.PrivateAttr

    class LionWork(event.Event):  # type: ignore[misc, name-defined]
        """lionagi's Event (a pydantic model) doing the same as KilnWork."""

        seconds: float = 0.0
        _starts: list[float] = PrivateAttr(default_factory=list)

        async def _invoke(self) -> None:
            self._starts.append(time.monotonic())
            if self.seconds:
                await asyncio.sleep(self.seconds)

    return f"lionagi {metadata.version('lionagi')}", processor.Processor, LionWork


LIONAGI = _lionagi()


class KilnWork(Event):
    """Notes when its work starts, then takes `seconds`."""

    def __init__(self, starts: list[float], seconds: float = 0.0) -> None:
        super().__init__()
        self.starts = starts
        self.seconds = seconds

    async def _invoke(self) -> None:
        self.starts.append(time.monotonic())
        if self.seconds:
            await asyncio.sleep(self.seconds)


def lion_work(starts: list[float], seconds: float = 0.0) -> Any:
    assert LIONAGI is not None
    event = LIONAGI[2](seconds=seconds)
    event._starts = starts  # the same list for every event of a sample
    return event


def rate(starts: list[float]) -> float:
    """Events per second after the first window, over the start times."""
    starts = sorted(starts)
    return (len(starts) - CAPACITY) / (starts[-1] - starts[0])


# --- (a) throughput under a rate limit ------------------------------------------------------


async def kiln_rate(seconds: float) -> float:
    starts: list[float] = []
    processor = Processor(CAPACITY, REFRESH)
    for _ in range(EVENTS):
        await processor.enqueue(KilnWork(starts, seconds))
    await processor.join()
    return rate(starts)


async def semaphore_rate(seconds: float) -> float:
    starts: list[float] = []
    slots = asyncio.Semaphore(CAPACITY)
    loop = asyncio.get_running_loop()

    async def one() -> None:
        await slots.acquire()
        loop.call_later(
            REFRESH, slots.release
        )  # the slot returns a window after the start
        starts.append(time.monotonic())
        if seconds:
            await asyncio.sleep(seconds)

    await asyncio.gather(*(one() for _ in range(EVENTS)))
    await asyncio.sleep(REFRESH)  # let the last releases run before the next sample
    return rate(starts)


async def lionagi_rate(seconds: float) -> float:
    assert LIONAGI is not None
    starts: list[float] = []
    processor = LIONAGI[1](CAPACITY, REFRESH, None)
    events = [lion_work(starts, seconds) for _ in range(EVENTS)]
    for event in events:
        await processor.enqueue(event)
    runner = asyncio.create_task(processor.execute())
    await asyncio.gather(*(event.completion_event.wait() for event in events))
    await processor.stop()
    await runner
    return rate(starts)


# --- (b) start latency of a lone event -------------------------------------------------------


async def lone_latency(enqueue: Callable[[list[float]], Awaitable[Any]]) -> float:
    """Seconds from handing over one event to its work starting, at a random phase."""
    await asyncio.sleep(random.uniform(0, LATENCY_REFRESH))
    starts: list[float] = []
    began = time.monotonic()
    done = await enqueue(starts)
    while not starts:
        await asyncio.sleep(0)
    if done is not None:
        await done
    return starts[0] - began


async def kiln_latency() -> float:
    processor = Processor(5, LATENCY_REFRESH)
    runner = asyncio.create_task(processor.execute())
    await asyncio.sleep(0)

    async def hand_over(starts: list[float]) -> None:
        await processor.enqueue(KilnWork(starts))

    latency = await lone_latency(hand_over)
    await processor.stop()
    await runner
    return latency


async def semaphore_latency() -> float:
    slots = asyncio.Semaphore(5)

    async def run(starts: list[float]) -> None:
        async with slots:
            starts.append(time.monotonic())

    async def hand_over(starts: list[float]) -> asyncio.Task[None]:
        return asyncio.create_task(run(starts))

    return await lone_latency(hand_over)


async def lionagi_latency() -> float:
    assert LIONAGI is not None
    processor = LIONAGI[1](5, LATENCY_REFRESH, None)
    runner = asyncio.create_task(processor.execute())
    await asyncio.sleep(0)

    async def hand_over(starts: list[float]) -> None:
        await processor.enqueue(lion_work(starts))

    latency = await lone_latency(hand_over)
    await processor.stop()
    await runner
    return latency


# --- (c) overhead -----------------------------------------------------------------------------


async def pairs(gate: Any) -> float:
    """Seconds per uncontended acquire + release."""
    acquire, release = gate.acquire, gate.release
    began = time.perf_counter()
    for _ in range(PAIRS):
        await acquire()
        release()
    return (time.perf_counter() - began) / PAIRS


async def kiln_batch() -> float:
    processor = Processor(BATCH, 1.0)
    events = [KilnWork([]) for _ in range(BATCH)]
    began = time.perf_counter()
    for event in events:
        await processor.enqueue(event)
    await processor.process()
    elapsed = time.perf_counter() - began
    assert all(event.status is EventStatus.COMPLETED for event in events)
    return elapsed / BATCH


async def lionagi_batch() -> float:
    assert LIONAGI is not None
    processor = LIONAGI[1](BATCH, 1.0, None)
    events = [lion_work([]) for _ in range(BATCH)]
    began = time.perf_counter()
    for event in events:
        await processor.enqueue(event)
    await processor.process()
    elapsed = time.perf_counter() - began
    assert all(event.status.value == "completed" for event in events)
    return elapsed / BATCH


async def semaphore_batch() -> float:
    slots = asyncio.Semaphore(BATCH)

    async def run(event: KilnWork) -> None:
        async with slots:
            await event.invoke()

    events = [KilnWork([]) for _ in range(BATCH)]
    began = time.perf_counter()
    await asyncio.gather(*(asyncio.create_task(run(event)) for event in events))
    return (time.perf_counter() - began) / BATCH


# --- (d) a NodeEvent's cost --------------------------------------------------------------------


async def node_events() -> float:
    """Seconds per node event: created, recorded, started and ended, as compiled flows do."""
    executor = Executor()
    clock, processing, completed = (
        time.perf_counter,
        EventStatus.PROCESSING,
        EventStatus.COMPLETED,
    )
    began = clock()
    for visit in range(NODE_EVENTS):
        event = NodeEvent("summarize", "digest.py:19", 1, visit)
        executor.record(event)
        event.attempts, event.status, event.started = 1, processing, clock()
        event.ended, event.status = clock(), completed
    return (clock() - began) / NODE_EVENTS


# --- running and reporting ---------------------------------------------------------------------


async def medians(runs: dict[str, Measure], repeats: int) -> dict[str, float]:
    """The median of each measure, the systems interleaved so that drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            samples[name].append(await run())
    return {name: statistics.median(values) for name, values in samples.items()}


@dataclass(frozen=True)
class Row:
    load: str
    figures: dict[str, str]
    lionagi_measured: bool = True  # False where lionagi has nothing to compare


def peers(
    kiln_run: Measure, lionagi_run: Measure, semaphore_run: Measure
) -> dict[str, Measure]:
    runs = {"kiln": kiln_run, "asyncio.Semaphore": semaphore_run}
    if LIONAGI is not None:
        runs["lionagi"] = lionagi_run
    return runs


async def measure(repeats: int) -> tuple[list[Row], list[str]]:
    """The table's rows, and kiln's targets each with whether this run met it."""
    rows: list[Row] = []
    targets: list[str] = []
    ideal = CAPACITY / REFRESH
    for seconds, what in ((0.0, "trivial events"), (SLOW_EVENT, "events of 50 ms")):
        rates = await medians(
            peers(
                lambda s=seconds: kiln_rate(s),
                lambda s=seconds: lionagi_rate(s),
                lambda s=seconds: semaphore_rate(s),
            ),
            max(3, repeats // 3),
        )
        rows.append(
            Row(
                f"(a) throughput, {EVENTS} {what}, {CAPACITY} starts per {REFRESH} s "
                f"(ideal {ideal:.0f}/s)",
                {
                    name: f"{value:.1f}/s ({value / ideal:.1%})"
                    for name, value in rates.items()
                },
            )
        )
        met = rates["kiln"] >= 0.98 * ideal
        targets.append(_target(f"(a) {what}: kiln within 2% of the ideal rate", met))

    latencies = await medians(
        peers(kiln_latency, lionagi_latency, semaphore_latency), max(5, repeats)
    )
    rows.append(
        Row(
            f"(b) start latency of a lone event, free capacity, refresh {LATENCY_REFRESH} s",
            {name: f"{value * 1000:.2f} ms" for name, value in latencies.items()},
        )
    )
    met = latencies["kiln"] < 1e-3
    targets.append(_target("(b) kiln starts a lone event within 1 ms", met))

    pair = await medians(
        {
            "kiln": lambda: pairs(Processor.capped(10)),
            "kiln window": lambda: pairs(Processor(10**9, 1.0)),
            "asyncio.Semaphore": lambda: pairs(asyncio.Semaphore(10)),
        },
        max(5, repeats),
    )
    rows.append(
        Row(
            "(c) uncontended acquire + release",
            {
                "kiln": f"{pair['kiln'] * 1e6:.2f} µs (cap), "
                f"{pair['kiln window'] * 1e6:.2f} µs (window)",
                "asyncio.Semaphore": f"{pair['asyncio.Semaphore'] * 1e6:.2f} µs",
                "lionagi": "no such call",
            },
            lionagi_measured=False,
        )
    )
    batch = await medians(
        peers(kiln_batch, lionagi_batch, semaphore_batch), max(5, repeats)
    )
    rows.append(
        Row(
            f"(c) enqueue + process() per trivial event, batches of {BATCH:,} "
            "(Semaphore: a task per event)",
            {name: f"{value * 1e6:.1f} µs" for name, value in batch.items()},
        )
    )
    node = await medians({"kiln": node_events}, max(5, repeats))
    rows.append(
        Row(
            "(d) NodeEvent created, recorded in an Executor, started and ended",
            {"kiln": f"{node['kiln'] * 1e6:.2f} µs"},
            lionagi_measured=False,
        )
    )
    met = pair["kiln"] < 1e-6
    targets.append(_target("(c) kiln's uncontended acquire + release within 1 µs", met))
    return rows, targets


def _target(what: str, met: bool) -> str:
    return f"{what}: {'met' if met else 'NOT MET'}"


def markdown(rows: list[Row], targets: list[str], repeats: int) -> str:
    lion = LIONAGI[0] if LIONAGI is not None else "lionagi"
    columns = ["kiln", "lionagi", "asyncio.Semaphore"]
    lines = [
        f"Processor benchmark: Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}; medians of interleaved runs "
        f"(--repeats {repeats}).",
        "",
        f"| load | kiln {kiln.__version__} | {lion} | asyncio.Semaphore |",
        "|---|---|---|---|",
    ]
    absent = "not installed" if LIONAGI is None else "—"
    for row in rows:
        cells = [row.figures.get(column, "—") for column in columns]
        if "lionagi" not in row.figures and row.lionagi_measured:
            cells[1] = absent
        lines.append(f"| {row.load} | " + " | ".join(cells) + " |")
    if LIONAGI is None:
        lines += [
            "",
            "lionagi: not installed (pip install -r benchmarks/requirements.txt).",
        ]
    lines += ["", "Targets:", *(f"- {target}" for target in targets)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=9, help="runs per figure (default 9)"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write the table here"
    )
    arguments = parser.parse_args()
    if arguments.repeats < 1:
        parser.error("--repeats must be at least 1")
    rows, targets = asyncio.run(measure(arguments.repeats))
    table = markdown(rows, targets, arguments.repeats)
    print(table, end="")
    if arguments.markdown is not None:
        arguments.markdown.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
