"""The wrapped calls of plain async nodes: the hot path of observed runs and capped fan-outs.

A plain async node has no retries, timeout, limit, cache or backend: its
call is `kiln.sites`' general async call and the attempts loop's single
attempt, written out flat, since every step of every such run pays for it.
`notified` serves a run observed by `on_event` alone, `observed` any other
run, `capped` a run under a concurrency cap.

`hook_failed` is what becomes of an error the run's `on_event` raises.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from kiln.cap import Cap
from kiln.events import IDS, WALL_CLOCK, EventStatus, NodeEvent
from kiln.notes import hook_note

if TYPE_CHECKING:
    from kiln.site_table import Site
    from kiln.sites import Run

__all__ = ["CAPPED", "Wrapped", "capped", "hook_failed", "notified", "observed"]

# Looked up once: an Enum member lookup costs more than a global, on every call.
_PROCESSING, _COMPLETED = EventStatus.PROCESSING, EventStatus.COMPLETED
_FAILED = EventStatus.FAILED
_new = object.__new__

# A site's wrapped call takes the run as its first argument; a run binds it as a
# method (`types.MethodType`), which costs less to make and to call than a
# `partial`, and far less than a closure: a chain binds every step per run.
Wrapped = Callable[..., Any]


def observed(index: int, site: Site) -> Wrapped:
    """The call of a plain async node (no retries, timeout, limit, cache or backend)
    in a run that nothing observes, or that an executor records (`notified`
    serves a run observed by `on_event` alone): `attempts`' single attempt."""
    fn = site.fn

    async def call(run: Run, /, *args: Any, **kwargs: Any) -> Any:
        event = run.event(index, site)
        if event is None:
            return await fn(*args, **kwargs)
        run.started(event, 1)
        try:
            value = await fn(*args, **kwargs)
        except BaseException as error:
            run.finished(event, error)
            raise
        run.finished(event)
        return value

    return call


def notified(index: int, site: Site) -> Wrapped:
    """`observed` in a run observed by `on_event` alone: the common case.

    No executor records the event, so nobody sees it PENDING: it is made
    started, and the run's observers hear of it twice, as it starts and ends.
    It serves a call without keywords (`Site.keywords`): a function that takes
    them makes a dict on every call.
    """
    fn, node, where = site.fn, site.node, site.where

    async def call(run: Run, /, *args: Any) -> Any:
        visits = run.visits
        visits[index] = visit = visits[index] + 1
        notify = run.notify
        assert notify is not None  # the binder chose this call for an on_event run
        # NodeEvent's fields set here, not by its __init__: on Python 3.11,
        # calling a class with an __init__ costs more than setting them does.
        event = _new(NodeEvent)
        event.id = next(IDS)
        event.started = started = perf_counter()
        event.created_at = started + WALL_CLOCK  # one clock read, not two
        event.status = _PROCESSING
        event.attempts = 1
        event.ended = event.response = event.error = None
        event.cache_hit = False
        event.node = node
        event.site = where
        event.run = run.number
        event.visit = visit
        # A `try` costs nothing until the hook raises (Python 3.11's exception table).
        try:
            notify(event)
        except Exception as error:
            hook_failed(error, event)
            raise
        try:
            value = await fn(*args)
        except BaseException as error:
            run.finished(event, error)
            raise
        event.ended = perf_counter()
        event.status = _COMPLETED
        try:
            notify(event)
        except Exception as error:
            hook_failed(error, event)
            raise
        return value

    return call


def hook_failed(error: Exception, event: NodeEvent) -> None:
    """The run's `on_event` raised `error` when told of `event`: the error is the hook's.

    It leaves the call as itself, with a note naming the hook and the event
    (and none blaming the node, `kiln.notes`); no retry repeats it and no
    fallback answers it (`Run.failed`). A call it stops as it starts ends
    FAILED with it, and the hook is not told of that end.
    """
    note = hook_note(event)
    if note not in getattr(error, "__notes__", ()):  # the same object raised again
        error.add_note(note)
    if event.status is _PROCESSING:
        event.ended = perf_counter()
        event.status = _FAILED
        event.error = error


# The calls that `capped` made, each with its node and site index.
CAPPED: weakref.WeakKeyDictionary[
    Wrapped, tuple[Callable[..., Awaitable[Any]], int]
] = weakref.WeakKeyDictionary()


def capped(index: int, site: Site) -> Wrapped:
    """`observed` in a run with a concurrency cap.

    Every element of a capped fan-out pays for this one: the caps are taken
    without a coroutine when they are free (`Cap.take`), and a run that
    nothing observes, with one cap, takes the shortest way.
    """
    fn, node, where = site.fn, site.node, site.where

    async def call(run: Run, /, *args: Any, **kwargs: Any) -> Any:
        visits = run.visits
        visits[index] += 1
        caps = run.caps
        if run.observed or len(caps) != 1:
            event = None
            if run.observed:
                event = NodeEvent(node, where, run.number, visits[index])
                if run.record is not None:
                    run.record(event)
            return await _admitted(run, caps, event, fn, args, kwargs)
        cap = caps[0]
        if not cap.take():
            await cap.acquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            cap.release()

    CAPPED[call] = (fn, index)
    return call


async def _admitted(
    run: Run,
    caps: tuple[Cap, ...],
    event: NodeEvent | None,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """A plain call past every cap, observed by `event`: `attempts`' single attempt."""
    held = 0
    try:
        try:
            for cap in caps:
                if not cap.take():
                    await cap.acquire()
                held += 1
            run.started(event, 1)
            value = await fn(*args, **kwargs)
        finally:
            while held:
                held -= 1
                caps[held].release()
    except BaseException as error:
        run.finished(event, error)
        raise
    run.finished(event)
    return value
