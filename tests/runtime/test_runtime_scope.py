"""Scope: a task group whose failures leave as the original exception objects."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Coroutine
from typing import Any

import pytest

from kiln import Child, Scope


async def wait_forever(
    log: list[str], name: str, started: asyncio.Event | None = None
) -> None:
    """A sibling that only ends by cancellation, and says so in `log`."""
    try:
        if started is not None:
            started.set()
        await asyncio.Event().wait()
    finally:
        log.append(f"{name} finally")


async def fail_after(event: asyncio.Event, error: BaseException) -> None:
    await event.wait()
    raise error


def ready_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def failure_of(work: Awaitable[object]) -> BaseException:
    """The exception `work` raises, exactly as it leaves (CancelledError aside)."""
    try:
        await work
    except Exception as error:
        return error
    raise AssertionError("expected the work to fail")


def current_cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


async def test_children_run_concurrently_and_are_awaited_not_cancelled() -> None:
    order: list[str] = []

    async def child(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        order.append(name)
        return name

    async with Scope() as scope:
        slow = scope.spawn(child("slow", 0.05))
        fast = scope.spawn(child("fast", 0))
    assert (slow.result(), fast.result()) == ("slow", "fast")
    assert order == ["fast", "slow"]
    assert current_cancelling() == 0


async def test_a_child_failure_leaves_as_the_original_exception() -> None:
    log: list[str] = []
    error = ValueError("boom")
    error.add_note("from the node 'parse'")
    started = asyncio.Event()

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(wait_forever(log, "sibling", started))
            scope.spawn(fail_after(started, error))
            try:
                await asyncio.Event().wait()
            finally:
                log.append("body finally")

    caught = await failure_of(scenario())
    assert caught is error
    assert not isinstance(caught, BaseExceptionGroup)
    assert caught.__notes__ == ["from the node 'parse'"]
    assert caught.__context__ is None  # not the body's CancelledError
    assert sorted(log) == ["body finally", "sibling finally"]
    assert current_cancelling() == 0  # the scope took back its own cancellation
    await asyncio.sleep(0)  # and this task is not left cancelled


async def test_an_error_keeps_its_own_context_and_cause() -> None:
    async def child() -> None:
        try:
            dict[str, int]()["missing"]
        except KeyError as lookup:
            raise LookupError("while parsing") from lookup

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(child())
            await asyncio.sleep(1)

    caught = await failure_of(scenario())
    assert isinstance(caught, LookupError)
    assert isinstance(caught.__cause__, KeyError)
    assert isinstance(caught.__context__, KeyError)


async def test_a_body_error_cancels_the_children_and_leaves_as_itself() -> None:
    log: list[str] = []
    error = RuntimeError("body")
    started = asyncio.Event()
    children: list[Child[None]] = []

    async def scenario() -> None:
        async with Scope() as scope:
            children.extend(
                scope.spawn(wait_forever(log, f"c{i}", started)) for i in range(3)
            )
            await started.wait()
            raise error

    assert await failure_of(scenario()) is error
    assert sorted(log) == ["c0 finally", "c1 finally", "c2 finally"]
    assert all(child.cancelled() for child in children)


async def test_the_first_error_wins_over_errors_raised_while_cancelling() -> None:
    first = ValueError("first")
    started = asyncio.Event()

    async def messy_cleanup() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("raised while being cancelled")

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(messy_cleanup())
            scope.spawn(fail_after(started, first))

    assert await failure_of(scenario()) is first


async def test_a_child_error_wins_over_a_later_body_error() -> None:
    first = ValueError("child")

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(fail_after(ready_event(), first))
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise RuntimeError("the body, after the child failed") from None

    assert await failure_of(scenario()) is first


async def test_a_body_that_swallows_the_cancellation_still_gets_the_error() -> None:
    error = ValueError("child")

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(fail_after(ready_event(), error))
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()

    assert await failure_of(scenario()) is error
    assert current_cancelling() == 0


async def test_a_child_failing_after_the_body_finished_leaves_no_cancellation_behind() -> (
    None
):
    # asyncio.TaskGroup on Python 3.11 cancels the parent here and never takes
    # the request back: cancelling() stays at 1, and an enclosing
    # asyncio.timeout later raises CancelledError instead of TimeoutError.
    error = ValueError("late")

    async def fail_later() -> None:
        await asyncio.sleep(0.01)
        raise error

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(fail_later())

    assert await failure_of(scenario()) is error
    assert current_cancelling() == 0
    await asyncio.sleep(0.001)


async def test_an_enclosing_timeout_still_fires_as_timeout_error_after_a_late_failure() -> (
    None
):
    async def fail_later() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("late")

    async def scenario() -> None:
        async with asyncio.timeout(0.05):
            with contextlib.suppress(ValueError):
                async with Scope() as scope:
                    scope.spawn(fail_later())
            await asyncio.Event().wait()

    assert isinstance(await failure_of(scenario()), TimeoutError)


async def test_nothing_is_still_running_after_the_block() -> None:
    spawned: list[Child[Any]] = []

    async def scenario(fail: bool) -> None:
        started = asyncio.Event()
        async with Scope() as scope:
            spawned.append(scope.spawn(asyncio.sleep(0.02)))
            waiting = scope.spawn(wait_forever([], "w", started))
            spawned.append(waiting)
            await started.wait()
            if fail:
                raise ValueError("body")
            waiting.cancel()

    await scenario(fail=False)
    assert all(task.done() for task in spawned)
    assert isinstance(await failure_of(scenario(fail=True)), ValueError)
    assert all(task.done() for task in spawned)


async def test_external_cancellation_cancels_every_child_and_propagates() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def run_scope() -> None:
        async with Scope() as scope:
            scope.spawn(wait_forever(log, "a"))
            scope.spawn(wait_forever(log, "b", started))
            try:
                await asyncio.Event().wait()
            finally:
                log.append("body finally")

    outer = asyncio.create_task(run_scope())
    await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert sorted(log) == ["a finally", "b finally", "body finally"]


async def test_external_cancellation_while_waiting_for_children() -> None:
    log: list[str] = []
    started = asyncio.Event()
    finished_body = asyncio.Event()

    async def run_scope() -> None:
        async with Scope() as scope:
            scope.spawn(wait_forever(log, "child", started))
            finished_body.set()

    outer = asyncio.create_task(run_scope())
    await finished_body.wait()
    await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert log == ["child finally"]


async def test_a_timeout_around_a_scope_works() -> None:
    log: list[str] = []

    async def scenario() -> None:
        async with asyncio.timeout(0.02), Scope() as scope:
            scope.spawn(wait_forever(log, "child"))

    assert isinstance(await failure_of(scenario()), TimeoutError)
    assert log == ["child finally"]
    assert current_cancelling() == 0


async def test_a_child_may_spawn_siblings_while_the_scope_waits() -> None:
    results: list[int] = []

    async def parent(scope: Scope) -> None:
        await asyncio.sleep(0)
        scope.spawn(grandchild())

    async def grandchild() -> None:
        await asyncio.sleep(0.01)
        results.append(1)

    async with Scope() as scope:
        scope.spawn(parent(scope))
    assert results == [1]


async def test_spawning_after_a_failure_gives_a_task_that_never_runs() -> None:
    ran: list[str] = []
    late: list[Child[None]] = []
    started = asyncio.Event()
    error = ValueError("first")

    async def never() -> None:
        ran.append("never")

    async def spawner(scope: Scope) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            late.append(scope.spawn(never()))

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(spawner(scope))
            scope.spawn(fail_after(started, error))

    assert await failure_of(scenario()) is error
    assert ran == []
    assert late[0].cancelled()


async def test_nested_scopes_pass_the_original_error_up() -> None:
    error = KeyError("inner")

    async def inner() -> None:
        async with Scope() as scope:
            scope.spawn(fail_after(ready_event(), error))

    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(inner())

    assert await failure_of(scenario()) is error


async def test_spawn_outside_the_block_closes_the_coroutine() -> None:
    scope = Scope()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="inside the async with block"):
        scope.spawn(coro)
    # Closed: Python will not warn that it was never awaited.
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    async with scope:
        pass
    with pytest.raises(RuntimeError, match="inside the async with block"):
        scope.spawn(asyncio.sleep(0))


async def test_a_scope_is_used_once() -> None:
    scope = Scope()
    async with scope:
        pass
    with pytest.raises(RuntimeError, match="used once"):
        await scope.__aenter__()


def interrupted(main: Coroutine[Any, Any, None]) -> BaseException:
    """The interrupt `main` ends with, run as its own task to the end.

    An interrupt leaves the event loop from the middle of a step, with the
    task running the scope still pending; run again, the scope unwinds and
    the task raises the interrupt once more, now as its result. (`asyncio.run`
    would do the second run inside its cleanup, where nothing retrieves it.)
    """
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    try:
        while not task.done():
            with pytest.raises((KeyboardInterrupt, SystemExit)):
                loop.run_until_complete(task)
        ended = task.exception()
    finally:
        loop.close()
    assert ended is not None
    return ended


def test_keyboard_interrupt_from_a_child_propagates_as_itself() -> None:
    interrupt = KeyboardInterrupt()
    log: list[str] = []

    async def main() -> None:
        async with Scope() as scope:
            scope.spawn(wait_forever(log, "sibling"))
            scope.spawn(fail_after(ready_event(), interrupt))
            await asyncio.Event().wait()

    assert interrupted(main()) is interrupt
    assert log == ["sibling finally"]


def test_an_interrupt_beats_an_ordinary_error() -> None:
    async def main() -> None:
        async with Scope() as scope:
            scope.spawn(fail_after(ready_event(), ValueError("ordinary")))
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise SystemExit(3) from None

    ended = interrupted(main())
    assert isinstance(ended, SystemExit)
    assert ended.code == 3


def test_many_children_are_cheap() -> None:
    async def main() -> int:
        async with Scope() as scope:
            tasks = [scope.spawn(asyncio.sleep(0, result=i)) for i in range(10_000)]
        return sum(task.result() for task in tasks)

    assert asyncio.run(main()) == sum(range(10_000))
