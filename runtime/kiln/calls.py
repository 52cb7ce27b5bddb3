"""How a compiled flow calls its nodes: call sites, bound once per run.

Every node call a flow makes is a `Site`, listed in the generated class beside
the callable that runs it when nothing else is asked of the run::

    class Digest(_kiln.Flow, _kiln.AsyncProcess, _kiln.Process):
        _kiln_sites = (
            _kiln.Site("load", "digest.py:18", load, kind="sync"),
            _kiln.Site("summarize", "digest.py:19", summarize, policy=_KILN_POLICY_SUMMARIZE,
                       limit="llm", cache="3f2a..."),
        )
        _kiln_calls = (load, _kiln.retrying(_KILN_POLICY_SUMMARIZE, summarize))
        _kiln_limits = {"llm": _kiln.Limit(8, refresh=1.0)}

        async def aforward(self, path: str) -> str:
            _kiln_load, _kiln_summarize = self._kiln_bind(self._kiln_calls)
            paragraphs = _kiln_load(path)
            ...

`_kiln_bind` is the one check a run pays for: an instance that nothing
observes, limits or caches gets `_kiln_calls` back as it is, and its calls are
the plain calls of hand-written asyncio. Otherwise each site is wrapped for the
run, in this order from the outside in:

    event (on_event, record) -> ledger (cache=True) -> attempts (retries, wait)
      -> admission (the limit group's Processor, the run's concurrency) -> timeout -> node

A cache hit takes no capacity; every attempt is admitted on its own, since a
retried request counts against a rate limit like the first; a timeout bounds
the attempt, not its wait for capacity.

A call of another flow of the module is a site too (``kind="flow"``, its `fn`
the subflow's instance), so that the subflow's calls belong to the run that
makes them: a configured instance binds, in place of the module's subflow, an
instance of the subflow's class that shares its hooks, ledger, backend and
capacity groups, and whose runs join this run (its number, its concurrency cap,
one visit count per site however often the subflow is called).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import sys
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Literal,
    Protocol,
    TypeVar,
    cast,
    final,
)

from kiln.decorators import ask
from kiln.errors import OptionError
from kiln.events import EventStatus, NodeEvent
from kiln.options import Limit, _check_int, _checked_limits
from kiln.process import _Fielded
from kiln.processor import Executor
from kiln.resilience import Policy, _in_own_thread, _retry_or_note, fall_back
from kiln.stream_calls import ObservedAsyncStream, ObservedStream
from kiln.subflow import subflow

if TYPE_CHECKING:
    from kiln.durable import Journal
    from kiln.ledger import Ledger
    from kiln.otel import Tracing

__all__ = ["Backend", "Flow", "Site", "SiteKind", "fan_out_bound"]

SiteKind = Literal["async", "sync", "thread", "stream", "astream", "flow", "ask"]
C = TypeVar("C", bound=tuple[object, ...])  # nodes' calls, and subflows
R = TypeVar("R")

_PLAIN = Policy("node")  # the attempts of a node without retries or timeout
# Looked up once: an Enum member lookup costs more than a global, on every call.
_PROCESSING, _COMPLETED = EventStatus.PROCESSING, EventStatus.COMPLETED
_RUNS = itertools.count(1)


@final
@dataclass(frozen=True, slots=True)
class Site:
    """One node call in a flow's source, and what the decorators ask of it.

    `where` is the call's location (``"digest.py:19"``); `cache` is the
    fingerprint of the node's source that the compiler computed, present only
    for `cache=True` nodes, so an edited node misses the results of the old one;
    `classes` are the classes a stored result of the node may rebuild, those the
    compiler found in its return annotation (and in their fields' annotations).
    `local` (``@node(local=True)``) keeps the node in the driver when a backend
    runs the others. `changes` says why the call may change what it is passed
    (an argument, a Memory key), as the compiler found it: a durable run,
    which replays a call's value and not its changes, refuses such a call.
    `fallback` answers a call that failed, after its retries, as
    ``fallback(*args, error=exc, **kwargs)``: its value is the call's (and
    what a durable run journals), its failure the call's failure. A
    ``kind="flow"`` site calls a subflow: `node` is the flow's name and `fn`
    the flow as the module sees it, a compiled flow's instance, or the source
    function of a flow whose module was not compiled.
    """

    node: str
    where: str
    fn: Callable[..., Any]
    kind: SiteKind = "async"
    policy: Policy | None = None
    limit: str | None = None
    cache: str | None = None
    classes: tuple[object, ...] = ()
    local: bool = False
    changes: str | None = None
    fallback: Callable[..., Any] | None = None


class Backend(Protocol):
    """Where a run's node calls execute, when not in the flow's own event loop.

    `run` executes ``site.fn(*args, **kwargs)`` (a coroutine function, or a sync
    function for `thread=True` nodes) elsewhere and returns its result, or raises
    its exception as the original object. Cancelling the awaiting task must
    cancel the remote work. Limits, retries, timeouts, the ledger and events stay
    in the driver: the backend sees one attempt at a time, already admitted.
    """

    async def run(
        self, site: Site, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


class Flow(_Fielded, kw_only=True):
    """The base of every compiled flow class: how its runs are limited, cached, observed.

    ``Digest(limits={"llm": Limit(4)}, on_event=print, record=True)`` builds a
    configured instance; the module-level instance uses the compiled defaults.

    - `limits` replaces compiled capacity groups by name, those of the flows it
      calls included. Runs share a group's capacity when they hold the same
      `Limit` object, whatever flow they run; the subflows a run calls use its
      Limit for every group they have in common.
    - `concurrency` caps the node calls in flight in one run (compiled default:
      `@flow(concurrency=N)`).
    - `on_event` is called with a node call's `NodeEvent` when the call starts
      (PROCESSING: admitted, or answered by the ledger) and when it ends;
      `record=True` keeps every run's events, from their creation (PENDING),
      in `executor`.
    - `ledger` is where `cache=True` nodes keep their results: a path; None for
      ``$KILN_LEDGER``, else the ``[tool.kiln] ledger`` the module was compiled
      with, else ``.kiln/ledger.db``; False for no caching at all.
    - `uncacheable="run"` runs a call whose arguments or result cannot be stored
      without the cache, instead of failing.
    - `backend` runs the calls of async and `thread=True` nodes elsewhere (a
      `kiln.dask.DaskBackend`); `local=True` nodes and plain sync nodes stay.
    - `run_id` makes the instance's runs durable (`durable.py`): each call's
      value is journaled in the ledger file under the id, and running the
      instance again replays what the run finished, and goes on live from
      the first call it had not; `kiln.ask` suspends such a run.

    All of them reach the calls of the subflows a run calls, as if the
    subflows' nodes were called by the flow itself.
    """

    limits: Mapping[str, Limit] | None = None
    concurrency: int | None = None
    on_event: Callable[[NodeEvent], object] | None = None
    record: bool = False
    ledger: str | os.PathLike[str] | bool | None = None
    uncacheable: Literal["raise", "run"] = "raise"
    backend: Backend | None = None
    run_id: str | None = None
    tracer: Any = None
    executor: Executor | None = field(default=None, init=False, repr=False)
    _kiln_tracing: Tracing | None = field(default=None, init=False, repr=False)
    _kiln_binder: _Binder | _Joining | None = field(
        default=None, init=False, repr=False
    )

    _kiln_sites: ClassVar[tuple[Site, ...]] = ()
    _kiln_limits: ClassVar[Mapping[str, Limit]] = {}
    _kiln_concurrency: ClassVar[int | None] = None
    # [tool.kiln] ledger, relative to the generated module's directory.
    _kiln_ledger: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        limits = self._kiln_groups()
        if self.limits is not None:
            given = _checked_limits(self.limits)
            unknown = sorted(set(given) - set(limits))
            if unknown:
                declared = ", ".join(repr(g) for g in sorted(limits)) or "none"
                raise OptionError(
                    f"limits names groups this flow does not use: {', '.join(map(repr, unknown))}"
                    f" (its groups: {declared})"
                )
            limits.update(given)
        if self.concurrency is not None:
            _check_int("concurrency", self.concurrency, minimum=1, hint="")
        concurrency = self.concurrency or self._kiln_concurrency
        if self.on_event is not None and not callable(self.on_event):
            raise OptionError(f"on_event must be callable; got {self.on_event!r}")
        if not isinstance(self.record, bool):
            raise OptionError(f"record must be True or False; got {self.record!r}")
        if self.uncacheable not in ("raise", "run"):
            raise OptionError(
                f"uncacheable must be 'raise' or 'run'; got {self.uncacheable!r}"
            )
        if self.record:
            self.executor = Executor()
        if self.run_id is not None and (
            not isinstance(self.run_id, str) or not self.run_id.strip()
        ):
            raise OptionError(f"run_id must be a non-empty str; got {self.run_id!r}")
        if self.run_id is not None and self.ledger is False:
            raise OptionError(
                "run_id makes a durable run, which journals in the ledger file: "
                "ledger=False has none; give a ledger path, or no run_id"
            )
        if self.tracer is not None or "opentelemetry.trace" in sys.modules:
            from kiln.otel import tracing_for  # noqa: PLC0415 - tracing only

            self._kiln_tracing = tracing_for(self.tracer)
        configured = (
            self._kiln_tracing is not None
            or self.run_id is not None
            or self.backend is not None
            or self.on_event is not None
            or self.record
            or concurrency is not None
        )
        # What subflows would take otherwise: their own groups, the default ledger.
        passed_down = (
            bool(self._kiln_limits)
            or self.limits is not None
            or self.ledger is not None
            or self.uncacheable != "raise"
        )
        needs = configured or any(
            site.limit is not None
            or site.cache is not None
            or (site.kind == "flow" and passed_down)
            for site in self._kiln_sites
        )
        if needs:
            self._kiln_binder = _Binder(
                self, limits, concurrency, gated=False, durable=self.run_id is not None
            )
        if self.run_id is not None:
            from kiln.durable import durable_entry  # noqa: PLC0415 - durable runs only

            binder = self._kiln_binder
            assert isinstance(binder, _Binder)
            durable_entry(self, self.run_id, binder.open_ledger())
        if self._kiln_tracing is not None:
            self._kiln_tracing.entry(self, type(self).__name__)

    def ledger_of(self) -> Ledger:
        """The ledger file this instance's runs cache and journal in."""
        binder = self._kiln_binder
        if isinstance(binder, _Binder):
            return binder.open_ledger()
        from kiln.ledger import Ledger  # noqa: PLC0415

        path = self.ledger
        return Ledger.at(
            None if isinstance(path, bool) else path,
            default=_compiled_ledger(type(self)),
        )

    @classmethod
    def _kiln_groups(cls) -> dict[str, Limit]:
        """The capacity groups of this flow's calls, its subflows' included, as compiled."""
        groups: dict[str, Limit] = {}
        for site in cls._kiln_sites:
            if site.kind == "flow" and isinstance(site.fn, Flow):
                groups.update(type(site.fn)._kiln_groups())
        # A flow's own declaration wins over its subflows'.
        groups.update(cls._kiln_limits)
        return groups

    def _kiln_bind(self, calls: C) -> C:
        """What the run calls at each site: `calls` itself, unless the run needs more."""
        binder = self._kiln_binder
        if binder is None:
            return calls
        return cast(C, binder.bind())

    def _kiln_nested(
        self, subflow: Flow, limits: Mapping[str, Limit], gated: bool, durable: bool
    ) -> Flow:
        """An instance of `subflow`'s class configured as this one, for its runs to join ours.

        It takes this flow's Limit for each group the two have in common, and
        this flow's hooks, executor, ledger and backend; `gated` says that the
        runs it joins have a concurrency cap, which its calls must pass as well,
        and `durable` that they are durable, so its calls are journaled.
        """
        kind = type(subflow)
        groups = kind._kiln_groups()
        shared = {group: limits[group] for group in groups if group in limits}
        groups.update(shared)
        # A copy, not a new instance: the options are this flow's, checked already.
        nested = copy.copy(subflow)
        nested.limits = shared or None
        nested.on_event = self.on_event
        nested.record = self.record
        nested.ledger = self.ledger
        nested.uncacheable = self.uncacheable
        nested.backend = self.backend
        nested.executor = self.executor
        nested.tracer = self.tracer
        nested._kiln_tracing = self._kiln_tracing
        # The module's instance may be traced itself: its runs' spans are not this
        # copy's, whose calls are spanned by the run that makes them (`_Spanned`).
        for entry_point in ("aforward", "forward", "astream", "stream"):
            nested.__dict__.pop(entry_point, None)
        nested._kiln_binder = _Binder(
            nested, groups, kind._kiln_concurrency, gated=gated, durable=durable
        )
        return nested


