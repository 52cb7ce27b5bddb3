"""The threads of `thread=True` nodes: one per call, at most `THREAD_CAP` at once.

Each call of a thread node runs in a daemon thread of its own (`in_own_thread`),
with a copy of the caller's context variables. Not `asyncio.to_thread`: its
executor is joined when `asyncio.run` ends, so a call that timed out would
hold the flow's sync entry point until it finished; a thread of its own goes
on in the background, its result thrown away, and nothing waits for it.

What the node sets in its copy of the context and does not reset (a
`ContextVar` a call sets for the steps after it, as a sync call of the source
sets it in the caller's context) is set in the awaiting task's context once
the thread has ended, whether the node returned or raised: the caller's task
has entered its own context, which no other thread can enter.

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
The timeout judges when the thread ended, not when the loop noticed: a
thread that ended before its deadline, while something held the loop (a
plain sync node's work), keeps its outcome.

A thread cannot be stopped, so what bounds how much really runs at once is
what the call holds until its thread ends, not until the caller stops
waiting for it (a timeout, a cancellation): the call's gates (its limit
group's, its run's concurrency cap) and a slot of `THREADS`, the cap on kiln's
node threads in the process (as many as `concurrent.futures.ThreadPoolExecutor`
keeps by default). A call waits for its gates asynchronously before its
attempt and its timeout begin (`kiln.resilience.attempts`), and the next
attempt of a call that timed out waits for the slots the last one still
holds. The wait for a slot of `THREADS` is part of the attempt, as the wait
for a worker of `asyncio.to_thread`'s executor is part of a `wait_for`
around it: the timeout bounds it, and a call that found no slot free in time
fails with a TimeoutError that names the cap (threads of timed-out calls
that never end would otherwise make every later call wait for ever). A call
made inside a node's thread (a flow's sync entry point called by the node)
takes no slot of `THREADS`: it would wait for the very slots its callers
hold, and a fan-out of such nodes would wait forever.
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

__all__ = ["THREADS", "THREAD_CAP", "adopt", "in_own_thread", "timed"]

R = TypeVar("R")

#: The most node threads running at once in the process.
THREAD_CAP: Final = min(32, (os.cpu_count() or 1) + 4)
#: Their slots: shared by every run, event loop and thread (`Admission` is).
THREADS: Final = Admission(THREAD_CAP, None, THREAD_CAP)
_IN_NODE_THREAD: Final = contextvars.ContextVar("kiln_in_node_thread", default=False)
_Deadline = tuple[asyncio.Timeout, asyncio.Task[Any] | None]
#: The timeout of the attempt a task awaits, and that task (`timed`).
_ATTEMPT: Final = contextvars.ContextVar[_Deadline | None]("kiln_attempt", default=None)
_UNSET: Final = object()


async def in_own_thread(held: tuple[Gate, ...], work: Callable[[], R]) -> R:
    """Await ``work()``, run in a daemon thread of its own with a copy of the context.

    `held` are the gates the caller acquired for this call: from now on the
    thread releases them as it ends, whether or not anyone still waits for
    it, and with them the slot of `THREADS` the call waits for here (inside
    its attempt's timeout). A cancellation of the awaiting task waits for
    the thread to end before it goes on (`_outlive`), unless it is the
    timeout of the attempt this call is (`timed`), which lets the thread go:
    its result is thrown away. What the thread set in its context is set in
    the awaiting task's once it has ended (`adopt`).
    """
    loop = asyncio.get_running_loop()
    deadline = _ATTEMPT.get()
    task = asyncio.current_task()
    cancelling = 0 if task is None else task.cancelling()
    if not _IN_NODE_THREAD.get():
        try:
            await _thread_slot(deadline, task, cancelling)
        except BaseException:
            _release(held, loop)
            raise
        held = (*held, THREADS)
    call = _Call(loop)
    context = contextvars.copy_context()
    context.run(_IN_NODE_THREAD.set, True)
    before = context.copy()  # what the thread starts from: its changes are the rest

    def run() -> None:
        try:
            settled: tuple[R | None, BaseException | None] = (context.run(work), None)
        except BaseException as error:  # handed to the waiting coroutine
            settled = (None, error)
        call.ended = loop.time()
        _release(held, loop)  # before the caller resumes: its next attempt needs them
        # Settled here, woken through the loop: a deadline that the loop runs
        # after this moment sees that the thread ended in time.
        call.settled = settled
        with suppress(RuntimeError):  # the loop is closed: nobody waits for this call
            loop.call_soon_threadsafe(call.wake)

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
        # The attempt's timeout: unless its thread had ended before the deadline
        # (the loop, held by other work, only noticed late), and nothing else
        # cancelled this task; then the outcome stands, and the timeout's exit
        # takes its cancellation back.
        if not _ended_in_time(call, deadline, task, cancelling):
            raise
    adopt(before, context)
    result, error = cast("tuple[R | None, BaseException | None]", call.settled)
    if error is not None:
        try:
            # The node's own error; a StopIteration leaves as its carrier (PEP 479).
            raise carried(error)
        finally:
            del error  # a traceback holds this frame, which would hold the error
    return cast(R, result)


def adopt(before: contextvars.Context, after: contextvars.Context) -> None:
    """Set in the current context each variable `after` holds at another value than
    `before`, which `after` was copied from: what code run in `after` set."""
    for var, value in after.items():
        if before.get(var, _UNSET) is not value:
            var.set(value)


async def _thread_slot(
    deadline: _Deadline | None, task: asyncio.Task[Any] | None, cancelling: int
) -> None:
    """Wait for a slot of `THREADS`, within the attempt's timeout.

    The timeout passing while the call waits is a TimeoutError that says why.
    """
    try:
        await THREADS.acquire()
    except asyncio.CancelledError:
        if not _let_go(deadline) or task is None or task.cancelling() > cancelling + 1:
            raise
    else:
        return
    # Out of the handler: the TimeoutError is the call's, not the cancellation's context.
    raise TimeoutError(
        f"no node thread was free within the call's timeout: all THREAD_CAP="
        f"{THREAD_CAP} of kiln's node threads were busy (a timed-out call's thread "
        "holds its own until it ends)"
    )


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
    """One call's outcome, settled by its thread, and its waiter, woken through the loop."""

    __slots__ = ("_loop", "ended", "settled", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.settled: tuple[Any, BaseException | None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.ended = 0.0  # when the thread ended, in the loop's time

    async def wait(self) -> None:
        """Until the thread has ended (a cancellation cancels the waiter, not the call).

        Not a future that carries the result, which refuses a StopIteration
        (and would leave the caller waiting forever).
        """
        if self.settled is None:
            self.waiter = self._loop.create_future()
            await self.waiter

    def wake(self) -> None:
        """Wake the waiter, on the loop, once the thread has settled the call."""
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


def _ended_in_time(
    call: _Call,
    deadline: _Deadline | None,
    task: asyncio.Task[Any] | None,
    cancelling: int,
) -> bool:
    """Whether the thread ended before the deadline that cancelled the task, and
    nothing but that deadline cancelled it."""
    if call.settled is None or deadline is None or task is None:
        return False
    when = deadline[0].when()
    return (
        when is not None and call.ended <= when and task.cancelling() == cancelling + 1
    )


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
