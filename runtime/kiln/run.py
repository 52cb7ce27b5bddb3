"""The run context that generated code calls: structured concurrency, sync entry.

`Scope` is `asyncio.TaskGroup` with one difference that matters to users: a
failure leaves as the original exception object, never wrapped in an
`ExceptionGroup`, so ``except ValueError`` around a compiled flow catches what
the source run would have raised. `gather` and `amap` are the fan-out forms built
on it, and `run_sync` is the sync entry point that works inside a running event
loop too.

The guarantees, for all three async forms: the first failure (a child's, or
the body's, whichever happened first) is raised as itself; every other child is
cancelled and awaited; when the call returns or raises, nothing it started is
still running; cancelling the caller cancels everything it started.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
)
from inspect import isawaitable
from types import TracebackType
from typing import Any, Generic, NoReturn, Self, TypeVar, cast, final

__all__ = ["Scope", "amap", "gather", "keyed", "run_sync"]

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")
V = TypeVar("V")


class Scope:
    """A nursery of tasks: ``async with Scope() as scope: scope.spawn(coro)``.

    Children still running when the body finishes are awaited. On the first
    failure the other children and the body are cancelled, and the failure is
    raised from ``__aexit__`` as itself. KeyboardInterrupt and SystemExit win
    over ordinary errors; ordinary errors win over a cancellation. A scope is
    used once.

    Unlike the TaskGroup of Python 3.11, a child failing after the body has
    finished does not cancel the task that runs the scope. (TaskGroup does, and
    never takes the request back: `cancelling()` stays at 1, and an enclosing
    `asyncio.timeout` then raises CancelledError instead of TimeoutError.)
    """

    __slots__ = (
        "_aborting",
        "_cancelled_parent",
        "_entered",
        "_error",
        "_exiting",
        "_loop",
        "_parent",
        "_tasks",
        "_waiter",
    )

    # Set by __aenter__; spawn() checks `_entered` before it touches them.
    _loop: asyncio.AbstractEventLoop
    _parent: asyncio.Task[Any]

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._error: BaseException | None = None  # the one failure to raise
        self._waiter: asyncio.Future[None] | None = None
        self._entered = False
        self._exiting = False
        self._aborting = False
        self._cancelled_parent = False  # we asked the parent to stop its body

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(
                "a Scope is used once; create a new Scope for each async with"
            )
        parent = asyncio.current_task()
        if parent is None:
            raise RuntimeError("a Scope must be entered inside an asyncio task")
        self._loop = parent.get_loop()
        self._parent = parent
        self._entered = True
        return self

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start `coro` as a child task of this scope and return the task.

        After a failure, a new child is created already cancelled (it never
        runs, and Python does not warn that it was never awaited).
        """
        if not self._entered or (self._exiting and not self._tasks):
            coro.close()
            raise RuntimeError(
                "Scope.spawn() works inside the async with block (or while the "
                "scope waits for its children)"
            )
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._on_done)
        if self._aborting:
            task.cancel()
        return task

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Typed None, not bool: a scope never swallows an exception, and mypy
        # must know it, or a `return` inside the block leaves the function with
        # a "missing return statement" error.
        self._exiting = True
        cancellation = self._settle_body(exc)
        while self._tasks:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError as cancelled:
                # The task running the scope is being cancelled from outside.
                cancellation = cancelled
                self._abort()
            self._waiter = None
        error = self._error or cancellation
        self._error = None  # exceptions hold frames; do not keep one alive here
        if error is not None and error is not exc:
            _raise_as_is(error)
        # Nothing to raise, or the body's own exception, which Python re-raises.

    def _settle_body(self, exc: BaseException | None) -> BaseException | None:
        """Account for how the body ended; return a cancellation to propagate."""
        cancellation = None
        if self._cancelled_parent:
            # We cancelled the parent to stop its body: take our request back.
            # Any request left after that came from outside and must propagate.
            self._cancelled_parent = False
            if self._parent.uncancel() > 0 and isinstance(exc, asyncio.CancelledError):
                cancellation = exc
        elif isinstance(exc, asyncio.CancelledError):
            cancellation = exc
        if exc is not None:
            if not isinstance(exc, asyncio.CancelledError):
                self._record(exc)
            self._abort()
        return cancellation

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._tasks and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        self._record(error)
        if self._aborting:
            return
        self._abort()
        if not self._exiting:
            # Stop the body at its current await; __aexit__ takes the request back.
            self._cancelled_parent = True
            self._parent.cancel()

    def _record(self, error: BaseException) -> None:
        # The first error wins, except that an interrupt beats an ordinary error.
        if self._error is None or (
            isinstance(error, KeyboardInterrupt | SystemExit)
            and not isinstance(self._error, KeyboardInterrupt | SystemExit)
        ):
            self._error = error

    def _abort(self) -> None:
        if self._aborting:
            return
        self._aborting = True
        for task in self._tasks:
            task.cancel()


