"""`kiln.dask.DaskBackend`: compiled flows whose node calls run on a Dask cluster.

A scheduler and two worker processes on 127.0.0.1, started with the `dask`
command as on real machines, serve the module (their processes are checked
gone after they stop); ``"local"`` starts a LocalCluster of its own. What is
checked against them:

- every example in examples/ gives the result, and writes the files, that it
  gives locally;
- exceptions come back as the original type with the same notes; thread
  nodes run in the workers' processes; `local=True` nodes and calls passed a
  `Memory` stay in the driver;
- a worker killed in the middle of a node: the flow still returns the right
  result, and the cached node's result is in the ledger once;
- a module the workers cannot import: a `DaskError` naming it and the worker
  within the probe's timeout, and the workers still work afterwards;
- a node's timeout stops its coroutine on the worker;
- 40 half-second I/O calls take about half a second on two workers with 20
  threads each; with one thread each the calls queue;
- `kiln run --dask ADDRESS` and `--dask local`.

Node functions talk to the test through files (the workers are other
processes, started before any test sets an environment variable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from kiln import Memory, OptionError
from kiln.dask import DaskBackend, DaskError, DaskUnavailableError, backend_from_address
from kilnc.pipeline import compile_file
from tests.test_cli import KILN, write
from tests.test_differential import compiled_and_source
from tests.test_examples import (
    EXAMPLE_FLOWS,
    EXAMPLES,
    NAMES,
    load_module,
    plain,
    written,
)

pytestmark = [
    pytest.mark.skipif(
        find_spec("distributed") is None,
        reason="Dask distributed is not installed (pip install -e '.[test]' installs it)",
    ),
    pytest.mark.xdist_group("dask"),  # one worker starts the cluster, once
]

LOCALHOST = ("--host", "127.0.0.1")
THREADS = 20  # per worker: enough for 40 concurrent I/O calls on two workers


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds} s for {what}")
        time.sleep(0.05)


def spawned(before: set[int]) -> list[Any]:
    """Child processes started since `before`, except multiprocessing's resource tracker."""
    import psutil  # noqa: PLC0415 - a dependency of distributed

    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.pid not in before
        and "resource_tracker" not in " ".join(child.cmdline())
    ]


def assert_stopped(processes: list[Any]) -> None:
    import psutil  # noqa: PLC0415

    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, f"processes left running: {alive}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A scheduler and two worker processes on 127.0.0.1, started as on real machines.

    With the `dask` command rather than a LocalCluster, whose scheduler would
    live in this process and so import every module the tests load: a real
    scheduler runs elsewhere and has none of them.
    """
    import psutil  # noqa: PLC0415
    from distributed import Client  # noqa: PLC0415

    directory = tmp_path_factory.mktemp("dask")
    address_file = directory / "scheduler.json"
    log = (directory / "cluster.log").open("w")
    dask = str(Path(sys.executable).with_name("dask"))
    started = [
        subprocess.Popen(
            [
                dask,
                "scheduler",
                *LOCALHOST,
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--scheduler-file",
                str(address_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        # The scheduler writes its file after making it: wait until it parses.
        wait_for(lambda: _address(address_file) is not None, 30, "the scheduler")
        address = str(_address(address_file))
        started.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    *LOCALHOST,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    str(THREADS),
                    "--no-dashboard",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        # Every process they started, replacements of killed workers included.
        processes = [psutil.Process(p.pid) for p in started if p.poll() is None]
        processes += [c for p in processes for c in p.children(recursive=True)]
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)
        log.close()
        assert_stopped(processes)


@pytest.fixture(scope="module")
def backend(cluster: str) -> Iterator[DaskBackend]:
    with DaskBackend(cluster, probe_timeout=20) as dask:
        yield dask


def scheduler_clients(address: str) -> int:
    from distributed import Client  # noqa: PLC0415

    with Client(address, set_as_default=False) as observer:
        count = observer.run_on_scheduler(
            lambda dask_scheduler: len(dask_scheduler.clients)
        )
    return int(count) - 1  # not the observer itself


# --- the examples ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("dask_examples")
    for name in NAMES:
        compilation = compile_file(EXAMPLES / f"{name}.py")
        assert compilation.output is not None, compilation.diagnostics
        (build / f"{name}.py").write_text(compilation.output, encoding="utf-8")
    return build


@pytest.mark.parametrize("name", NAMES)
def test_every_example_gives_its_local_result_on_the_cluster(
    name: str, example_build: Path, backend: DaskBackend, tmp_path: Path
) -> None:
    flow_name, inputs = EXAMPLE_FLOWS[name]
    source = load_module(f"kiln_example_source_{name}", EXAMPLES / f"{name}.py")
    compiled = load_module(f"kiln_dask_example_{name}", example_build / f"{name}.py")
    local = getattr(compiled, flow_name)
    remote = type(local)(backend=backend)
    with inputs(source, tmp_path) as arguments:
        expected = asyncio.run(local.aforward(*arguments("local")))
        result = asyncio.run(remote.aforward(*arguments("dask")))
        again = remote(*arguments("dask_sync"))  # the sync entry: a fresh loop per run
    assert plain(result) == plain(expected)
    assert plain(again) == plain(expected)
    assert written(tmp_path / "dask") == written(tmp_path / "local")
    assert written(tmp_path / "dask_sync") == written(tmp_path / "local")


# --- semantics ------------------------------------------------------------------------------

NODES = """
import asyncio
import os
from kiln import Memory, flow, node