class _Gate(Protocol):
    async def acquire(self) -> Any: ...
    def release(self) -> None: ...


# A site's wrapped call takes the run as its first argument; a run binds it with
# `partial`, so binding a run costs one C-level partial per site, not a closure.
Wrapped = Callable[..., Any]


# By flow class, its binders' wrapped calls by configuration (`_Binder._calls`), the
# oldest dropped past a few: an instance made with new Limits each time makes new ones.
_CALLS: weakref.WeakKeyDictionary[
    type[Flow], dict[tuple[object, ...], tuple[tuple[object, ...], tuple[Wrapped, ...]]]
] = weakref.WeakKeyDictionary()
_CONFIGURATIONS_KEPT: Final = 8


@final
class _Binder:
    """The wrapped calls of one flow instance, built once, and the runs that bind them."""

    def __init__(
        self,
        flow: Flow,
        limits: Mapping[str, Limit],
        concurrency: int | None,
        *,
        gated: bool,
        durable: bool,
    ) -> None:
        self.kind = type(flow)
        self.durable = durable
        if durable:
            # Imported once per binder, not per site: a durable instance is made per run.
            from kiln import durable as journaling  # noqa: PLC0415 - durable runs only

            self.journaling = journaling
        self.concurrency = concurrency
        # The runs' calls pass a concurrency cap: this flow's, or that of the runs it joins.
        self.gated = gated or concurrency is not None
        self.backend = flow.backend
        self.tracing = flow._kiln_tracing
        self.notify = _observers(flow.on_event, self.tracing)
        self.record = flow.executor.record if flow.executor is not None else None
        self.observed = self.notify is not None or self.record is not None
        self.uncacheable = flow.uncacheable
        self.ledger_path = flow.ledger
        self.caches = durable or (
            flow.ledger is not False
            and any(site.cache is not None for site in flow._kiln_sites)
        )
        self.ledger: Ledger | None = None
        self.size = len(flow._kiln_sites)
        self.calls = self._calls(limits)
        # By site index, the subflows: compiled ones through an instance configured
        # as this flow, source ones (`kiln.subflow`) as they are.
        self.nested: dict[int, Flow] = {}
        self.source: dict[int, object] = {}
        for index, site in enumerate(flow._kiln_sites):
            if site.kind == "flow" and isinstance(site.fn, Flow):
                self.nested[index] = flow._kiln_nested(
                    site.fn, limits, self.gated, durable
                )
            elif site.kind == "flow":
                self.source[index] = subflow(site.fn)
        # Limits alone need nothing per run: those calls are bound once.
        self.per_run = self.observed or self.caches or self.gated
        self.static = None if self.per_run else self._calls_of(_Run(self))

    def _calls(self, limits: Mapping[str, Limit]) -> tuple[Wrapped, ...]:
        """The wrapped call of each site, made once per configuration of the class.

        A durable instance is made per run, and wrapping every site again
        would cost it more than its calls do. What a wrapper depends on is
        the key: the binder's switches, and by identity the backend and the
        limit groups' processors and the sites themselves, which the cache
        holds so that their ids stay theirs.
        """
        sites = self.kind._kiln_sites
        processors = tuple(
            limits[site.limit].processor if site.limit is not None else None
            for site in sites
        )
        held = (sites, self.backend, self.tracing, *processors)
        key = (self.durable, self.gated, self.caches, *map(id, held))
        configurations = _CALLS.setdefault(self.kind, {})
        found = configurations.get(key)
        if found is not None:
            return found[1]
        if self.durable:
            self._refuse_undurable()
        calls = tuple(
            (
                site.fn  # replaced by a subflow instance when bound (_calls_of)
                if site.kind == "flow"
                else self._wrapped(index, site, processors[index])
            )
            for index, site in enumerate(sites)
        )
        if len(configurations) >= _CONFIGURATIONS_KEPT:
            del configurations[next(iter(configurations))]
        configurations[key] = (held, calls)
        return calls

    def _refuse_undurable(self) -> None:
        """Refuse, before anything runs, a call a durable run could not journal or replay.

        One that may change what it is passed (a replay returns its value, not
        its changes), and one whose return annotation names a type the
        journal cannot store.
        """
        for site in self.kind._kiln_sites:
            problem = self.journaling.undurable(site)
            if problem is not None:
                from kiln.errors import DurableRunError  # noqa: PLC0415

                raise DurableRunError(problem)

    def _wrapped(self, index: int, site: Site, limit: _Gate | None) -> Wrapped:
        if site.kind == "ask":
            return self.journaling.question(index, site) if self.durable else _unasked
        wrapped = _WRAPPERS[site.kind](index, site, limit, self)
        streams = site.kind in ("stream", "astream")
        if self.durable and streams:
            from kiln.durable.streams import journaled_stream  # noqa: PLC0415

            wrapped = journaled_stream(index, site, wrapped)
        elif self.durable:
            wrapped = self.journaling.journaled(index, site, wrapped)
        if self.tracing is not None and not streams:
            wrapped = self.tracing.wrap(site, wrapped)
        return wrapped

    def open_ledger(self) -> Ledger:
        """The ledger of this flow's runs, opened on first use."""
        if self.ledger is None:
            # sqlite3 is imported by the first run that caches, not by `import kiln`.
            from kiln.ledger import Ledger  # noqa: PLC0415

            path = self.ledger_path
            self.ledger = Ledger.at(
                None if isinstance(path, bool) else path,
                default=_compiled_ledger(self.kind),
            )
        return self.ledger

    def bind(self, enclosing: _Run | None = None) -> tuple[object, ...]:
        if self.static is not None:
            return self.static
        if self.caches:
            self.open_ledger()
        return self._calls_of(_Run(self, enclosing))

    def _calls_of(self, run: _Run) -> tuple[object, ...]:
        """The wrapped calls bound to `run`: one C-level partial each, or a joined subflow."""
        calls = tuple(map(partial, self.calls, itertools.repeat(run)))
        if not (self.nested or self.source):
            return calls
        bound: list[object] = list(calls)
        for index, nested in self.nested.items():
            bound[index] = _joined(nested, run) if self.per_run else nested
        for index, source in self.source.items():
            bound[index] = source
        sites = self.kind._kiln_sites
        if self.durable:
            from kiln.durable import DurableSubflow  # noqa: PLC0415

            for index in (*self.nested, *self.source):
                bound[index] = DurableSubflow(bound[index], run, index, sites[index])
        if self.tracing is not None:
            for index in (*self.nested, *self.source):
                called = sites[index].fn
                # Named as a run of the subflow is: by its class, if it is compiled.
                name = (
                    type(called).__name__
                    if isinstance(called, Flow)
                    else sites[index].node
                )
                bound[index] = _Spanned(bound[index], self.tracing, name)
        return tuple(bound)


