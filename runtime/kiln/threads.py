"""The threads of `thread=True` nodes: one per call, at most `THREAD_CAP` at once.

Each call of a thread node runs in a daemon thread of its own (`in_own_thread`),
with a copy of the caller's context variables. Not `asyncio.to_thread`: its
executor is joined when `asyncio.run` ends, so a call that timed out would
hold the flow's sync entry point until it finished; a thread of its own goes
on in the background, its result thrown away, and nothing waits for it.

Only a timeout lets a thread go. A call cancelled for any other reason (a
sibling failed and its scope stopped the rest, the caller cancelled the
run, an interrupt) waits for its thread to end before its CancelledError
goes on, so that when a flow returns or raises nothing it started still
runs (DESIGN §5): no write of a thread arrives after the caller has the
flow's exception. The attempt's own timeout (`timed`, entered by
`kiln.resilience.attempts`) is not waited for: an attempt that timed out
goes on in the background, or its timeout would mean nothing; and a
further cancellation ends the wait (the attempt's timeout passing, the
caller's own deadline, a second Ctrl-C), so that it never hangs a caller
that insists. The wait is asynchronous, with the loop running, so a thread
that needs the loop (to hand back a run's concurrency slot) or runs a
flow's sync entry point itself (on a loop of its own) ends as it would.

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
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from kiln.errors import carried
from kiln.processor.admission import Admission

if TYPE_CHECKING:
    from kiln.resilience import Gate

__all__ = ["THREADS", "THREAD_CAP", "in_own_thread", "thread_gates", "timed"]

R = TypeVar("R")

#: The most node threads running at once in the process.
THREAD_CAP: Final = min(32, (os.cpu_count() or 1) + 4)
#: Their slots: shared by every run, event loop and thread (`Admission` is).
THREADS: Final = Admission(THREAD_CAP, None, THREAD_CAP)
_IN_NODE_THREAD: Final = contextvars.ContextVar("kiln_in_node_thread", default=False)
_Deadline = tuple[asyncio.Timeout, asyncio.Task[Any] | None]
#: The timeout of the attempt a task awaits, and that task (`timed`).
_ATTEMPT: Final = contextvars.ContextVar[_Deadline | None]("kiln_attempt", default=None)


def thread_gates() -> tuple[Gate, ...]:
    """What a thread node's call passes beside its own gates: a slot of `THREADS`,
    unless it is made inside a node's thread."""
    return () if _IN_NODE_THREAD.get() else (THREADS,)


async def in_own_thread(held: tuple[Gate, ...], work: Callable[[], R]) -> R:
    """Await ``work()``, run in a daemon thread of its own with a copy of the context.

    `held` are the gates the caller acquired for this call: from now on the
    thread releases them as it ends, whether or not anyone still waits for
    it. A cancellation of the awaiting task waits for the thread to end
    before it goes on (`_outlive`), unless it is the timeout of the attempt
    this call is (`timed`), which lets the thread go: its result is thrown
    away.
    """
    loop = asyncio.get_running_loop()
    deadline = _ATTEMPT.get()
    call = _Call(loop)
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
            loop.call_soon_threadsafe(call.settle, settled)

    try:
        threading.Thread(target=run, name="kiln-thread-node", daemon=True).start()
    except BaseException:
        _release(held, loop)
        raise
    try:
        await call.wait()
    except asyncio.CancelledError:
        if not _let_go(deadline):
            await _outlive(call)
        raise
    result, error = cast("tuple[R | None, BaseException | None]", call.settled)
    if error is not None:
        try:
            raise carried(error)  # a StopIteration, as the RuntimeError of PEP 479
        finally:
            del error  # a traceback holds this frame, which would hold the error
    return cast(R, result)


class timed:  # a context manager, named for the `with` that reads it
    """Say that the awaiting task runs one attempt of a thread node under `deadline`.

    ``with timed(deadline): await attempt``: a thread started by the attempt
    in this task is let go when that timeout cancels it (the attempt timed
    out, and its timeout would mean nothing if it waited), and waited for when
    anything else cancels it. Not seen by other tasks, which copy it.
    """

    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: asyncio.Timeout) -> None:
        self._deadline = deadline

    def __enter__(self) -> None:
        self._token = _ATTEMPT.set((self._deadline, asyncio.current_task()))

    def __exit__(self, *exc: object) -> None:
        _ATTEMPT.reset(self._token)


class _Call:
    """One call's outcome, settled by its thread through the loop, and its waiter."""

    __slots__ = ("_loop", "settled", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.settled: tuple[Any, BaseException | None] | None = None
        self.waiter: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        """Until the thread has ended (a cancellation cancels the waiter, not the call).

        Not a future that carries the result, which refuses a StopIteration
        (and would leave the caller waiting forever).
        """
        if self.settled is None:
            self.waiter = self._loop.create_future()
            await self.waiter

    def settle(self, settled: tuple[Any, BaseException | None]) -> None:
        self.settled = settled
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def _outlive(call: _Call) -> None:
    """Wait for the thread of a call whose caller was cancelled, once.

    A further cancellation ends the wait: the attempt's own timeout, the
    caller's deadline, a second interrupt, asyncio.run's cleanup after one.
    """
    with suppress(asyncio.CancelledError):
        await call.wait()


def _let_go(deadline: _Deadline | None) -> bool:
    """Whether the timeout of this task's attempt has expired: let its thread go."""
    if deadline is None:
        return False
    timeout, task = deadline
    return task is asyncio.current_task() and timeout.expired()


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
