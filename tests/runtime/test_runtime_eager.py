"""An unbounded gather starts its elements eagerly, and a bounded one never leaves a hole.

Each element runs in the caller's task until it first waits; one that never
waits is never a task, one that fails first stops the fan-out before the next
item is read, and the first that waits goes on in the caller's task (which its
timeouts and scopes hold) while the rest start as tasks. These tests assert
that structure, never a time.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from kiln import Scope, gather
from kiln.run import PLACE

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_eager_var", default="")


async def tasks_of(log: list[asyncio.Task[object] | None], value: int) -> int:
    log.append(asyncio.current_task())
    return value


async def waits(log: list[str], name: str, delay: float = 0.0) -> str:
    log.append(f"{name} starts in {asyncio.current_task() is CALLER[0]}")
    await asyncio.sleep(delay)
    log.append(f"{name} ends in {asyncio.current_task() is CALLER[0]}")
    return name


CALLER: list[asyncio.Task[object] | None] = [None]


def read(log: list[str], count: int) -> Iterator[int]:
    for index in range(count):
        log.append(f"read {index}")
        yield index


async def test_an_element_that_never_waits_is_never_a_task() -> None:
    caller = asyncio.current_task()
    seen: list[asyncio.Task[object] | None] = []
    tasks_before = len(asyncio.all_tasks())
    assert await gather(tasks_of(seen, i) for i in range(1000)) == list(range(1000))
    assert seen == [caller] * 1000
    assert len(asyncio.all_tasks()) == tasks_before


async def test_each_element_runs_until_it_waits_before_the_next_is_read() -> None:
    log: list[str] = []

    async def element(index: int) -> int:
        log.append(f"start {index}")
        if index == 1:
            await asyncio.sleep(0)
        log.append(f"end {index}")
        return index

    assert await gather(element(i) for i in read(log, 4)) == [0, 1, 2, 3]
    # Element 1 waits: the items after it are read at once and start as tasks.
    assert log[:6] == ["read 0", "start 0", "end 0", "read 1", "start 1", "read 2"]
    assert log[6:7] == ["read 3"]
    assert sorted(log[7:]) == sorted(["end 1", "start 2", "end 2", "start 3", "end 3"])


async def test_the_first_element_that_waits_goes_on_in_the_callers_task() -> None:
    CALLER[0] = asyncio.current_task()
    log: list[str] = []
    assert await gather(waits(log, name, 0.01) for name in "ab") == ["a", "b"]
    assert log[0] == "a starts in True"
    assert "a ends in True" in log
    assert "b starts in False" in log
    assert "b ends in False" in log


async def test_a_failure_before_waiting_stops_the_fan_out_before_the_next_item() -> (
    None
):
    log: list[str] = []

    async def element(index: int) -> int:
        log.append(f"run {index}")
        if index == 2:
            raise ValueError(index)
        return index

    with pytest.raises(ValueError, match="2"):
        await gather(element(i) for i in read(log, 5))
    assert log == ["read 0", "run 0", "read 1", "run 1", "read 2", "run 2"]


async def test_an_earlier_waiting_element_wins_over_a_later_failure() -> None:
    async def first() -> int:
        await asyncio.sleep(0.02)
        raise KeyError("first")

    async def second() -> int:
        raise ValueError("second")

    with pytest.raises(KeyError):
        await gather([first(), second()])


async def test_a_later_failure_is_raised_once_the_waiting_element_is_done() -> None:
    done: list[str] = []

    async def first() -> int:
        await asyncio.sleep(0.02)
        done.append("first")
        return 1

    async def second() -> int:
        await asyncio.sleep(0)
        raise ValueError("second")

    with pytest.raises(ValueError, match="second"):
        await gather([first(), second()])
    assert done == ["first"]


async def test_a_timeout_inside_the_waiting_element_times_it_out_not_the_caller() -> (
    None
):
    async def slow() -> int:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)
        return 0

    async def quick() -> int:
        await asyncio.sleep(0)
        return 1

    with pytest.raises(TimeoutError):
        await gather([slow(), quick()])
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


async def test_a_scope_inside_the_waiting_element_runs_and_fails_as_its_own() -> None:
    async def nested() -> int:
        async with Scope() as scope:
            scope.spawn(asyncio.sleep(0.01))
            failing = scope.spawn(asyncio.sleep(0))
            await failing
            raise LookupError("nested")
        return 0

    with pytest.raises(LookupError, match="nested"):
        await gather([nested(), asyncio.sleep(0.02, result=1)])


async def test_each_element_has_a_context_of_its_own_before_and_after_it_waits() -> (
    None
):
    VAR.set("caller")

    async def element(name: str) -> str:
        before = VAR.get()
        VAR.set(name)
        await asyncio.sleep(0)
        return f"{before}->{VAR.get()}"

    assert await gather(element(n) for n in "abc") == [
        "caller->a",
        "caller->b",
        "caller->c",
    ]
    assert VAR.get() == "caller"


async def test_elements_that_never_wait_share_a_copy_of_the_callers_context() -> None:
    """As the sequential loop runs them one after another in the caller's context,
    but what they set stays out of the caller's: the fan-out is a call."""
    VAR.set("caller")

    async def element(name: str) -> str:
        before = VAR.get()
        VAR.set(name)
        return f"{before}->{name}"

    assert await gather(element(n) for n in "abc") == ["caller->a", "a->b", "b->c"]
    assert VAR.get() == "caller"