class Unlucky(ValueError):
    pass

@node
async def double(x: int) -> int:
    await asyncio.sleep(0.001)
    if x == 13:
        error = Unlucky(f"unlucky {x}")
        error.add_note("raised by the node")
        raise error
    return 2 * x

@node(thread=True)
def where_threaded(x: int) -> int:
    return os.getpid()

@node
async def where_async(x: int) -> int:
    return os.getpid()

@node(local=True)
async def where_local(x: int) -> int:
    return os.getpid()

@node
async def remember(memory: Memory, x: int) -> int:
    memory.seen = memory.seen + [x]
    return os.getpid()

@flow
async def doubles(n: int) -> list[int]:
    return [await double(i) for i in range(n)]

@flow
async def places(x: int) -> tuple[int, int, int]:
    return where_threaded(x), await where_async(x), await where_local(x)

@flow
async def remembered(memory: Memory, n: int) -> list[int]:
    return [await remember(memory, i) for i in range(n)]

def current_trace() -> str:
    from opentelemetry import trace
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}:{context.span_id:016x}:{os.getpid()}"

@node
async def traced_async(x: int) -> str:
    return current_trace()

@node(thread=True)
def traced_thread(x: int) -> str:
    return current_trace()

@flow
async def traced(x: int) -> tuple[str, str]:
    return await traced_async(x), traced_thread(x)

@node(thread=True)
def stops_in_thread(x: int) -> int:
    raise StopIteration(f"stop {x}")

def named(x: int, error: Exception) -> str:
    return f"{type(error).__name__}: {error}"

@node(thread=True, fallback=named)
def stops_with_fallback(x: int) -> str:
    raise StopIteration(f"stop {x}")

@flow
def stopped(x: int) -> int:
    return stops_in_thread(x)

@flow
def fell_back(x: int) -> str:
    return stops_with_fallback(x)
