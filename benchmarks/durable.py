"""Benchmarks: durable runs (``F(run_id=...)``) against the same flows without a run id.

    python benchmarks/durable.py [--repeats N]
    python benchmarks/run.py --durable      (this table after the others)

The chain of benchmarks/run.py (200 trivial async steps) and its fan-out
(benchmarks/flows/fanout.py, here 1,000 calls that wait 0 s), compiled with
the `kiln` command, each run on a ledger file in a temporary directory:

1. a run's fixed cost: claiming its id and reading its journal, then
   recording how it ended, two transactions each committed with an fsync
   (``synchronous=FULL``); measured as a 1-step chain replayed, less the
   same chain without a run id;
2. live: a new run id each run, so every call runs and is journaled. A chain
   commits its rows one at a time, each before the next step starts (a
   commit, and an fsync, per step); a fan-out's rows are committed together
   by the ledger's writer thread (group commit);
3. replayed: the finished run of one id run again by a new instance, as a
   new process would: every call answered from the journal (its key, its
   arguments' digest checked, its value decoded), none run.

Each row gives the time per call, durable and without a run id, and what
the journal adds to one call: the difference, the fixed cost of (1) left
out. The targets, from the issue that asked for durable runs: under 20 µs
per journaled call with group commit, under 5 µs per replayed call. Every
figure is the median of `--repeats` runs, durable and plain interleaved. The
file system under the temporary directory decides what an fsync costs: the
first line says which it is (``TMPDIR=/dev/shm`` measures without the disk).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from common import Row, chain_source, compile_flows, load, table

HERE = Path(__file__).resolve().parent
CHAIN_LENGTH = 200
FANOUT_WIDTH = 1_000
JOURNALED_TARGET = 20.0  # µs per journaled call, group commit
REPLAYED_TARGET = 5.0  # µs per replayed call

Run = Callable[[], Coroutine[Any, Any, Any]]


def timed(run: Run) -> float:
    start = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - start


def medians(runs: dict[str, Run], repeats: int) -> dict[str, float]:
    """The median seconds of each run, the runs interleaved so that drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        timed(run)  # warm up: the ledger opened, every code path taken once
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(timed(run))
    return {name: statistics.median(values) for name, values in samples.items()}


def durable_runs(flow: Any, ledger: Path, *args: Any) -> dict[str, Run]:
    """The flow without a run id, with a new one each run (live), with a finished one."""
    finished = uuid.uuid4().hex
    asyncio.run(type(flow)(run_id=finished, ledger=ledger).aforward(*args))
    kind = type(flow)
    return {
        "plain": lambda: flow.aforward(*args),
        "live": lambda: kind(run_id=uuid.uuid4().hex, ledger=ledger).aforward(*args),
        "replayed": lambda: kind(run_id=finished, ledger=ledger).aforward(*args),
    }


def fixed_cost(chain: Any, ledger: Path, repeats: int) -> tuple[float, Row]:
    """Seconds a durable run costs whatever its calls, and its row."""
    times = medians(durable_runs(chain, ledger, 0), repeats)
    fixed = times["replayed"] - times["plain"]
    return fixed, Row(
        "a durable run's fixed cost: claim its id and read its journal, record its "
        "end (two transactions, each committed with an fsync); a 1-step chain "
        "replayed, less the same without a run id",
        f"{fixed * 1000:.2f} ms",
        "",
        "",
        "",
        None,
    )


def flow_rows(
    what: str, flow: Any, calls: int, fixed: float, repeats: int, *args: Any
) -> list[Row]:
    """The live and the replayed rows of `flow`, which makes `calls` calls."""
    ledger = Path(tempfile.mkdtemp(prefix="kiln-durable-")) / "ledger.db"
    times = medians(durable_runs(flow, ledger, *args), repeats)
    shutil.rmtree(ledger.parent)
    each = {name: seconds / calls * 1e6 for name, seconds in times.items()}
    added = {
        name: (times[name] - fixed - times["plain"]) / calls * 1e6
        for name in ("live", "replayed")
    }
    grouped = "fan-out" in what
    return [
        Row(
            f"{what}, a new run id: time per call, every call run and journaled "
            f"({'group commit' if grouped else 'a commit, an fsync, per call'})",
            f"{each['live']:.1f} µs",
            f"{each['plain']:.1f} µs",
            f"+{added['live']:.1f} µs per journaled call",
            f"< {JOURNALED_TARGET:g} µs per journaled call" if grouped else "",
            added["live"] < JOURNALED_TARGET if grouped else None,
        ),
        Row(
            f"{what}, its finished run again: time per call, every call replayed "
            "from the journal",
            f"{each['replayed']:.1f} µs",
            f"{each['plain']:.1f} µs",
            f"+{added['replayed']:.1f} µs per replayed call",
            f"< {REPLAYED_TARGET:g} µs per replayed call",
            added["replayed"] < REPLAYED_TARGET,
        ),
    ]


def rows(repeats: int) -> list[Row]:
    """The fixed cost of a durable run, then the chain and the fan-out, live and replayed."""
    with tempfile.TemporaryDirectory(prefix="kiln-durable-") as name:
        scratch = Path(name)
        (scratch / "step.py").write_text(chain_source(1), encoding="utf-8")
        (scratch / "chain.py").write_text(chain_source(CHAIN_LENGTH), encoding="utf-8")
        shutil.copy(HERE / "flows" / "fanout.py", scratch / "fanout.py")
        names = ("step", "chain", "fanout")
        compile_flows([scratch / f"{name}.py" for name in names], scratch / "build")
        step, chain, fanout = (load(scratch / "build" / f"{name}.py") for name in names)
        fixed, fixed_row = fixed_cost(step.chain, scratch / "ledger.db", repeats)
        return [
            fixed_row,
            *flow_rows(
                f"chain of {CHAIN_LENGTH} trivial async nodes",
                chain.chain,
                CHAIN_LENGTH,
                fixed,
                repeats,
                0,
            ),
            *flow_rows(
                f"fan-out of {FANOUT_WIDTH:,} trivial async calls",
                fanout.fanout,
                FANOUT_WIDTH,
                fixed,
                repeats,
                FANOUT_WIDTH,
                0.0,
            ),
        ]


def file_system(path: Path) -> str:
    """The type of the file system `path` is on, from /proc/mounts; 'unknown' elsewhere."""
    try:
        mounts = [
            line.split() for line in Path("/proc/mounts").read_text().splitlines()
        ]
    except OSError:
        return "unknown"
    resolved = path.resolve()
    found = [
        (len(point), kind)
        for _, point, kind, *_ in mounts
        if resolved.is_relative_to(point)
    ]
    return max(found)[1] if found else "unknown"


def markdown(repeats: int, command: str) -> list[str]:
    """The lines of the durable runs' table, after a line that says how it was measured."""
    where = Path(tempfile.gettempdir())
    return [
        f"Measured by `{command}` on Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; the ledger on {file_system(where)} ({where}); medians "
        f"of {repeats} interleaved runs.",
        "",
        *table(rows(repeats), "durable", "without a run id", "what the journal adds"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=9, help="runs per figure (default 9)"
    )
    args = parser.parse_args()
    print("\n".join(markdown(args.repeats, "python benchmarks/durable.py")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
