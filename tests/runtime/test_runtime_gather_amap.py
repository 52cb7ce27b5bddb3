"""gather and amap: concurrent fan-out with results in order and clean failure."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Generator, Iterator

import pytest

from kiln import amap, gather, keyed


async def failure_of(work: Awaitable[object]) -> BaseException:
    try:
        await work
    except Exception as error:
        return error
    raise AssertionError("expected the work to fail")


async def value_after(value: int, delay: float) -> int:
    await asyncio.sleep(delay)
    return value


async def wait_forever(log: list[str], name: str) -> int:
    try:
        await asyncio.Event().wait()
    finally:
        log.append(f"{name} finally")
    return 0


async def fail_soon(error: BaseException) -> int:
    await asyncio.sleep(0)
    raise error


async def fail_later(error: BaseException, delay: float) -> int:
    await asyncio.sleep(delay)
    raise error


# --- gather ---------------------------------------------------------------------


async def test_gather_keeps_input_order_whatever_finishes_first() -> None:
    delays = [0.03, 0.0, 0.02, 0.01]
    assert await gather(value_after(i, d) for i, d in enumerate(delays)) == [0, 1, 2, 3]


async def test_gather_runs_everything_concurrently() -> None:
    start = time.perf_counter()
    assert await gather(
        [asyncio.sleep(0.2, result="a"), asyncio.sleep(0.2, result="b")]
    ) == [
        "a",
        "b",
    ]
    assert time.perf_counter() - start < 0.35


async def test_gather_of_nothing_is_an_empty_list() -> None:
    assert await gather([]) == []
    assert await gather(iter(())) == []


async def test_gather_of_one_awaits_it_in_place() -> None:
    async def which_task() -> asyncio.Task[object] | None:
        return asyncio.current_task()

    assert await gather([which_task()]) == [asyncio.current_task()]


async def test_gather_accepts_futures_tasks_and_other_awaitables() -> None:
    class Later:
        def __await__(self) -> Generator[None, None, str]:
            yield from asyncio.sleep(0).__await__()
            return "later"

    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_result("future")
    task = asyncio.create_task(value_after(3, 0))
    mixed: list[Awaitable[object]] = [future, task, Later(), value_after(4, 0)]
    assert await gather(mixed) == ["future", 3, "later", 4]


async def test_gather_raises_an_error_as_itself_and_cancels_the_elements_after_it() -> (
    None
):
    log: list[str] = []
    error = ValueError("bad element")
    error.add_note("element 0")
    later = [wait_forever(log, "a"), wait_forever(log, "b")]

    caught = await failure_of(gather([fail_soon(error), *later]))
    assert caught is error
    assert caught.__notes__ == ["element 0"]
    assert sorted(log) == ["a finally", "b finally"]  # cancelled and awaited


async def test_gather_of_a_thousand_is_cheap() -> None:
    start = time.perf_counter()
    results = await gather(value_after(i, 0) for i in range(1000))
    assert results == list(range(1000))
    assert time.perf_counter() - start < 1.0


async def test_an_iteration_error_comes_after_the_elements_produced_before_it() -> None:
    """The sequential loop runs elements 0 and 1 before it asks for element 2."""
    ran: list[int] = []
    error = RuntimeError("the iterable broke")
    running = asyncio.create_task(value_after(7, 0.01))

    async def record(i: int) -> int:
        await asyncio.sleep(0.02)
        ran.append(i)
        return i

    def items() -> Iterator[Awaitable[int]]:
        yield record(0)
        yield running
        yield record(1)
        raise error

    assert await failure_of(gather(items())) is error
    assert sorted(ran) == [0, 1]  # run and awaited before the error left
    assert running.result() == 7


async def test_an_element_failing_before_the_iteration_error_wins_over_it() -> None:
    element = ValueError("element 1")

    def items() -> Iterator[Awaitable[int]]:
        yield value_after(0, 0)
        yield fail_later(element, 0.03)
        raise RuntimeError("the iterable broke")

    assert await failure_of(gather(items())) is element


async def test_a_non_awaitable_element_is_a_type_error() -> None:
    first = value_after(1, 0)
    caught = await failure_of(gather([first, 2]))  # type: ignore[arg-type]
    assert isinstance(caught, TypeError)
    assert "gather() needs awaitables; got 2" in str(caught)
    assert inspect.getcoroutinestate(first) == inspect.CORO_CLOSED


async def test_cancelling_gather_cancels_every_element() -> None:
    log: list[str] = []
    outer = asyncio.create_task(
        gather([wait_forever(log, "a"), wait_forever(log, "b")])
    )
    await asyncio.sleep(0.01)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert sorted(log) == ["a finally", "b finally"]


async def test_keyed_builds_a_dict_concurrently() -> None:
    start = time.perf_counter()
    table = dict(
        await gather(keyed(name, value_after(len(name), 0.1)) for name in ["a", "bb"])
    )
    assert table == {"a": 1, "bb": 2}
    assert time.perf_counter() - start < 0.18


async def test_keyed_passes_errors_through_as_themselves() -> None:
    error = ValueError("element")
    caught = await failure_of(
        gather([keyed("a", fail_soon(error)), keyed("b", value_after(1, 0))])
    )
    assert caught is error


async def test_a_dropped_keyed_closes_its_work() -> None:
    works = [value_after(1, 0), value_after(2, 0)]

    def pairs() -> Iterator[Awaitable[tuple[str, int]]]:
        yield keyed("a", works[0])
        yield keyed("b", works[1])
        raise RuntimeError("the keys broke")

    assert isinstance(await failure_of(gather(pairs())), RuntimeError)
    assert [inspect.getcoroutinestate(work) for work in works] == [
        inspect.CORO_CLOSED
    ] * 2


# --- amap ---------------------------------------------------------------------------


async def numbers(count: int, log: list[str] | None = None) -> AsyncIterator[int]:
    try:
        for i in range(count):
            await asyncio.sleep(0)
            yield i
    finally:
        if log is not None:
            log.append("iterator closed")


async def test_amap_keeps_arrival_order_whatever_finishes_first() -> None:
    async def slower_first(i: int) -> int:
        await asyncio.sleep(0.01 * (3 - i))
        return i * 10

    assert await amap(numbers(4), slower_first) == [0, 10, 20, 30]


async def test_amap_of_nothing_is_an_empty_list() -> None:
    assert await amap(numbers(0), lambda i: value_after(i, 0)) == []


async def test_amap_starts_each_element_as_it_arrives() -> None:
    """Item 0's work must start before the iterator produces item 1.

    The iterator waits for the work on each item to start before it produces
    the next one, so a map that collected the items first would never finish.
    """
    produced: list[int] = []
    started_with: dict[int, list[int]] = {}
    work_started = {i: asyncio.Event() for i in range(3)}

    async def items() -> AsyncIterator[int]:
        for i in range(3):
            produced.append(i)
            yield i
            await work_started[i].wait()

    async def each(i: int) -> int:
        started_with[i] = list(produced)
        work_started[i].set()
        await asyncio.sleep(0)
        return i

    async with asyncio.timeout(5):
        assert await amap(items(), each) == [0, 1, 2]
    assert started_with == {0: [0], 1: [0, 1], 2: [0, 1, 2]}


async def test_an_element_error_cancels_later_work_and_closes_the_iterator() -> None:
    log: list[str] = []
    error = ValueError("element 1")
    produced: list[int] = []

    async def items() -> AsyncIterator[int]:
        try:
            for i in range(100):
                produced.append(i)
                yield i
                await asyncio.sleep(0.001)
        finally:
            log.append("iterator closed")

    async def each(i: int) -> int:
        if i == 0:
            await asyncio.sleep(0.02)
            log.append("element 0 done")
            return 0
        if i == 1:
            raise error
        return await wait_forever(log, f"element {i}")

    assert await failure_of(amap(items(), each)) is error
    assert "element 0 done" in log  # an earlier element is awaited, not cancelled
    assert "iterator closed" in log
    assert len(produced) < 100


async def test_an_iterator_error_waits_for_the_work_on_the_items_before_it() -> None:
    finished: list[int] = []
    error = OSError("the source broke")

    async def items() -> AsyncIterator[int]:
        yield 0
        await asyncio.sleep(0.01)
        raise error

    async def each(i: int) -> int:
        await asyncio.sleep(0.03)
        finished.append(i)
        return i

    assert await failure_of(amap(items(), each)) is error
    assert finished == [0]


async def test_an_each_that_raises_before_returning_an_awaitable() -> None:
    log: list[str] = []
    error = KeyError("no such item")

    def each(i: int) -> Awaitable[int]:
        if i == 2:
            raise error
        return value_after(i, 0.01)

    assert await failure_of(amap(numbers(5, log), each)) is error
    assert log == ["iterator closed"]


async def test_cancelling_amap_cancels_work_and_closes_the_iterator() -> None:
    log: list[str] = []

    async def endless() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.001)
        finally:
            log.append("iterator closed")

    outer = asyncio.create_task(amap(endless(), lambda i: wait_forever(log, f"e{i}")))
    await asyncio.sleep(0.02)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert "iterator closed" in log
    assert "e0 finally" in log


async def test_amap_over_an_iterator_without_aclose() -> None:
    class Countdown:
        def __init__(self, start: int) -> None:
            self.left = start

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> int:
            if self.left == 0:
                raise StopAsyncIteration
            self.left -= 1
            return self.left

    assert await amap(Countdown(3), lambda i: value_after(i, 0)) == [2, 1, 0]
    error = ValueError("x")
    assert await failure_of(amap(Countdown(3), lambda i: fail_soon(error))) is error


async def test_an_iterator_failing_to_close_does_not_hide_the_failure() -> None:
    """The close error is reported to the loop, as asyncio reports an async
    generator that fails as it is finalized."""
    error = KeyError("no such item")
    reported: list[object] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda loop, context: reported.append(context["exception"])
    )

    async def items() -> AsyncIterator[int]:
        try:
            yield 0
        finally:
            raise OSError("could not close")

    def each(i: int) -> Awaitable[int]:
        raise error  # before the iterator is asked for more: it is closed at its yield

    assert await failure_of(amap(items(), each)) is error
    assert [str(e) for e in reported] == ["could not close"]
