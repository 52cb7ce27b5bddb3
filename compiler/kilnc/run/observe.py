"""Observing a run: the node calls a flow makes, counted live and summed up per node.

Example input: a run observed through ``type(digest)(on_event=observer)`` that
called ``load`` once and ``summarize`` three times, one of which failed once
and then succeeded on its retry. While it runs, ``observer.counts()`` is what
the progress display shows (``Counts(calls=4, running=1, completed=2, ...)``);
afterwards ``summarize_calls(observer.calls())`` is::

    (NodeSummary(node="load", calls=1, failures=0, retries=0, ...),
     NodeSummary(node="summarize", calls=3, failures=0, retries=1, ...))

A compiled flow hands `on_event` the same `kiln.NodeEvent` object when the call
is created, admitted and finished, changing it in between; the observer keeps
each event once and takes frozen `Call` snapshots of them when asked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, final

from kiln import EventStatus
from kilnc.terminal import safe_str

__all__ = [
    "Call",
    "Counts",
    "EventLike",
    "NodeSummary",
    "Observer",
    "percentile",
    "summarize_calls",
]


class EventLike(Protocol):
    """What the observer reads of a `kiln.NodeEvent` (read-only, so doubles fit too)."""

    @property
    def node(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def visit(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def cache_hit(self) -> bool: ...
    @property
    def started(self) -> float | None: ...
    @property
    def ended(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def error(self) -> BaseException | None: ...


@final
@dataclass(frozen=True, slots=True)
class Counts:
    """How many of a run's node calls are in each state, at one moment.

    `waiting` calls exist but wait for capacity (PENDING); `running` ones were
    admitted; `stopped` ones were cancelled, skipped or aborted.
    """

    calls: int = 0
    waiting: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    stopped: int = 0
    cache_hits: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.stopped


@final
@dataclass(frozen=True, slots=True)
class Call:
    """One node call as it stood when the snapshot was taken.

    Times are `time.perf_counter()` readings: `queued` when the observer first
    saw the call, `started` when it was admitted (None if it never was),
    `ended` when it finished (None if it has not). `error` is the exception's
    type and message.
    """

    node: str
    site: str
    visit: int
    attempts: int
    cache_hit: bool
    status: str
    queued: float
    started: float | None
    ended: float | None
    error: str | None

    @property
    def duration(self) -> float | None:
        """Seconds from admission to the end, for a call that has both."""
        if self.started is None or self.ended is None:
            return None
        return max(self.ended - self.started, 0.0)


@final
@dataclass(frozen=True, slots=True)
class NodeSummary:
    """What one node's calls in a run add up to.

    `retries` sums the attempts after the first; `cancelled` counts calls that
    ended neither completed nor failed. Times are over the calls that were
    admitted and finished; the percentiles are None when there are none.
    """

    node: str
    calls: int
    failures: int
    cancelled: int
    retries: int
    cache_hits: int
    total_seconds: float
    p50_seconds: float | None
    p95_seconds: float | None


# Each status in the one bucket of `Counts` that it counts in.
_BUCKETS: Final[dict[str, str]] = {
    EventStatus.PENDING: "waiting",
    EventStatus.PROCESSING: "running",
    EventStatus.COMPLETED: "completed",
    EventStatus.FAILED: "failed",
    EventStatus.CANCELLED: "stopped",
    EventStatus.SKIPPED: "stopped",
    EventStatus.ABORTED: "stopped",
}


@final
class _Seen:
    __slots__ = ("bucket", "event", "hit", "queued")

    def __init__(self, event: EventLike, queued: float) -> None:
        self.event = event
        self.queued = queued
        self.bucket: str | None = None
        self.hit = False


@final
class Observer:
    """The `on_event` callback of an observed run: counts calls and keeps their events.

    It is called on the thread that runs the flow; a display thread may read
    `counts()` at any time, and at worst sees a call in its previous state.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._seen: dict[int, _Seen] = {}
        self._counts = dict.fromkeys(
            ("waiting", "running", "completed", "failed", "stopped", "cache_hits"), 0
        )

    def __call__(self, event: EventLike) -> None:
        seen = self._seen.get(id(event))
        if seen is None:
            # Keyed by identity: the event is kept alive here, so its id stays its own.
            seen = self._seen[id(event)] = _Seen(event, self._clock())
        bucket = _BUCKETS.get(event.status)
        if bucket != seen.bucket:
            if seen.bucket is not None:
                self._counts[seen.bucket] -= 1
            if bucket is not None:
                self._counts[bucket] += 1
            seen.bucket = bucket
        if event.cache_hit and not seen.hit:
            seen.hit = True
            self._counts["cache_hits"] += 1

    def counts(self) -> Counts:
        return Counts(calls=len(self._seen), **self._counts)

    def calls(self) -> tuple[Call, ...]:
        """A snapshot of every call seen so far, in the order they were created."""
        return tuple(_snapshot(seen) for seen in list(self._seen.values()))


def _snapshot(seen: _Seen) -> Call:
    event = seen.event
    error = event.error
    return Call(
        node=event.node,
        site=event.site,
        visit=event.visit,
        attempts=event.attempts,
        cache_hit=event.cache_hit,
        status=str(event.status),
        queued=seen.queued,
        started=event.started,
        ended=event.ended,
        error=None if error is None else f"{type(error).__name__}: {safe_str(error)}",
    )


def summarize_calls(calls: Iterable[Call]) -> tuple[NodeSummary, ...]:
    """One summary per node, in the order of each node's first call."""
    by_node: dict[str, list[Call]] = {}
    for call in calls:
        by_node.setdefault(call.node, []).append(call)
    return tuple(_summarize_node(node, group) for node, group in by_node.items())


def _summarize_node(node: str, calls: Sequence[Call]) -> NodeSummary:
    durations = sorted(d for d in (c.duration for c in calls) if d is not None)
    return NodeSummary(
        node=node,
        calls=len(calls),
        failures=sum(c.status == EventStatus.FAILED for c in calls),
        cancelled=sum(_BUCKETS.get(c.status) == "stopped" for c in calls),
        retries=sum(max(c.attempts - 1, 0) for c in calls),
        cache_hits=sum(c.cache_hit for c in calls),
        total_seconds=math.fsum(durations),
        p50_seconds=percentile(durations, 0.50),
        p95_seconds=percentile(durations, 0.95),
    )


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The `q`-quantile of sorted values, interpolating between the closest ranks.

    The "inclusive" method (`statistics.quantiles(..., method="inclusive")`,
    numpy's default): 0 is the smallest value, 1 the largest, 0.5 the median.
    None for no values.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1; got {q}")
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction
