"""Processor: construction, the queue, passes and execute, permission, the admission gate.

Times come from time.monotonic() in the events themselves; margins are generous,
so a slow machine makes these tests slower, never wrong. Throughput figures are
in benchmarks/processor.py, not here.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from kiln import DeniedError, Event, EventStatus, NodeEvent, Processor


class Work(Event):
    """Records when it started, sleeps `seconds`, returns `value` or raises `error`."""

    def __init__(
        self,
        value: object = None,
        *,
        seconds: float = 0.0,
        error: Exception | None = None,
        log: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.value = value
        self.seconds = seconds
        self.raises = error
        self.log = log
        self.began: float | None = None

    async def _invoke(self) -> object:
        self.began = time.monotonic()
        if self.log is not None:
            self.log.append(self.began)
        await asyncio.sleep(self.seconds)
        if self.raises is not None:
            raise self.raises
        return self.value


class Asking(Work):
    """An event whose request names it, for request_permission to see."""

    @property
    def request(self) -> dict[str, Any]:
        return {"name": self.value}


class Gatekeeper(Processor):
    """Grants or refuses by a rule; skips or defers refusals; logs what it was asked."""

    def __init__(self, *args: Any, grant: Any, skip: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grant = grant
        self.skip = skip
        self.asked: list[dict[str, Any]] = []

    async def request_permission(self, **kwargs: Any) -> bool:
        self.asked.append(kwargs)
        return bool(self.grant(len(self.asked), kwargs))

    async def handle_denied(self, event: Event) -> bool:
        if self.skip:
            return await super().handle_denied(event)
        return False


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    """Yield to the loop until `condition()` holds (a test helper, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


# --- construction --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 1.0), "queue_capacity must be an int >= 1"),
        ((-3, 1.0), "queue_capacity must be an int >= 1"),
        ((1, 0), "capacity_refresh_time must be a finite number of seconds > 0"),
        ((1, -1.0), "capacity_refresh_time must be a finite number of seconds > 0"),
        ((1, math.inf), "capacity_refresh_time must be a finite number"),
        ((1, math.nan), "capacity_refresh_time must be a finite number"),
        ((1, 1.0, 0), "concurrency_limit must be an int >= 1"),
        ((1, 1.0, None, -1), "max_queue_size must be an int >= 0"),
    ],
)
def test_constructor_refuses_bad_values(
    arguments: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Processor(*arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        (True, 1.0),
        ("5", 1.0),
        (1.5, 1.0),
        (1, "1"),
        (1, None),
        (1, 1.0, 2.0),
        (1, 1.0, None, False),
    ],
)
def test_constructor_refuses_wrong_types(arguments: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError, match="must be"):
        Processor(*arguments)


def test_a_missing_window_points_to_capped() -> None:
    with pytest.raises(TypeError, match=r"Processor\.capped"):
        Processor(2, None)  # type: ignore[arg-type]


async def test_configuration_reads_back() -> None:
    processor = Processor(5, 2, 3, 10)
    assert processor.queue_capacity == 5
    assert processor.capacity_refresh_time == 2.0
    assert isinstance(processor.capacity_refresh_time, float)
    assert processor.concurrency_limit == 3
    assert processor.max_queue_size == 10
    assert processor.retry_delay == 2.0
    assert processor.available_capacity == 3
    assert processor.execution_mode is False
    assert processor.is_stopped() is False
    assert processor.queued == 0

    created = await Processor.create(queue_capacity=4, capacity_refresh_time=0.5)
    assert type(created) is Processor
    assert (created.queue_capacity, created.capacity_refresh_time) == (4, 0.5)
    assert created.concurrency_limit is None
    assert created.available_capacity == 4


def test_capped_has_no_window() -> None:
    capped = Processor.capped(3, max_queue_size=2)
    assert capped.capacity_refresh_time is None
    assert capped.concurrency_limit == 3
    assert capped.max_queue_size == 2
    assert capped.available_capacity == 3
    assert capped.retry_delay == Processor.capped_retry_delay
    with pytest.raises(ValueError, match="concurrency_limit must be an int >= 1"):
        Processor.capped(0)
    with pytest.raises(ValueError, match="max_queue_size"):
        Processor.capped(1, max_queue_size=-1)


# --- the queue -------------------------------------------------------------------------


