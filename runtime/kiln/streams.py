"""`iterate`: a sync ``for`` loop over an async stream.

A flow called from sync code may have to consume an async stream node
(``for chunk in iterate(tokens(prompt))``), and sync code often runs inside an
event loop it cannot await on (a notebook, an async web handler). So there are
two ways to drive the stream, chosen at the first ``next()``:

=========================  =====================================================
calling thread             how the stream runs
=========================  =====================================================
no running event loop      on a private loop (`asyncio.Runner`) owned by the
                           iterator, one ``__anext__`` per ``next()``
runs an event loop         on a worker thread with its own loop, one
                           ``__anext__`` per ``next()`` too (never ahead of the
                           consumer: a stream's side effects happen when the
                           item is asked for); the caller's loop waits while
                           ``next()`` blocks, as it must for any sync call
=========================  =====================================================

Either way the stream runs on a loop of its own, so it must not use objects tied
to the caller's loop. Its exceptions reach the consumer as the original objects.
It runs in one copy of the consumer's context variables throughout (a value it
sets before a ``yield`` and resets after one stays its own), and each step
takes in first what the consumer has set since the last one, as a generator's
body sees its consumer's sets at every ``next()``; what the stream sets does
not reach the consumer, as `run_sync`'s coroutine's does not reach its caller.
`iterate` owns the stream: however the iteration ends (exhausted, failed,
``close()``, ``break`` and garbage collection, an exception in the loop's body),
the stream is closed with ``aclose()`` on its own loop, and the loop and thread
are gone before `close` returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Generic, ParamSpec, TypeVar, final

from kiln.errors import generator_stopped, raise_as_is
from kiln.sync_entry import waited_on_by

__all__ = ["iterate"]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


def iterate(stream: AsyncIterator[T], *, written_sync: bool = False) -> Iterator[T]:
    """Iterate the async `stream` from sync code; see the module docstring.

    Returns a generator: ``close()`` stops the stream early. `written_sync`
    says that `stream` runs the body of a streaming flow written as a plain
    `def`: a StopIteration leaving it becomes the RuntimeError of a generator,
    as in the source, not of an async generator (PEP 479).
    """
    try:
        if _loop_running():
            yield from _on_worker_thread(stream)
        else:
            yield from _on_private_loop(stream)
    except RuntimeError as error:
        stop = generator_stopped(error) if written_sync else None
        if stop is None:
            raise
    else:
        return
    raise stop  # out of the handler; this generator's edge words it as the source's


def _on_private_loop(stream: AsyncIterator[T]) -> Iterator[T]:
    # With a loop factory, the runner leaves the thread's current event loop
    # alone: the consumer's code runs between our steps and may rely on it.
    runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
    # The stream runs with a copy of the consumer's context variables, as on
    # a worker thread (and as `run_sync` runs a coroutine), not the runner's own.
    context = contextvars.copy_context()
    taken = _Taken(context)
    try:
        try:
            while True:
                context.run(_set, taken.changes())
                item = _off_loop(runner.run, _next(stream), context=context)
                if isinstance(item, _End):
                    break
                yield item
        finally:
            _off_loop(runner.run, _aclose(stream), context=context)
    finally:
        _off_loop(runner.close)


def _off_loop(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Call `fn`, on a helper thread if this thread runs an event loop.

    The private loop cannot run inside another loop, and `Runner.run` would
    refuse. An iterator started outside a loop can still come to be resumed,
    or collected, inside one.
    """
    if not _loop_running():
        return fn(*args, **kwargs)
    with ThreadPoolExecutor(1, thread_name_prefix="kiln-iterate") as helper:
        return helper.submit(fn, *args, **kwargs).result()


def _on_worker_thread(stream: AsyncIterator[T]) -> Iterator[T]:
    worker = _Worker(stream)
    try:
        while True:
            message = worker.take()
            if isinstance(message, _End):
                return
            if isinstance(message, _Failure):
                raise_as_is(message.error)
            yield message
    finally:
        worker.stop()


@final
class _Taken:
    """What of the consumer's context a stream has taken in: its changes since."""

    __slots__ = ("_seen",)

    def __init__(self, seen: contextvars.Context) -> None:
        self._seen = seen

    def changes(self) -> list[tuple[contextvars.ContextVar[Any], Any]]:
        """The variables the consumer set since the last call, with their values."""
        now = contextvars.copy_context()
        seen, self._seen = self._seen, now
        return [
            (var, value)
            for var, value in now.items()
            if seen.get(var, _UNSET) is not value
        ]


def _set(changes: list[tuple[contextvars.ContextVar[Any], Any]]) -> None:
    for var, value in changes:
        var.set(value)


