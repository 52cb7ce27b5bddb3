"""What a bound run calls at each site: the run's shared state, and a wrapper per kind.

A configured flow instance (`kiln.binding`) wraps each site once, with the
builder of its kind, and binds the wrapped calls to every run it makes: each
takes the run (`Run`) as its first argument. The wrapped call of a node does,
from the outside in:

    event (on_event, record) -> ledger (cache=True) -> attempts (retries, wait)
      -> admission (the limit group's Processor, the run's concurrency) -> timeout -> node

A cache hit takes no capacity; every attempt is admitted on its own, since a
retried request counts against a rate limit like the first; a timeout bounds
the attempt, not its wait for capacity.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeGuard, final

from kiln.cap import Cap
from kiln.decorators import ask
from kiln.errors import LedgerError, OptionError, stopped
from kiln.events import EventStatus, NodeEvent
from kiln.fallbacks import fall_back, fall_back_sync
from kiln.plain_sites import (
    CAPPED,
    Wrapped,
    capped,
    hook_failed,
    notified,
    observed,
)
from kiln.resilience import (
    PLAIN,
    Gate,
    attempts,
    attempts_sync,
    inline,
)
from kiln.stream_calls import ObservedAsyncStream, ObservedStream
from kiln.sync_entry import loopless
from kiln.threads import in_own_thread

if TYPE_CHECKING:
    from kiln.binding import Binder
    from kiln.calls import Backend, Flow
    from kiln.durable import Journal
    from kiln.site_table import Site, SiteKind

__all__ = ["CAPPED", "WRAPPERS", "Run", "Wrapped", "unasked"]

# Looked up once: an Enum member lookup costs more than a global, on every call.
_PROCESSING, _COMPLETED = EventStatus.PROCESSING, EventStatus.COMPLETED
_PENDING = EventStatus.PENDING
_RUNS = itertools.count(1)


@final
class Run:
    """What the wrapped calls of one run share: its number, visits, capacity, hooks.

    A subflow's run that joins an `enclosing` run takes its number, its ledger
    run id and its concurrency caps (after the subflow's own), and counts its
    visits in a list that every run of the subflow's class joining the same
    outermost run shares, whichever flow called it, so that a call's (run,
    site, visit) names it once.
    """

    __slots__ = (
        "cap",
        "caps",
        "id",
        "journal",
        "ledger",
        "loop",
        "notify",
        "number",
        "observed",
        "record",
        "uncacheable",
        "visit_lists",
        "visits",
    )

    def __init__(self, binder: Binder, enclosing: Run | None = None) -> None:
        self.begin(binder, enclosing)

    def begin(self, binder: Binder, enclosing: Run | None) -> None:
        """Start a run: `binder` reuses a run whose body has left for its next one."""
        self.notify = binder.notify
        self.record = binder.record
        self.observed = binder.observed
        self.ledger = binder.ledger
        self.uncacheable = binder.uncacheable
        own: tuple[Cap, ...] = (
            (Cap(binder.concurrency),) if binder.concurrency is not None else ()
        )
        # The lowest of the caps, for a fan-out to keep no more elements than that.
        self.cap = binder.concurrency
        self.loop = _running_loop()
        self.journal: Journal | None = None
        if binder.durable:
            from kiln.durable import JOURNAL  # noqa: PLC0415 - durable runs only

            self.journal = JOURNAL.get() if enclosing is None else enclosing.journal
            if self.journal is None:
                raise OptionError(
                    "a durable flow's calls run only inside its run: call the instance "
                    "made with run_id (its aforward, forward or __call__)"
                )
        if enclosing is None:
            self.number = next(_RUNS)
            self.visits = [0] * binder.size
            self.visit_lists: dict[type[Flow], list[int]] | None = None
            self.caps = own
            self.id = uuid.uuid4().hex if binder.ledger is not None else ""
            return
        self.number = enclosing.number
        lists = enclosing.visit_lists
        if lists is None:
            lists = enclosing.visit_lists = {}
        self.visit_lists = lists
        self.visits = lists.setdefault(binder.kind, [0] * binder.size)
        if enclosing.loop is not self.loop:
            # The enclosing run waits in another thread (a sync stream it
            # iterates runs in a thread of its own): its caps admit calls of
            # its loop only, and a call here waiting for one could wait forever.
            self.caps = own
        else:
            self.caps = own + enclosing.caps
            if enclosing.cap is not None:
                self.cap = min(enclosing.cap, self.cap or enclosing.cap)
        self.id = enclosing.id or (
            uuid.uuid4().hex if binder.ledger is not None else ""
        )

    def gates(self, limit: Gate | None) -> tuple[Gate, ...]:
        return self.caps if limit is None else (limit, *self.caps)

    def event(self, index: int, site: Site) -> NodeEvent | None:
        """A call's PENDING event, recorded; None when nothing observes the run."""
        self.visits[index] += 1
        if not self.observed:
            return None
        event = NodeEvent(site.node, site.where, self.number, self.visits[index])
        if self.record is not None:
            self.record(event)
        return event

    def replay(self, index: int, site: Site) -> None:
        """A call the journal answered: observed as a cache hit, counted as a visit."""
        self.finished(self.event(index, site), hit=True)

    def started(self, event: NodeEvent | None, attempt: int) -> None:
        """An attempt was admitted: the first makes the call PROCESSING."""
        if event is None:
            return
        event.attempts = attempt
        if attempt == 1:
            event.status = _PROCESSING
            event.started = perf_counter()
            self.tell(event)

    def finished(
        self,
        event: NodeEvent | None,
        error: BaseException | None = None,
        *,
        hit: bool = False,
    ) -> None:
        if event is None:
            return
        if error is not None and error is event.error:
            return  # the hook's, which ended the call as it started (`hook_failed`)
        if hit:
            # Answered with no attempt, it starts as it ends, and is told of as it
            # starts, as every call is: an observer pairs each start with an end.
            event.cache_hit = True
            event.started = perf_counter()
            if event.status is _PENDING:
                event.status = _PROCESSING
                self.tell(event)
            event.ended = event.started
        else:
            event.ended = perf_counter()
        if error is None:
            event.status = _COMPLETED
        elif isinstance(error, asyncio.CancelledError):
            event.status = EventStatus.CANCELLED
        else:
            event.status = EventStatus.FAILED
            event.error = stopped(error)  # a StopIteration, not its carrier
        self.tell(event)

    def failed(
        self, error: BaseException, event: NodeEvent | None
    ) -> TypeGuard[Exception]:
        """End a call that failed with `error`; whether its fallback may answer it.

        Not an interrupt nor a cancellation, nor an error that is not the
        node's: the ledger's (`LedgerError`: a path it cannot use, a value it
        cannot store), or the run's `on_event`'s (`hook_failed`).
        """
        hook_error = event is not None and error is event.error
        self.finished(event, error)
        return (
            isinstance(error, Exception)
            and not hook_error
            and not isinstance(error, LedgerError)
        )

    def tell(self, event: NodeEvent) -> None:
        """Tell the run's observers of `event`; an error of theirs is not the call's."""
        notify = self.notify
        if notify is None:
            return
        try:
            notify(event)
        except Exception as error:
            hook_failed(error, event)
            raise