async def test_enqueue_and_dequeue_keep_fifo_order() -> None:
    processor = Processor(1, 1.0)
    events = [Work(i) for i in range(5)]
    for event in events:
        await processor.enqueue(event)
    assert processor.queued == 5
    assert [await processor.dequeue() for _ in range(5)] == events
    assert processor.queued == 0
    await asyncio.wait_for(processor.join(), 1)  # handed out, so nothing to wait for


async def test_dequeue_waits_for_an_event() -> None:
    processor = Processor(1, 1.0)
    taker = asyncio.create_task(processor.dequeue())
    await asyncio.sleep(0.01)
    assert not taker.done()
    event = Work()
    await processor.enqueue(event)
    assert await asyncio.wait_for(taker, 1) is event


async def test_enqueue_refuses_what_it_cannot_run() -> None:
    processor = Processor(1, 1.0)
    with pytest.raises(TypeError, match="runs Event events"):
        await processor.enqueue("work")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NodeEvent records a call"):
        await processor.enqueue(NodeEvent("fetch", "flows.py:3", 1, 1))

    class OnlyAsking(Processor):
        event_type = Asking

    with pytest.raises(TypeError, match="runs Asking events"):
        await OnlyAsking(1, 1.0).enqueue(Work())
    await OnlyAsking(1, 1.0).enqueue(Asking())


async def test_max_queue_size_makes_enqueue_wait() -> None:
    processor = Processor(10, 1.0, max_queue_size=2)
    await processor.enqueue(Work(1))
    await processor.enqueue(Work(2))
    assert processor.queue_full
    third = asyncio.create_task(processor.enqueue(Work(3)))
    await asyncio.sleep(0.02)
    assert not third.done(), "enqueue must wait while the queue is full"
    assert processor.queued == 2
    await processor.dequeue()
    await asyncio.wait_for(third, 1)
    assert processor.queued == 2
    assert processor.queue_full


async def test_a_full_queue_waits_while_execute_drains_it() -> None:
    processor = Processor(100, 1.0, max_queue_size=1)
    runner = asyncio.create_task(processor.execute())
    events = [Work(i) for i in range(20)]
    for event in events:
        await asyncio.wait_for(processor.enqueue(event), 1)
    await asyncio.wait_for(processor.join(), 2)
    assert {event.status for event in events} == {EventStatus.COMPLETED}
    await processor.stop()
    await asyncio.wait_for(runner, 1)


# --- process, join ---------------------------------------------------------------------


async def test_process_runs_the_queue_and_records_outcomes() -> None:
    processor = Processor(10, 1.0)
    good, bad = Work("ok", seconds=0.01), Work(error=ValueError("broken"))
    await processor.enqueue(good)
    await processor.enqueue(bad)
    await processor.process()  # an event's exception is recorded, never raised
    assert (good.status, good.response, good.error) == (
        EventStatus.COMPLETED,
        "ok",
        None,
    )
    assert bad.status is EventStatus.FAILED
    assert isinstance(bad.error, ValueError)
    assert bad.response is None
    assert good.duration is not None
    assert good.duration >= 0.005
    assert processor.queued == 0


async def test_process_takes_the_events_queued_when_it_starts() -> None:
    processor = Processor(10, 1.0)
    late = Work("late")

    class Enqueuer(Work):
        async def _invoke(self) -> object:
            await processor.enqueue(late)
            return None

    await processor.enqueue(Enqueuer())
    await processor.process()
    assert late.status is EventStatus.PENDING
    assert processor.queued == 1
    await processor.join()
    assert late.status is EventStatus.COMPLETED


async def test_join_returns_at_once_with_nothing_queued() -> None:
    await asyncio.wait_for(Processor(1, 10.0).join(), 1)


async def test_join_drives_passes_when_nobody_executes() -> None:
    processor = Processor(2, 0.05)
    events = [Work(i) for i in range(5)]
    for event in events:
        await processor.enqueue(event)
    await asyncio.wait_for(processor.join(), 5)
    assert [event.status for event in events] == [EventStatus.COMPLETED] * 5


async def test_join_waits_for_execute_to_finish_the_events() -> None:
    processor = Processor(10, 1.0)
    runner = asyncio.create_task(processor.execute())
    events = [Work(seconds=0.05) for _ in range(3)]
    for event in events:
        await processor.enqueue(event)
    await asyncio.wait_for(processor.join(), 2)
    assert {event.status for event in events} == {EventStatus.COMPLETED}
    await processor.stop()
    await asyncio.wait_for(runner, 1)


# --- execute, stop, start ----------------------------------------------------------------


