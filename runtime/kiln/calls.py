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
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import aclosing, closing
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast, final

from kiln.errors import OptionError
from kiln.events import EventStatus, NodeEvent
from kiln.options import Limit, _check_int, _checked_limits
from kiln.process import _Fielded
from kiln.processor import Executor
from kiln.resilience import Policy, _in_own_thread, _retry_or_note

if TYPE_CHECKING:
    from kiln.ledger import Ledger

__all__ = ["Flow", "Site", "SiteKind"]

SiteKind = Literal["async", "sync", "thread", "stream", "astream"]
C = TypeVar("C", bound=tuple[Callable[..., Any], ...])
R = TypeVar("R")

_PLAIN = Policy("node")  # the attempts of a node without retries or timeout
_RUNS = itertools.count(1)


@final
@dataclass(frozen=True, slots=True)
class Site:
    """One node call in a flow's source, and what the decorators ask of it.

    `where` is the call's location (``"digest.py:19"``); `cache` is the
    fingerprint of the node's source that the compiler computed, present only
    for `cache=True` nodes, so an edited node misses the results of the old one.
    """

    node: str
    where: str
    fn: Callable[..., Any]
    kind: SiteKind = "async"
    policy: Policy | None = None
    limit: str | None = None
    cache: str | None = None


class Flow(_Fielded, kw_only=True):
    """The base of every compiled flow class: how its runs are limited, cached, observed.

    ``Digest(limits={"llm": Limit(4)}, on_event=print, record=True)`` builds a
    configured instance; the module-level instance uses the compiled defaults.

    - `limits` replaces compiled capacity groups by name. Runs share a group's
      capacity when they hold the same `Limit` object, whatever flow they run.
    - `concurrency` caps the node calls in flight in one run (compiled default:
      `@flow(concurrency=N)`).
    - `on_event` is called with a node call's `NodeEvent` when it is created,
      admitted and finished; `record=True` keeps every run's events in
      `executor`.
    - `ledger` is where `cache=True` nodes keep their results: a path, None for
      ``$KILN_LEDGER`` or ``.kiln/ledger.db``, False for no caching at all.
    - `uncacheable="run"` runs a call whose arguments or result cannot be stored
      without the cache, instead of failing.
    """

    limits: Mapping[str, Limit] | None = None
    concurrency: int | None = None
    on_event: Callable[[NodeEvent], object] | None = None
    record: bool = False
    ledger: str | os.PathLike[str] | bool | None = None
    uncacheable: Literal["raise", "run"] = "raise"
    executor: Executor | None = field(default=None, init=False, repr=False)
    _kiln_binder: _Binder | None = field(default=None, init=False, repr=False)

    _kiln_sites: ClassVar[tuple[Site, ...]] = ()
    _kiln_limits: ClassVar[Mapping[str, Limit]] = {}
    _kiln_concurrency: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        limits = dict(self._kiln_limits)
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
        concurrency = self.concurrency or self._kiln_concurrency
        if self.concurrency is not None:
            _check_int("concurrency", self.concurrency, minimum=1, hint="")
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
        needs = (
            self.on_event is not None
            or self.record
            or concurrency is not None
            or any(
                site.limit is not None or site.cache is not None
                for site in self._kiln_sites
            )
        )
        if needs:
            self._kiln_binder = _Binder(self, limits, concurrency)

    def _kiln_bind(self, calls: C) -> C:
        """What the run calls at each site: `calls` itself, unless the run needs more."""
        binder = self._kiln_binder
        if binder is None:
            return calls
        return cast(C, binder.bind())


class _Gate(Protocol):
    async def acquire(self) -> Any: ...
    def release(self) -> None: ...


@final
class _Binder:
    """Builds the wrapped calls of one flow instance's runs."""

    def __init__(
        self, flow: Flow, limits: Mapping[str, Limit], concurrency: int | None
    ) -> None:
        self.sites = flow._kiln_sites
        self.limits = limits
        self.concurrency = concurrency
        self.on_event = flow.on_event
        self.executor = flow.executor
        self.uncacheable = flow.uncacheable
        self.ledger_path = flow.ledger
        self.observed = flow.on_event is not None or flow.executor is not None
        caches = (
            any(site.cache is not None for site in self.sites)
            and flow.ledger is not False
        )
        # Limits alone need nothing per run: the wrapped calls are built once.
        self.static = (
            None
            if self.observed or caches or concurrency is not None
            else self._calls(_Run(self, caches=False))
        )
        self.caches = caches

    def bind(self) -> tuple[Callable[..., Any], ...]:
        if self.static is not None:
            return self.static
        return self._calls(_Run(self, caches=self.caches))

    def _calls(self, run: _Run) -> tuple[Callable[..., Any], ...]:
        return tuple(_WRAPPERS[site.kind](site, run) for site in self.sites)


