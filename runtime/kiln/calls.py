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

import copy
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MethodType
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    Protocol,
    TypeVar,
    cast,
    final,
)

# What Flow's body uses, by the names it has always used: Binder, Joining,
# compiled_ledger (kiln.binding), Fielded (kiln.process), Run (kiln.sites).
from kiln.binding import Binder as _Binder
from kiln.binding import Joining as _Joining
from kiln.binding import compiled_ledger as _compiled_ledger
from kiln.errors import OptionError
from kiln.events import NodeEvent
from kiln.notes import failure_note
from kiln.options import Limit, _check_int, _checked_limits
from kiln.process import Fielded as _Fielded
from kiln.processor import Executor
from kiln.resilience import Policy
from kiln.sites import Run as _Run

if TYPE_CHECKING:
    from kiln.ledger import Ledger
    from kiln.otel import Tracing

__all__ = ["Backend", "Flow", "Site", "SiteKind", "fan_out_bound"]

SiteKind = Literal["async", "sync", "thread", "stream", "astream", "flow", "ask"]
C = TypeVar("C", bound=tuple[object, ...])  # nodes' calls, and subflows
R = TypeVar("R")


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
    function of a flow whose module was not compiled. `defined` is where the
    node or flow is defined, and `lines` the lines of the flow's body, counted
    from its ``def``, whose statements make the call: a failure leaving one
    of them gets a note naming the call (`kiln.notes`).
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
    defined: str = ""
    lines: tuple[int, ...] = ()


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

    def _kiln_note(self, error: BaseException) -> None:
        """Note on `error`, leaving this flow's body, the call of its source that failed."""
        note = failure_note(type(self), self._kiln_sites, error.__traceback__)
        if note is not None:
            error.add_note(note)

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


def fan_out_bound(call: object) -> int | None:
    """At most how many elements a fan-out of `call` (a run's bound call) runs at once.

    The lowest concurrency cap of the run and the runs it joins, or None
    (no cap: every element starts at once). Elements past the cap would only
    wait for it, each a task holding its arguments: `gather(bound=...)` keeps
    them from being made at all.
    """
    if isinstance(call, MethodType) and isinstance(call.__self__, _Run):
        return call.__self__.cap
    return None
