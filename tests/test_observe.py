"""kilnc.run.observe: live counts of a run's node calls, and the per-node summary."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln import EventStatus, NodeEvent
from kilnc.run.observe import Call, Counts, Observer, percentile, summarize_calls


@dataclass
class FakeEvent:
    """The attributes of a kiln.NodeEvent that the observer reads, and nothing else."""

    node: str
    site: str = "flows.py:10"
    visit: int = 1
    attempts: int = 0
    cache_hit: bool = False
    started: float | None = None
    ended: float | None = None
    status: str = EventStatus.PENDING
    error: BaseException | None = None


def ticking() -> Iterator[float]:
    tick = 0.0
    while True:
        tick += 1.0
        yield tick


def observer() -> Observer:
    clock = ticking()
    return Observer(clock=lambda: next(clock))


def test_one_event_passed_at_each_step_is_one_call() -> None:
    watch = observer()
    event = FakeEvent("load")
    watch(event)
    assert watch.counts() == Counts(calls=1, waiting=1)
    event.status, event.attempts, event.started = EventStatus.PROCESSING, 1, 5.0
    watch(event)
    assert watch.counts() == Counts(calls=1, running=1)
    event.status, event.ended = EventStatus.COMPLETED, 7.0
    watch(event)
    watch(event)  # told twice of the same state: still one completed call
    assert watch.counts() == Counts(calls=1, completed=1)
    assert watch.counts().finished == 1


def test_counts_each_final_status_and_cache_hits() -> None:
    watch = observer()
    outcomes = [
        (EventStatus.COMPLETED, False),
        (EventStatus.COMPLETED, True),
        (EventStatus.FAILED, False),
        (EventStatus.CANCELLED, False),
        (EventStatus.SKIPPED, False),
        (EventStatus.ABORTED, False),
    ]
    for status, hit in outcomes:
        event = FakeEvent("n")
        watch(event)
        event.status, event.cache_hit = status, hit
        watch(event)
        watch(event)
    assert watch.counts() == Counts(
        calls=6, completed=2, failed=1, stopped=3, cache_hits=1
    )
    assert watch.counts().finished == 6


def test_first_report_may_already_be_past_pending() -> None:
    watch = observer()
    event = FakeEvent("n", status=EventStatus.PROCESSING, attempts=1, started=1.0)
    watch(event)
    assert watch.counts() == Counts(calls=1, running=1)


def test_real_node_events_fit_the_observer() -> None:
    watch = observer()
    event = NodeEvent("fetch", "flows.py:3", run=1, visit=2)
    watch(event)
    event.status = EventStatus.FAILED
    event.error = ValueError("no")
    watch(event)
    (call,) = watch.calls()
    assert call.node == "fetch"
    assert call.visit == 2
    assert call.status == "failed"
    assert call.error == "ValueError: no"


def test_calls_are_frozen_snapshots_in_creation_order() -> None:
    watch = observer()
    first, second = FakeEvent("a"), FakeEvent("b")
    watch(first)
    watch(second)
    first.status, first.started, first.ended, first.attempts = "completed", 2.5, 4.0, 1
    watch(first)
    calls = watch.calls()
    assert [c.node for c in calls] == ["a", "b"]
    assert calls[0].queued == 1.0  # the clock's reading when the call was first seen
    assert calls[1].queued == 2.0
    assert calls[0].duration == 1.5
    assert calls[1].duration is None
    first.status = "failed"
    assert calls[0].status == "completed", "a snapshot does not follow the event"
    with pytest.raises(FrozenInstanceError):
        calls[0].status = "failed"  # type: ignore[misc]


def call(
    node: str,
    status: str = "completed",
    *,
    took: float | None = 1.0,
    attempts: int = 1,
    hit: bool = False,
) -> Call:
    started = None if took is None else 10.0
    ended = None if took is None else 10.0 + took
    return Call(node, "f.py:1", 1, attempts, hit, status, 9.0, started, ended, None)


def test_summary_per_node_in_order_of_first_call() -> None:
    calls = [
        call("load", took=0.5),
        call("summarize", took=1.0, attempts=2),
        call("summarize", "failed", took=3.0, attempts=3),
        call("load", took=0.0, hit=True),
        call("summarize", "cancelled", took=None),
        call("summarize", took=2.0),
    ]
    load, summarize = summarize_calls(calls)
    assert load.node == "load"
    assert (load.calls, load.failures, load.retries, load.cache_hits) == (2, 0, 0, 1)
    assert load.total_seconds == 0.5
    assert summarize.node == "summarize"
    assert summarize.calls == 4
    assert summarize.failures == 1
    assert summarize.cancelled == 1
    assert summarize.retries == 1 + 2
    assert summarize.total_seconds == 6.0
    assert summarize.p50_seconds == 2.0
    assert summarize.p95_seconds == pytest.approx(2.9)


def test_a_node_with_no_finished_call_has_no_percentiles() -> None:
    (summary,) = summarize_calls([call("n", "pending", took=None, attempts=0)])
    assert summary.calls == 1
    assert summary.retries == 0
    assert summary.total_seconds == 0.0
    assert summary.p50_seconds is None
    assert summary.p95_seconds is None


def test_percentile_examples() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([1.0, 2.0], 0.5) == 1.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 1.0) == 4.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], 1.5)


durations = st.lists(
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False), min_size=2, max_size=50
)


@given(durations)
def test_percentiles_agree_with_statistics_inclusive_quantiles(
    values: list[float],
) -> None:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    for q, expected in ((0.50, cuts[49]), (0.95, cuts[94])):
        got = percentile(ordered, q)
        assert got is not None
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)


@given(durations, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_percentiles_are_monotone_and_within_the_values(
    values: list[float], q1: float, q2: float
) -> None:
    ordered = sorted(values)
    low, high = sorted((q1, q2))
    at_low, at_high = percentile(ordered, low), percentile(ordered, high)
    assert at_low is not None
    assert at_high is not None
    assert ordered[0] <= at_low <= at_high + 1e-9
    assert at_high <= ordered[-1] + 1e-9