# --- the wrapped calls, one builder per kind of node ------------------------------------
#
# A plain async node's call is the hot path of observed runs and capped
# fan-outs: its wrapper, in `kiln.plain_sites`, is written out flat, without
# the attempts loop or the ledger, since every step of every such run pays for it.


def _async_site(index: int, site: Site, limit: Gate | None, binder: Binder) -> Wrapped:
    cached = binder.caches and site.cache is not None
    backend = None if site.local else binder.backend
    if (
        site.kind == "async"
        and site.policy is None
        and site.fallback is None
        and limit is None
        and not cached
        and backend is None
    ):
        if binder.gated:
            return capped(index, site)
        if binder.observed and binder.record is None and not site.keywords:
            return notified(index, site)
        return observed(index, site)
    fn, policy, fallback = site.fn, site.policy or PLAIN, site.fallback
    attempt = _attempt(site, backend, binder)
    # In a thread of its own, which holds the call's gates until it ends (`kiln.threads`).
    thread_node = site.kind == "thread"
    threaded = thread_node and backend is None

    async def call(run: Run, /, *args: Any, **kwargs: Any) -> Any:
        event = run.event(index, site)
        started = None if event is None else partial(run.started, event)
        gates = run.gates(limit)
        tries = partial(
            attempts,
            *(policy, attempt, args, kwargs, gates, started),
            threaded=threaded,
            thread_node=thread_node,
        )
        try:
            if cached and run.ledger is not None:
                value, hit = await run.ledger.call(
                    site.node,
                    site.cache or "",
                    fn,
                    args,
                    kwargs,
                    tries,
                    classes=site.classes,
                    run=run.id,
                    uncacheable=run.uncacheable,
                )
            else:
                value, hit = await tries(), False
        except BaseException as error:
            if not run.failed(error, event) or fallback is None:
                raise
            return await fall_back(fallback, error, args, kwargs, site.node)
        run.finished(event, hit=hit)
        return value

    return call


