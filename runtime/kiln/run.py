"""The fan-outs of generated code, on an ordered `Scope`.

`gather` and `amap` run a fan-out's elements concurrently and fail as the
sequential loop would have failed: the element with the lowest index wins
(`kiln.scope` says how), the elements after it are cancelled at once, those
before it awaited; when the call returns or raises, nothing it started is
still running. `keyed` and `indexed` shape the elements of dict fan-outs and
of those whose elements are made from their index.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
)
from contextvars import copy_context
from functools import partial
from inspect import isawaitable
from types import CoroutineType
from typing import Any, Final, Generic, TypeVar, final

from kiln.eager import Started
from kiln.pool import bounded, capped_node, fan_out_bound
from kiln.scope import Child, Scope

__all__ = [
    "PLACE",
    "amap",
    "close_after_failure",
    "fan_out",
    "gather",
    "indexed",
    "keyed",
]

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")
V = TypeVar("V")

# The step of an iteration's failure in an unbounded fan-out: after every element read.
_AFTER_EVERY_ELEMENT: Final = sys.maxsize

# A durable run's place (durable.py): set in its context, None in every other
# run. A fan-out in a durable run gives each element a place of its own, the
# fan-out's place and the element's index, so the calls an element makes are
# named by it however the elements interleave.
PLACE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kiln_place", default=None
)


async def gather(
    aws: Iterable[Awaitable[T]], *, of: object = None, bound: int | None = None
) -> list[T]:
    """Await every awaitable concurrently; return their results in input order.

    Elements start in order, each in the caller's task until it first waits
    (`kiln.eager`): one that never waits is never a task, and one that fails
    before it waits stops the fan-out before the next item is read, as the
    sequential loop would. The first that waits goes on in the caller's task
    while the rest start at once as tasks, in an ordered scope: when elements
    fail, the one with the lowest index is raised as itself; the elements
    after it are cancelled at once, those before it awaited. If iterating
    `aws` raises, the elements it produced before run all the same and an
    earlier failure among them wins over the iteration's error. The elements
    that finish before one waits share a copy of the caller's context, as the
    sequential loop shares the caller's; an element started as a task has a
    context of its own, as every task has.

    With a `bound`, at most that many run at once, each in one of as many
    worker tasks, and `aws` is read only as a worker comes free: a fan-out of
    a million items under a cap of 100 holds 100 elements, not a million
    tasks waiting for the cap. Failures are ordered the same way, and after
    one, nothing more is read. A compiled flow gives, as `of`, the run's call
    its elements make, and the run's cap is the bound (`fan_out_bound`).
    """
    if bound is None:
        bound = fan_out_bound(of)
    items = iter(aws)
    try:
        return await _concurrently(_awaited, items, bound)
    except BaseException:
        _leave_unread(items)
        raise


async def fan_out(call: Callable[[T], Awaitable[R]], items: Iterable[T]) -> list[R]:
    """``gather(call(item) for item in items)``, bounded as ``of=call``: a fan-out whose
    every element is one call of a run's node with its item.

    What each element is lets it go the shortest way: each is awaited as
    `call(item)`, with no generator making it; and when the call only counts
    a visit and passes the run's cap (`kiln.pool.capped_node`), the pool's
    workers call the node itself and hold the cap for it, a slot each, where
    every element would otherwise be a coroutine that takes and returns a
    slot around the node's.
    """
    plain = capped_node(call)
    if plain is None or PLACE.get() is not None:
        return await _concurrently(call, iter(items), fan_out_bound(call))
    node, index, run = plain
    assert run.cap is not None, "a capped call's run has a cap"
    results: list[R] = []
    try:
        return await bounded(node, iter(items), results, run.cap, run.caps[0])
    finally:
        run.visits[index] += len(results)  # a visit per call made, as each counts one


async def _concurrently(
    call: Callable[[T], Awaitable[R]], items: Iterator[T], bound: int | None
) -> list[R]:
    """``call(item)`` for every item, at once or at most `bound` at a time."""
    place = PLACE.get()
    if bound is not None:
        placed = items if place is None else _placed(items, place)
        return await bounded(call, placed, [], bound)
    results: list[R] = []
    waited = False  # an element waited: `inline` stops after it

    async def inline() -> None:
        # Each element awaited, not sent its first step: a coroutine that
        # returns costs `send` a StopIteration, and `await` nothing.
        for item in items:
            if place is not None:
                PLACE.set(f"{place}[{len(results)}]")
            results.append(await call(item))
            if waited:
                return

    started = inline()
    context = copy_context()
    try:
        waiting = context.run(started.send, None)
    except StopIteration:
        return results
    waited = True
    first = Started(started, waiting, context)
    # `first` appends the waiting element's result as `_rest` awaits it.
    rest = await _rest(first, len(results), map(call, items), place)
    return [*results, *rest]


async def _rest(
    first: Started[None], index: int, items: Iterator[Awaitable[T]], place: str | None
) -> list[T]:
    """The fan-out from its first element that waits, at `index`, on: the caller's
    task goes on with `first`, which finishes that element, and the items after it
    start as tasks, whose results this returns."""
    tail: list[Awaitable[T]] = []
    async with Scope(ordered=True) as scope:
        scope.at_step(index)
        try:
            with scope.ahead(_AFTER_EVERY_ELEMENT):
                tail.extend(items)
        except BaseException:  # an interrupt: nothing will wait for `first`
            first.abandon()
            raise
        finally:
            children = _spawn_all(scope, tail, place, index + 1)
        await first
    return [child.result() for child in children]


def _awaited(aw: Awaitable[T]) -> Awaitable[T]:
    """`gather`'s element, awaited as it is: the call of a fan-out of awaitables."""
    if type(aw) is not CoroutineType and not isawaitable(aw):
        raise TypeError(f"gather() needs awaitables; got {aw!r}")
    return aw


