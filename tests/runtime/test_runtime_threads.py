"""`kiln.threads`: the process's node threads, each held until it really ends."""

from __future__ import annotations

import asyncio
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