def _attempt(
    site: Site, backend: Backend | None, binder: Binder
) -> Callable[..., Awaitable[Any]]:
    """What one attempt of an async site's call awaits: the node, in a thread, or remote.

    The awaitable itself, not a coroutine awaiting it: one frame less per call.
    """
    if backend is not None:
        return partial(_remote, backend, site)
    if site.kind == "thread":
        return partial(_threaded, site.fn)
    if site.kind == "waiting":  # a sync node, in the loop: only its waits are awaited
        return partial(inline, _written_sync(site, binder))
    return site.fn


def _written_sync(site: Site, binder: Binder) -> Callable[..., Any]:
    """What an attempt of a sync node calls: in a flow written as `def`, the
    node with no running loop, as in the source (`loopless`)."""
    return loopless(site.fn) if binder.kind._kiln_written_sync else site.fn


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running this thread's code; None in a plain sync call."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _remote(backend: Backend, site: Site, *args: Any, **kwargs: Any) -> Awaitable[Any]:
    return backend.run(site, args, kwargs)


def _threaded(
    fn: Callable[..., Any], held: tuple[Gate, ...], *args: Any, **kwargs: Any
) -> Awaitable[Any]:
    return in_own_thread(held, partial(fn, *args, **kwargs))


def _sync_site(index: int, site: Site, limit: Gate | None, binder: Binder) -> Wrapped:
    fn, policy, fallback = site.fn, site.policy or PLAIN, site.fallback
    cached = binder.caches and site.cache is not None
    runs = _written_sync(site, binder)

    def call(run: Run, /, *args: Any, **kwargs: Any) -> Any:
        event = run.event(index, site)
        started = None if event is None else partial(run.started, event)
        try:
            if cached and run.ledger is not None:
                value, hit = run.ledger.call_sync(
                    site.node,
                    site.cache or "",
                    fn,
                    args,
                    kwargs,
                    partial(attempts_sync, policy, runs, args, kwargs, started),
                    classes=site.classes,
                    run=run.id,
                    uncacheable=run.uncacheable,
                )
            else:
                value, hit = attempts_sync(policy, runs, args, kwargs, started), False
        except BaseException as error:
            if not run.failed(error, event) or fallback is None:
                raise
            return fall_back_sync(fallback, error, args, kwargs, site.node)
        run.finished(event, hit=hit)
        return value

    return call


def _stream_site(index: int, site: Site, limit: Gate | None, binder: Binder) -> Wrapped:
    """A stream node's call: its generator, reporting its event in an observed run."""
    fn = site.fn
    observed = ObservedAsyncStream if site.kind == "astream" else ObservedStream

    def call(run: Run, /, *args: Any, **kwargs: Any) -> Any:
        event = run.event(index, site)
        if event is None:
            return fn(*args, **kwargs)
        try:
            stream = fn(*args, **kwargs)
        except BaseException as error:
            run.finished(event, error)
            raise
        return observed(run, event, stream)

    return call


async def unasked(run: Run, /, *args: Any, **kwargs: Any) -> Any:
    """An `ask` site of a run without an id: `kiln.ask` says that it needs one."""
    return await ask(*args, **kwargs)


WRAPPERS: dict[SiteKind, Callable[[int, Site, Gate | None, Binder], Wrapped]] = {
    "async": _async_site,
    "thread": _async_site,
    "waiting": _async_site,
    "sync": _sync_site,
    "stream": _stream_site,
    "astream": _stream_site,
}