"""


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> types.ModuleType:
    compiled, _ = compiled_and_source(dedent(NODES), tmp_path_factory.mktemp("nodes"))
    return compiled


def test_results_and_exceptions_are_the_local_ones(
    nodes: types.ModuleType, backend: DaskBackend
) -> None:
    remote = type(nodes.doubles)(backend=backend)
    assert remote(12) == nodes.doubles(12) == [2 * i for i in range(12)]
    with pytest.raises(nodes.Unlucky) as local:
        nodes.doubles(14)
    with pytest.raises(nodes.Unlucky) as dask:
        remote(14)
    assert type(dask.value) is type(local.value)
    assert str(dask.value) == str(local.value) == "unlucky 13"
    assert dask.value.__notes__ == local.value.__notes__
    assert dask.value.__notes__[0] == "raised by the node"


def test_a_thread_node_s_stop_iteration_on_a_worker_is_the_local_one(
    nodes: types.ModuleType, backend: DaskBackend
) -> None:
    """The worker's future would refuse it: it comes back as what kiln's own
    coroutines carry it as, and leaves the flow as the StopIteration itself."""
    with pytest.raises(StopIteration) as local:
        nodes.stopped(1)
    with pytest.raises(StopIteration) as dask:
        type(nodes.stopped)(backend=backend)(1)
    assert str(dask.value) == str(local.value) == "stop 1"
    assert dask.value.__notes__ == local.value.__notes__
    fell_back = type(nodes.fell_back)(backend=backend)
    assert fell_back(1) == nodes.fell_back(1) == "StopIteration: stop 1"


def test_nodes_run_on_workers_except_local_ones(
    nodes: types.ModuleType, backend: DaskBackend
) -> None:
    threaded, awaited, local = type(nodes.places)(backend=backend)(1)
    assert local == os.getpid()
    assert threaded != os.getpid()
    assert awaited != os.getpid()


def test_a_node_on_a_worker_runs_in_its_node_spans_trace_context(
    nodes: types.ModuleType, backend: DaskBackend
) -> None:
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    flow = type(nodes.traced)(backend=backend, tracer=provider.get_tracer("test"))
    seen = flow(1)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    for name, on_worker in zip(
        ("node traced_async", "node traced_thread"), seen, strict=True
    ):
        context = spans[name].get_span_context()
        trace_id, span_id, pid = on_worker.split(":")
        assert (trace_id, span_id) == (
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
        )
        assert int(pid) != os.getpid(), "it ran on a worker"


def test_a_call_passed_a_memory_runs_in_the_driver(
    nodes: types.ModuleType, backend: DaskBackend
) -> None:
    memory = Memory({"seen": []})
    pids = type(nodes.remembered)(backend=backend)(memory, 3)
    assert set(pids) == {os.getpid()}
    assert sorted(memory.seen) == [0, 1, 2]


def test_runs_on_many_loops_share_one_connection_and_close_leaves_none(
    nodes: types.ModuleType, cluster: str
) -> None:
    before = scheduler_clients(cluster)
    dask = DaskBackend(cluster)
    remote = type(nodes.doubles)(backend=dask)

    async def twice() -> list[list[int]]:
        return [await remote.aforward(2), await remote.aforward(3)]

    assert remote(2) == [0, 2]
    assert remote(2) == [0, 2]
    assert asyncio.run(twice()) == [[0, 2], [0, 2, 4]]
    assert scheduler_clients(cluster) == before + 1
    dask.close()
    assert scheduler_clients(cluster) == before
    assert remote(1) == [0]  # a closed backend opens a new connection when used again
    dask.close()
    assert scheduler_clients(cluster) == before


VERSIONED = """
from kiln import flow, node

@node
async def version() -> str:
    return {version!r}

@flow
async def which() -> str:
    return await version()
"""


def test_a_module_loaded_again_with_new_code_is_shipped_again(
    backend: DaskBackend, tmp_path: Path
) -> None:
    name = f"kiln_dask_versioned_{uuid.uuid4().hex}"
    for version in ("first", "second"):
        source = write(
            tmp_path / version / "flow.py", dedent(VERSIONED.format(version=version))
        )
        compilation = compile_file(source)
        assert compilation.output is not None
        generated = write(tmp_path / version / f"{name}.py", compilation.output)
        module = load_module(name, generated)  # the same name, a new module
        assert type(module.which)(backend=backend)() == version


def test_a_client_names_the_cluster_to_use(
    nodes: types.ModuleType, cluster: str
) -> None:
    from distributed import Client  # noqa: PLC0415

    with (
        Client(cluster, set_as_default=False) as client,
        DaskBackend(client) as dask,
    ):
        assert type(nodes.doubles)(backend=dask)(3) == [0, 2, 4]


# --- a worker dies in the middle of a node -------------------------------------------------

DYING = """
import asyncio
import os
from kiln import flow, node

