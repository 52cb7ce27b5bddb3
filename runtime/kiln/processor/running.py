"""The Processor: lionagi 0.36's contract, with admission the moment it is due.

A `Processor` queues `Event`s and runs them under an admission gate: at most
`queue_capacity` starts in any `capacity_refresh_time` seconds (a sliding
window) and at most `concurrency_limit` events in flight. Each event starts the
moment both allow it; lionagi instead admits a batch, waits for the whole
batch, and sleeps a refresh interval between batches. Compiled flows use the
same gate directly through `acquire()` and `release()`, in one FIFO line with
the queued events. docs/processor.md is the specification.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, ClassVar, Self

from kiln.errors import DeniedError
from kiln.events import Event, EventStatus
from kiln.processor.admission import Admission, Waiter
from kiln.processor.queue import EventQueue

__all__ = ["Processor"]


class Processor(EventQueue, Admission):
    """Runs queued events, each the moment the window and the in-flight cap allow.

    ``Processor(queue_capacity, capacity_refresh_time, concurrency_limit=None,
    max_queue_size=0)``: at most `queue_capacity` events start in any
    `capacity_refresh_time` seconds, at most `concurrency_limit` run at once
    (None: no cap), and `enqueue` waits while `max_queue_size` events are
    queued (0: no bound). `Processor.capped(n)` has no window, only the cap.

    Subclasses may override `request_permission` and `handle_denied`, and set
    `event_type` (the events they accept) and `max_denials`.
    """

    # An event deferred this many times is ABORTED instead of tried again. Five
    # refusals, a refresh interval apart, outlast a rate limiter's usual budget
    # period without keeping an event that can never run in the queue forever.
    max_denials: ClassVar[int] = 5
    # Seconds before a deferred event is tried again when there is no window.
    capped_retry_delay: ClassVar[float] = 0.1

    def __init__(
        self,
        queue_capacity: int,
        capacity_refresh_time: float,
        concurrency_limit: int | None = None,
        max_queue_size: int = 0,
    ) -> None:
        _check_count("queue_capacity", queue_capacity, minimum=1)
        _check_refresh(capacity_refresh_time)
        if concurrency_limit is not None:
            _check_count("concurrency_limit", concurrency_limit, minimum=1)
        _check_count("max_queue_size", max_queue_size, minimum=0)
        Admission.__init__(
            self, queue_capacity, float(capacity_refresh_time), concurrency_limit
        )
        self._configure(max_queue_size)

    @classmethod
    def capped(cls, concurrency_limit: int, max_queue_size: int = 0) -> Self:
        """A processor with no start window: at most `concurrency_limit` events in flight.

        The public constructor insists on a window, as lionagi's does; this is
        the way to a pure cap, which `Limit(n)` without `refresh` uses. It does
        not run a subclass's `__init__`.
        """
        _check_count("concurrency_limit", concurrency_limit, minimum=1)
        _check_count("max_queue_size", max_queue_size, minimum=0)
        processor = cls.__new__(cls)
        Admission.__init__(processor, concurrency_limit, None, concurrency_limit)
        processor._configure(max_queue_size)
        return processor

    @classmethod
    async def create(cls, **kwargs: Any) -> Self:
        """Build a processor from keyword arguments (lionagi's factory)."""
        return cls(**kwargs)

    def _configure(self, max_queue_size: int) -> None:
        self._hold(max_queue_size)
        self._stopped = False
        self._executing = False

    # --- configuration, as lionagi names it --------------------------------------------

    @property
    def queue_capacity(self) -> int:
        """The most events that start in one window (the cap, for a capped processor)."""
        return self._capacity

    @property
    def capacity_refresh_time(self) -> float | None:
        """The window's length in seconds; None for a capped processor."""
        return self._refresh

    @property
    def concurrency_limit(self) -> int | None:
        """The most events in flight at once; None for no cap."""
        return self._limit

    @property
    def retry_delay(self) -> float:
        """Seconds a deferred event waits before its next try: one window, if there is one."""
        refresh = self._refresh
        return self.capped_retry_delay if refresh is None else refresh

    @property
    def available_capacity(self) -> int:
        """How many events could start right now under the window and the cap."""
        return self._free()

    @property
    def execution_mode(self) -> bool:
        """True while `execute()` runs."""
        return self._executing

    # --- running events -----------------------------------------------------------------

    async def join(self) -> None:
        """Wait until every enqueued event has finished, running passes if nobody else does."""
        while True:
            with self._queue_lock:
                if self._unfinished == 0:
                    return
                driven = self._executing and not self._stopped
                self._requeue_due(time.monotonic())
                change = None
                if driven or not self._queue:
                    change = self._watch()
                    timeout = None if driven else self._until_deferred_due()
            if change is None:
                await self._pass()
            else:
                await self._sleep(change, timeout)

    async def process(self) -> None:
        """One pass: run every event queued now, each the moment it is admitted.

        Returns when the events it started have finished. A deferred event
        goes back to the queue for a pass after `retry_delay` seconds.
        """
        await self._pass()

    async def execute(self) -> None:
        """Run events as they are queued until `stop()`; then wait for the running ones.

        Calls `start()` first, so a stopped processor runs again. Cancelling
        `execute()` cancels the events it started.
        """
        with self._queue_lock:
            if self._executing:
                raise RuntimeError(
                    "execute() is already running on this processor; call stop() and "
                    "let it return before executing again"
                )
            self._executing = True
            self._stopped = False
            self._notify()
        try:
            async with asyncio.TaskGroup() as running:
                while (event := await self._next_unless_stopped()) is not None:
                    await self._turn(event, running, until_stopped=True)
        finally:
            with self._queue_lock:
                self._executing = False
                self._notify()

    async def start(self) -> None:
        """Clear a stop, so `execute()` may run."""
        with self._queue_lock:
            self._stopped = False
            self._notify()

    async def stop(self) -> None:
        """Make `execute()` stop taking events; events already started run to the end."""
        with self._queue_lock:
            self._stopped = True
            self._notify()

    def is_stopped(self) -> bool:
        """True after `stop()` until `start()` or `execute()`."""
        return self._stopped

    async def request_permission(self, **kwargs: Any) -> bool:
        """May the event whose `request` is `kwargs` start now? Subclasses decide; True here."""
        return True

    async def handle_denied(self, event: Event) -> bool:
        """Decide what happens to a refused event: True skips it, False defers it.

        A skipped event is final (SKIPPED here) and used its place in the
        window; a deferred event goes back to the queue without using
        capacity, until `max_denials` refusals abort it. Skipping is the default.
        """
        event.status = EventStatus.SKIPPED
        return True

    # --- one pass, one turn -------------------------------------------------------------

    async def _pass(self) -> None:
        with self._queue_lock:
            self._requeue_due(time.monotonic())
            count = len(self._queue)
        async with asyncio.TaskGroup() as running:
            for _ in range(count):
                with self._queue_lock:
                    if not self._queue:
                        break
                    event = self._queue.popleft()
                    self._notify()
                await self._turn(event, running, until_stopped=False)

    async def _turn(
        self, event: Event, running: asyncio.TaskGroup, *, until_stopped: bool
    ) -> None:
        """Admit `event`, ask permission, then run, skip, defer or abort it."""
        try:
            ticket = self._admit()
            if not isinstance(ticket, Waiter):
                start: float | None = ticket
            elif until_stopped:
                start = await self._wait_unless_stopped(ticket)
            else:
                start = await self._wait(ticket)
        except BaseException:
            self._put_back(event)
            raise
        if start is None:
            self._put_back(event)
            return
        try:
            if await self.request_permission(**event.request):
                running.create_task(self._run(event))
                return
            if await self.handle_denied(event):
                if event.status is EventStatus.PENDING:
                    event.status = EventStatus.SKIPPED
                self.release()  # the skip keeps its start in the window
                self._finish(event)
                return
        except Exception as error:
            # A broken permission check fails its event, not the whole pass.
            self._withdraw(start)
            event.error, event.status = error, EventStatus.FAILED
            self._finish(event)
            return
        except BaseException:
            self._withdraw(start)
            self._put_back(event)
            raise
        self._withdraw(start)
        self._defer(event)

    async def _run(self, event: Event) -> None:
        try:
            await event.invoke()
        except Exception as error:  # an invoke() override that broke the contract
            event.error, event.status = error, EventStatus.FAILED
        finally:
            self.release()
            self._finish(event)

    def _defer(self, event: Event) -> None:
        with self._queue_lock:
            denials = self._denials.get(event.id, 0) + 1
            if denials < self.max_denials:
                self._denials[event.id] = denials
                self._deferred.append((time.monotonic() + self.retry_delay, event))
                self._notify()
                return
        event.error, event.status = DeniedError(event.id, denials), EventStatus.ABORTED
        self._finish(event)

    async def _wait_unless_stopped(self, waiter: Waiter) -> float | None:
        """Wait for admission, or for stop(): then None, and the admission passed on."""
        admitted = asyncio.ensure_future(self._wait(waiter))
        try:
            while not admitted.done():
                with self._queue_lock:
                    if self._stopped:
                        break
                    change = self._watch()
                try:
                    await asyncio.wait(
                        (admitted, change), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    self._unwatch(change)
            else:
                return admitted.result()
        except BaseException:
            self._call_off(admitted)
            raise
        self._call_off(admitted)
        await asyncio.wait((admitted,))
        return None

    def _call_off(self, admitted: asyncio.Future[float]) -> None:
        # A cancelled wait hands on an admission that came at the same moment;
        # one that had already come is withdrawn here.
        if not admitted.done():
            admitted.cancel()
        elif not admitted.cancelled() and admitted.exception() is None:
            self._withdraw(admitted.result())

    async def _next_unless_stopped(self) -> Event | None:
        while True:
            with self._queue_lock:
                if self._stopped:
                    return None
                event = self._pop_next()
                if event is not None:
                    return event
                change, timeout = self._watch(), self._until_deferred_due()
            await self._sleep(change, timeout)


def _check_count(option: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{option} must be an int >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{option} must be an int >= {minimum}; got {value!r}")


def _check_refresh(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"capacity_refresh_time must be a number of seconds > 0; got {value!r} "
            "(for a cap on events in flight without a window, use Processor.capped(n))"
        )
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"capacity_refresh_time must be a finite number of seconds > 0; got {value!r} "
            "(for a cap on events in flight without a window, use Processor.capped(n))"
        )
