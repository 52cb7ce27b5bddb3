"""How a compiled flow calls its nodes: call sites, bound once per run.

Every node call a flow makes is a `Site`, listed once in the generated class::

    class Digest(_kiln.Flow, _kiln.AsyncProcess, _kiln.Process):
        _kiln_sites = (
            _kiln.site(load, "load", "digest.py:18", "digest.py:7", (3,), kind="sync"),
            _kiln.site(
                summarize,
                "summarize",
                "digest.py:19",
                "digest.py:12",
                (4,),
                policy=_KILN_POLICY_SUMMARIZE,
                limit="llm",
                cache="3f2a...",
            ),
        )
        _kiln_limits = {"llm": _kiln.Limit(8, refresh=1.0)}

        async def aforward(self, path: str) -> str:
            with self._kiln_bind(self._kiln_sites) as (load, summarize):
                paragraphs = load(path)
                ...

`site` makes the `Site` and is typed as the call it stands for (a thread
node's as a coroutine function, a subflow's as `subflow` gives it), so that
`_kiln_bind` hands each local its call's own type and mypy checks every call
of the body against the node's signature, and a `fallback` against what the
node returns.

`_kiln_bind` is the one check a run pays for: an instance that nothing
observes, limits or caches gets its class's plain calls (`plain_call`: the
node, with its retries and fallback), made once per class, and its calls are
the plain calls of hand-written asyncio. Otherwise each site is wrapped for
the run, in this order from the outside in:

    event (on_event, record) -> ledger (cache=True) -> attempts (retries, wait)
      -> admission (the limit group's Processor, the run's concurrency) -> timeout -> node

A cache hit takes no capacity; every attempt is admitted on its own, since a
retried request counts against a rate limit like the first; a timeout bounds
the attempt, not its wait for capacity.

`_kiln_bind` gives the calls as a `Bound`, whose `with` notes on a failure of
the body the call it left (`kiln.notes`).

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
from dataclasses import field
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Literal,
    Protocol,
    TypeVar,
    cast,
)

# What a compiled flow's body calls (`kiln.gather`, `kiln.fan_out`, `kiln.Scope`),
# loaded with the base class its module names first, not inside its first run.
import kiln.run
import kiln.scope  # noqa: F401

# What Flow's body uses, by the names it has always used: Binder, Joining,
# compiled_ledger (kiln.binding), Fielded (kiln.process).
from kiln.binding import Binder as _Binder
from kiln.binding import Joining as _Joining
from kiln.binding import compiled_ledger as _compiled_ledger
from kiln.errors import OptionError
from kiln.events import NodeEvent
from kiln.notes import Bound
from kiln.options import Limit, Rule, check_int, checked_limits
from kiln.process import Fielded as _Fielded
from kiln.processor import Executor
from kiln.site_table import Site, plain_call

if TYPE_CHECKING:
    from kiln.ledger import Ledger
    from kiln.otel import Tracing

__all__ = ["Backend", "Flow"]

C = TypeVar("C", bound=tuple[object, ...])  # a site table, typed as its calls
R = TypeVar("R")

# What a configured instance is given beside its flow's decorator options, checked
# as it is made, in the words of the options' table (`kiln.options`).
_INSTANCE_RULES: Final[Mapping[str, Rule]] = {
    "on_event": Rule("function", "callable", optional=True),
    "record": Rule("bool", "True or False"),
    "ledger": Rule(
        "ledger",
        "a path (a non-empty str or os.PathLike)",
        optional=True,
        hint=", None for the default ledger, or False for no caching",
    ),
}


def _is_async(function: object) -> bool:
    """Whether calling `function` makes a coroutine: an `async def`, or an object
    whose `__call__` is one (read from its code: `inspect` is no import of kiln's)."""
    if not callable(function):
        return False
    code = getattr(function, "__code__", None)
    if code is None:  # an object: its class's `__call__`
        code = getattr(type(function).__call__, "__code__", None)
    return bool(getattr(code, "co_flags", 0) & _CO_COROUTINE)


_CO_COROUTINE: Final = 0x80  # inspect.CO_COROUTINE


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

    # The generated class's table, each `Site` typed there as the call it binds
    # (`site`): declared `object` here, for mypy infers a site's type from the
    # declared type of the table before its arguments (`Any` would win).
    _kiln_sites: ClassVar[tuple[object, ...]] = ()
    # The same sites as the runtime reads them, and what they call in a run
    # that needs nothing more: made once per class.
    _kiln_table: ClassVar[tuple[Site, ...]] = ()
    _kiln_calls: ClassVar[tuple[Callable[..., Any], ...]] = ()
    _kiln_plain: ClassVar[Bound[tuple[Callable[..., Any], ...]]]
    _kiln_limits: ClassVar[Mapping[str, Limit]] = {}
    _kiln_concurrency: ClassVar[int | None] = None
    # Written as `def`, its body run in an event loop: its plain sync nodes run
    # with none, as the source's do (`kiln.sync_entry.loopless`).
    _kiln_written_sync: ClassVar[bool] = False
    # [tool.kiln] ledger, relative to the generated module's directory.
    _kiln_ledger: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table = tuple(site for site in cls._kiln_sites if isinstance(site, Site))
        if len(table) < len(cls._kiln_sites):
            raise TypeError(f"{cls.__name__}._kiln_sites must hold kiln.site(...) only")
        cls._kiln_table = table
        written_sync = cls._kiln_written_sync
        cls._kiln_calls = tuple(
            plain_call(site, written_sync=written_sync) for site in table
        )
        cls._kiln_plain = Bound(cls, table, cls._kiln_calls)

    def __post_init__(self) -> None:
        limits = self._kiln_groups()
        if self.limits is not None:
            given = checked_limits(self.limits)
            unknown = sorted(set(given) - set(limits))
            if unknown:
                declared = ", ".join(repr(g) for g in sorted(limits)) or "none"
                raise OptionError(
                    f"limits names groups this flow does not use: {', '.join(map(repr, unknown))}"
                    f" (its groups: {declared})"
                )
            limits.update(given)
        if self.concurrency is not None:
            check_int("concurrency", self.concurrency, minimum=1, hint="")
        concurrency = self.concurrency or self._kiln_concurrency
        for option, rule in _INSTANCE_RULES.items():
            rule.check(option, getattr(self, option))
        if _is_async(self.on_event):
            raise OptionError(
                "on_event must be a plain function: it is called as each event"
                " happens and what it returns is not awaited; to await, start a task"
                " from it (asyncio.get_running_loop().create_task(...))"
            )
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
            for site in self._kiln_table
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
        for site in cls._kiln_table:
            if site.kind == "flow" and isinstance(site.fn, Flow):
                groups.update(type(site.fn)._kiln_groups())
        # A flow's own declaration wins over its subflows'.
        groups.update(cls._kiln_limits)
        return groups

    def _kiln_bind(self, sites: C) -> Bound[C]:
        """What the run calls at each of its class's `sites`, in the types `site` gave them.

        The class's plain calls, unless the run needs more.
        """
        binder = self._kiln_binder
        if binder is None:
            return cast(Bound[C], self._kiln_plain)
        return cast(Bound[C], binder.bind())

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
            nested,
            groups,
            kind._kiln_concurrency,
            gated=gated,
            durable=durable,
            handed=bool(shared),
        )
        return nested