@node(cache=True)
async def slow_square(x: int, pids: str) -> int:
    with open(pids, "a") as log:
        log.write(f"{os.getpid()}\\n")
    await asyncio.sleep(2)
    return x * x

@flow
async def square(x: int, pids: str) -> int:
    return await slow_square(x, pids)
"""


def test_a_worker_killed_mid_node_loses_nothing(
    backend: DaskBackend, tmp_path: Path
) -> None:
    compiled, _ = compiled_and_source(dedent(DYING), tmp_path / "flow")
    ledger = tmp_path / "ledger.db"
    pids = tmp_path / "pids"
    remote = type(compiled.square)(backend=backend, ledger=str(ledger))

    async def kill_the_first_worker_to_start() -> None:
        await asyncio.to_thread(wait_for, pids.exists, 20, "the node to start")
        os.kill(int(pids.read_text().split()[0]), signal.SIGKILL)

    async def run() -> int:
        killer = asyncio.create_task(kill_the_first_worker_to_start())
        value: int = await remote.aforward(7, str(pids))
        await killer
        return value

    assert asyncio.run(run()) == 49
    started = pids.read_text().split()
    assert len(started) == 2
    assert len(set(started)) == 2  # Dask ran it again on another worker

    from kiln.ledger import Ledger  # noqa: PLC0415

    stats = Ledger.at(ledger).stats()
    assert sum(n.entries for n in stats.nodes if n.node == "slow_square") == 1
    assert remote(7, str(pids)) == 49  # from the ledger: the node did not run again
    assert len(pids.read_text().split()) == 2


# --- a module the workers cannot import ----------------------------------------------------

NEEDS_A_DRIVER_ONLY_PACKAGE = """
import {package}
from kiln import flow, node

@node
async def use(x: int) -> int:
    return x + {package}.OFFSET

@flow
async def main(x: int) -> int:
    return await use(x)
"""


def test_a_module_the_workers_cannot_import_fails_fast_and_clearly(
    backend: DaskBackend, cluster: str, tmp_path: Path
) -> None:
    # A package the driver has but cannot send (no source) and the workers lack.
    package = f"kiln_driver_only_{uuid.uuid4().hex}"
    sys.modules[package] = types.ModuleType(package)
    sys.modules[package].OFFSET = 1  # type: ignore[attr-defined]
    try:
        source = dedent(NEEDS_A_DRIVER_ONLY_PACKAGE.format(package=package))
        compiled, _ = compiled_and_source(source, tmp_path)
    finally:
        del sys.modules[package]
    probe_timeout = 10
    with DaskBackend(cluster, probe_timeout=probe_timeout) as dask:
        started = time.monotonic()
        with pytest.raises(DaskError) as failure:
            type(compiled.main)(backend=dask)(1)
        elapsed = time.monotonic() - started
    message = str(failure.value)
    assert compiled.__name__ in message
    assert "Dask worker tcp://127.0.0.1:" in message
    assert f"No module named '{package}'" in message
    assert "install on the workers" in message
    assert elapsed < probe_timeout
    # The workers were asked, never handed a task they could not unpickle: they still work.
    nodes_flow = compiled_and_source(dedent(NODES), tmp_path / "again")[0]
    assert type(nodes_flow.doubles)(backend=backend)(2) == [0, 2]


def test_a_scheduler_without_workers_fails_within_the_probe_timeout(
    nodes: types.ModuleType,
) -> None:
    from distributed import LocalCluster  # noqa: PLC0415

    with (
        LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as empty,
        DaskBackend(empty, probe_timeout=1) as dask,
    ):
        started = time.monotonic()
        with pytest.raises(DaskError, match=r"no worker joined .*`dask worker tcp://"):
            type(nodes.doubles)(backend=dask)(1)
        assert time.monotonic() - started < 10


def test_an_unreachable_scheduler_is_a_clear_error(nodes: types.ModuleType) -> None:
    with (
        DaskBackend("tcp://127.0.0.1:9", connect_timeout=1) as dask,
        pytest.raises(
            DaskError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"
        ),
    ):
        type(nodes.doubles)(backend=dask)(1)


# --- cancellation -----------------------------------------------------------------------------

STOPPABLE = """
import asyncio
from pathlib import Path
from kiln import flow, node

