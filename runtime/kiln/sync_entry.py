"""`run_sync`: a compiled flow's sync entry point, which works inside a running loop too.

`loopless`: a plain sync node of a flow written as `def`, called where the
source calls it, with no running event loop, though the flow's compiled body
runs in one (it awaits its thread=True nodes).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from contextlib import suppress
from functools import wraps
from typing import Any, Final, Generic, ParamSpec, TypeVar, cast

from kiln.errors import converted, raise_as_is

__all__ = ["blocks_a_loop", "loopless", "run_sync", "waited_on_by"]

P = ParamSpec("P")
T = TypeVar("T")

#: In the context of a worker that runs a sync entry point for a thread whose
#: event loop waits for it: that loop, until the first run there binds its calls.
_WAITING: Final = contextvars.ContextVar[list[asyncio.AbstractEventLoop] | None](
    "kiln_waiting_loop", default=None
)


def run_sync(coro: Coroutine[Any, Any, T], *, written_sync: bool = False) -> T:
    """Run `coro` to completion from synchronous code and return its result.

    Without a running event loop in this thread, this is ``asyncio.run`` on a
    loop of its own, which leaves the thread's current event loop as it was
    (``asyncio.run`` would unset the one a script set with `set_event_loop`).
    Inside one (a notebook, an async web handler) the coroutine runs with
    ``asyncio.run`` on a fresh worker thread, with a copy of the caller's context
    variables, while the caller blocks; scheduling it onto the caller's own loop
    instead would deadlock. Either way the result, or the original exception,
    comes back the same.

    `written_sync` says that `coro` runs the body of a flow written as a plain
    `def`: a StopIteration leaving it (from a node, or `next()` of an exhausted
    iterator) leaves as itself, as from the source, not as the RuntimeError
    Python makes of it at the edge of a coroutine (PEP 479).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    # Not inside the `except`: the flow's own exception would get the
    # RuntimeError as its context, and every traceback would start with it.
    try:
        return _WorkerRun(coro).result() if running else _run_here(coro)
    except RuntimeError as error:
        stopped = converted(error)
        if not written_sync or stopped is None:
            raise
    raise stopped  # out of the handler: its context stays its own


def waited_on_by(loop: asyncio.AbstractEventLoop) -> contextvars.Context:
    """A copy of the current context for a worker that `loop`, waiting, runs code for."""
    context = contextvars.copy_context()
    context.run(_WAITING.set, [loop])
    return context


def blocks_a_loop() -> bool:
    """Whether the run binding its calls now is the first of a worker that a
    waiting event loop runs code for (`waited_on_by`); once per worker."""
    waiting = _WAITING.get()
    if not waiting:
        return False
    waiting.clear()
    return True


def _run_here(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, the thread's current event loop left alone.

    With a loop factory, the runner neither sets its loop as the thread's
    current one nor unsets it as it closes: the caller's code, before the
    call and after it, may rely on the loop it set.
    """
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


class _WorkerRun(Generic[T]):
    """One coroutine run to completion on its own thread and event loop."""

    __slots__ = ("_coro", "_done", "_error", "_loop", "_task", "_thread", "_value")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._value: T | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
        # Waited on rather than the thread: on Python 3.11 a `join()` that a
        # KeyboardInterrupt cut marks the thread as stopped, and the next
        # `join()` returns before the cancelled work has unwound.
        self._done = threading.Event()
        context = waited_on_by(asyncio.get_running_loop())
        # asyncio.run's task copies the context current in the worker thread,
        # which `context.run` makes the caller's. A daemon, so that a caller who
        # lets a KeyboardInterrupt end the program does not wait on the work.
        self._thread = threading.Thread(
            target=context.run, args=(self._work,), name="kiln-run_sync", daemon=True
        )

    def result(self) -> T:
        self._thread.start()
        try:
            self._done.wait()
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): stop the work too,
            # and return once it has unwound (its `finally` blocks have run).
            self._cancel()
            self._done.wait()
            raise
        if self._error is not None:
            error, self._error = self._error, None
            raise_as_is(error)
        return cast(T, self._value)

    def _work(self) -> None:
        try:
            self._value = asyncio.run(self._main())
        except BaseException as error:  # handed over to the caller's thread
            self._error = error
        finally:
            self._done.set()

    async def _main(self) -> T:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        return await self._coro

    def _cancel(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            # Closed: the work ended as the interrupt came, and the interrupt stands.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)


def loopless(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn`, called with no running event loop in this thread, as from sync code.

    A flow written as `def` that awaits its thread=True nodes runs its body in
    an event loop; its plain sync nodes run there as the source runs them, in
    sync code: a node that runs an event loop of its own (``asyncio.run``, a
    sync client wrapping an async one) or asks whether one runs
    (`asyncio.get_running_loop`) sees none. The loop waits meanwhile, as it
    waits for any sync call.
    """

    @wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio._get_running_loop()
        if loop is None:
            return fn(*args, **kwargs)
        asyncio._set_running_loop(None)
        try:
            return fn(*args, **kwargs)
        finally:
            asyncio._set_running_loop(loop)

    return call