async def test_a_durable_place_is_each_elements_own() -> None:
    PLACE.set("run")

    async def element(wait: bool) -> str | None:
        if wait:
            await asyncio.sleep(0)
        return PLACE.get()

    assert await gather(element(i % 2 == 1) for i in range(4)) == [
        "run[0]",
        "run[1]",
        "run[2]",
        "run[3]",
    ]


async def test_cancelling_the_caller_cancels_the_waiting_element_and_the_rest() -> None:
    log: list[str] = []

    async def forever(name: str) -> int:
        try:
            await asyncio.Event().wait()
        finally:
            log.append(name)
        return 0

    task = asyncio.ensure_future(gather(forever(n) for n in "abc"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(log) == ["a", "b", "c"]


async def test_an_interrupt_before_waiting_leaves_at_once() -> None:
    log: list[str] = []

    async def element(index: int) -> int:
        if index == 1:
            raise KeyboardInterrupt
        return index

    with pytest.raises(KeyboardInterrupt):
        await gather(element(i) for i in read(log, 3))
    assert log == ["read 0", "read 1"]


async def test_an_iteration_error_after_a_waiting_element_comes_after_it() -> None:
    def items() -> Iterator[asyncio.Future[int] | asyncio.Task[int]]:
        yield asyncio.ensure_future(asyncio.sleep(0.01, result=0))
        raise RuntimeError("iteration")

    with pytest.raises(RuntimeError, match="iteration"):
        await gather(items())


async def test_an_element_that_cancels_itself_is_a_cancellation_with_or_without_a_bound() -> (
    None
):
    for bound in (None, 1, 3):
        cancelled = asyncio.get_running_loop().create_future()
        cancelled.cancel()

        async def element(index: int, future: asyncio.Future[None]) -> int:
            if index == 1:
                await asyncio.sleep(0)
                await future  # someone else's cancelled future
            return index

        with pytest.raises(asyncio.CancelledError):
            await gather((element(i, cancelled) for i in range(4)), bound=bound)


async def test_a_bounded_gather_reads_nothing_after_an_element_that_failed_at_once() -> (
    None
):
    """Workers already scheduled run before the scope hears of the failure."""
    log: list[str] = []

    async def element(index: int) -> int:
        if index == 2:
            raise ValueError(index)
        return index

    with pytest.raises(ValueError, match="2"):
        await gather((element(i) for i in read(log, 6)), bound=3)
    assert log == ["read 0", "read 1", "read 2"]


@pytest.mark.parametrize("bound", [None, 2])
async def test_a_fan_out_that_fails_closes_what_it_will_not_read(
    bound: int | None,
) -> None:
    closed: list[str] = []

    async def element(index: int) -> int:
        if index == 2:
            raise ValueError(index)
        return index

    def items() -> Iterator[Coroutine[Any, Any, int]]:
        try:
            for index in range(10):
                yield element(index)
        finally:
            closed.append("generator")

    with pytest.raises(ValueError, match="2"):
        await gather(items(), bound=bound)
    assert closed == ["generator"]
    listed = [element(index) for index in range(10)]
    with pytest.raises(ValueError, match="2"):
        await gather(listed, bound=bound)
    assert {inspect.getcoroutinestate(c) for c in listed} == {inspect.CORO_CLOSED}
