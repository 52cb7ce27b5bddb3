"""Run the differential generators for many flows: compiled against source, every one.

    python benchmarks/fuzz.py --flows 10000 --jobs 2

The test suite runs a few dozen flows of each generator, derandomized, so CI
stays quick. This runs as many as asked, split over worker processes with
different seeds: `tests/flowgen.py` (tidy DAG flows: fan-outs, branches,
loops, retries, subflows) and `tests/effectgen.py` (flows that change what
they pass, alias, consume iterators, share a Memory across clones, log
between steps, guard side effects, fail twice). It prints the flows run per
generator and each failure's source, input and error, and exits 1 on any.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiln import Memory  # noqa: E402
from tests.effectgen import effect_flows  # noqa: E402
from tests.flowgen import flows  # noqa: E402
from tests.test_differential import (  # noqa: E402
    compiled_and_source,
    plain_run_without_failures,
)
from tests.test_effect_differential import check as check_effects  # noqa: E402

Failure = tuple[str, int, str]
PROGRESS = 250  # a job says how far it is every this many flows


def check_tidy(source: str, x: int, directory: Path) -> None:
    compiled, reference = compiled_and_source(source, directory)
    expected = asyncio.run(
        plain_run_without_failures(reference).main(x, Memory({"log": []}))
    )
    got = asyncio.run(compiled.main.aforward(x, Memory({"log": []})))
    assert got == expected, (got, expected)
    # Under a cap and unobserved, a fan-out's workers call the nodes themselves.
    capped = type(compiled.main)(concurrency=1 + abs(x) % 3)
    got = asyncio.run(capped.aforward(x, Memory({"log": []})))
    assert got == expected, ("capped", got, expected)


GENERATORS: dict[str, tuple[Callable[[], Any], Callable[[str, int, Path], None]]] = {
    "flowgen": (flows, check_tidy),
    "effectgen": (effect_flows, check_effects),
}


def run(job: tuple[str, int, int]) -> tuple[str, int, list[Failure]]:
    """One worker: `count` flows of one generator from its own seed."""
    name, count, worker_seed = job
    strategy, check = GENERATORS[name]
    failures: list[Failure] = []
    ran = 0
    started = time.perf_counter()

    @seed(worker_seed)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(source=strategy(), x=st.integers(min_value=-50, max_value=50))
    def each(source: str, x: int) -> None:
        nonlocal ran
        ran += 1
        loaded = set(sys.modules)
        with tempfile.TemporaryDirectory() as directory:
            try:
                check(source, x, Path(directory))
            except Exception as error:  # every failure is reported, none stops the run
                failures.append((source, x, f"{type(error).__name__}: {error}"[:2000]))
        # The two modules of each flow would otherwise pile up for the whole run.
        for module in set(sys.modules) - loaded:
            del sys.modules[module]
        if ran % PROGRESS == 0:
            elapsed = time.perf_counter() - started
            print(f"{name} #{worker_seed}: {ran} flows, {elapsed:.0f} s", flush=True)

    each()
    return name, ran, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1000, help="flows per generator")
    parser.add_argument("--jobs", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--only", choices=sorted(GENERATORS), help="one generator")
    args = parser.parse_args()
    names = [args.only] if args.only else sorted(GENERATORS)
    per_job = max(1, args.flows // args.jobs)
    jobs = [(name, per_job, index) for name in names for index in range(args.jobs)]
    start = time.perf_counter()
    totals: dict[str, int] = {}
    failures: list[tuple[str, Failure]] = []
    with multiprocessing.Pool(args.jobs) as pool:
        # Each job's tally as it ends: a long run stopped early still says what it saw.
        for name, ran, found in pool.imap_unordered(run, jobs):
            totals[name] = totals.get(name, 0) + ran
            failures += [(name, failure) for failure in found]
            elapsed = time.perf_counter() - start
            print(
                f"{name}: a job of {ran} flows ended with {len(found)} failures "
                f"({elapsed:.0f} s)",
                flush=True,
            )
    elapsed = time.perf_counter() - start
    for name in names:
        broken = sum(1 for which, _ in failures if which == name)
        print(f"{name}: {totals[name]} flows, {broken} failures")
    print(f"{elapsed:.0f} s")
    for name, (source, x, error) in failures[:10]:
        print(f"\n=== {name}, x={x}: {error}\n{source}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
