"""Benchmark: a compiled flow's node calls in one process, and on two Dask worker processes.

    python benchmarks/dask_backend.py [--calls 200] [--cpu-ms 50] [--trivial 1000]

Measured in one run, printed as a Markdown table:

a. CPU-bound fan-out: `--calls` calls of a `thread=True` node that burns
   about `--cpu-ms` of CPU in pure Python. Locally the calls share one
   process, so the GIL runs one at a time; `DaskBackend("local", workers=2,
   threads_per_worker=1)` runs them on two worker processes (one thread each,
   since a CPU-bound call needs a core, not a slot);
b. dispatch overhead: a chain of trivial async node calls, one after the
   other, so each call's latency is on the critical path (per call: the
   round trip driver -> scheduler -> worker -> driver);
c. throughput of trivial calls: a fan-out of `--trivial` calls at once.

For (b) and (c) the same calls of a plain function through a plain Dask
`Client` on the same cluster show what Dask itself costs and what kiln adds.

The CPU burn is calibrated on this machine before the runs. The LocalCluster
is started once and warmed (kiln's modules shipped) before anything is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from distributed import Client, LocalCluster

from kiln.dask import DaskBackend

FLOWS = """
import asyncio
from kiln import flow, node


def spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


@node(thread=True)
def burn(i: int, iterations: int) -> int:
    return spin(iterations) + i


@node
async def trivial(i: int) -> int:
    return i


@flow
async def cpu(n: int, iterations: int) -> list[int]:
    return [burn(i, iterations) for i in range(n)]


@flow
async def fan(n: int) -> list[int]:
    return [await trivial(i) for i in range(n)]


@flow
async def chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await trivial(i)
    return total
"""


def compiled_flows(directory: Path) -> ModuleType:
    from kilnc.pipeline import compile_file  # noqa: PLC0415 - after sys.path is set

    source = directory / "bench_flows.py"
    source.write_text(FLOWS, encoding="utf-8")
    compilation = compile_file(source)
    if compilation.output is None:
        raise SystemExit(
            f"the benchmark flows did not compile: {compilation.diagnostics}"
        )
    generated = directory / "bench_flows_compiled.py"
    generated.write_text(compilation.output, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("bench_flows_compiled", generated)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def increment(i: int) -> int:
    return i + 1


def plain_chain_of(client: Any, links: int) -> int:
    total = 0
    for i in range(links):
        total += client.submit(increment, i, pure=False).result()
    return total


def calibrate(spin: Callable[[int], int], seconds: float) -> int:
    """Iterations of `spin` that take about `seconds` here."""
    iterations = 10_000
    while True:
        started = time.perf_counter()
        spin(iterations)
        took = time.perf_counter() - started
        if took > 0.02:
            return max(1, round(iterations * seconds / took))
        iterations *= 2


def timed(work: Callable[[], Any], repeats: int = 1) -> float:
    """The median wall time of `repeats` runs of `work`, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--cpu-ms", type=float, default=50.0)
    parser.add_argument("--trivial", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=200)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        flows = compiled_flows(Path(scratch))
        iterations = calibrate(flows.spin, options.cpu_ms / 1000)
        n, trivial, links = options.calls, options.trivial, options.chain
        expected = [flows.spin(iterations) + i for i in range(n)]

        local_cpu = timed(lambda: flows.cpu(n, iterations))
        local_chain = timed(lambda: flows.chain(links), repeats=3)
        local_fan = timed(lambda: flows.fan(trivial), repeats=3)

        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",
            ) as cluster,
            DaskBackend(cluster) as dask,
            Client(cluster, set_as_default=False) as client,
        ):
            cpu = type(flows.cpu)(backend=dask)
            fan = type(flows.fan)(backend=dask)
            chain = type(flows.chain)(backend=dask)
            assert cpu(2, iterations) == expected[:2]  # connects, ships, probes
            assert fan(10) == list(range(10))
            started = time.perf_counter()
            result = cpu(n, iterations)
            dask_cpu = time.perf_counter() - started
            assert result == expected
            dask_chain = timed(lambda: chain(links), repeats=3)
            dask_fan = timed(lambda: fan(trivial), repeats=3)
            # Dask alone, for what kiln adds: the same calls through a plain Client.
            plain_chain = timed(lambda: plain_chain_of(client, links), repeats=3)
            plain_fan = timed(
                lambda: client.gather(
                    client.map(increment, range(trivial), pure=False)
                ),
                repeats=3,
            )

    ms = 1000
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{n} calls of {options.cpu_ms:g} ms CPU ({iterations} iterations)\n"
    )
    print(
        "| measure | kiln, one process | kiln on Dask (2 workers x 1 thread) | Dask alone |"
    )
    print("|---|---:|---:|---:|")
    print(
        f"| {n} CPU-bound calls of ~{options.cpu_ms:g} ms (wall) "
        f"| {local_cpu:.2f} s | {dask_cpu:.2f} s ({local_cpu / dask_cpu:.2f}x faster) | |"
    )
    print(
        f"| latency per trivial call, {links} in a chain "
        f"| {local_chain / links * ms * 1000:.1f} µs | {dask_chain / links * ms:.2f} ms "
        f"| {plain_chain / links * ms:.2f} ms |"
    )
    print(
        f"| throughput, fan-out of {trivial} trivial calls "
        f"| {trivial / local_fan:,.0f} calls/s | {trivial / dask_fan:,.0f} calls/s "
        f"| {trivial / plain_fan:,.0f} calls/s |"
    )


if __name__ == "__main__":  # the LocalCluster's workers import this file again
    main()