async def test_execute_runs_events_until_stop() -> None:
    processor = Processor(10, 1.0)
    runner = asyncio.create_task(processor.execute())
    await wait_for(lambda: processor.execution_mode)
    first = Work(1)
    await processor.enqueue(first)
    await wait_for(lambda: first.status is EventStatus.COMPLETED)
    await processor.stop()
    assert processor.is_stopped()
    await asyncio.wait_for(runner, 1)
    assert not processor.execution_mode

    # Stopped: queued events wait for the next execute (or a pass).
    second = Work(2)
    await processor.enqueue(second)
    await asyncio.sleep(0.02)
    assert second.status is EventStatus.PENDING
    await processor.start()
    assert not processor.is_stopped()
    runner = asyncio.create_task(processor.execute())
    await wait_for(lambda: second.status is EventStatus.COMPLETED)
    await processor.stop()
    await asyncio.wait_for(runner, 1)


async def test_execute_clears_a_stop_and_refuses_to_run_twice() -> None:
    processor = Processor(10, 1.0)
    await processor.stop()
    runner = asyncio.create_task(processor.execute())
    await wait_for(lambda: processor.execution_mode)
    assert not processor.is_stopped()
    with pytest.raises(RuntimeError, match="already running"):
        await processor.execute()
    await processor.stop()
    await asyncio.wait_for(runner, 1)


async def test_stop_lets_started_events_finish() -> None:
    processor = Processor(10, 1.0)
    runner = asyncio.create_task(processor.execute())
    slow = Work(seconds=0.1)
    await processor.enqueue(slow)
    await wait_for(lambda: slow.status is EventStatus.PROCESSING)
    await processor.stop()
    await asyncio.wait_for(runner, 2)
    assert slow.status is EventStatus.COMPLETED


async def test_stop_interrupts_a_wait_for_admission_and_keeps_the_event() -> None:
    processor = Processor(1, 10.0)
    runner = asyncio.create_task(processor.execute())
    first, second = Work(1), Work(2)
    await processor.enqueue(first)
    await processor.enqueue(second)
    await wait_for(lambda: first.status is EventStatus.COMPLETED)
    await asyncio.sleep(0.01)  # the second now waits for the window, ten seconds out
    began = time.monotonic()
    await processor.stop()
    await asyncio.wait_for(runner, 1)
    assert time.monotonic() - began < 1.0
    assert second.status is EventStatus.PENDING
    assert processor.queued == 1
    assert processor.available_capacity == 0  # the first still holds the window


async def test_cancelling_execute_cancels_its_events() -> None:
    processor = Processor(10, 1.0)
    runner = asyncio.create_task(processor.execute())
    slow = Work(seconds=10)
    await processor.enqueue(slow)
    await wait_for(lambda: slow.status is EventStatus.PROCESSING)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert slow.status is EventStatus.CANCELLED
    assert not processor.execution_mode
    assert (
        processor.available_capacity == 9
    )  # its start stays in the window; no slot held


# --- permission: skip, defer, abort --------------------------------------------------------


async def test_request_permission_gets_the_event_request() -> None:
    processor = Gatekeeper(10, 1.0, grant=lambda n, kwargs: True, skip=True)
    await processor.enqueue(Asking("a"))
    await processor.enqueue(Work("plain"))
    await processor.process()
    assert processor.asked == [{"name": "a"}, {}]


async def test_a_refused_event_is_skipped_and_uses_its_place_in_the_window() -> None:
    processor = Gatekeeper(
        2, 10.0, grant=lambda n, kwargs: kwargs["name"] != "no", skip=True
    )
    refused, allowed, waiting = Asking("no"), Asking("yes"), Asking("later")
    for event in (refused, allowed, waiting):
        await processor.enqueue(event)
    runner = asyncio.create_task(processor.execute())
    await wait_for(lambda: allowed.status is EventStatus.COMPLETED)
    assert refused.status is EventStatus.SKIPPED
    assert refused.started is None
    await asyncio.sleep(0.02)
    assert waiting.status is EventStatus.PENDING, "the skip took a start of the window"
    assert processor.available_capacity == 0
    await processor.stop()
    await asyncio.wait_for(runner, 1)


async def test_a_skip_that_sets_no_status_is_still_final() -> None:
    class Quiet(Processor):
        async def request_permission(self, **kwargs: Any) -> bool:
            return False

        async def handle_denied(self, event: Event) -> bool:
            return True

    processor = Quiet(5, 1.0)
    event = Work()
    await processor.enqueue(event)
    await asyncio.wait_for(processor.join(), 1)
    assert event.status is EventStatus.SKIPPED