async def gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Await every awaitable concurrently; return their results in input order.

    All are started at once as tasks. The first failure is raised as itself,
    after the others are cancelled and awaited. If iterating `aws` raises, what
    it produced so far is closed (coroutines) or cancelled (futures) first, so
    nothing is left running or unawaited.
    """
    items = await _collect(aws)
    if not items:
        return []
    if len(items) == 1:
        return [await items[0]]  # nothing to overlap: skip the task
    async with Scope() as scope:
        tasks = _spawn_all(scope, items)
    return [task.result() for task in tasks]


async def amap(items: AsyncIterable[T], each: Callable[[T], Awaitable[R]]) -> list[R]:
    """Start ``each(item)`` for every item as it arrives; results in arrival order.

    Pipelined: the work on an item starts while the next item is still being
    produced. On any failure (from an element or from the iterator) pending
    work is cancelled, the iterator is closed and the original error raised.
    """
    iterator = aiter(items)
    tasks: list[asyncio.Task[R]] = []
    try:
        async with Scope() as scope:
            async for item in iterator:
                tasks.append(scope.spawn(_as_coroutine(each(item))))
    except BaseException:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    return [task.result() for task in tasks]


def keyed(key: K, work: Awaitable[V]) -> Awaitable[tuple[K, V]]:
    """Pair the result of `work` with `key`, for dict fan-outs.

    ``dict(await gather(keyed(k, fetch(k)) for k in keys))`` builds a dict
    concurrently. Not a coroutine function: if `gather` has to drop it unstarted,
    closing it closes `work` too, so Python never warns that it was not awaited.
    """
    return _Keyed(key, work)


@final
class _Keyed(Generic[K, V]):
    __slots__ = ("_key", "_work")

    def __init__(self, key: K, work: Awaitable[V]) -> None:
        self._key = key
        self._work = work

    def __await__(self) -> Generator[Any, None, tuple[K, V]]:
        value = yield from self._work.__await__()
        return self._key, value

    def close(self) -> None:
        _discard([self._work])


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code and return its result.

    Without a running event loop in this thread, this is ``asyncio.run``. Inside
    one (a notebook, an async web handler) the coroutine runs with
    ``asyncio.run`` on a fresh worker thread, with a copy of the caller's context
    variables, while the caller blocks; scheduling it onto the caller's own loop
    instead would deadlock. Either way the result, or the original exception,
    comes back the same.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _WorkerRun(coro).result()


class _WorkerRun(Generic[T]):
    """One coroutine run to completion on its own thread and event loop."""

    __slots__ = ("_coro", "_error", "_loop", "_task", "_thread", "_value")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._value: T | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[T] | None = None
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
            self._thread.join()
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): stop the work too.
            self._cancel()
            self._thread.join()
            raise
        if self._error is not None:
            error, self._error = self._error, None
            _raise_as_is(error)
        return cast(T, self._value)

    def _work(self) -> None:
        try:
            self._value = asyncio.run(self._main())
        except BaseException as error:  # handed over to the caller's thread
            self._error = error

    async def _main(self) -> T:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        return await self._coro

    def _cancel(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)


def _raise_as_is(error: BaseException) -> NoReturn:
    """Raise `error` keeping the context it was created with.

    Raising inside an exception handler (as ``__aexit__`` runs, after the body
    was cancelled) would set the handled exception as the error's
    ``__context__``, and tracebacks would claim that one caused the other.
    """
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context
        del error, context


async def _collect(aws: Iterable[Awaitable[T]]) -> list[Awaitable[T]]:
    items: list[Awaitable[T]] = []
    try:
        for aw in aws:
            if not isawaitable(aw):
                raise TypeError(f"gather() needs awaitables; got {aw!r}")
            items.append(aw)
    except BaseException:
        running = _discard(items)
        if running:
            await asyncio.wait(running)
        raise
    return items


def _discard(items: Iterable[Awaitable[Any]]) -> list[asyncio.Future[Any]]:
    """Close coroutines and cancel futures that will never be awaited.

    Returns the futures cancelled, for the caller to wait for: a task given to
    us may be running already, and must not outlive the call.
    """
    cancelled: list[asyncio.Future[Any]] = []
    for aw in items:
        if isinstance(aw, asyncio.Future):
            if aw.cancel():
                cancelled.append(aw)
        elif isinstance(aw, Coroutine | _Keyed):
            aw.close()
    return cancelled


def _spawn_all(scope: Scope, items: list[Awaitable[T]]) -> list[asyncio.Task[T]]:
    tasks: list[asyncio.Task[T]] = []
    try:
        for aw in items:
            tasks.append(scope.spawn(_as_coroutine(aw)))
    except BaseException:
        _discard(items[len(tasks) :])
        raise
    return tasks


def _as_coroutine(aw: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if isinstance(aw, Coroutine):
        return aw
    if not isawaitable(aw):
        raise TypeError(f"expected an awaitable; got {aw!r}")
    return _await(aw)


async def _await(aw: Awaitable[T]) -> T:
    return await aw
