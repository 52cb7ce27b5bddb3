"""How a flow instance binds its sites: wrapped once per configuration, bound per run.

`Flow._kiln_bind` asks the instance's `Binder` for what a run calls at each
site. The binder wraps every site once (`kiln.sites`), keeps the wrapped calls
by configuration of the flow class (a durable instance is made per run), and
binds them to each run as a method of the run per site; limits alone need
nothing per run, so those calls are bound once.

A call of another flow of the module is a site too (``kind="flow"``, its `fn`
the subflow's instance), so that the subflow's calls belong to the run that
makes them: a configured instance binds, in place of the module's subflow, an
instance of the subflow's class that shares its hooks, ledger, backend and
capacity groups (`Flow._kiln_nested`), and whose runs join this run
(`Joining`: its number, its concurrency cap, one visit count per site however
often the subflow is called).
"""

from __future__ import annotations

import copy
import itertools
import sys
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import MethodType
from typing import TYPE_CHECKING, Any, Final, TypeGuard, final

from kiln.events import NodeEvent
from kiln.notes import Bound
from kiln.resilience import Gate
from kiln.sites import WRAPPERS, Run, Wrapped, unasked
from kiln.stale import check_sources
from kiln.subflows import subflow
from kiln.sync_entry import blocks_a_loop

if TYPE_CHECKING:
    from kiln.calls import Flow
    from kiln.ledger import Ledger
    from kiln.options import Limit
    from kiln.otel import Tracing
    from kiln.site_table import Site

__all__ = ["Binder", "Joining", "compiled", "compiled_ledger"]


# By flow class, its binders' wrapped calls by configuration (`Binder._calls`), the
# oldest dropped past a few: an instance made with new Limits each time makes new ones.
_CALLS: weakref.WeakKeyDictionary[
    type[Flow], dict[tuple[object, ...], tuple[tuple[object, ...], tuple[Wrapped, ...]]]
] = weakref.WeakKeyDictionary()
_CONFIGURATIONS_KEPT: Final = 8
_IDLE_KEPT: Final = 4


