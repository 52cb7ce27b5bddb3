"""Event, NodeEvent, EventStatus, and the Executor's pile of events."""

from __future__ import annotations

import asyncio
import pickle
import time
from types import SimpleNamespace
from typing import Any

import pytest

from kiln import DeniedError, Event, EventStatus, Executor, NodeEvent, Pile, Processor
from kiln.plain_sites import notified
from kiln.site_table import Site


class Returns(Event):
    def __init__(self, value: object = None, *, error: Exception | None = None) -> None:
        super().__init__()
        self.value = value
        self.raises = error

    async def _invoke(self) -> object:
        await asyncio.sleep(0)
        if self.raises is not None:
            raise self.raises
        return self.value


class Other(Returns):
    """A subclass, for strict_event_type."""


# --- EventStatus, Event ------------------------------------------------------------------


def test_statuses_have_lionagi_values() -> None:
    assert {status.name: status.value for status in EventStatus} == {
        "PENDING": "pending",
        "PROCESSING": "processing",
        "COMPLETED": "completed",
        "FAILED": "failed",
        "SKIPPED": "skipped",
        "CANCELLED": "cancelled",
        "ABORTED": "aborted",
    }
    assert EventStatus("completed") is EventStatus.COMPLETED
    assert str(EventStatus.FAILED) == "failed"


def test_a_new_event_is_pending_with_a_unique_id() -> None:
    before = time.time()
    events = [Returns() for _ in range(100)]
    assert len({event.id for event in events}) == 100
    event = events[0]
    assert event.status is EventStatus.PENDING
    assert before <= event.created_at <= time.time()
    assert (event.response, event.error, event.started, event.ended) == (None,) * 4
    assert event.duration is None
    assert event.request == {}


async def test_invoke_records_a_result() -> None:
    event = Returns("value")
    await event.invoke()
    assert event.status is EventStatus.COMPLETED
    assert event.response == "value"
    assert event.error is None
    assert event.duration is not None
    assert event.duration >= 0
    assert event.started is not None
    assert event.ended is not None
    assert "completed" in repr(event)


async def test_invoke_records_an_error_without_raising_it() -> None:
    event = Returns(error=KeyError("missing"))
    await event.invoke()
    assert event.status is EventStatus.FAILED
    assert isinstance(event.error, KeyError)
    assert event.response is None
    assert event.duration is not None


async def test_invoke_records_cancellation_and_lets_it_through() -> None:
    class Slow(Event):
        async def _invoke(self) -> None:
            await asyncio.sleep(10)

    event = Slow()
    task = asyncio.create_task(event.invoke())
    await asyncio.sleep(0.01)
    assert event.status is EventStatus.PROCESSING
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert event.status is EventStatus.CANCELLED
    assert isinstance(event.error, asyncio.CancelledError)
    assert event.ended is not None


async def test_an_event_runs_once() -> None:
    runs = 0

    class Counted(Event):
        async def _invoke(self) -> int:
            nonlocal runs
            runs += 1
            return runs

    event = Counted()
    await event.invoke()
    await event.invoke()
    assert runs == 1
    assert event.response == 1


async def test_an_event_without_work_fails_with_a_hint() -> None:
    event = Event()
    await event.invoke()
    assert event.status is EventStatus.FAILED
    assert isinstance(event.error, NotImplementedError)
    assert "implement `async def _invoke(self)`" in str(event.error)


# --- NodeEvent ------------------------------------------------------------------------------