@final
class _Joining:
    """The binder of a subflow instance made for one run: its runs join that run."""

    __slots__ = ("binder", "run")

    def __init__(self, binder: _Binder, run: _Run) -> None:
        self.binder = binder
        self.run = run

    def bind(self) -> tuple[object, ...]:
        return self.binder.bind(self.run)


@final
class _Spanned:
    """A subflow as a traced run calls it: each call in a span ``flow NAME``."""

    __slots__ = ("_name", "_subflow", "_tracing")

    def __init__(self, subflow: Any, tracing: Tracing, name: str) -> None:
        self._subflow = subflow
        self._tracing = tracing
        self._name = name

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        with self._tracing.flow_span(self._name):
            return await self._subflow.aforward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self._tracing.flow_span(self._name):
            return self._subflow.forward(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # a streaming subflow's, unspanned
        return getattr(self._subflow, name)


def _observers(
    on_event: Callable[[NodeEvent], object] | None, tracing: Tracing | None
) -> Callable[[NodeEvent], object] | None:
    """What a run tells of each event: the flow's `on_event`, and its tracing."""
    if tracing is None:
        return on_event
    if on_event is None:
        return tracing.observe

    def both(event: NodeEvent) -> None:
        tracing.observe(event)
        on_event(event)

    return both


def fan_out_bound(call: object) -> int | None:
    """At most how many elements a fan-out of `call` (a run's bound call) runs at once.

    The lowest concurrency cap of the run and the runs it joins, or None
    (no cap: every element starts at once). Elements past the cap would only
    wait for it, each a task holding its arguments: `gather(bound=...)` keeps
    them from being made at all.
    """
    if isinstance(call, partial) and call.args and isinstance(call.args[0], _Run):
        return call.args[0].cap
    return None


def _compiled_ledger(kind: type[Flow]) -> Path | None:
    """The configured ledger a flow class was compiled with, beside its module."""
    relative = kind._kiln_ledger
    if relative is None:
        return None
    module = getattr(sys.modules.get(kind.__module__), "__file__", None)
    return Path(relative) if module is None else Path(module).parent / relative


def _joined(nested: Flow, run: _Run) -> Flow:
    """A copy of `nested` whose runs join `run`: what one run calls a subflow through."""
    binder = nested._kiln_binder
    assert isinstance(binder, _Binder)
    joined = copy.copy(nested)
    joined._kiln_binder = _Joining(binder, run)
    return joined


@final
class _Run:
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
        "notify",
        "number",
        "observed",
        "record",
        "uncacheable",
        "visit_lists",
        "visits",
    )

    def __init__(self, binder: _Binder, enclosing: _Run | None = None) -> None:
        self.notify = binder.notify
        self.record = binder.record
        self.observed = binder.observed
        self.ledger = binder.ledger
        self.uncacheable = binder.uncacheable
        own: tuple[_Gate, ...] = (
            (asyncio.Semaphore(binder.concurrency),)
            if binder.concurrency is not None
            else ()
        )
        # The lowest of the caps, for a fan-out to keep no more elements than that.
        self.cap = binder.concurrency
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
        self.caps = own + enclosing.caps
        if enclosing.cap is not None:
            self.cap = min(enclosing.cap, self.cap or enclosing.cap)
        self.id = enclosing.id or (
            uuid.uuid4().hex if binder.ledger is not None else ""
        )

    def gates(self, limit: _Gate | None) -> tuple[_Gate, ...]:
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
            if self.notify is not None:
                self.notify(event)

    def finished(
        self,
        event: NodeEvent | None,
        error: BaseException | None = None,
        *,
        hit: bool = False,
    ) -> None:
        if event is None:
            return
        event.ended = perf_counter()
        if hit:
            event.cache_hit = True
            event.started = event.ended
        if error is None:
            event.status = _COMPLETED
        elif isinstance(error, asyncio.CancelledError):
            event.status = EventStatus.CANCELLED
        else:
            event.status = EventStatus.FAILED
            event.error = error
        if self.notify is not None:
            self.notify(event)


