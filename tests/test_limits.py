"""Capacity limits in compiled flows: `@node(limit=)`, `@flow(limits=, concurrency=)`.

Each flow records how many of its calls are in flight when each starts; the
tests check the peak never passes the cap and reaches it. Times are checked
with generous margins: the waits are tens of milliseconds, the margins more.
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

from kiln import Limit, OptionError
from tests.test_differential import compiled_and_source

GAUGE = """
import asyncio
import threading
import time
from kiln import Limit, flow, node

class Gauge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.starts: list[float] = []

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.starts.append(time.perf_counter())

    def leave(self) -> None:
        with self.lock:
            self.now -= 1

GAUGE = Gauge()

@node(limit="api")
async def call(index: int) -> int:
    GAUGE.enter()
    try:
        await asyncio.sleep(0.02)
    finally:
        GAUGE.leave()
    return index
"""


def build(tmp_path: Path, flows: str, nodes: str = GAUGE) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(nodes) + dedent(flows), tmp_path)
    return compiled


def fresh_gauge(module: ModuleType) -> Any:
    module.GAUGE = gauge = module.Gauge()
    return gauge


def test_a_cap_on_calls_in_flight_is_reached_and_never_passed(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(3)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    gauge = fresh_gauge(module)
    start = time.perf_counter()
    assert module.each(12) == list(range(12))
    elapsed = time.perf_counter() - start
    assert gauge.peak == 3
    assert 0.075 < elapsed < 0.5  # four waves of 20 ms: about 80 ms


def test_a_rate_limit_starts_capacity_calls_per_window(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(5, refresh=0.2)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    gauge = fresh_gauge(module)
    start = time.perf_counter()
    assert module.each(20) == list(range(20))
    elapsed = time.perf_counter() - start
    starts = sorted(gauge.starts)
    # Any five consecutive windows of starts: the sixth start is a window after the first.
    assert all(
        later - first >= 0.19 for first, later in zip(starts, starts[5:], strict=False)
    )
    assert starts[4] - starts[0] < 0.05  # the first window is used at once
    assert 0.59 < elapsed < 1.5  # waves at 0, 0.2, 0.4 and 0.6 s


def test_runtime_limits_override_the_compiled_ones(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(8)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    gauge = fresh_gauge(module)
    one_at_a_time = type(module.each)(limits={"api": Limit(1)})
    assert one_at_a_time(6) == list(range(6))
    assert gauge.peak == 1
    with pytest.raises(OptionError, match=r"'llm'.*its groups: 'api'"):
        type(module.each)(limits={"llm": Limit(1)})


def test_concurrent_runs_and_other_flows_share_one_limit_object(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(4)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]

        @flow(limits={"api": Limit(4)})
        async def other(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    gauge = fresh_gauge(module)

    async def runs() -> None:
        await asyncio.gather(*(module.each.aforward(6) for _ in range(3)))

    asyncio.run(runs())
    assert gauge.peak == 4

    shared = Limit(2)
    gauge = fresh_gauge(module)
    first = type(module.each)(limits={"api": shared})
    second = type(module.other)(limits={"api": shared})

    async def both() -> None:
        await asyncio.gather(first.aforward(6), second.aforward(6))

    asyncio.run(both())
    assert gauge.peak == 2


def test_runs_on_threads_of_their_own_share_a_limit(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(3)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    gauge = fresh_gauge(module)
    threads = [threading.Thread(target=module.each, args=(9,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gauge.peak == 3


def test_flow_concurrency_caps_every_node_call_of_a_run(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @node
        async def plain(index: int) -> int:
            GAUGE.enter()
            try:
                await asyncio.sleep(0.02)
            finally:
                GAUGE.leave()
            return index

        @node(thread=True)
        def blocking(index: int) -> int:
            GAUGE.enter()
            try:
                time.sleep(0.02)
            finally:
                GAUGE.leave()
            return index

        @flow(limits={"api": Limit(10)}, concurrency=2)
        async def mixed(n: int) -> int:
            a = [await call(i) for i in range(n)]
            b = [await plain(i) for i in range(n)]
            c = [blocking(i) for i in range(n)]
            return sum(a) + sum(b) + sum(c)
        """,
    )
    gauge = fresh_gauge(module)
    assert module.mixed(6) == 3 * sum(range(6))
    assert gauge.peak == 2
    gauge = fresh_gauge(module)
    assert type(module.mixed)(concurrency=5)(6) == 3 * sum(range(6))
    assert gauge.peak == 5