@final
class Binder:
    """The wrapped calls of one flow instance, built once, and the runs that bind them."""

    def __init__(
        self,
        flow: Flow,
        limits: Mapping[str, Limit],
        concurrency: int | None,
        *,
        gated: bool,
        durable: bool,
        handed: bool = False,
    ) -> None:
        self.kind = type(flow)
        # `limits` hold groups the calling flow handed down (`Flow._kiln_nested`):
        # a run entered where it blocks that flow's loop binds on its own (`bind`).
        self.handed = flow if handed else None
        self.apart: Binder | None = None
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
            and any(site.cache is not None for site in flow._kiln_table)
        )
        self.ledger: Ledger | None = None
        # Cached nodes run from their source files, checked before the first run
        # that caches (`kiln.stale`).
        self.unchecked = tuple(
            site for site in flow._kiln_table if site.file_sha256 is not None
        )
        self.size = len(flow._kiln_table)
        self.calls = self._calls(limits)
        # By site index, the subflows: compiled ones through an instance configured
        # as this flow, source ones (`kiln.subflow`) as they are.
        self.nested: dict[int, Flow] = {}
        self.source: dict[int, object] = {}
        for index, site in enumerate(flow._kiln_table):
            if site.kind == "flow" and compiled(site.fn):
                self.nested[index] = flow._kiln_nested(
                    site.fn, limits, self.gated, durable
                )
            elif site.kind == "flow":
                self.source[index] = subflow(site.fn)
        # Limits alone need nothing per run: those calls are bound once.
        self.per_run = self.observed or self.caches or self.gated
        self.static = None if self.per_run else self._bound(Run(self))
        # Runs whose bodies have left, kept with their calls for the next runs:
        # a method per site, made for every run, is a tenth of an observed run's cost.
        self.idle: list[tuple[Run, Bound[tuple[object, ...]]]] = []

    def _calls(self, limits: Mapping[str, Limit]) -> tuple[Wrapped, ...]:
        """The wrapped call of each site, made once per configuration of the class.

        A durable instance is made per run, and wrapping every site again
        would cost it more than its calls do. What a wrapper depends on is
        the key: the binder's switches, and by identity the backend and the
        limit groups' processors and the sites themselves, which the cache
        holds so that their ids stay theirs.
        """
        sites = self.kind._kiln_table
        processors = tuple(
            limits[site.limit].processor if site.limit is not None else None
            for site in sites
        )
        held = (sites, self.backend, self.tracing, *processors)
        observers = (self.observed, self.record is not None)
        key = (self.durable, self.gated, self.caches, observers, *map(id, held))
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
        for site in self.kind._kiln_table:
            problem = self.journaling.undurable(site)
            if problem is not None:
                from kiln.errors import DurableRunError  # noqa: PLC0415

                raise DurableRunError(problem)

    def _wrapped(self, index: int, site: Site, limit: Gate | None) -> Wrapped:
        if site.kind == "ask":
            return self.journaling.question(index, site) if self.durable else unasked
        wrapped = WRAPPERS[site.kind](index, site, limit, self)
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
                default=compiled_ledger(self.kind),
            )
        return self.ledger

    def bind(self, enclosing: Run | None = None) -> Bound[tuple[object, ...]]:
        """A run's calls: a new run's, or those of a run that has ended, begun again.

        A run of a subflow entered through its sync entry by code that runs
        in an event loop (``for v in items(x)`` of a sync streaming subflow
        in an async flow) runs on a loop and thread of its own while that
        loop waits for it: a `Limit` the calling flow handed down could wait
        for a slot one of its calls on the waiting loop holds, for ever. Such
        a run binds its class's own groups instead, as its concurrency cap is
        its own (`kiln.sites.Run`).
        """
        if blocks_a_loop() and self.handed is not None:
            return self._apart(self.handed).bind(enclosing)
        if self.static is not None:
            return self.static
        if self.caches:
            if self.unchecked:
                check_sources(self.kind, self.unchecked)
                self.unchecked = ()
            # The file is opened (made, or checked) before any node runs: a ledger
            # kiln cannot use fails the run as itself, not as a node's failure that
            # a fallback would answer. Once open, this is an attribute read.
            self.open_ledger().writer()
        try:
            # One pop, atomic under the GIL: two threads never take one run.
            run, bound = self.idle.pop()
        except IndexError:
            run = Run(self, enclosing)
            bound = self._bound(run)
            bound.release = partial(self._release, run, bound)
            return bound
        run.begin(self, enclosing)
        return bound

    def _apart(self, flow: Flow) -> Binder:
        """This subflow's binder on its class's own groups, made once."""
        if self.apart is None:
            own = copy.copy(flow)
            own.limits = None
            kind = self.kind
            self.apart = Binder(
                own,
                kind._kiln_groups(),
                kind._kiln_concurrency,
                gated=self.gated,
                durable=self.durable,
            )
        return self.apart

    def _release(self, run: Run, bound: Bound[tuple[object, ...]]) -> None:
        # A few are kept: as many as run at once, up to a fan-out of subflow calls.
        if len(self.idle) < _IDLE_KEPT:
            self.idle.append((run, bound))

    def _bound(self, run: Run) -> Bound[tuple[object, ...]]:
        return Bound(self.kind, self.kind._kiln_table, self._calls_of(run))

    def _calls_of(self, run: Run) -> tuple[object, ...]:
        """The wrapped calls bound to `run`: each a method of the run, or a joined subflow."""
        calls = tuple(map(MethodType, self.calls, itertools.repeat(run)))
        if not (self.nested or self.source):
            return calls
        bound: list[object] = list(calls)
        for index, nested in self.nested.items():
            bound[index] = _joined(nested, run) if self.per_run else nested
        for index, source in self.source.items():
            bound[index] = source
        sites = self.kind._kiln_table
        if self.durable:
            from kiln.durable import DurableSubflow  # noqa: PLC0415

            for index in (*self.nested, *self.source):
                bound[index] = DurableSubflow(bound[index], run, index, sites[index])
        if self.tracing is not None:
            for index in (*self.nested, *self.source):
                called = sites[index].fn
                # Named as a run of the subflow is: by its class, if it is compiled.
                name = type(called).__name__ if compiled(called) else sites[index].node
                bound[index] = _Spanned(bound[index], self.tracing, name)
        return tuple(bound)


@final
class Joining:
    """The binder of a subflow instance made for one run: its runs join that run."""

    __slots__ = ("binder", "run")

    def __init__(self, binder: Binder, run: Run) -> None:
        self.binder = binder
        self.run = run

    def bind(self) -> Bound[tuple[object, ...]]:
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


def compiled(called: object) -> TypeGuard[Flow]:
    """Whether a flow site calls a compiled flow (a `Flow` instance), not a source one.

    Told by the class attribute of every compiled flow class, as `kiln.durable`
    tells it: `kiln.calls` imports this module, which cannot import `Flow` back.
    """
    return hasattr(type(called), "_kiln_sites")


def compiled_ledger(kind: type[Flow]) -> Path | None:
    """The configured ledger a flow class was compiled with, beside its module."""
    relative = kind._kiln_ledger
    if relative is None:
        return None
    module = getattr(sys.modules.get(kind.__module__), "__file__", None)
    return Path(relative) if module is None else Path(module).parent / relative


def _joined(nested: Flow, run: Run) -> Flow:
    """A copy of `nested` whose runs join `run`: what one run calls a subflow through."""
    binder = nested._kiln_binder
    assert isinstance(binder, Binder)
    joined = copy.copy(nested)
    joined._kiln_binder = Joining(binder, run)
    return joined
