"""A compiled flow's site table: one `Site` per node call of its source.

`Site` is what the runtime needs to know of one call to limit, cache, journal,
observe and note it; the generated class lists its calls with `site`, which
makes each, and `kiln.calls` binds the table for each run. `plain_call` is
what a site calls in a run that needs nothing more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import (
    Any,
    Final,
    Literal,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    final,
    overload,
)

from kiln.fallbacks import falling_back, falling_back_sync
from kiln.resilience import Policy, in_thread, retrying, retrying_sync, waiting
from kiln.subflows import (
    SourceAsyncStream,
    SourceFlow,
    SourceStream,
    SourceValue,
    subflow,
)
from kiln.sync_entry import loopless

__all__ = ["Site", "SiteKind", "SiteOptions", "plain_call", "site"]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F")

SOURCE_FLOWS: Final = (SourceFlow, SourceAsyncStream, SourceStream, SourceValue)

SiteKind = Literal[
    "async", "sync", "thread", "waiting", "stream", "astream", "flow", "ask"
]


@final
@dataclass(frozen=True, slots=True)
class Site:
    """One node call in a flow's source, and what the decorators ask of it.

    `where` is the call's location (``"digest.py:19"``); `cache` is the
    fingerprint of the node's source that the compiler computed, present only
    for `cache=True` nodes, so an edited node misses the results of the old one;
    `classes` are the classes a stored result of the node may rebuild, those the
    compiler found in its return annotation (and in their fields' annotations).
    `file_sha256`, on a cached node that the module imports from its source
    rather than compile, is the sha256 of the file that defines it, as
    fingerprinted: a run that caches refuses to run the node from another
    version of that file (`kiln.stale`).
    `local` (``@node(local=True)``) keeps the node in the driver when a backend
    runs the others. `changes` says why the call may change what it is passed
    (an argument, a Memory key), as the compiler found it: a durable run,
    which replays a call's value and not its changes, refuses such a call;
    `changes_state` says the same of module state the call changes (what, and
    where the code changes it).
    `fallback` answers a call that failed, after its retries, as
    ``fallback(*args, error=exc, **kwargs)``: its value is the call's (and
    what a durable run journals), its failure the call's failure. A
    ``kind="flow"`` site calls a subflow: `node` is the flow's name and `fn`
    the flow as the module sees it, a compiled flow's instance, or the source
    function of a flow whose module was not compiled. `defined` is where the
    node or flow is defined, and `lines` the lines of the flow's body, counted
    from its ``def``, whose statements make the call: a failure leaving one
    of them gets a note naming the call (`kiln.notes`). `keywords` says that
    the call passes arguments by keyword: a wrapped call that takes positional
    arguments alone costs an observed run less (`kiln.plain_sites.notified`).
    """

    node: str
    where: str
    fn: Callable[..., Any]
    kind: SiteKind = "async"
    policy: Policy | None = None
    limit: str | None = None
    cache: str | None = None
    file_sha256: str | None = None
    classes: tuple[object, ...] = ()
    local: bool = False
    changes: str | None = None
    changes_state: str | None = None
    fallback: Callable[..., Any] | None = None
    defined: str = ""
    lines: tuple[int, ...] = ()
    keywords: bool = False


class SiteOptions(TypedDict, total=False):
    """What a site's node asks of its calls beyond its kind, policy and fallback."""

    limit: str | None
    cache: str | None
    file_sha256: str | None
    classes: tuple[object, ...]
    local: bool
    changes: str | None
    changes_state: str | None
    keywords: bool


