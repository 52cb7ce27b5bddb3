"""Events: units of work a `Processor` runs, and the records of a compiled flow's calls.

lionagi's contract, in plain slotted classes: an `Event` has a process-unique
`id`, a `created_at` wall-clock timestamp, a `status` (an `EventStatus`), the
`response` of its work or the `error` it raised, and a `duration`. Subclasses
implement the work as ``async def _invoke(self)``; `invoke()` runs it once and
records the outcome, so a failing event never raises out of the processor::

    class Fetch(Event):
        def __init__(self, url: str) -> None:
            super().__init__()
            self.url = url

        async def _invoke(self) -> bytes:
            return await download(self.url)

A `NodeEvent` is the record of one node call that a compiled flow made: the
flow fills it in as the call runs, and it is never invoked.
"""

from __future__ import annotations

import itertools
import time
from enum import StrEnum
from typing import Any, Final

__all__ = ["Event", "EventStatus", "NodeEvent"]

# itertools.count is atomic under the GIL, so ids stay unique across threads.
IDS: Final = itertools.count(1)
# What to add to a `perf_counter()` reading for the wall-clock time it was taken:
# a NodeEvent made as it starts takes its `created_at` from its `started`.
WALL_CLOCK: Final = time.time() - time.perf_counter()


class EventStatus(StrEnum):
    """Where an event is in its life; the values are lionagi's.

    PENDING until a processor starts it; PROCESSING while its work runs; then
    one final status: COMPLETED (the work returned), FAILED (it raised),
    CANCELLED (it was cancelled), SKIPPED (`request_permission` refused it and
    `handle_denied` skipped it), ABORTED (refused `Processor.max_denials` times).
    """

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    ABORTED = "aborted"


# Looking a member up on an Enum class is slow next to a global: NodeEvent is hot.
_PENDING: Final = EventStatus.PENDING


class Event:
    """A unit of work with a recorded outcome; subclass it and implement `_invoke`.

    `started` and `ended` are `time.perf_counter()` readings taken around the
    work; `duration` is their difference, None until the work has ended.
    `request` is what the processor passes to `request_permission(**request)`.
    """

    __slots__ = ("created_at", "ended", "error", "id", "response", "started", "status")

    id: int
    created_at: float
    status: EventStatus
    started: float | None
    ended: float | None
    response: Any
    error: BaseException | None

    def __init__(self) -> None:
        self.id = next(IDS)
        self.created_at = time.time()
        self.status = _PENDING
        self.started = None
        self.ended = None
        self.response = None
        self.error = None

    @property
    def duration(self) -> float | None:
        """Seconds the work took, or None while it has not ended."""
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def request(self) -> dict[str, Any]:
        """The keyword arguments of `Processor.request_permission` for this event."""
        return {}

    async def invoke(self) -> None:
        """Run the work once and record its outcome on the event.

        An event that is no longer PENDING is left as it is, so an event that
        reaches a processor twice runs once. An `Exception` from the work is
        recorded (FAILED, `error`), not raised; cancellation is recorded
        (CANCELLED) and propagates, as cancellation must.
        """
        if self.status is not EventStatus.PENDING:
            return
        self.status = EventStatus.PROCESSING
        self.started = time.perf_counter()
        try:
            self.response = await self._invoke()
        except Exception as error:
            self.error = error
            self.status = EventStatus.FAILED
        except BaseException as error:
            self.error = error
            self.status = EventStatus.CANCELLED
            raise
        else:
            self.status = EventStatus.COMPLETED
        finally:
            self.ended = time.perf_counter()

    async def _invoke(self) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} does no work: subclass Event and implement "
            "`async def _invoke(self)`, whose return value becomes the event's response"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.status.value}{_took(self)}>"


class NodeEvent(Event):
    """The record of one node call of a compiled flow, filled in by the flow as it runs.

    `node` is the node's name, `site` its call site (``"flows.py:46"``), `run`
    the number of the flow run, `visit` the 1-based count of calls of this
    site in this run, `attempts` how many attempts have started, `cache_hit`
    whether the ledger answered the call. `response` stays None: a record
    must not keep a node's result alive.
    """

    __slots__ = ("attempts", "cache_hit", "node", "run", "site", "visit")

    node: str
    site: str
    run: int
    visit: int
    attempts: int
    cache_hit: bool

    # Compiled flows create one per node call: no super().__init__() call, and
    # every slot set here, keep that cheap. A run observed by `on_event` alone
    # makes its events started, without this (`kiln.plain_sites.notified`).
    def __init__(self, node: str, site: str, run: int, visit: int) -> None:
        self.id = next(IDS)
        self.created_at = time.time()
        self.status = _PENDING
        self.attempts = 0
        self.started = None
        self.ended = None
        self.response = None
        self.error = None
        self.node = node
        self.site = site
        self.run = run
        self.visit = visit
        self.cache_hit = False

    async def invoke(self) -> None:
        raise TypeError(
            "a NodeEvent records a call that a compiled flow makes and cannot be invoked; "
            "subclass Event and implement `async def _invoke(self)` for work a "
            "Processor should run"
        )

    def __repr__(self) -> str:
        return (
            f"<NodeEvent {self.node} at {self.site} run {self.run} visit {self.visit}: "
            f"{self.status.value}, {self.attempts} attempt(s)"
            f"{', cache hit' if self.cache_hit else ''}{_took(self)}>"
        )


def _took(event: Event) -> str:
    duration = event.duration
    return "" if duration is None else f", {duration * 1000:.3g} ms"
