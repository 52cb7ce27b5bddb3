"""Cancellation is cancellation: a caller who cancels gets CancelledError.

Whatever the children raise while they unwind (cleanup that takes time,
raises, or swallows the cancellation), the task that runs a scope, a
`gather` or an `amap` and is cancelled from outside ends in CancelledError,
and nothing it started is left running. A failure that cancels siblings
still wins over their noise.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln import Scope, amap, gather, run_sync


class Noise(Exception):
    """Raised by a child's cleanup while it is being cancelled."""


class Failure(Exception):
    """A node's own failure."""


def others() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def fails_at(delay: float) -> None:
    await asyncio.sleep(delay)
    raise Failure(f"failed at {delay}")


async def slow_noisy_cleanup(log: list[str]) -> None:
    """The issue's sibling: 200 ms to clean up, then an error of its own."""
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)
        log.append("cleaned up")
        raise Noise("raised while cleaning up") from None


async def cancelled_after(
    delay: float, work: Coroutine[Any, Any, object]
) -> BaseException:
    """Run `work` in a task, cancel it after `delay`; what the awaiting caller gets."""
    task = asyncio.create_task(work)
    await asyncio.sleep(delay)
    task.cancel()
    try:
        await task
    except BaseException as error:  # CancelledError is the point
        return error
    raise AssertionError("expected the cancelled work to raise")


# --- the scenario, in each form ------------------------------------------


async def in_a_scope(log: list[str], *, ordered: bool) -> None:
    async with Scope(ordered=ordered) as scope:
        scope.spawn(fails_at(0.05))
        scope.spawn(slow_noisy_cleanup(log))


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_cancelled_scope_raises_cancelled_error_over_cleanup_noise(
    ordered: bool,
) -> None:
    log: list[str] = []
    raised = await cancelled_after(0.01, in_a_scope(log, ordered=ordered))
    assert isinstance(raised, asyncio.CancelledError), repr(raised)
    assert log == ["cleaned up"]  # the cleanup ran to its end before the caller got it
    assert not others()


async def test_a_cancelled_gather_raises_cancelled_error_over_cleanup_noise() -> None:
    log: list[str] = []
    raised = await cancelled_after(
        0.01, gather([fails_at(0.05), slow_noisy_cleanup(log)])
    )
    assert isinstance(raised, asyncio.CancelledError), repr(raised)
    assert log == ["cleaned up"]
    assert not others()


async def test_a_cancelled_amap_raises_cancelled_error_over_cleanup_noise() -> None:
    log: list[str] = []

    async def items() -> AsyncIterator[int]:
        for i in range(2):
            yield i

    def each(i: int) -> Awaitable[None]:
        return slow_noisy_cleanup(log) if i == 0 else fails_at(0.05)

    raised = await cancelled_after(0.01, amap(items(), each))
    assert isinstance(raised, asyncio.CancelledError), repr(raised)
    assert log == ["cleaned up"]
    assert not others()


async def test_a_body_that_raises_while_unwinding_still_leaves_cancelled() -> None:
    async def scenario() -> None:
        async with Scope() as scope:
            scope.spawn(asyncio.sleep(5))
            try:
                await asyncio.sleep(5)  # a node running in place
            except asyncio.CancelledError:
                raise Noise("the node's cleanup failed") from None

    raised = await cancelled_after(0.01, scenario())
    assert isinstance(raised, asyncio.CancelledError), repr(raised)
    assert isinstance(raised.__context__, Noise)  # what it replaced, for the traceback
    assert not others()


async def test_a_body_that_swallows_the_cancellation_still_leaves_cancelled() -> None:
    log: list[str] = []

    async def scenario() -> str:
        async with Scope() as scope:
            scope.spawn(slow_noisy_cleanup(log))
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(5)  # a node running in place that swallows it
        return "finished as if nothing had happened"

    raised = await cancelled_after(0.01, scenario())
    assert isinstance(raised, asyncio.CancelledError), repr(raised)
    assert log == ["cleaned up"]  # its sibling was cancelled too
    assert not others()


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_child_failing_while_the_body_cleans_up_leaves_the_cleanup_alone(
    ordered: bool,
) -> None:
    log: list[str] = []

    async def scenario() -> None:
        async with Scope(ordered=ordered) as scope:
            scope.spawn(fails_at(0.03))
            try:
                await asyncio.sleep(5)  # a node running in place
            except asyncio.CancelledError:
                await asyncio.sleep(0.1)  # its cleanup: the child fails meanwhile
                log.append("cleaned up")
                raise

    raised = await cancelled_after(0.01, scenario())
    assert isinstance(raised, asyncio.CancelledError), repr(raised)
    assert log == ["cleaned up"]
    assert not others()


