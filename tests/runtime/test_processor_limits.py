"""Limit.processor, and the admission gate shared across threads and event loops.

Two sync runs of a flow, each `asyncio.run` in its own thread, that hold one
Limit share its capacity. The property test drives random capacities, windows
and arrivals through the gate and checks the two invariants and that nothing
waits longer than it must.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln import Limit, Processor

# --- Limit.processor ----------------------------------------------------------------------


def test_a_limit_without_refresh_caps_calls_in_flight() -> None:
    processor = Limit(4).processor
    assert processor.capacity_refresh_time is None
    assert processor.concurrency_limit == 4
    assert processor.available_capacity == 4


def test_a_limit_with_refresh_is_a_window_of_starts() -> None:
    processor = Limit(8, refresh=1).processor
    assert (processor.queue_capacity, processor.capacity_refresh_time) == (8, 1.0)
    assert processor.concurrency_limit is None


def test_one_limit_object_one_processor_and_equal_limits_apart() -> None:
    limit = Limit(2, refresh=0.5)
    assert limit.processor is limit.processor
    twin = Limit(2, refresh=0.5)
    assert twin == limit
    assert hash(twin) == hash(limit)
    assert twin.processor is not limit.processor
    assert repr(limit) == "Limit(capacity=2, refresh=0.5)"


def test_copies_and_pickles_are_new_groups() -> None:
    limit = Limit(3)
    processor = limit.processor
    for clone in (
        copy.copy(limit),
        copy.deepcopy(limit),
        pickle.loads(pickle.dumps(limit)),
        dataclasses.replace(limit),
    ):
        assert clone == limit
        assert clone.processor is not processor
        assert clone.processor.concurrency_limit == 3


def test_threads_asking_at_once_get_one_processor() -> None:
    limit = Limit(1)
    barrier = threading.Barrier(8)

    def ask() -> Processor:
        barrier.wait()
        return limit.processor

    with ThreadPoolExecutor(8) as pool:
        processors = list(pool.map(lambda _: ask(), range(8)))
    assert all(processor is processors[0] for processor in processors)


# --- across threads and loops ---------------------------------------------------------------


def test_two_loops_in_two_threads_share_the_cap() -> None:
    limit = Limit(3)
    lock = threading.Lock()
    running = peak = 0

    async def call() -> None:
        nonlocal running, peak
        await limit.processor.acquire()
        try:
            with lock:
                running += 1
                peak = max(peak, running)
            await asyncio.sleep(0.003)
            with lock:
                running -= 1
        finally:
            limit.processor.release()

    async def run() -> None:
        await asyncio.gather(*(call() for _ in range(40)))

    threads = [threading.Thread(target=asyncio.run, args=(run(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert peak == 3, f"the cap of 3 must be reached and never exceeded; peak {peak}"
    assert running == 0
    assert limit.processor.available_capacity == 3


def test_two_loops_in_two_threads_share_the_window() -> None:
    limit = Limit(4, refresh=0.2)
    starts: list[float] = []
    lock = threading.Lock()

    async def call() -> None:
        await limit.processor.acquire()
        with lock:
            starts.append(time.monotonic())
        limit.processor.release()

    async def run() -> None:
        await asyncio.gather(*(call() for _ in range(6)))

    began = time.monotonic()
    threads = [threading.Thread(target=asyncio.run, args=(run(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    starts.sort()
    assert len(starts) == 12
    for i in range(len(starts) - 4):
        assert starts[i + 4] - starts[i] >= 0.18, "more than 4 starts in 0.2 s"
    # Twelve starts at four per window: three windows, and no idle one.
    assert starts[-1] - began < 0.7


def test_a_waiter_on_one_loop_is_woken_by_a_release_on_another() -> None:
    processor = Processor.capped(1)
    held = threading.Event()
    admitted_after: list[float] = []

    async def holder() -> None:
        await processor.acquire()
        held.set()
        await asyncio.sleep(0.1)
        processor.release()

    async def waiter() -> None:
        held.wait(5)
        began = time.monotonic()
        await processor.acquire()
        admitted_after.append(time.monotonic() - began)
        processor.release()

    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(asyncio.run, holder()),
            pool.submit(asyncio.run, waiter()),
        ]
        for future in futures:
            future.result(10)
    assert len(admitted_after) == 1
    assert 0.05 <= admitted_after[0] < 1.0


def test_a_waiter_of_a_finished_loop_leaks_nothing() -> None:
    # asyncio.run cancels what is left when its main task ends: the waiter's
    # place in line goes with it, and the slot comes back when released.
    processor = Processor.capped(1)

    async def leave_a_waiter() -> None:
        await processor.acquire()
        asyncio.get_running_loop().create_task(processor.acquire())
        await asyncio.sleep(0.01)

    asyncio.run(leave_a_waiter())
    processor.release()
    assert processor.available_capacity == 1

    async def use() -> None:
        await asyncio.wait_for(processor.acquire(), 1)
        processor.release()

    asyncio.run(use())


# --- the invariants, over random loads ------------------------------------------------------


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    capacity=st.integers(1, 4),
    refresh=st.sampled_from([None, 0.04, 0.07]),
    cap=st.one_of(st.none(), st.integers(1, 3)),
    arrivals=st.lists(
        st.tuples(st.floats(0, 0.08), st.floats(0, 0.03)), min_size=1, max_size=12
    ),
)
def test_window_and_cap_hold_under_random_loads(
    capacity: int,
    refresh: float | None,
    cap: int | None,
    arrivals: list[tuple[float, float]],
) -> None:
    if refresh is None:
        processor = Processor.capped(cap or capacity)
        limit = cap or capacity
    else:
        processor = Processor(capacity, refresh, cap)
        limit = cap
    starts: list[float] = []
    running = peak = 0

    async def call(arrive: float, work: float) -> None:
        nonlocal running, peak
        await asyncio.sleep(arrive)
        await processor.acquire()
        starts.append(time.monotonic())
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(work)
        running -= 1
        processor.release()

    async def run() -> float:
        began = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(call(*a) for a in arrivals)), 10)
        return time.monotonic() - began

    elapsed = asyncio.run(run())
    starts.sort()
    assert len(starts) == len(arrivals)
    if limit is not None:
        assert peak <= limit
    if refresh is not None:
        for i in range(len(starts) - capacity):
            assert starts[i + capacity] - starts[i] >= refresh - 0.005
    # Liveness: never slower than running the calls one after another, each a
    # window apart, after the last arrival; a gate that lost a wakeup would be.
    bound = max(a for a, _ in arrivals) + sum(w + (refresh or 0) for _, w in arrivals)
    assert elapsed < bound + 0.5
    if refresh is None:
        assert processor.available_capacity == limit, "every slot came back"


@pytest.mark.parametrize("refresh", [None, 0.05])
def test_available_capacity_comes_back(refresh: float | None) -> None:
    processor = Processor.capped(2) if refresh is None else Processor(2, refresh)

    async def use() -> None:
        await processor.acquire()
        await processor.acquire()
        assert processor.available_capacity == 0
        processor.release()
        processor.release()

    asyncio.run(use())
    if refresh is not None:
        time.sleep(refresh * 1.5)
    assert processor.available_capacity == 2