@final
class _End:
    """The stream is exhausted."""

    __slots__ = ()


@final
class _Failure:
    """The stream raised `error` (a worker's message to the consumer)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END: Final = _End()
_UNSET: Final = object()


@final
class _Worker(Generic[T]):
    """A thread whose event loop reads `stream` into a queue, an item per request.

    The producer takes a slot (an `asyncio.Semaphore` on the worker's loop)
    before each ``__anext__``, and the consumer gives one for each message it
    waits for: the stream runs only for an item the consumer asked for, as
    ``async for`` would run it. Requests made before the worker's loop runs
    are `_asked`, the slots it starts with.

    Stopping cancels a read in flight (the stream sees `CancelledError` where
    it awaits; between items it waits at its ``yield``), then closes the
    stream. An error raised in response to being stopped is the stream's
    failure to clean up, and `stop` raises it.

    `_lock` guards `_loop` and `_asked`; `_loop` is set only while the loop is
    sure to be open, so the consumer never calls into a closed loop.
    `_producing` and `_cancelled` are read and written on the worker's loop only.
    """

    __slots__ = (
        "_asked",
        "_cancelled",
        "_close_error",
        "_items",
        "_lock",
        "_loop",
        "_producing",
        "_slots",
        "_stopping",
        "_stream",
        "_taken",
        "_task",
        "_thread",
        "_unsent",
    )

    def __init__(self, stream: AsyncIterator[T]) -> None:
        self._stream = stream
        self._items: queue.SimpleQueue[T | _End | _Failure] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._asked = 0
        self._producing = False
        self._cancelled = False
        self._stopping = False
        self._close_error: BaseException | None = None
        # With each request, what the consumer set since the last one, for the
        # stream to take in before the step (`_lock` guards it).
        context = waited_on_by(asyncio.get_running_loop())
        self._taken = _Taken(context)
        self._unsent: deque[list[tuple[contextvars.ContextVar[Any], Any]]] = deque()
        # The stream runs with a copy of the consumer's context variables. A
        # daemon thread, so that a consumer ending the program does not hang.
        self._thread = threading.Thread(
            target=context.run,
            args=(self._run,),
            name="kiln-iterate",
            daemon=True,
        )
        self._thread.start()

    def _run(self) -> None:
        asyncio.run(self._pump())

    def take(self) -> T | _End | _Failure:
        """The next message: asks the producer for one item, then waits for it."""
        changes = self._taken.changes()
        with self._lock:
            self._unsent.append(changes)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._give_slot)
            else:  # not started yet (or ended: its last message is queued)
                self._asked += 1
        message = self._items.get()
        if isinstance(message, _Failure) and message.error is self._close_error:
            self._close_error = None  # delivered here, not again by stop()
        return message

    def stop(self) -> None:
        """Stop reading, close the stream, wait for the thread to end.

        Raises what the stream raised while stopping, as a generator's
        ``close()`` raises what its ``finally`` block does.
        """
        with self._lock:
            self._stopping = True
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._cancel)
        self._thread.join()
        if self._close_error is not None:
            error, self._close_error = self._close_error, None
            raise_as_is(error)

    async def _pump(self) -> None:
        outcome: _End | _Failure = _END
        if self._begin():
            try:
                await self._produce()
            except BaseException as error:  # the stream's, or our cancellation
                if not self._cancelled:
                    outcome = _Failure(error)
                elif not isinstance(error, asyncio.CancelledError):
                    self._close_error = error
            self._producing = False
        with self._lock:
            self._loop = None  # from here on the loop may close at any time
        try:
            await _aclose(self._stream)
        except BaseException as error:
            self._close_error = self._close_error or error
            if isinstance(outcome, _End):
                outcome = _Failure(error)
        self._items.put(outcome)

    def _begin(self) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._slots = asyncio.Semaphore(self._asked)
            self._producing = True
            return True

    async def _produce(self) -> None:
        assert self._slots is not None
        # `_cancelled` too: a stream may swallow the cancellation and go on.
        while not self._cancelled:
            await self._slots.acquire()
            with self._lock:
                _set(self._unsent.popleft())  # in this task's context, the stream's
            item = await _next(self._stream)
            if isinstance(item, _End):
                return
            self._items.put(item)

    def _give_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _cancel(self) -> None:
        # On the worker's loop: stop reading, but never interrupt `aclose()`.
        if self._producing and self._task is not None:
            self._cancelled = True
            self._task.cancel()


async def _next(stream: AsyncIterator[T]) -> T | _End:
    # A coroutine may not let StopAsyncIteration escape into a Task, so the end
    # of the stream is a value.
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return _END


async def _aclose(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