@node(timeout=1)
async def long_call(marks: str) -> str:
    Path(marks, "started").touch()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        Path(marks, "cancelled").touch()
        raise
    Path(marks, "finished").touch()
    return "done"

@flow
async def main(marks: str) -> str:
    return await long_call(marks)
"""


def test_a_timeout_stops_the_node_on_its_worker(
    backend: DaskBackend, tmp_path: Path
) -> None:
    compiled, _ = compiled_and_source(dedent(STOPPABLE), tmp_path / "flow")
    marks = tmp_path / "marks"
    marks.mkdir()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        type(compiled.main)(backend=backend)(str(marks))
    assert time.monotonic() - started < 10
    assert (marks / "started").exists()
    wait_for((marks / "cancelled").exists, 10, "the worker to cancel the node")
    assert not (marks / "finished").exists()


def test_a_run_cancelled_as_its_result_arrives_leaves_the_connection_working(
    nodes: types.ModuleType, cluster: str
) -> None:
    """Cancelled at each step between the result's arrival and its gather, a call
    must not break the next one. (Dask's client shares one gather task among
    concurrent results; cancelling its first awaiter before it runs used to leave
    every later result a CancelledError.)"""
    site = type(nodes.doubles)._kiln_sites[0]
    with DaskBackend(cluster) as dask:
        assert type(nodes.doubles)(backend=dask)(1) == [0]  # connected, module shipped
        connection = dask._connected()
        client = connection.client
        assert client is not None

        async def cancelled_once_finished(steps: int) -> int:
            before = set(client.futures)
            call = asyncio.ensure_future(connection.call(site, (1,), {}))
            while not any(
                state.status == "finished"
                for key, state in list(client.futures.items())
                if key not in before
            ):
                await asyncio.sleep(0.001)
            for _ in range(steps):
                await asyncio.sleep(0)
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call
            value: int = await connection.call(site, (21,), {})
            return value

        for steps in range(10):
            assert connection.submit(cancelled_once_finished(steps)).result(30) == 42


# --- I/O-bound nodes and threads per worker -------------------------------------------------

IO = """
import asyncio
from kiln import flow, node

@node
async def request(i: int) -> int:
    await asyncio.sleep(0.5)
    return i

@flow
async def fan_out(n: int) -> list[int]:
    return [await request(i) for i in range(n)]
