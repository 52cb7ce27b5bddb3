"""A bounded fan-out: a pool of at most so many workers, pulling from one iterator.

`kiln.gather` under a bound and `kiln.fan_out` under a run's cap run their
elements here, ordered as `kiln.run` orders an unbounded fan-out's: the
element with the lowest index wins, those after it are cancelled at once.
What bounds a fan-out of a run's call, and whether its workers may call the
node itself, is asked of the call here too (`fan_out_bound`, `capped_node`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from types import MethodType
from typing import Any, TypeVar

from kiln.cap import Cap
from kiln.plain_sites import CAPPED
from kiln.scope import Scope
from kiln.sites import Run

__all__ = ["bounded", "capped_node", "fan_out_bound"]

T = TypeVar("T")
R = TypeVar("R")


async def bounded(
    call: Callable[[T], Awaitable[R]],
    items: Iterator[T],
    results: list[Any],
    bound: int,
    cap: Cap | None = None,
) -> list[R]:
    """``call(item)`` for every item, at most `bound` at once, into `results`: a
    pool of workers.

    Each worker takes the next item and awaits its call in place, telling the
    scope the element's index first, so the scope weighs failures by index
    as it weighs tasks spawned per element, and a worker past a known failure
    stops before it takes another. Each worker starts the next as it starts,
    until there are `bound`, and a worker that finds the input read ends: so
    a fan-out of three under a cap of 100 makes at most five workers, and
    one whose elements never wait makes two. What a worker sets in its
    context (a durable run's place, by `kiln.run`) is the context of the item
    it takes next.

    With a `cap` (`fan_out`'s elements are each one call that the cap admits),
    each worker holds a slot of it from before it takes an element to after
    it has finished the last: between two elements a worker does not wait,
    so no one could have seen the slot free, unless someone already waits
    for it, to whom the worker hands it over.

    An element that raises CancelledError of its own (it awaited a future
    that someone cancelled) ends its worker, a cancelled task, which the
    scope does not count as a failure: the fan-out then raises
    CancelledError, as the sequential loop would, never a list with a hole.
    """
    # `results` has a slot per item taken, filled as its call finishes: a list, not
    # a dict, since a million results is what a bounded fan-out is for.
    exhausted = False
    # An element failed: the sequential loop reads nothing after it. Told to the
    # workers at once, since the scope learns of it only in a callback, after
    # the workers already scheduled have run.
    stopped = False
    workers = 1

    async def worker(scope: Scope) -> None:
        nonlocal exhausted, stopped, workers
        # Its own handle, told the index of each element before it is read,
        # which stops the worker there once an earlier element has failed.
        me = scope.child()
        me.at_step(len(results))
        if stopped or exhausted:
            return
        if workers < bound:  # the next worker, to take an element once this one waits
            workers += 1
            scope.spawn(worker(scope), step=len(results))
        held = False
        try:
            if not slots.take():
                await slots.acquire()
            held = True
            # Looked up once: every element pays for each lookup in the loop.
            append, waiting = results.append, slots.waiting
            # Before each item is read: whether an element failed, and the item's
            # index, which other workers may have moved on while this one waited
            # (`at_step`, written out: `stopped` is the check it would make).
            index = me.step = len(results)
            if stopped:
                return
            for item in items:
                append(None)
                results[index] = await call(item)
                if waiting:
                    held = False
                    slots.release()
                    await slots.acquire()
                    held = True
                if stopped:
                    return
                index = me.step = len(results)
        except BaseException:
            stopped = True
            raise
        finally:
            if held:
                slots.release()
        exhausted = True

    if bound < 1:
        raise ValueError(f"gather(bound=...) must be at least 1; got {bound}")
    # Without a cap, the pool's own: never short, as there are no more workers.
    slots = cap if cap is not None else Cap(bound)
    async with Scope(ordered=True) as scope:
        scope.spawn(worker(scope), step=0)
    # A worker ended early, and the scope has no failure to raise: an element
    # raised CancelledError of its own.
    if stopped or not exhausted:
        raise asyncio.CancelledError("kiln: an element of the fan-out was cancelled")
    return results


def capped_node(call: object) -> tuple[Callable[..., Awaitable[Any]], int, Run] | None:
    """The node, site index and run of `call`, if all it does is count a visit and
    pass the run's one cap: an async node without options, in an unobserved run.

    A fan-out of such calls (`kiln.fan_out`) calls the node itself, holding the
    cap for it, rather than each call passing the cap in a coroutine of its own.
    """
    if not (isinstance(call, MethodType) and isinstance(call.__self__, Run)):
        return None
    run = call.__self__
    found = CAPPED.get(call.__func__)
    if found is None or run.observed or len(run.caps) != 1:
        return None
    return (*found, run)


def fan_out_bound(call: object) -> int | None:
    """At most how many elements a fan-out of `call` (a run's bound call) runs at once.

    The lowest concurrency cap of the run and the runs it joins, or None
    (no cap: every element starts at once). Elements past the cap would only
    wait for it, each a task holding its arguments: `gather(of=call)` keeps
    them from being made at all.
    """
    if isinstance(call, MethodType) and isinstance(call.__self__, Run):
        return call.__self__.cap
    return None