async def amap(
    items: AsyncIterable[T],
    each: Callable[[T], Awaitable[R]],
    *,
    of: object = None,
    bound: int | None = None,
) -> list[R]:
    """Start ``each(item)`` for every item as it arrives; results in arrival order.

    Pipelined: the work on an item starts while the next item is still being
    produced. Failures are ordered as in `gather`: an element's wins over the
    failures of later elements and of the iterator after it; an iterator that
    fails waits for the work on the items it produced. On any failure pending
    work is cancelled and the iterator closed (an error it raises as it closes
    is reported to the event loop, not raised over the failure). With a
    `bound`, the next item is read only when fewer than that many run; by
    default, the cap of the run whose call is `of`, else `each` (as `gather`).
    """
    if bound is None:
        bound = fan_out_bound(each if of is None else of)
    iterator = aiter(items)
    results: dict[int, R] = {}
    slots = asyncio.Semaphore(bound) if bound is not None else None
    place = PLACE.get()

    def finished(index: int, task: asyncio.Task[R]) -> None:
        # A callback, not a coroutine around the work: the scope closes a
        # child it spawns past a known failure, and the work with it.
        if slots is not None:
            slots.release()
        if not task.cancelled() and task.exception() is None:
            results[index] = task.result()

    try:
        async with Scope(ordered=True) as scope:
            index = 0
            if slots is not None:
                await slots.acquire()  # the slot of the item read next
            async for item in iterator:
                context = None
                if place is not None:
                    context = contextvars.copy_context()
                    context.run(PLACE.set, f"{place}[{index}]")
                child = scope.spawn(each(item), context=context, traced=False)
                child.task.add_done_callback(partial(finished, index))
                index += 1
                if slots is not None:
                    await slots.acquire()
    except BaseException:
        await close_after_failure(iterator)
        raise
    return [results[index] for index in range(len(results))]


def _placed(items: Iterator[T], place: str) -> Iterator[T]:
    """The items of a bounded fan-out in a durable run, each given its place in the
    context of the worker that takes it, as it takes it."""
    for index, item in enumerate(items):
        PLACE.set(f"{place}[{index}]")
        yield item


def indexed(items: Iterable[T]) -> tuple[list[T], Iterator[int]]:
    """A list of the items, filled as the index iterator is drawn, and that iterator.

    For a fan-out whose element is a function of its item's index: the next
    item is made only when the next index is asked for, so the `for`/`if`
    clauses run between the elements, as the source runs them, and an error
    in them comes after the elements before it (`gather` weighs it so).
    """
    seen: list[T] = []

    def indexes() -> Iterator[int]:
        for item in items:
            seen.append(item)
            yield len(seen) - 1

    return seen, indexes()


def keyed(key: K, work: Awaitable[V]) -> Awaitable[tuple[K, V]]:
    """Pair the result of `work` with `key`, for dict fan-outs.

    ``dict(await gather(keyed(k, fetch(k)) for k in keys))`` builds a dict
    concurrently. Not a coroutine function: if `gather` has to drop it unstarted,
    closing it closes `work` too, so Python never warns that it was not awaited.
    """
    return _Keyed(key, work)


@final
class _Keyed(Generic[K, V]):
    __slots__ = ("_key", "_work")

    def __init__(self, key: K, work: Awaitable[V]) -> None:
        self._key = key
        self._work = work

    def __await__(self) -> Generator[Any, None, tuple[K, V]]:
        value = yield from self._work.__await__()
        return self._key, value

    def close(self) -> None:
        _discard([self._work])


def _leave_unread(items: Iterator[Awaitable[Any]]) -> None:
    """Close what a fan-out that failed will not read: a generator (its `finally`
    runs now, as it would have at its end), or the awaitables left in a list."""
    if isinstance(items, Generator):
        items.close()
    elif type(items) in _SEQUENCE_ITERATORS:
        _discard(items)


_SEQUENCE_ITERATORS: Final[tuple[type, ...]] = (type(iter([])), type(iter(())))


def _discard(items: Iterable[Awaitable[Any]]) -> None:
    """Close coroutines and cancel futures that will never be awaited."""
    for aw in items:
        if isinstance(aw, asyncio.Future):
            aw.cancel()
        elif isinstance(aw, Coroutine | _Keyed):
            aw.close()


def _spawn_all(
    scope: Scope, items: list[Awaitable[T]], place: str | None, first: int
) -> list[Child[T]]:
    """A child task per item, the first at step `first`; in a durable run (a
    `place`), each in its element's place."""
    children: list[Child[T]] = []
    try:
        for index, aw in enumerate(items, first):
            context = None
            if place is not None:
                context = contextvars.copy_context()
                context.run(PLACE.set, f"{place}[{index}]")
            children.append(scope.spawn(aw, step=index, context=context, traced=False))
    except BaseException:
        _discard(items[len(children) :])
        raise
    return children


async def close_after_failure(stream: object) -> None:
    """Close `stream` if it can be; an error it raises is reported to the loop.

    The failure in flight is what the caller must see; a stream failing to
    clean up is reported the way asyncio reports one finalized by the loop.
    """
    aclose = getattr(stream, "aclose", None)
    if not callable(aclose):
        return
    try:
        await aclose()
    except Exception as error:  # a cancellation of the caller still propagates
        asyncio.get_running_loop().call_exception_handler(
            {
                "message": f"kiln: closing {stream!r} after a failure raised",
                "exception": error,
            }
        )