"""


def test_forty_io_calls_take_half_a_second_with_twenty_threads_per_worker(
    backend: DaskBackend, tmp_path: Path
) -> None:
    compiled, _ = compiled_and_source(dedent(IO), tmp_path)
    remote = type(compiled.fan_out)(backend=backend)
    remote(2)  # ships the module: not part of the timing
    started = time.monotonic()
    assert remote(40) == list(range(40))
    assert time.monotonic() - started < 2.5  # one thread per worker: 10 s


def test_local_starts_a_cluster_whose_threads_bound_the_calls_in_flight(
    tmp_path: Path,
) -> None:
    import psutil  # noqa: PLC0415

    compiled, _ = compiled_and_source(dedent(IO), tmp_path)
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    with DaskBackend("local", workers=2, threads_per_worker=1) as dask:
        remote = type(compiled.fan_out)(backend=dask)
        remote(2)
        workers = spawned(before)
        assert len(workers) == 2
        started = time.monotonic()
        assert remote(6) == list(range(6))
        assert time.monotonic() - started > 1.4  # 6 calls, 2 slots: 3 rounds of 0.5 s
    assert_stopped(workers)


# --- what the backend accepts --------------------------------------------------------------


def test_options_are_checked() -> None:
    with pytest.raises(OptionError, match="size the cluster that 'local' starts"):
        DaskBackend("tcp://127.0.0.1:8786", workers=2)
    with pytest.raises(OptionError, match="probe_timeout must be above 0"):
        DaskBackend("local", probe_timeout=0)
    with pytest.raises(OptionError, match="threads_per_worker must be a whole number"):
        DaskBackend("local", threads_per_worker=0)
    with pytest.raises(OptionError, match="takes a scheduler address"):
        DaskBackend(8786)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="--dask needs a scheduler address"):
        backend_from_address("  ")
    assert repr(backend_from_address("local")) == "DaskBackend('local', not connected)"


def test_without_distributed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(
        DaskUnavailableError, match=r"pip install 'kiln\[dask\]'"
    ) as failure:
        DaskBackend("local")
    assert isinstance(failure.value, ImportError)


# --- kiln run --dask --------------------------------------------------------------------------

PLACES = """
import asyncio
import os
from kiln import flow, node

@node
async def remote_pid(x: int) -> int:
    await asyncio.sleep(0.001)
    return os.getpid()

@node(local=True)
async def driver_pid(x: int) -> int:
    return os.getpid()

@flow
async def where(x: int) -> str:
    return f"{await remote_pid(x)} {await driver_pid(x)}"
"""


def kiln_run(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    source = write(tmp_path / "places.py", dedent(PLACES))
    return subprocess.run(
        [*KILN, "run", f"{source}:where", "x=1", "--no-progress", *options],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize("where", ["cluster", "local"])
def test_kiln_run_dask_runs_the_nodes_on_the_cluster(
    where: str, cluster: str, tmp_path: Path
) -> None:
    address = cluster if where == "cluster" else "local"
    run = kiln_run(tmp_path, "--dask", address)
    assert run.returncode == 0, run.stderr
    remote, driver = run.stdout.split()
    assert remote != driver


def test_kiln_run_dask_without_an_address_is_a_usage_error(tmp_path: Path) -> None:
    run = kiln_run(tmp_path, "--dask", " ")
    assert run.returncode == 2
    assert "--dask needs a scheduler address" in run.stderr


TOKENS = """
import os
import uuid
from kiln import flow, node

@node
async def token(i: int) -> tuple[int, str]:
    return os.getpid(), uuid.uuid4().hex

@flow
async def tokens(n: int) -> list[tuple[int, str]]:
    return [await token(i) for i in range(n)]
"""


def test_a_durable_run_on_the_cluster_is_journaled_by_the_driver(
    backend: DaskBackend, tmp_path: Path
) -> None:
    compiled, _ = compiled_and_source(dedent(TOKENS), tmp_path / "flows")
    durable = type(compiled.tokens)
    ledger = tmp_path / "ledger.db"
    first = durable(backend=backend, run_id="d1", ledger=ledger)(6)
    assert all(pid != os.getpid() for pid, _ in first), "the nodes ran on workers"
    # Replayed: the driver's journal answers every call; a live call would draw
    # a new uuid on its worker.
    assert durable(backend=backend, run_id="d1", ledger=ledger)(6) == first
    assert durable(run_id="d1", ledger=ledger)(6) == first
    assert durable(backend=backend, run_id="d2", ledger=ledger)(6) != first


def _address(path: Path) -> str | None:
    """The scheduler's address from its file, once the file is whole."""
    try:
        return str(json.loads(path.read_text())["address"])
    except (OSError, ValueError, KeyError):
        return None
