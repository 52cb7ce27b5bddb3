"""`kiln.threads`: the process's node threads, each held until it really ends."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from kiln import Policy, call_in_thread
from kiln.threads import THREAD_CAP, THREADS


def test_a_call_that_timed_out_holds_its_thread_s_slot_until_the_thread_ends() -> None:
    async def main() -> None:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            await call_in_thread(Policy("slow", timeout=0.01), time.sleep, 0.2)
        assert time.perf_counter() - started < 0.15  # the wait, not the work, ended
        assert THREADS._free() == THREAD_CAP - 1
        while time.perf_counter() - started < 2 and THREADS._free() < THREAD_CAP:
            await asyncio.sleep(0.01)
        assert THREADS._free() == THREAD_CAP

    asyncio.run(main())


def test_calls_made_inside_a_node_s_thread_take_no_slot_so_never_wait_for_their_own() -> (
    None
):
    """Every slot held by a call whose thread runs a flow of thread calls: none waits."""

    all_started = threading.Barrier(THREAD_CAP, timeout=10)

    def inner(x: int) -> int:
        time.sleep(0.01)
        return x

    def outer(x: int) -> int:
        all_started.wait()  # every slot is held before any inner call is made

        async def flow() -> list[int]:
            calls = (call_in_thread(Policy("inner"), inner, x + i) for i in range(3))
            return list(await asyncio.gather(*calls))

        return sum(asyncio.run(flow()))

    async def main() -> list[int]:
        calls = (call_in_thread(Policy("outer"), outer, x) for x in range(THREAD_CAP))
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=10))

    assert asyncio.run(main()) == [3 * x + 3 for x in range(THREAD_CAP)]


def slow_write(log: list[str], seconds: float) -> None:
    time.sleep(seconds)
    log.append("written")


def test_a_cancelled_call_returns_once_its_thread_has_ended() -> None:
    """No write of the thread arrives after the cancelled call has returned."""
    log: list[str] = []

    async def main() -> None:
        call = asyncio.ensure_future(
            call_in_thread(Policy("slow"), slow_write, log, 0.2)
        )
        await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert log == ["written"]

    asyncio.run(main())


def test_a_second_cancellation_stops_the_wait_for_the_thread() -> None:
    log: list[str] = []

    async def main() -> None:
        call = asyncio.ensure_future(
            call_in_thread(Policy("slow"), slow_write, log, 0.3)
        )
        await asyncio.sleep(0.02)
        call.cancel()
        await asyncio.sleep(0.02)
        call.cancel()  # the caller insists
        with pytest.raises(asyncio.CancelledError):
            await call
        assert log == []

    asyncio.run(main())
    time.sleep(0.4)
    assert log == ["written"]


def test_the_call_s_own_timeout_ends_the_wait_of_a_cancelled_call() -> None:
    log: list[str] = []

    async def main() -> None:
        call = asyncio.ensure_future(
            call_in_thread(Policy("slow", timeout=0.1), slow_write, log, 0.4)
        )
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert time.perf_counter() - started < 0.3  # its timeout, not its thread
        assert log == []

    asyncio.run(main())
    time.sleep(0.5)
    assert log == ["written"]


TENANT = contextvars.ContextVar("TENANT", default="default")


def set_tenant(name: str, fail: bool = False) -> str:
    TENANT.set(name)
    if fail:
        raise ValueError(name)
    return name


def test_what_the_node_sets_in_its_thread_is_set_in_the_caller_s_context() -> None:
    """As a sync call of the source sets it in the caller's context: returned or raised."""

    async def main() -> list[str]:
        seen = [await call_in_thread(Policy("set"), set_tenant, "acme"), TENANT.get()]
        with pytest.raises(ValueError, match="beta"):
            await call_in_thread(Policy("set"), set_tenant, "beta", fail=True)
        return [*seen, TENANT.get()]

    assert asyncio.run(main()) == ["acme", "acme", "beta"]
    assert TENANT.get() == "default"  # the run's context, not the test's


def test_a_timed_out_thread_s_sets_never_arrive() -> None:
    def late(name: str) -> None:
        time.sleep(0.2)
        TENANT.set(name)

    async def main() -> str:
        with pytest.raises(TimeoutError):
            await call_in_thread(Policy("late", timeout=0.02), late, "late")
        await asyncio.sleep(0.3)  # the thread has ended meanwhile
        return TENANT.get()

    assert asyncio.run(main()) == "default"


def test_a_thread_that_ended_in_time_is_not_timed_out_by_a_loop_held_meanwhile() -> (
    None
):
    """A plain sync call holds the loop past the deadline: the thread ended well
    before it, and its value stands (it was not retried: one call)."""
    calls: list[int] = []

    def quick(x: int) -> int:
        calls.append(x)
        time.sleep(0.02)
        return x

    async def held() -> None:
        await asyncio.sleep(0)
        time.sleep(0.5)  # the loop's, as a plain sync node's work

    async def main() -> list[int | None]:
        return list(
            await asyncio.gather(
                call_in_thread(Policy("quick", timeout=0.2, retries=1), quick, 7),
                held(),
            )
        )

    assert asyncio.run(main()) == [7, None]
    assert calls == [7]


def test_a_thread_that_ended_past_its_deadline_still_timed_out() -> None:
    def slow(x: int) -> int:
        time.sleep(0.3)
        return x

    async def held() -> None:
        await asyncio.sleep(0)
        time.sleep(0.6)  # the loop notices both at once; the thread was late

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.gather(
                call_in_thread(Policy("slow", timeout=0.1), slow, 1), held()
            )

    asyncio.run(main())


def test_the_wait_for_a_node_thread_counts_against_the_timeout() -> None:
    """With every node thread held by a call that timed out and never ends, a
    call with a timeout fails in its time, naming the cap, instead of waiting."""
    release = threading.Event()

    def stuck(i: int) -> int:
        release.wait(10)
        return i

    async def main() -> tuple[float, TimeoutError]:
        for i in range(THREAD_CAP):
            with pytest.raises(TimeoutError):
                await call_in_thread(Policy("stuck", timeout=0.01), stuck, i)
        assert THREADS._free() == 0
        started = time.perf_counter()
        with pytest.raises(TimeoutError) as raised:
            await call_in_thread(Policy("healthy", timeout=0.1), int, "1")
        return time.perf_counter() - started, raised.value

    try:
        waited, error = asyncio.run(main())
    finally:
        release.set()
    assert waited < 1.0
    assert f"all THREAD_CAP={THREAD_CAP} of kiln's node threads were busy" in str(error)
    assert "exceeded its timeout of 0.1s" in error.__notes__[0]
    deadline = time.perf_counter() + 5
    while THREADS._free() < THREAD_CAP and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert THREADS._free() == THREAD_CAP


def test_a_call_that_waits_for_a_node_thread_runs_once_one_is_free() -> None:
    release = threading.Event()

    def held(i: int) -> int:
        release.wait(10)
        return i

    async def main() -> list[int]:
        holders = [
            asyncio.ensure_future(call_in_thread(Policy("held"), held, i))
            for i in range(THREAD_CAP)
        ]
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(
            call_in_thread(Policy("next", timeout=5), int, "9")
        )
        await asyncio.sleep(0.05)
        assert not waiting.done()
        release.set()
        return [*await asyncio.gather(*holders), await waiting]

    try:
        assert asyncio.run(main()) == [*range(THREAD_CAP), 9]
    finally:
        release.set()