# The factory's overloads give a site the type of what the body calls there:
# a thread node's call is a coroutine function, as is a sync node's whose
# retries wait (kind "waiting"); a fallback must answer with
# what the node returns (awaited, if it is async); any other site's call has
# its function's own type (a subflow's as `subflow` gives it: the generated
# module passes an imported flow through `subflow`). A generic node's site
# stays generic only where `R` is in no other parameter: mypy infers a
# generic result of `fn` alone, so a thread node without a fallback has an
# overload of its own.
# A generic node with a fallback has a site typed with Any: mypy solves `R`
# from `fn` and `fallback` together.
@overload
def site(
    fn: Callable[P, R],
    node: str,
    where: str,
    defined: str = "",
    lines: tuple[int, ...] = (),
    *,
    kind: Literal["thread", "waiting"],
    policy: Policy,
    fallback: None = None,
    **options: Unpack[SiteOptions],
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def site(
    fn: Callable[P, R],
    node: str,
    where: str,
    defined: str = "",
    lines: tuple[int, ...] = (),
    *,
    kind: Literal["thread", "waiting"],
    policy: Policy,
    fallback: Callable[..., R | Awaitable[R]],
    **options: Unpack[SiteOptions],
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def site(
    fn: Callable[P, Awaitable[R]],
    node: str,
    where: str,
    defined: str = "",
    lines: tuple[int, ...] = (),
    *,
    kind: Literal["async"] = "async",
    policy: Policy | None = None,
    fallback: Callable[..., R | Awaitable[R]],
    **options: Unpack[SiteOptions],
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def site(
    fn: Callable[P, R],
    node: str,
    where: str,
    defined: str = "",
    lines: tuple[int, ...] = (),
    *,
    kind: Literal["sync"],
    policy: Policy | None = None,
    fallback: Callable[..., R],
    **options: Unpack[SiteOptions],
) -> Callable[P, R]: ...


@overload
def site(
    fn: F,
    node: str,
    where: str,
    defined: str = "",
    lines: tuple[int, ...] = (),
    *,
    kind: Literal["async", "sync", "stream", "astream", "flow", "ask"] = "async",
    policy: Policy | None = None,
    fallback: None = None,
    **options: Unpack[SiteOptions],
) -> F: ...


def site(
    fn: Any,
    node: str,
    where: str,
    defined: str = "",
    lines: tuple[int, ...] = (),
    *,
    kind: SiteKind = "async",
    policy: Policy | None = None,
    fallback: Callable[..., Any] | None = None,
    **options: Unpack[SiteOptions],
) -> Any:
    """The `Site` of one call of a flow's source, typed as the call it stands for.

    A compiled flow's `_kiln_sites` is a tuple of these; `Flow._kiln_bind`
    returns it as the calls of the run, each in the type its site has here.
    An imported flow comes as `subflow(flow)`, and its site keeps the flow
    itself, as the binder adapts it.
    """
    if kind == "flow" and isinstance(fn, SOURCE_FLOWS):
        fn = fn.function
    return Site(
        node,
        where,
        fn,
        kind,
        policy,
        fallback=fallback,
        defined=defined,
        lines=lines,
        **options,
    )


def plain_call(site: Site, *, written_sync: bool = False) -> Callable[..., Any]:
    """What `site` calls in a run that nothing observes, limits or caches.

    The node with its policy's retries and timeout (in a worker thread for
    a thread node) and its fallback, as a hand-written call would be; a
    subflow as `subflow` adapts it. `written_sync` says that the site is in
    a flow written as `def` whose compiled body runs in an event loop: a
    plain sync node's attempts run with none (`loopless`), as in the source.
    """
    if site.kind == "flow":
        return cast("Callable[..., Any]", subflow(site.fn))
    fn = site.fn
    if written_sync and site.kind == "waiting":
        fn = loopless(fn)
    if site.policy is not None:
        if site.kind == "thread":
            fn = in_thread(site.policy, fn)
        elif site.kind == "waiting":
            fn = waiting(site.policy, fn)
        elif site.kind == "async":
            fn = retrying(site.policy, fn)
        else:
            fn = retrying_sync(site.policy, fn)
    if site.fallback is not None:
        if site.kind == "sync":
            fn = falling_back_sync(fn, site.fallback, site.node)
        else:
            fn = falling_back(fn, site.fallback, site.node)
    if written_sync and site.kind == "sync":
        fn = loopless(fn)
    return fn
