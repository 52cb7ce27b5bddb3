"""`thread=True` nodes in compiled flows: what bounds how many really run at once.

A thread cannot be stopped: an attempt that timed out goes on in the
background. What it holds (its limit group's slot, its run's concurrency
slot, one of the process's `THREAD_CAP` node threads) it holds until its
thread ends, so the caps bound the threads that run, not the calls awaited.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest

from kiln.threads import THREAD_CAP
from tests.probes import library_module
from tests.test_differential import compiled_and_source

FLOWS = """
import threading
import time
from kiln import Limit, flow, node

class Gauge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1

GAUGE = Gauge()

@node(thread=True, timeout=0.02, retries=2, limit="db")
def query(x: int) -> int:
    with GAUGE:
        time.sleep(0.15)  # a blocking call its timeout cannot stop
    return x

@node(thread=True, timeout=0.02, retries=2)
def slow(x: int) -> int:
    with GAUGE:
        time.sleep(0.15)
    return x

@flow(limits={"db": Limit(1)})
def limited(x: int) -> int:
    return query(x)

@flow(concurrency=1)
def capped(x: int) -> int:
    return slow(x)
"""

# The gauge of the fan-out's calls, in a library kiln does not read: a gauge of
# the project's, which every call changes, would keep the calls in order.
THREAD_GAUGE = """
import threading

lock = threading.Lock()
in_flight = [0, 0]  # now, most


def entered() -> None:
    with lock:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)


def left() -> None:
    with lock:
        in_flight[0] -= 1
"""

FAN_OUT = """
import time
import threadgauge
from kiln import flow, node

@node(thread=True)
def blocking(x: int) -> int:
    threadgauge.entered()
    time.sleep(0.03)
    threadgauge.left()
    return x

@flow
def many(n: int) -> list[int]:
    return [blocking(i) for i in range(n)]
"""


@pytest.fixture
def module(tmp_path: Path) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(FLOWS), tmp_path)
    return compiled


def wait_for_idle(gauge: Any) -> None:
    deadline = time.monotonic() + 5
    while gauge.now and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("flow", ["limited", "capped"])
@pytest.mark.parametrize("observed", [False, True])
def test_an_attempt_that_timed_out_holds_its_slot_until_its_thread_ends(
    module: ModuleType, flow: str, observed: bool
) -> None:
    """Limit(1), or concurrency=1: each retry waits for the thread before it."""
    instance = getattr(module, flow)
    if observed or flow == "capped":  # a configured run's calls (the cap needs one)
        instance = type(instance)(record=True)
    started = time.perf_counter()
    with pytest.raises(TimeoutError) as raised:
        instance(1)
    assert "failed after 3 attempts" in raised.value.__notes__[0]
    wait_for_idle(module.GAUGE)
    assert (module.GAUGE.peak, module.GAUGE.calls) == (1, 3)
    # The retries waited for the slot: the three threads ran one after another.
    assert time.perf_counter() - started >= 2 * 0.15
    with pytest.raises(TimeoutError):  # every slot was given back: it runs again
        instance(2)
    wait_for_idle(module.GAUGE)
    assert (module.GAUGE.peak, module.GAUGE.calls) == (1, 6)


@pytest.mark.parametrize("observed", [False, True])
def test_a_fan_out_of_thread_nodes_runs_at_most_the_cap_of_node_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, observed: bool
) -> None:
    """The calls running at once, not the threads alive: a thread that has given
    its slot back is still alive for the moment it takes to end."""
    gauge = library_module(tmp_path, monkeypatch, "threadgauge", THREAD_GAUGE)
    compiled, _ = compiled_and_source(dedent(FAN_OUT), tmp_path / "project")
    instance = type(compiled.many)(record=True) if observed else compiled.many
    count = 3 * THREAD_CAP
    assert instance(count) == list(range(count))
    assert 1 < gauge.in_flight[1] <= THREAD_CAP  # they overlap, up to the cap


# A flow that fails stops what it started: the thread of a call it cancelled
# (a sibling failed, or its caller cancelled it) is waited for before the flow
# raises, so no write of it arrives after. Only an attempt that timed out goes
# on in the background.
OUTLIVED = """
import asyncio
import time
from kiln import flow, node

TRACE: list[str] = []

@node(thread=True)
def check(a: int) -> int:
    time.sleep(0.05)
    raise ValueError(f"bad input {a}")