def test_each_attempt_is_admitted_and_a_failed_one_frees_its_slot(
    tmp_path: Path,
) -> None:
    module = build(
        tmp_path,
        """
        FAILED: dict[int, bool] = {}

        @node(limit="api", retries=5)
        async def flaky(index: int) -> int:
            GAUGE.enter()
            try:
                await asyncio.sleep(0.01)
                if index < 3 and index not in FAILED:  # a fill: elements overlap
                    FAILED[index] = True
                    raise ConnectionError("try again")
            finally:
                GAUGE.leave()
            return index

        @flow(limits={"api": Limit(2)})
        async def each(n: int) -> list[int]:
            return [await flaky(i) for i in range(n)]
        """,
    )
    gauge = fresh_gauge(module)
    assert module.each(6) == list(range(6))
    assert gauge.peak == 2
    assert len(gauge.starts) == 9  # 6 calls + 3 retries


def test_the_timeout_bounds_the_attempt_not_the_wait_for_capacity(
    tmp_path: Path,
) -> None:
    module = build(
        tmp_path,
        """
        @node(limit="api", timeout=0.15)
        async def slow(index: int) -> int:
            await asyncio.sleep(0.1)
            return index

        @flow(limits={"api": Limit(1)})
        async def each(n: int) -> list[int]:
            return [await slow(i) for i in range(n)]
        """,
    )
    assert module.each(3) == [0, 1, 2]  # the third waits 0.2 s, runs 0.1 s


def test_a_cancelled_waiter_leaks_no_capacity(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(1)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    shared = Limit(1)
    flow = type(module.each)(limits={"api": shared})

    async def cancelled_then_clean() -> list[int]:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.03):
                await flow.aforward(10)  # one in flight, nine waiting
        async with asyncio.timeout(1.0):  # a leaked slot would hang here
            return await flow.aforward(3)

    assert asyncio.run(cancelled_then_clean()) == [0, 1, 2]


def test_a_call_cancelled_between_its_gates_frees_the_first(tmp_path: Path) -> None:
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(2)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    shared = Limit(2)
    capped = type(module.each)(limits={"api": shared}, concurrency=1)

    async def cancelled() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.03):
                # Two calls pass the Limit; one of them waits on the run's cap.
                await capped.aforward(6)

    asyncio.run(cancelled())
    gauge = fresh_gauge(module)
    assert type(module.each)(limits={"api": shared})(4) == [0, 1, 2, 3]
    assert gauge.peak == 2  # both of the group's slots are free again


def test_each_instance_keeps_its_own_limits_however_many_are_made(
    tmp_path: Path,
) -> None:
    """Instances share wrapped calls per configuration: never another instance's Limit.

    More configurations than are kept (a durable instance is made per run,
    and a service may make Limits per request), each made again after others.
    """
    module = build(
        tmp_path,
        """
        @flow(limits={"api": Limit(8)})
        async def each(n: int) -> list[int]:
            return [await call(i) for i in range(n)]
        """,
    )
    kind = type(module.each)
    limits = [Limit(capacity) for capacity in (1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6, 7)]
    for limit in [*limits, *reversed(limits), None]:
        gauge = fresh_gauge(module)
        instance = kind(limits=None if limit is None else {"api": limit})
        assert instance(10) == list(range(10))
        assert gauge.peak == (8 if limit is None else limit.capacity)