async def test_a_deferred_event_uses_no_capacity_and_runs_when_permitted() -> None:
    # The first request is refused and deferred; the next two are granted.
    processor = Gatekeeper(2, 0.1, grant=lambda n, kwargs: n > 1, skip=False)
    deferred, other = Asking("first"), Asking("second")
    await processor.enqueue(deferred)
    await processor.enqueue(other)
    await processor.process()
    assert other.status is EventStatus.COMPLETED
    assert deferred.status is EventStatus.PENDING
    assert processor.queued == 1
    assert processor.available_capacity == 1, "a deferral takes no start"
    began = time.monotonic()
    await asyncio.wait_for(processor.join(), 2)
    assert deferred.status is EventStatus.COMPLETED
    assert time.monotonic() - began >= 0.05, "retried after retry_delay, not at once"
    assert [kwargs["name"] for kwargs in processor.asked] == [
        "first",
        "second",
        "first",
    ]


async def test_repeated_denials_abort_the_event() -> None:
    processor = Gatekeeper(5, 0.01, grant=lambda n, kwargs: False, skip=False)
    doomed = Asking("doomed")
    await processor.enqueue(doomed)
    await asyncio.wait_for(processor.join(), 5)
    assert doomed.status is EventStatus.ABORTED
    assert isinstance(doomed.error, DeniedError)
    assert doomed.error.denials == Processor.max_denials
    assert "max_denials" in str(doomed.error)
    assert len(processor.asked) == Processor.max_denials
    assert processor.available_capacity == 5, "denied turns leave no start behind"


async def test_max_denials_is_a_class_attribute_to_override() -> None:
    class Patient(Gatekeeper):
        max_denials = 2

    processor = Patient(5, 0.01, grant=lambda n, kwargs: False, skip=False)
    event = Asking("x")
    await processor.enqueue(event)
    await asyncio.wait_for(processor.join(), 5)
    assert event.status is EventStatus.ABORTED
    assert len(processor.asked) == 2


async def test_execute_retries_deferred_events_on_its_own() -> None:
    processor = Gatekeeper(5, 0.02, grant=lambda n, kwargs: n >= 3, skip=False)
    event = Asking("x")
    runner = asyncio.create_task(processor.execute())
    await processor.enqueue(event)
    await wait_for(lambda: event.status is EventStatus.COMPLETED)
    assert len(processor.asked) == 3
    await processor.stop()
    await asyncio.wait_for(runner, 1)


async def test_a_failing_permission_check_fails_its_event_only() -> None:
    class Broken(Processor):
        async def request_permission(self, **kwargs: Any) -> bool:
            if kwargs.get("name") == "bad":
                raise LookupError("no quota record")
            return True

    processor = Broken(1, 10.0)
    bad, good = Asking("bad"), Asking("good")
    await processor.enqueue(bad)
    await processor.enqueue(good)
    await asyncio.wait_for(processor.process(), 1)
    assert bad.status is EventStatus.FAILED
    assert isinstance(bad.error, LookupError)
    assert good.status is EventStatus.COMPLETED, "the failed check gave its start back"


# --- the window and the cap ------------------------------------------------------------------


async def test_the_sliding_window_admits_waves_a_refresh_apart() -> None:
    processor = Processor(5, 0.2)
    log: list[float] = []
    events = [Work(i, log=log) for i in range(20)]
    for event in events:
        await processor.enqueue(event)
    began = time.monotonic()
    await asyncio.wait_for(processor.join(), 10)
    assert len(log) == 20
    first = log[0]
    offsets = [start - first for start in log]
    # Five start at once; each next five a refresh after the five before them.
    assert offsets[4] < 0.1
    for wave in range(1, 4):
        assert offsets[5 * wave] >= 0.19 * wave
        assert offsets[5 * wave] >= offsets[5 * wave - 5] + 0.19
    # Admitted when due, not a refresh later: all 20 within well under 5 windows.
    assert log[-1] - began < 0.95
    for i in range(len(log) - 5):
        assert log[i + 5] - log[i] >= 0.19, "more than 5 starts in 0.2 s"


async def test_the_cap_is_reached_and_never_exceeded() -> None:
    processor = Processor(100, 1.0, concurrency_limit=3)
    running = peak = 0

    class Counted(Event):
        async def _invoke(self) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    events = [Counted() for _ in range(12)]
    for event in events:
        await processor.enqueue(event)
    await asyncio.wait_for(processor.join(), 5)
    assert peak == 3
    assert {event.status for event in events} == {EventStatus.COMPLETED}