async def test_a_child_that_swallows_the_cancellation_and_fails_later_is_noise() -> (
    None
):
    async def swallows_then_fails() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # goes on regardless
            await asyncio.sleep(5)
        await asyncio.sleep(0.03)
        raise Failure("failed after swallowing the cancellation")

    raised = await cancelled_after(
        0.01, gather([swallows_then_fails(), fails_at(0.05)])
    )
    assert isinstance(raised, asyncio.CancelledError), repr(raised)
    assert not others()


async def test_an_enclosing_timeout_still_fires_as_timeout_error_over_noise() -> None:
    log: list[str] = []

    async def scenario() -> None:
        async with asyncio.timeout(0.01):
            await in_a_scope(log, ordered=False)

    with pytest.raises(TimeoutError):
        await scenario()
    assert log == ["cleaned up"]


# --- the sync entry point ----------------------------------------------------------


def test_ctrl_c_during_run_sync_is_a_keyboard_interrupt_not_cleanup_noise() -> None:
    """asyncio.run turns Ctrl-C into a cancellation of the flow, and back into
    KeyboardInterrupt only if the flow ends cancelled."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    log: list[str] = []
    timer = threading.Timer(0.05, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(in_a_scope(log, ordered=False))
    finally:
        timer.cancel()
    assert log == ["cleaned up"]


# --- the property ------------------------------------------------------------------


CLEANUPS = ("plain", "slow", "raises", "swallows")
children = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=30),  # ms until it fails or finishes
        st.booleans(),  # whether it fails
        st.sampled_from(CLEANUPS),
    ),
    max_size=6,
)


def child(delay_ms: int, fails: bool, cleanup: str) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        try:
            await asyncio.sleep(delay_ms / 1000)
        except asyncio.CancelledError:
            if cleanup == "slow":
                await asyncio.sleep(0.01)
            elif cleanup == "raises":
                raise Noise("raised while cancelled") from None
            elif cleanup == "swallows":
                return -1
            raise
        if fails:
            raise Failure(f"after {delay_ms} ms")
        return delay_ms

    return run


@settings(max_examples=60, deadline=None)
@given(
    specs=children,
    cancel_ms=st.integers(min_value=0, max_value=35),
    form=st.sampled_from(["scope", "ordered scope", "gather", "amap"]),
)
def test_a_cancel_from_outside_at_any_moment_gives_cancelled_error(
    specs: list[tuple[int, bool, str]], cancel_ms: int, form: str
) -> None:
    # The first element outlives the cancel, so the run is always still going;
    # in ordered forms a failure after it must wait for it.
    works = [child(1000, False, "slow"), *(child(*spec) for spec in specs)]

    async def items() -> AsyncIterator[int]:
        for i in range(len(works)):
            yield i

    def run() -> Coroutine[Any, Any, object]:
        if form == "gather":
            return gather(work() for work in works)
        if form == "amap":
            return amap(items(), lambda i: works[i]())
        return scoped(ordered=form == "ordered scope")

    async def scoped(*, ordered: bool) -> None:
        async with Scope(ordered=ordered) as scope:
            for work in works:
                scope.spawn(work())  # type: ignore[arg-type]

    async def scenario() -> BaseException:
        async with asyncio.timeout(5):
            raised = await cancelled_after(cancel_ms / 1000, run())
        assert not others(), "nothing it started is still running"
        return raised

    raised = asyncio.run(scenario())
    if form == "scope" and any(fails for _, fails, _ in specs):
        # TaskGroup's rule: a failure before the cancel ends the run at once.
        assert isinstance(raised, asyncio.CancelledError | Failure), repr(raised)
    else:
        assert isinstance(raised, asyncio.CancelledError), repr(raised)
