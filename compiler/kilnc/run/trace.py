"""A run's node calls as Chrome trace-event JSON, which Perfetto and chrome://tracing open.

Example input: the flow ``digest`` ran ``load`` from 0 to 10 ms, then two
``summarize`` calls at once from 10 to 30 ms and from 12 to 25 ms.
``chrome_trace("digest", calls, origin)`` makes (metadata events first)::

    {"traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "kiln run digest"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "lane 1"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "lane 2"}},
        {"ph": "X", "name": "load", "cat": "completed", "ts": 0.0, "dur": 10000.0,
         "pid": 1, "tid": 1, "args": {"site": "digest.py:18", ...}},
        {"ph": "X", "name": "summarize", ..., "ts": 10000.0, "dur": 20000.0, "tid": 1},
        {"ph": "X", "name": "summarize", ..., "ts": 12000.0, "dur": 13000.0, "tid": 2},
    ], "displayTimeUnit": "ms"}

Each call is one complete ("X") event on a lane (a "thread" of the viewer).
Viewers draw events of one lane as a stack, so calls that overlap in time
must never share a lane: `assign_lanes` gives each call the lowest lane free
at its start, which needs as many lanes as the most calls ever in flight.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, Final

from kilnc.run.observe import Call

__all__ = ["assign_lanes", "chrome_trace", "overlaps"]

_PID: Final = 1
_MICROSECONDS: Final = 1e6


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two half-open spans ``[start, end)`` share a moment.

    A zero-length span is an instant: it overlaps a span that holds it strictly
    inside, and nothing that merely starts or ends at it.
    """
    return a[0] < b[1] and b[0] < a[1]


def assign_lanes(spans: Sequence[tuple[float, float]]) -> tuple[int, ...]:
    """The lane (0, 1, ...) of each ``(start, end)`` span; overlapping spans never share one.

    Greedy by start time, into the lowest free lane: optimal for intervals, so
    the number of lanes is the largest number of spans that overlap at once.
    """
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    lanes = [0] * len(spans)
    busy: list[tuple[float, int]] = []  # (end, lane) of each lane's latest span
    free: list[int] = []  # lanes whose latest span has ended, lowest first
    for index in order:
        start, end = spans[index]
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy) + len(free)
        lanes[index] = lane
        heapq.heappush(busy, (max(start, end), lane))
    return tuple(lanes)


def chrome_trace(
    flow: str, calls: Sequence[Call], origin: float, until: float | None = None
) -> dict[str, Any]:
    """The trace document of a run that started at `origin` (a perf_counter reading).

    A call that was never admitted spans its wait (from when it was queued); one
    that has not ended (the run was interrupted) ends at `until`, or where it began.
    """
    spans = [_span(call, until) for call in calls]
    lanes = assign_lanes(spans)
    metadata: list[dict[str, Any]] = [
        {
            "ph": "M",
            "name": "process_name",
            "pid": _PID,
            "args": {"name": f"kiln run {flow}"},
        }
    ]
    metadata += [
        {
            "ph": "M",
            "name": "thread_name",
            "pid": _PID,
            "tid": lane + 1,
            "args": {"name": f"lane {lane + 1}"},
        }
        for lane in range(max(lanes, default=-1) + 1)
    ]
    complete = [
        _complete_event(call, span, lane, origin)
        for call, span, lane in zip(calls, spans, lanes, strict=True)
    ]
    return {"traceEvents": metadata + complete, "displayTimeUnit": "ms"}


def _span(call: Call, until: float | None) -> tuple[float, float]:
    start = call.started if call.started is not None else call.queued
    end = call.ended if call.ended is not None else until
    return start, max(start, end if end is not None else start)


def _complete_event(
    call: Call, span: tuple[float, float], lane: int, origin: float
) -> dict[str, Any]:
    start, end = span
    return {
        "ph": "X",
        "name": call.node,
        "cat": call.status,
        "ts": _microseconds(start - origin),
        "dur": _microseconds(end - start),
        "pid": _PID,
        "tid": lane + 1,
        "args": {
            "site": call.site,
            "visit": call.visit,
            "attempts": call.attempts,
            "cache_hit": call.cache_hit,
            "error": call.error,
        },
    }


def _microseconds(seconds: float) -> float:
    # Nanosecond resolution is all perf_counter gives; more digits are noise.
    return round(seconds * _MICROSECONDS, 3)
