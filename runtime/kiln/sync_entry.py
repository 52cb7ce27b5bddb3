"""`run_sync`: a compiled flow's sync entry point, which works inside a running loop too."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, Generic, TypeVar, cast

from kiln.errors import converted, raise_as_is

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T], *, written_sync: bool = False) -> T:
    """Run `coro` to completion from synchronous code and return its result.

    Without a running event loop in this thread, this is ``asyncio.run``. Inside
    one (a notebook, an async web handler) the coroutine runs with
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
        return _WorkerRun(coro).result() if running else asyncio.run(coro)
    except RuntimeError as error:
        stopped = converted(error)
        if not written_sync or stopped is None:
            raise
    raise stopped  # out of the handler: its context stays its own


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
        context = contextvars.copy_context()
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
