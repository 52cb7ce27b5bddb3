"""The Executor and its Pile: events kept in order, forwarded to a processor (lionagi's shape).

An `Executor` keeps a `Pile` of events, forwards the pending ones to its
processor, and answers which events completed, failed and so on. Compiled
flows `record()` the `NodeEvent`s of their calls in one, without scheduling.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, final

from kiln.events import Event, EventStatus, NodeEvent
from kiln.processor.running import Processor

__all__ = ["Executor", "Pile"]


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