@node(thread=True)
def work(a: int) -> int:
    time.sleep(0.3 if a else 0.0)
    if not a:
        raise ValueError("element 0")
    TRACE.append(f"wrote {a}")
    return a

@node(thread=True, timeout=0.05)
def overruns(a: int) -> int:
    time.sleep(0.3)
    TRACE.append(f"overran {a}")
    return a

@flow
async def siblings(n: int) -> int:
    ok = check(n)
    w = work(n)
    return ok + w

@flow
def siblings_sync(n: int) -> int:
    ok = check(n)
    w = work(n)
    return ok + w

@flow
async def fan_out(n: int) -> list[int]:
    return [work(i) for i in range(n)]

@flow
def fan_out_sync(n: int) -> list[int]:
    return [work(i) for i in range(n)]

@flow
async def cancelled(n: int) -> int:
    return work(n)

@flow
def timed_out(n: int) -> int:
    return overruns(n)

@flow
def inner(n: int) -> list[int]:
    return [work(i) for i in range(1, n)]

@node(thread=True)
def nested(n: int) -> int:
    return sum(inner(n))

@flow
async def outer(n: int) -> int:
    ok = check(n)
    return ok + nested(n)
"""


def settled_trace(module: ModuleType) -> list[str]:
    """TRACE once every node thread the test started has ended."""
    time.sleep(0.5)
    return list(module.TRACE)


@pytest.fixture
def outlived(tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(dedent(OUTLIVED), tmp_path)


def call(module: ModuleType, name: str, observed: bool, n: int) -> Any:
    instance = getattr(module, name)
    if observed:
        instance = type(instance)(record=True)
    result = instance(n)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


@pytest.mark.parametrize(
    ("flow", "n"),
    [
        ("siblings", 3),
        ("siblings_sync", 3),
        ("fan_out", 2 * THREAD_CAP),
        ("fan_out_sync", 2 * THREAD_CAP),
    ],
)
@pytest.mark.parametrize("observed", [False, True])
def test_no_thread_of_a_failed_flow_writes_after_it_raised(
    outlived: tuple[ModuleType, ModuleType], flow: str, n: int, observed: bool
) -> None:
    compiled, source = outlived
    with pytest.raises(ValueError, match=r"bad input|element 0") as expected:
        call(source, flow, False, n)
    with pytest.raises(ValueError, match=r"bad input|element 0") as raised:
        call(compiled, flow, observed, n)
    seen = list(compiled.TRACE)
    assert str(raised.value) == str(expected.value)
    assert settled_trace(compiled) == seen  # nothing arrived after the flow raised


@pytest.mark.parametrize("observed", [False, True])
def test_a_flow_its_caller_cancels_waits_for_its_threads(
    outlived: tuple[ModuleType, ModuleType], observed: bool
) -> None:
    compiled, _ = outlived
    instance = type(compiled.cancelled)(record=True) if observed else compiled.cancelled

    async def caller() -> None:
        await asyncio.wait_for(instance.aforward(1), 0.05)

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        asyncio.run(caller())
    assert time.perf_counter() - started >= 0.3  # the thread's sleep, waited for
    assert compiled.TRACE == ["wrote 1"] == settled_trace(compiled)


@pytest.mark.parametrize("observed", [False, True])
def test_an_attempt_that_timed_out_is_still_let_go(
    outlived: tuple[ModuleType, ModuleType], observed: bool
) -> None:
    compiled, _ = outlived
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        call(compiled, "timed_out", observed, 1)
    assert time.perf_counter() - started < 0.25  # not the thread's 0.3 s
    assert compiled.TRACE == []
    assert settled_trace(compiled) == ["overran 1"]  # it went on in the background


def test_a_node_thread_that_runs_a_flow_is_waited_for_without_a_deadlock(
    outlived: tuple[ModuleType, ModuleType],
) -> None:
    """The outer flow fails while its node's thread runs a fan-out of thread
    nodes through a flow's sync entry point: it waits for them all, and ends."""
    compiled, _ = outlived
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            compiled.outer(THREAD_CAP + 2)
        except BaseException as error:
            outcome.append(error)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "the failed flow never ended"
    assert [type(error) for error in outcome] == [ValueError]
    assert len(compiled.TRACE) == THREAD_CAP + 1 == len(settled_trace(compiled))