@final
class _Run:
    """What the wrapped calls of one run share."""

    __slots__ = (
        "executor",
        "id",
        "ledger",
        "limits",
        "notify",
        "number",
        "running",
        "uncacheable",
    )

    def __init__(self, binder: _Binder, *, caches: bool) -> None:
        self.number = next(_RUNS)
        self.id = uuid.uuid4().hex if caches else ""
        self.limits = binder.limits
        self.running: asyncio.Semaphore | None = (
            asyncio.Semaphore(binder.concurrency)
            if binder.concurrency is not None
            else None
        )
        self.notify = binder.on_event
        self.executor = binder.executor
        self.ledger: Ledger | None = None
        if caches:
            # sqlite3 is imported by the first run that caches, not by `import kiln`.
            from kiln.ledger import Ledger  # noqa: PLC0415

            path = binder.ledger_path
            self.ledger = Ledger.at(None if path is None or path is True else path)
        self.uncacheable = binder.uncacheable

    def gates(self, site: Site) -> tuple[_Gate, ...]:
        gates: list[_Gate] = []
        if site.limit is not None:
            gates.append(self.limits[site.limit].processor)
        if self.running is not None:
            gates.append(self.running)
        return tuple(gates)

    def event(self, site: Site, visit: int) -> NodeEvent | None:
        if self.notify is None and self.executor is None:
            return None
        event = NodeEvent(site.node, site.where, self.number, visit)
        if self.executor is not None:
            self.executor.record(event)
        if self.notify is not None:
            self.notify(event)
        return event

    def started(self, event: NodeEvent | None, attempt: int) -> None:
        if event is None:
            return
        event.attempts = attempt
        if attempt == 1:
            event.status = EventStatus.PROCESSING
            event.started = time.perf_counter()
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
        event.ended = time.perf_counter()
        if hit:
            event.cache_hit = True
            event.started = event.started or event.ended
        if error is None:
            event.status = EventStatus.COMPLETED
        elif isinstance(error, asyncio.CancelledError):
            event.status = EventStatus.CANCELLED
        else:
            event.status = EventStatus.FAILED
            event.error = error
        if self.notify is not None:
            self.notify(event)


# --- the wrapped calls, one builder per kind of node ------------------------------------


def _async_site(site: Site, run: _Run) -> Callable[..., Awaitable[Any]]:
    visits = itertools.count(1)
    gates = run.gates(site)
    fn, policy, ledger = site.fn, site.policy or _PLAIN, run.ledger
    thread = site.kind == "thread"

    async def attempts(
        event: NodeEvent | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            for gate in gates:
                await gate.acquire()
            run.started(event, attempt)
            deadline = asyncio.timeout(policy.timeout)
            try:
                async with deadline:
                    if thread:
                        return await _in_own_thread(partial(fn, *args, **kwargs))
                    return await fn(*args, **kwargs)
            except Exception as error:
                if not _retry_or_note(
                    policy, error, attempt, timed_out=deadline.expired()
                ):
                    raise
            finally:
                for gate in reversed(gates):
                    gate.release()
            await asyncio.sleep(policy.delay(attempt))

    async def call(*args: Any, **kwargs: Any) -> Any:
        event = run.event(site, next(visits))
        try:
            if ledger is not None and site.cache is not None:
                value, hit = await ledger.call(
                    site.node,
                    site.cache,
                    fn,
                    args,
                    kwargs,
                    partial(attempts, event, args, kwargs),
                    run=run.id,
                    uncacheable=run.uncacheable,
                )
            else:
                value, hit = await attempts(event, args, kwargs), False
        except BaseException as error:
            run.finished(event, error)
            raise
        run.finished(event, hit=hit)
        return value

    return call


def _sync_site(site: Site, run: _Run) -> Callable[..., Any]:
    visits = itertools.count(1)
    fn, policy, ledger = site.fn, site.policy or _PLAIN, run.ledger

    def attempts(
        event: NodeEvent | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            run.started(event, attempt)
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                if not _retry_or_note(policy, error, attempt, timed_out=False):
                    raise
            time.sleep(policy.delay(attempt))

    def call(*args: Any, **kwargs: Any) -> Any:
        event = run.event(site, next(visits))
        try:
            if ledger is not None and site.cache is not None:
                value, hit = ledger.call_sync(
                    site.node,
                    site.cache,
                    fn,
                    args,
                    kwargs,
                    partial(attempts, event, args, kwargs),
                    run=run.id,
                    uncacheable=run.uncacheable,
                )
            else:
                value, hit = attempts(event, args, kwargs), False
        except BaseException as error:
            run.finished(event, error)
            raise
        run.finished(event, hit=hit)
        return value

    return call


def _stream_site(site: Site, run: _Run) -> Callable[..., Iterator[Any]]:
    """A stream's event spans its iteration: from the first item asked to the last."""
    visits = itertools.count(1)

    def call(*args: Any, **kwargs: Any) -> Iterator[Any]:
        event = run.event(site, next(visits))
        run.started(event, 1)
        try:
            with closing(site.fn(*args, **kwargs)) as items:
                yield from items
        except BaseException as error:
            run.finished(event, error)
            raise
        run.finished(event)

    return call


def _astream_site(site: Site, run: _Run) -> Callable[..., AsyncIterator[Any]]:
    visits = itertools.count(1)

    async def call(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        event = run.event(site, next(visits))
        run.started(event, 1)
        try:
            async with aclosing(site.fn(*args, **kwargs)) as items:
                async for item in items:
                    yield item
        except BaseException as error:
            run.finished(event, error)
            raise
        run.finished(event)

    return call


_WRAPPERS: dict[SiteKind, Callable[[Site, _Run], Callable[..., Any]]] = {
    "async": _async_site,
    "thread": _async_site,
    "sync": _sync_site,
    "stream": _stream_site,
    "astream": _astream_site,
}
