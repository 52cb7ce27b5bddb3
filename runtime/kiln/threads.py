"""The threads of `thread=True` nodes: one per call, at most `THREAD_CAP` at once.

Each call of a thread node runs in a daemon thread of its own (`in_own_thread`),
with a copy of the caller's context variables. Not `asyncio.to_thread`: its
executor is joined when `asyncio.run` ends, so a call that timed out would
hold the flow's sync entry point until it finished; a thread of its own goes
on in the background, its result thrown away, and nothing waits for it.

A thread cannot be stopped, so what bounds how much really runs at once is
what the call holds until its thread ends, not until the caller stops
waiting for it (a timeout, a cancellation): the call's gates (its limit
group's, its run's concurrency cap) and a slot of `THREADS`, the cap on kiln's
node threads in the process (as many as `concurrent.futures.ThreadPoolExecutor`
keeps by default). A call waits for a slot asynchronously, as for any gate,
before its attempt and its timeout begin (`kiln.resilience.attempts`), and
the next attempt of a call that timed out waits for the slots the last one
still holds. A call made inside a node's thread (a flow's sync entry point
called by the node) takes no slot of `THREADS`: it would wait for the very
slots its callers hold, and a fan-out of such nodes would wait forever.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Final, TypeVar, cast

from kiln.processor.admission import Admission

if TYPE_CHECKING:
    from kiln.resilience import Gate

__all__ = ["THREADS", "THREAD_CAP", "in_own_thread", "thread_gates"]

R = TypeVar("R")
T = TypeVar("T")

#: The most node threads running at once in the process.
THREAD_CAP: Final = min(32, (os.cpu_count() or 1) + 4)
#: Their slots: shared by every run, event loop and thread (`Admission` is).
THREADS: Final = Admission(THREAD_CAP, None, THREAD_CAP)
_IN_NODE_THREAD: Final = contextvars.ContextVar("kiln_in_node_thread", default=False)


def thread_gates() -> tuple[Gate, ...]:
    """What a thread node's call passes beside its own gates: a slot of `THREADS`,
    unless it is made inside a node's thread."""
    return () if _IN_NODE_THREAD.get() else (THREADS,)


async def in_own_thread(held: tuple[Gate, ...], work: Callable[[], R]) -> R:
    """Await ``work()``, run in a daemon thread of its own with a copy of the context.

    `held` are the gates the caller acquired for this call: from now on the
    thread releases them as it ends, whether or not anyone still waits for
    it. Cancelling the awaiting task stops the waiting, not the thread: its
    result is thrown away.
    """
    loop = asyncio.get_running_loop()
    # The work's result, or what it raised: raised here, not set on the future,
    # which refuses a StopIteration (and would leave the caller waiting forever).
    outcome: asyncio.Future[tuple[R | None, BaseException | None]] = (
        loop.create_future()
    )
    context = contextvars.copy_context()

    def run() -> None:
        try:
            settled: tuple[R | None, BaseException | None] = (
                context.run(_as_node_thread, work),
                None,
            )
        except BaseException as error:  # handed to the waiting coroutine
            settled = (None, error)
        _release(held, loop)  # before the caller resumes: its next attempt needs them
        with suppress(RuntimeError):  # the loop is closed: nobody waits for this call
            loop.call_soon_threadsafe(_settle, outcome, settled)

    try:
        threading.Thread(target=run, name="kiln-thread-node", daemon=True).start()
    except BaseException:
        _release(held, loop)
        raise
    result, error = await outcome
    if error is not None:
        try:
            raise error
        finally:
            del error  # a traceback holds this frame, which would hold the error
    return cast(R, result)


def _as_node_thread(work: Callable[[], R]) -> R:
    _IN_NODE_THREAD.set(True)  # in the thread's own copy of the caller's context
    return work()


def _release(held: tuple[Gate, ...], loop: asyncio.AbstractEventLoop) -> None:
    """Release `held`, last acquired first, from any thread.

    A limit group's gate and `THREADS` take a release from any thread (an
    `Admission`); a run's concurrency cap belongs to its loop, and is released
    there, unless the loop has closed, and the run with it.
    """
    for gate in reversed(held):
        if isinstance(gate, Admission) or _running_loop() is loop:
            gate.release()
        else:
            with suppress(RuntimeError):  # the loop has closed, and the run with it
                loop.call_soon_threadsafe(gate.release)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    return asyncio._get_running_loop()


def _settle(outcome: asyncio.Future[T], settled: T) -> None:
    if not outcome.done():  # else the caller stopped waiting (timeout, cancellation)
        outcome.set_result(settled)