async def test_a_lone_event_starts_at_once_even_with_a_long_refresh() -> None:
    processor = Processor(5, 10.0)
    runner = asyncio.create_task(processor.execute())
    await wait_for(lambda: processor.execution_mode)
    await asyncio.sleep(0.01)
    event = Work()
    queued_at = time.monotonic()
    await processor.enqueue(event)
    await wait_for(lambda: event.began is not None)
    assert event.began is not None
    assert event.began - queued_at < 0.05  # a few ms here; never a refresh interval
    await processor.stop()
    await asyncio.wait_for(runner, 1)


async def test_a_waiter_is_admitted_the_moment_the_window_frees() -> None:
    processor = Processor(1, 0.3)
    await processor.acquire()
    first = time.monotonic()
    processor.release()
    await processor.acquire()  # waits on a timer for the window, not a polling loop
    waited = time.monotonic() - first
    processor.release()
    assert 0.29 <= waited < 0.5


async def test_an_uncontended_acquire_never_yields_to_the_loop() -> None:
    for processor in (Processor.capped(1), Processor(1, 1.0), Processor(1, 1.0, 1)):
        pending = processor.acquire()
        with pytest.raises(StopIteration):
            pending.send(None)  # finished on its first step: no future, no yield
        processor.release()


async def test_release_without_acquire_is_an_error() -> None:
    processor = Processor.capped(2)
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        processor.release()
    await processor.acquire()
    processor.release()
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        processor.release()


async def test_waiters_are_admitted_in_fifo_order_with_queued_events() -> None:
    processor = Processor.capped(1)
    await processor.acquire()  # hold the only slot
    order: list[str] = []

    class Named(Event):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def _invoke(self) -> None:
            order.append(self.name)

    async def caller(name: str) -> None:
        await processor.acquire()
        order.append(name)
        processor.release()

    first = asyncio.create_task(caller("call 1"))
    await asyncio.sleep(0.01)
    await processor.enqueue(Named("event"))
    runner = asyncio.create_task(processor.execute())
    await asyncio.sleep(0.01)  # the event is in line behind "call 1"
    rest = [asyncio.create_task(caller(f"call {i}")) for i in (2, 3)]
    await asyncio.sleep(0.01)
    processor.release()
    await asyncio.wait_for(asyncio.gather(first, *rest), 2)
    await wait_for(lambda: len(order) == 4)
    assert order == ["call 1", "event", "call 2", "call 3"]
    await processor.stop()
    await asyncio.wait_for(runner, 1)


# --- cancellation leaks nothing ------------------------------------------------------------


async def test_cancelled_waiters_leave_the_line() -> None:
    processor = Processor.capped(1)
    await processor.acquire()
    waiters = [asyncio.create_task(processor.acquire()) for _ in range(5)]
    await asyncio.sleep(0.01)
    for waiter in waiters[:4]:
        waiter.cancel()
    processor.release()
    await asyncio.wait_for(waiters[4], 1)  # the last waiter gets the slot
    assert all(waiter.cancelled() for waiter in waiters[:4])
    assert processor.available_capacity == 0
    processor.release()
    assert processor.available_capacity == 1


async def test_a_slot_granted_to_a_task_cancelled_at_that_moment_is_passed_on() -> None:
    # Window of 2 starts per 10 s and a cap of 1: "b" is admitted by the release and
    # cancelled before it runs. Its start and its slot must both go to "c"; had its
    # start stayed in the window, "c" would wait ten seconds.
    processor = Processor(2, 10.0, concurrency_limit=1)
    await processor.acquire()
    b = asyncio.create_task(processor.acquire())
    c = asyncio.create_task(processor.acquire())
    await asyncio.sleep(0.01)
    processor.release()  # grants b, synchronously
    b.cancel()
    await asyncio.wait_for(c, 1)
    assert b.cancelled()
    processor.release()
    assert (
        processor.available_capacity == 0
    )  # two starts in the window: the first and c


async def test_cancelling_a_pass_keeps_the_waiting_event_queued() -> None:
    processor = Processor(1, 10.0)
    first, second = Work(1), Work(2)
    await processor.enqueue(first)
    await processor.enqueue(second)
    passing = asyncio.create_task(processor.process())
    await wait_for(lambda: first.status is EventStatus.COMPLETED)
    await asyncio.sleep(0.01)
    passing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await passing
    assert second.status is EventStatus.PENDING
    assert processor.queued == 1
