"""A compiled flow's site table: one `Site` per node call of its source.

`Site` is what the runtime needs to know of one call to limit, cache, journal,
observe and note it; `kiln.calls` binds a flow's table for each run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, final

from kiln.resilience import Policy

__all__ = ["Site", "SiteKind"]

SiteKind = Literal["async", "sync", "thread", "stream", "astream", "flow", "ask"]


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