def test_a_node_event_records_a_call() -> None:
    event = NodeEvent("summarize", "digest.py:19", 3, 2)
    assert (event.node, event.site, event.run, event.visit) == (
        "summarize",
        "digest.py:19",
        3,
        2,
    )
    assert (event.attempts, event.cache_hit) == (0, False)
    assert event.status is EventStatus.PENDING
    assert (
        event.started,
        event.ended,
        event.duration,
        event.response,
        event.error,
    ) == ((None,) * 5)
    assert isinstance(event, Event)
    assert event.id != NodeEvent("summarize", "digest.py:19", 3, 2).id
    assert not hasattr(event, "__dict__"), "slotted: cheap to create"

    event.attempts, event.status, event.started = 1, EventStatus.PROCESSING, 10.0
    event.ended, event.status, event.cache_hit = 10.25, EventStatus.COMPLETED, True
    assert event.duration == 0.25
    assert repr(event) == (
        "<NodeEvent summarize at digest.py:19 run 3 visit 2: completed, 1 attempt(s), "
        "cache hit, 250 ms>"
    )


async def test_a_node_event_cannot_be_invoked() -> None:
    with pytest.raises(TypeError, match="records a call that a compiled flow makes"):
        await NodeEvent("n", "f.py:1", 1, 1).invoke()


def test_denied_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(DeniedError(7, 5)))
    assert (error.event_id, error.denials) == (7, 5)
    assert "denied by request_permission 5 times" in str(error)


# --- Executor ---------------------------------------------------------------------------------


async def test_append_forward_and_the_views() -> None:
    executor = Executor({"queue_capacity": 10, "capacity_refresh_time": 1.0})
    assert executor.processor is None
    good, bad = Returns(1), Returns(error=ValueError("no"))
    await executor.append(good)
    await executor.append(bad)
    await executor.append(good)  # once only
    assert list(executor.pending) == [good.id, bad.id]
    assert [event.id for event in executor.pending_events] == [good.id, bad.id]
    assert len(executor) == 2

    await executor.forward()  # builds the processor, enqueues, runs a pass
    assert isinstance(executor.processor, Processor)
    assert executor.processor.queue_capacity == 10
    assert not executor.pending
    assert list(executor.completed_events) == [good]
    assert list(executor.failed_events) == [bad]
    assert len(executor.pending_events) == 0
    assert len(executor.cancelled_events) == 0
    assert len(executor.skipped_events) == 0
    counts = executor.status_counts()
    assert set(counts) == set(EventStatus)
    assert counts[EventStatus.COMPLETED] == 1
    assert counts["failed"] == 1  # EventStatus is a StrEnum
    assert counts[EventStatus.ABORTED] == 0


async def test_contains_iteration_and_the_pile() -> None:
    executor = Executor()
    events = [Returns(i) for i in range(3)]
    for event in events:
        await executor.append(event)
    assert list(executor) == events
    assert events[1] in executor
    assert events[1].id in executor
    assert Returns() not in executor
    assert "x" not in executor
    pile = executor.pile
    assert isinstance(pile, Pile)
    assert pile[events[2].id] is events[2]
    with pytest.raises(KeyError, match="no event with id"):
        pile[-1]
    late = Returns()
    await executor.append(late)
    assert late in pile, "the pile is a live view"
    assert len(pile) == 4
    assert "Pile([" in repr(pile)


async def test_skipped_and_cancelled_views() -> None:
    class Refusing(Processor):
        async def request_permission(self, **kwargs: Any) -> bool:
            return False

    class RefusingExecutor(Executor):
        processor_type = Refusing

    executor = RefusingExecutor({"queue_capacity": 5, "capacity_refresh_time": 1.0})
    event = Returns()
    await executor.append(event)
    await executor.forward()
    assert list(executor.skipped_events) == [event]

    cancelled = NodeEvent("n", "f.py:1", 1, 1)
    cancelled.status = EventStatus.CANCELLED
    executor.record(cancelled)
    assert list(executor.cancelled_events) == [cancelled]
    assert executor.status_counts()[EventStatus.SKIPPED] == 1


async def test_record_adds_without_scheduling() -> None:
    executor = Executor()
    events = [NodeEvent("n", "f.py:1", 1, visit) for visit in (1, 2)]
    for event in events:
        executor.record(event)
    assert list(executor) == events
    assert not executor.pending
    assert executor.processor is None
    assert executor.status_counts()[EventStatus.PENDING] == 2


async def test_start_builds_the_processor_and_stop_stops_it() -> None:
    executor = Executor({"queue_capacity": 2, "capacity_refresh_time": 0.5})
    await executor.stop()  # nothing to stop yet
    await executor.start()
    processor = executor.processor
    assert processor is not None
    assert not processor.is_stopped()
    await executor.stop()
    assert processor.is_stopped()
    await executor.start()
    assert executor.processor is processor
    assert not processor.is_stopped()


async def test_a_processor_config_that_builds_nothing_says_what_to_pass() -> None:
    with pytest.raises(TypeError, match=r"processor_config \{\}.*queue_capacity"):
        await Executor().start()
    with pytest.raises(ValueError, match="queue_capacity must be an int >= 1"):
        await Executor({"queue_capacity": 0, "capacity_refresh_time": 1.0}).start()


async def test_forward_with_a_small_queue_does_not_wait_forever() -> None:
    executor = Executor(
        {"queue_capacity": 50, "capacity_refresh_time": 1.0, "max_queue_size": 2}
    )
    events = [Returns(i) for i in range(7)]
    for event in events:
        await executor.append(event)
    await asyncio.wait_for(executor.forward(), 2)
    assert [event.status for event in events] == [EventStatus.COMPLETED] * 7


async def test_event_types_loose_and_strict() -> None:
    loose = Executor()
    assert loose.event_type is Event
    assert loose.strict_event_type is False
    await loose.append(Other())
    loose.record(NodeEvent("n", "f.py:1", 1, 1))
    with pytest.raises(TypeError, match="takes Event events"):
        await loose.append("event")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes Event events"):
        loose.record(object())  # type: ignore[arg-type]

    strict = Executor(strict_event_type=True)
    await strict.append(Event())
    with pytest.raises(TypeError, match="exactly Event"):
        await strict.append(Other())
    with pytest.raises(TypeError, match="exactly Event"):
        strict.record(NodeEvent("n", "f.py:1", 1, 1))

    class Returning(Processor):
        event_type = Returns

    class ReturningExecutor(Executor):
        processor_type = Returning

    typed = ReturningExecutor(strict_event_type=True)
    assert typed.event_type is Returns
    await typed.append(Returns())
    with pytest.raises(TypeError, match="exactly Returns"):
        await typed.append(Other())
    with pytest.raises(TypeError, match="takes Returns events"):
        ReturningExecutor().record(NodeEvent("n", "f.py:1", 1, 1))

    with pytest.raises(TypeError, match="strict_event_type must be True or False"):
        Executor(strict_event_type=1)  # type: ignore[arg-type]


def test_an_event_made_processing_is_a_node_event_made_and_started() -> None:
    """An on_event run's hot path (`notified`) makes its events itself: it sets
    every slot as NodeEvent's __init__ and the call's start would."""

    async def fetch(x: int) -> int:
        return x

    seen: list[NodeEvent] = []
    run = SimpleNamespace(visits=[1], number=7, notify=seen.append)
    call = notified(0, Site("fetch", "flows.py:3", fetch))
    before = time.time()
    assert asyncio.run(call(run, 5)) == 5
    plain = NodeEvent("fetch", "flows.py:3", 7, 2)
    made = seen[0]
    assert seen == [made, made]  # as it starts, and as it ends
    ended = {"status", "started", "ended", "attempts", "id", "created_at"}
    for slot in (*Event.__slots__, *NodeEvent.__slots__):
        if slot not in ended:
            assert getattr(made, slot) == getattr(plain, slot), slot
    assert made.status is EventStatus.COMPLETED
    assert made.attempts == 1
    assert made.started is not None
    assert made.ended is not None
    assert made.started <= made.ended
    # Its wall-clock time comes from its perf_counter reading: the two clocks
    # agree to well within a millisecond (the system clock is not stepped here).
    assert before - 1e-3 <= made.created_at <= plain.created_at + 1e-3
    assert made.id < plain.id