# --- the wrapped calls, one builder per kind of node ------------------------------------
#
# A call that only needs observing is the hot path of an observed run: its
# wrapper is written out flat, without the attempts loop, the gates or the
# ledger, since every step of every observed run pays for it.


def _async_site(
    index: int, site: Site, limit: _Gate | None, binder: _Binder
) -> Wrapped:
    cached = binder.caches and site.cache is not None
    backend = None if site.local else binder.backend
    if (
        site.kind == "async"
        and site.policy is None
        and site.fallback is None
        and limit is None
        and not binder.gated
        and not cached
        and backend is None
    ):
        return _observed_async(index, site)
    fn, policy, fallback = site.fn, site.policy or _PLAIN, site.fallback
    thread = site.kind == "thread"
    timeout = policy.timeout

    def attempt(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        # The awaitable itself, not a coroutine awaiting it: one frame less per call.
        if backend is not None:
            return backend.run(site, args, kwargs)
        if thread:
            return _in_own_thread(partial(fn, *args, **kwargs))
        return cast(Awaitable[Any], fn(*args, **kwargs))

    async def attempts(
        run: _Run,
        event: NodeEvent | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        gates = run.gates(limit)
        tries = 0
        while True:
            tries += 1
            held = 0  # gates acquired: a cancellation while waiting frees those
            try:
                for gate in gates:
                    await gate.acquire()
                    held += 1
                run.started(event, tries)
                # Without a timeout, no Timeout: most calls have none, and a
                # fan-out of a million pays for each.
                deadline = None if timeout is None else asyncio.timeout(timeout)
                try:
                    if deadline is None:
                        return await attempt(args, kwargs)
                    async with deadline:
                        return await attempt(args, kwargs)
                except Exception as error:
                    # A node without a policy fails as it would uncompiled: no note.
                    expired = deadline is not None and deadline.expired()
                    if policy is _PLAIN or not _retry_or_note(
                        policy, error, tries, timed_out=expired
                    ):
                        raise
            finally:
                for gate in reversed(gates[:held]):
                    gate.release()
            await asyncio.sleep(policy.delay(tries))

    async def call(run: _Run, /, *args: Any, **kwargs: Any) -> Any:
        event = run.event(index, site)
        try:
            if cached and run.ledger is not None:
                value, hit = await run.ledger.call(
                    site.node,
                    site.cache or "",
                    fn,
                    args,
                    kwargs,
                    partial(attempts, run, event, args, kwargs),
                    classes=site.classes,
                    run=run.id,
                    uncacheable=run.uncacheable,
                )
            else:
                value, hit = await attempts(run, event, args, kwargs), False
        except Exception as error:
            run.finished(event, error)
            if fallback is None:
                raise
            return await fall_back(fallback, error, args, kwargs)
        except BaseException as error:
            run.finished(event, error)
            raise
        run.finished(event, hit=hit)
        return value

    return call


def _observed_async(index: int, site: Site) -> Wrapped:
    fn, node, where = site.fn, site.node, site.where

    async def call(run: _Run, /, *args: Any, **kwargs: Any) -> Any:
        visits = run.visits
        visits[index] += 1
        if not run.observed:
            return await fn(*args, **kwargs)
        event = NodeEvent(node, where, run.number, visits[index])
        record, notify = run.record, run.notify
        if record is not None:
            record(event)
        event.attempts = 1
        event.status = _PROCESSING
        event.started = perf_counter()
        if notify is not None:
            notify(event)
        try:
            value = await fn(*args, **kwargs)
        except BaseException as error:
            run.finished(event, error)
            raise
        event.ended = perf_counter()
        event.status = _COMPLETED
        if notify is not None:
            notify(event)
        return value

    return call


def _sync_site(index: int, site: Site, limit: _Gate | None, binder: _Binder) -> Wrapped:
    fn, policy, fallback = site.fn, site.policy or _PLAIN, site.fallback
    cached = binder.caches and site.cache is not None

    def attempts(
        run: _Run,
        event: NodeEvent | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        tries = 0
        while True:
            tries += 1
            run.started(event, tries)
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                if policy is _PLAIN or not _retry_or_note(
                    policy, error, tries, timed_out=False
                ):
                    raise
            time.sleep(policy.delay(tries))

    def call(run: _Run, /, *args: Any, **kwargs: Any) -> Any:
        event = run.event(index, site)
        try:
            if cached and run.ledger is not None:
                value, hit = run.ledger.call_sync(
                    site.node,
                    site.cache or "",
                    fn,
                    args,
                    kwargs,
                    partial(attempts, run, event, args, kwargs),
                    classes=site.classes,
                    run=run.id,
                    uncacheable=run.uncacheable,
                )
            else:
                value, hit = attempts(run, event, args, kwargs), False
        except Exception as error:
            run.finished(event, error)
            if fallback is None:
                raise
            return fallback(*args, error=error, **kwargs)
        except BaseException as error:
            run.finished(event, error)
            raise
        run.finished(event, hit=hit)
        return value

    return call


def _stream_site(
    index: int, site: Site, limit: _Gate | None, binder: _Binder
) -> Wrapped:
    """A stream node's call: its generator, reporting its event in an observed run."""
    fn = site.fn
    observed = ObservedAsyncStream if site.kind == "astream" else ObservedStream

    def call(run: _Run, /, *args: Any, **kwargs: Any) -> Any:
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


async def _unasked(run: _Run, /, *args: Any, **kwargs: Any) -> Any:
    """An `ask` site of a run without an id: `kiln.ask` says that it needs one."""
    return await ask(*args, **kwargs)


_WRAPPERS: dict[SiteKind, Callable[[int, Site, _Gate | None, _Binder], Wrapped]] = {
    "async": _async_site,
    "thread": _async_site,
    "sync": _sync_site,
    "stream": _stream_site,
    "astream": _stream_site,
}
