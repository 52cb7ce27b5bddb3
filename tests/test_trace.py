"""kilnc.run.trace: lanes for concurrent calls, and the Chrome trace-event document."""

from __future__ import annotations

import json
from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from kilnc.run.observe import Call
from kilnc.run.trace import assign_lanes, chrome_trace, overlaps

Span = tuple[float, float]


def most_at_once(spans: list[Span]) -> int:
    """The largest set of pairwise-overlapping spans, counted the slow, obvious way.

    In such a set, the span that starts last overlaps every other member, and
    every member starts no later than it; conversely, the spans that overlap a
    span and start no later all overlap each other (they all hold its start).
    """
    best = 0
    for i, last in enumerate(spans):
        group = [
            other
            for j, other in enumerate(spans)
            if j == i or (other[0] <= last[0] and overlaps(other, last))
        ]
        assert all(overlaps(a, b) for a, b in combinations(group, 2))
        best = max(best, len(group))
    return best


# Coarse times make ties, touching ends and zero-length spans (cache hits) common.
times = st.integers(min_value=0, max_value=30).map(float)
spans = st.lists(
    st.tuples(times, st.integers(0, 10).map(float)).map(lambda s: (s[0], s[0] + s[1])),
    max_size=40,
)


@given(spans)
def test_overlapping_spans_never_share_a_lane(given_spans: list[Span]) -> None:
    lanes = assign_lanes(given_spans)
    assert len(lanes) == len(given_spans)
    for (a, lane_a), (b, lane_b) in combinations(
        zip(given_spans, lanes, strict=True), 2
    ):
        if overlaps(a, b):
            assert lane_a != lane_b, (a, b)


@given(spans)
def test_lane_count_is_the_most_spans_overlapping_at_once(
    given_spans: list[Span],
) -> None:
    lanes = assign_lanes(given_spans)
    assert len(set(lanes)) == most_at_once(given_spans)
    assert set(lanes) == set(range(len(set(lanes)))), "lanes are numbered from 0"


def test_lanes_by_example() -> None:
    assert assign_lanes([]) == ()
    # one after another, touching: one lane
    assert assign_lanes([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == (0, 0, 0)
    # two overlap, the third starts when the first ends and takes its lane back
    assert assign_lanes([(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]) == (0, 1, 0)
    # an instant inside a running call needs a lane of its own; at its edge it does not
    assert assign_lanes([(0.0, 2.0), (1.0, 1.0)]) == (0, 1)
    assert assign_lanes([(0.0, 2.0), (2.0, 2.0)]) == (0, 0)
    # given out of order
    assert assign_lanes([(5.0, 6.0), (0.0, 10.0)]) == (1, 0)


def made(
    node: str,
    started: float | None,
    ended: float | None,
    *,
    status: str = "completed",
    queued: float = 100.0,
) -> Call:
    error = "ValueError: no" if status == "failed" else None
    return Call(
        node, f"{node}.py:3", 1, 1, False, status, queued, started, ended, error
    )


def test_chrome_trace_document() -> None:
    origin = 100.0
    calls = [
        made("load", 100.0, 100.010),
        made("summarize", 100.010, 100.030),
        made("summarize", 100.012, 100.025, status="failed"),
    ]
    document = chrome_trace("digest", calls, origin, until=100.040)
    json.loads(json.dumps(document))  # plain JSON
    assert document["displayTimeUnit"] == "ms"
    events = document["traceEvents"]
    metadata = [e for e in events if e["ph"] == "M"]
    complete = [e for e in events if e["ph"] == "X"]
    assert metadata[0] == {
        "ph": "M",
        "name": "process_name",
        "pid": 1,
        "args": {"name": "kiln run digest"},
    }
    lanes = {
        e["tid"]: e["args"]["name"] for e in metadata if e["name"] == "thread_name"
    }
    assert lanes == {1: "lane 1", 2: "lane 2"}
    assert [(e["name"], e["cat"], e["tid"]) for e in complete] == [
        ("load", "completed", 1),
        ("summarize", "completed", 1),
        ("summarize", "failed", 2),
    ]
    assert [(e["ts"], e["dur"]) for e in complete] == [
        (0.0, 10000.0),
        (10000.0, 20000.0),
        (12000.0, 13000.0),
    ]
    assert complete[2]["args"] == {
        "site": "summarize.py:3",
        "visit": 1,
        "attempts": 1,
        "cache_hit": False,
        "error": "ValueError: no",
    }
    assert all(e["pid"] == 1 for e in events)


def test_calls_that_never_started_or_never_ended() -> None:
    waited = made("wait", None, 100.5, status="cancelled", queued=100.25)
    running = made("run", 100.75, None, status="processing")
    document = chrome_trace("f", [waited, running], 100.0, until=101.0)
    complete = [e for e in document["traceEvents"] if e["ph"] == "X"]
    # the wait for capacity is what a never-admitted call spans; the run's end bounds the rest
    assert [(e["ts"], e["dur"]) for e in complete] == [
        (250000.0, 250000.0),
        (750000.0, 250000.0),
    ]
    unbounded = chrome_trace("f", [running], 100.0)
    (event,) = (e for e in unbounded["traceEvents"] if e["ph"] == "X")
    assert event["dur"] == 0.0


def test_no_calls_no_lanes() -> None:
    document = chrome_trace("empty", [], 0.0)
    assert [e["name"] for e in document["traceEvents"]] == ["process_name"]
