"""The Processor and the Executor: lionagi 0.36's contract, with admission the moment it is due.

A `Processor` queues `Event`s and runs them under an admission gate: at most
`queue_capacity` starts in any `capacity_refresh_time` seconds (a sliding
window) and at most `concurrency_limit` events in flight. Each event starts the
moment both allow it; lionagi instead admits a batch, waits for the whole
batch, and sleeps a refresh interval between batches. Compiled flows use the
same gate directly through `acquire()` and `release()`, in one FIFO line with
the queued events. docs/processor.md is the specification.

An `Executor` keeps a `Pile` of events, forwards the pending ones to its
processor, and answers which events completed, failed and so on. Compiled
flows `record()` the `NodeEvent`s of their calls in one, without scheduling.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self, final

from kiln.errors import DeniedError
from kiln.events import Event, EventStatus, NodeEvent
from kiln.processor.admission import Admission, Waiter, wake

__all__ = ["Executor", "Pile", "Processor"]


class Processor(Admission):
    """Runs queued events, each the moment the window and the in-flight cap allow.

    ``Processor(queue_capacity, capacity_refresh_time, concurrency_limit=None,
    max_queue_size=0)``: at most `queue_capacity` events start in any
    `capacity_refresh_time` seconds, at most `concurrency_limit` run at once
    (None: no cap), and `enqueue` waits while `max_queue_size` events are
    queued (0: no bound). `Processor.capped(n)` has no window, only the cap.

    Subclasses may override `request_permission` and `handle_denied`, and set
    `event_type` (the events they accept) and `max_denials`.
    """

    event_type: ClassVar[type[Event]] = Event
    # An event deferred this many times is ABORTED instead of tried again. Five
    # refusals, a refresh interval apart, outlast a rate limiter's usual budget
    # period without keeping an event that can never run in the queue forever.
    max_denials: ClassVar[int] = 5
    # Seconds before a deferred event is tried again when there is no window.
    capped_retry_delay: ClassVar[float] = 0.1

    max_queue_size: int

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
        self.max_queue_size = max_queue_size
        # One lock guards the queue's state, so any thread and any loop may use it.
        self._queue_lock = threading.Lock()
        self._queue: deque[Event] = deque()
        self._deferred: deque[tuple[float, Event]] = deque()  # (retry time, event)
        self._denials: dict[int, int] = {}
        # Events enqueued and neither finished nor handed out by dequeue().
        self._unfinished = 0
        self._watchers: set[asyncio.Future[None]] = set()  # woken on every change
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

    # --- the queue ----------------------------------------------------------------------

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

    # --- running events -----------------------------------------------------------------

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


@final
class Pile:
    """Events in insertion order, found by id: a read-only view (lionagi's shape).

    Iterating yields events; `in` takes an event or an id; ``pile[id]`` finds one.
    """

    __slots__ = ("_events",)

    def __init__(self, events: Mapping[int, Event]) -> None:
        self._events = events

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(list(self._events.values()))

    def __contains__(self, ref: object) -> bool:
        if isinstance(ref, Event):
            return self._events.get(ref.id) is ref
        return isinstance(ref, int) and ref in self._events

    def __getitem__(self, event_id: int) -> Event:
        try:
            return self._events[event_id]
        except KeyError:
            raise KeyError(f"no event with id {event_id} in this pile") from None

    def __repr__(self) -> str:
        return f"Pile({list(self._events.values())!r})"


class Executor:
    """A pile of events, forwarded to a processor built from `processor_config`.

    `append` adds an event and marks it pending; `forward` sends the pending
    events to the processor and runs a pass; `record` (sync) only adds an
    event, for the `NodeEvent`s of compiled flows, which run themselves.
    With `strict_event_type`, only events of exactly `event_type` are taken.
    """

    processor_type: ClassVar[type[Processor]] = Processor

    def __init__(
        self,
        processor_config: Mapping[str, Any] | None = None,
        strict_event_type: bool = False,
    ) -> None:
        if not isinstance(strict_event_type, bool):
            raise TypeError(
                f"strict_event_type must be True or False; got {strict_event_type!r}"
            )
        self.processor_config: dict[str, Any] = dict(processor_config or {})
        self.strict_event_type = strict_event_type
        self.processor: Processor | None = None
        self.pending: deque[int] = deque()  # ids appended and not yet forwarded
        self._events: dict[int, Event] = {}
        self.pile = Pile(self._events)
        # record() takes NodeEvents, when they are allowed at all, without a check.
        expected = self.processor_type.event_type
        allowed = (
            expected is NodeEvent
            if strict_event_type
            else issubclass(NodeEvent, expected)
        )
        self._unchecked: type[Event] | None = NodeEvent if allowed else None

    @property
    def event_type(self) -> type[Event]:
        """The events this executor takes: its processor type's `event_type`."""
        return self.processor_type.event_type

    async def append(self, event: Event) -> None:
        """Add `event` to the pile and mark it pending (once, however often appended)."""
        self._check_event(event)
        if event.id not in self._events:
            self._events[event.id] = event
            self.pending.append(event.id)

    def record(self, event: Event) -> None:
        """Add `event` to the pile without scheduling it: the compiled flow runs it."""
        # The fast path of every observed node call: an identity test, one dict store.
        if type(event) is not self._unchecked:
            self._check_event(event)
        self._events[event.id] = event

    async def forward(self) -> None:
        """Send every pending event to the processor, then run a pass over its queue."""
        processor = self.processor or await self._create_processor()
        while self.pending:
            event = self._events[self.pending.popleft()]
            if processor.queue_full and not processor.execution_mode:
                await processor.process()  # make room, or enqueue would wait forever
            await processor.enqueue(event)
        await processor.process()

    async def start(self) -> None:
        """Build the processor on first use, then start it."""
        processor = self.processor or await self._create_processor()
        await processor.start()

    async def stop(self) -> None:
        """Stop the processor, if there is one."""
        if self.processor is not None:
            await self.processor.stop()

    async def _create_processor(self) -> Processor:
        try:
            processor = await self.processor_type.create(**self.processor_config)
        except TypeError as error:
            raise TypeError(
                f"cannot build {self.processor_type.__name__} from processor_config "
                f"{self.processor_config!r} ({error}); pass the processor's arguments, like "
                "Executor({'queue_capacity': 10, 'capacity_refresh_time': 1.0})"
            ) from error
        self.processor = processor
        return processor

    def _check_event(self, event: object) -> None:
        expected = self.processor_type.event_type
        if self.strict_event_type and type(event) is not expected:
            raise TypeError(
                f"this Executor takes events of exactly {expected.__name__} "
                f"(strict_event_type=True); got {type(event).__name__}"
            )
        if not isinstance(event, expected):
            raise TypeError(
                f"this Executor takes {expected.__name__} events; got {event!r}"
            )

    # --- views ------------------------------------------------------------------------

    def _with_status(self, status: EventStatus) -> Pile:
        return Pile({event.id: event for event in self.pile if event.status is status})

    @property
    def completed_events(self) -> Pile:
        """Events that COMPLETED."""
        return self._with_status(EventStatus.COMPLETED)

    @property
    def pending_events(self) -> Pile:
        """Events still PENDING (appended or queued, not started)."""
        return self._with_status(EventStatus.PENDING)

    @property
    def failed_events(self) -> Pile:
        """Events that FAILED."""
        return self._with_status(EventStatus.FAILED)

    @property
    def cancelled_events(self) -> Pile:
        """Events that were CANCELLED."""
        return self._with_status(EventStatus.CANCELLED)

    @property
    def skipped_events(self) -> Pile:
        """Events that were SKIPPED after a refused permission."""
        return self._with_status(EventStatus.SKIPPED)

    def status_counts(self) -> dict[EventStatus, int]:
        """How many events have each status; every status is a key, zeros included.

        EventStatus is a StrEnum, so ``counts["completed"]`` finds the same entry.
        """
        counts = dict.fromkeys(EventStatus, 0)
        for event in self.pile:
            counts[event.status] += 1
        return counts

    def __contains__(self, ref: object) -> bool:
        return ref in self.pile

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.pile)


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
