"""The events a `Processor` holds until they run: queued, deferred, unfinished.

One `threading.Lock` guards them, so any thread and any event loop may
enqueue and dequeue. Nothing polls: a coroutine that waits for a change (room
in the queue, an event to take, a stop) watches for it (`_watch`), and every
change under the lock wakes the watchers (`_notify`), on their own loops. A
deferred event (a refused permission) waits apart until its retry time, then
goes back to the queue, even a full one: it had its place.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import ClassVar

from kiln.events import Event, NodeEvent
from kiln.processor.admission import wake

__all__ = ["EventQueue"]


class EventQueue:
    """The queue of a `Processor`: its events, its watchers and the lock over both."""

    event_type: ClassVar[type[Event]] = Event
    max_queue_size: int

    def _hold(self, max_queue_size: int) -> None:
        self.max_queue_size = max_queue_size
        # One lock guards the queue's state, so any thread and any loop may use it.
        self._queue_lock = threading.Lock()
        self._queue: deque[Event] = deque()
        self._deferred: deque[tuple[float, Event]] = deque()  # (retry time, event)
        self._denials: dict[int, int] = {}
        # Events enqueued and neither finished nor handed out by dequeue().
        self._unfinished = 0
        self._watchers: set[asyncio.Future[None]] = set()  # woken on every change

    @property
    def queued(self) -> int:
        """Events waiting in the queue, deferred ones included."""
        with self._queue_lock:
            return len(self._queue) + len(self._deferred)

    @property
    def queue_full(self) -> bool:
        """True when `enqueue` would wait for room."""
        with self._queue_lock:
            return self._full()

    async def enqueue(self, event: Event) -> None:
        """Add `event` to the queue, waiting while the queue is full."""
        self._check_event(event)
        while True:
            with self._queue_lock:
                if not self._full():
                    self._queue.append(event)
                    self._unfinished += 1
                    self._notify()
                    return
                change = self._watch()
            await self._sleep(change)

    async def dequeue(self) -> Event:
        """Take the next event out of the queue, waiting for one; the caller now runs it."""
        while True:
            with self._queue_lock:
                event = self._pop_next()
                if event is not None:
                    self._unfinished -= 1
                    return event
                change, timeout = self._watch(), self._until_deferred_due()
            await self._sleep(change, timeout)

    # --- the queue's state, under the lock ----------------------------------------------

    def _check_event(self, event: object) -> None:
        if isinstance(event, NodeEvent):
            raise TypeError(
                "a NodeEvent records a call that a compiled flow makes; a Processor cannot "
                "run it (record it in an Executor with record())"
            )
        if not isinstance(event, self.event_type):
            raise TypeError(
                f"{type(self).__name__} runs {self.event_type.__name__} events (subclasses of "
                f"kiln.Event that implement `async def _invoke(self)`); got {event!r}"
            )

    def _full(self) -> bool:
        return self.max_queue_size > 0 and len(self._queue) >= self.max_queue_size

    def _requeue_due(self, now: float) -> None:
        # A deferred event had its place in the queue: it goes back even when full.
        deferred = self._deferred
        while deferred and deferred[0][0] <= now:
            self._queue.append(deferred.popleft()[1])

    def _until_deferred_due(self) -> float | None:
        if not self._deferred:
            return None
        return max(0.0, self._deferred[0][0] - time.monotonic())

    def _pop_next(self) -> Event | None:
        self._requeue_due(time.monotonic())
        if not self._queue:
            return None
        self._notify()  # room in the queue
        return self._queue.popleft()

    def _put_back(self, event: Event) -> None:
        with self._queue_lock:
            self._queue.appendleft(event)
            self._notify()

    def _finish(self, event: Event) -> None:
        with self._queue_lock:
            self._unfinished -= 1
            self._denials.pop(event.id, None)
            self._notify()

    def _watch(self) -> asyncio.Future[None]:
        change: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.add(change)
        return change

    def _unwatch(self, change: asyncio.Future[None]) -> None:
        with self._queue_lock:
            self._watchers.discard(change)

    def _notify(self) -> None:
        # Waking only schedules callbacks, so it is safe under the lock.
        for change in self._watchers:
            wake(change)
        self._watchers.clear()

    async def _sleep(
        self, change: asyncio.Future[None], timeout: float | None = None
    ) -> None:
        try:
            await asyncio.wait((change,), timeout=timeout)
        finally:
            self._unwatch(change)
