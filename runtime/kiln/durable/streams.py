"""Streams in a durable run: stream nodes' items journaled, streaming subflows placed.

A stream node's call at key ``K`` journals item ``n`` at ``K#n`` before the
flow gets it, and its end at ``K`` (the count of items). A replay gives the
journaled items without running the node. A stream the run stopped inside
runs again from its start (a generator cannot be resumed in another
process), its items up to where the flow had got checked against the
journaled ones: anything else is refused, since the flow went on from those.

A streaming subflow's items are not journaled (they come again from its
calls, which are): its code runs, step by step, in the place of the
subflow call (`Placed`), so its calls are keyed under it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Self, final

from kiln.durable.entry import aclose_stream, close_stream
from kiln.durable.replay import digest, journal_of
from kiln.errors import DurableRunError, runs_command
from kiln.ledger.keys import Shape, shape_of
from kiln.run import PLACE

if TYPE_CHECKING:
    from kiln.durable.journal import Entry
    from kiln.durable.replay import Journal
    from kiln.site_table import Site
    from kiln.sites import Run

__all__ = [
    "JournaledAsyncStream",
    "JournaledStream",
    "Placed",
    "PlacedAsync",
    "journaled_stream",
]

# What a stream gives where it has no more items.
_ENDED: Final = object()
# What the journal gives for an item it lacks: the node must make it.
_LIVE: Final = object()


def journaled_stream(
    index: int, site: Site, inner: Callable[..., Any]
) -> Callable[..., Any]:
    """`inner`, a stream site's wrapped call, its items journaled one by one or replayed.

    Item ``n`` of the call at key ``K`` is journaled at ``K#n`` before the
    flow gets it, and the count of items at ``K`` once the stream is
    exhausted. A replay gives the journaled items without running the node;
    a stream that stopped part way (its run failed, or was killed) runs again
    from its start for the items the journal lacks, its first items checked
    against those journaled (a node that yields others is refused: the flow
    went on from the first ones).
    """
    shape = shape_of(site.fn, site.classes, items=True)

    def call(run: Run, /, *args: Any, **kwargs: Any) -> Any:
        journal = journal_of(run)
        key = journal.key(index)
        items = _Items(
            journal, site, key, digest(shape, journal.home, args, kwargs), shape
        )
        if items.count is not None:
            run.replay(index, site)
        start = partial(inner, run, *args, **kwargs)
        if site.kind == "astream":
            return JournaledAsyncStream(items, start)
        return JournaledStream(items, start)

    return call


@final
class _Items:
    """The journal of one stream call: its items so far, its count once it ended."""

    __slots__ = ("count", "digest", "given", "journal", "key", "node", "shape")

    def __init__(
        self, journal: Journal, site: Site, key: str, checked: str, shape: Shape
    ) -> None:
        self.journal = journal
        self.node = site.node
        self.key = key
        self.digest = checked
        self.shape = shape
        self.given = 0  # items the flow got
        ended = self.entry(key)
        self.count = None if ended is None else int(ended.text)

    def entry(self, key: str) -> Entry | None:
        return self.journal.entry(key, self.node, self.digest)

    def replayed(self) -> Any:
        """The next item from the journal; `_LIVE` if it must come from the node, and
        `_ENDED` if the stream ended there."""
        entry = self.entry(f"{self.key}#{self.given}")
        if entry is not None:
            self.given += 1
            return self.journal.value(entry, self.shape)
        if self.count is not None and self.given >= self.count:
            return _ENDED
        return _LIVE

    def text(self, value: object) -> str:
        return self.journal.text(self.node, self.shape, value)

    def row(self, value: object = _ENDED) -> tuple[str, str, str, str, str]:
        """The journal row of the next item, `value` (a `Ledger.record`'s arguments);
        of the stream's end, its count of items, when `value` is `_ENDED`."""
        if value is _ENDED:
            return self.journal.run, self.key, self.node, self.digest, str(self.given)
        text = self.text(value)
        key = f"{self.key}#{self.given}"
        self.given += 1
        return self.journal.run, key, self.node, self.digest, text

    def again(self, position: int, value: object = _ENDED) -> None:
        """Check item `position` of the node run again against the one journaled.

        `_ENDED`: the stream ended there. Either way, anything but the journaled
        item is refused: the flow went on from that one.
        """
        entry = self.entry(f"{self.key}#{position}")
        assert entry is not None, "the items the flow had are journaled"
        if value is not _ENDED and self.text(value) == entry.text:
            return
        what = "ended before" if value is _ENDED else "yielded another"
        forget = f"forget {self.journal.run} --from {self.key}#0"
        raise DurableRunError(
            f"stream node {self.node!r}, run again to resume run {self.journal.run!r}, "
            f"{what} item {position} than the one journaled at {self.key}#{position}, "
            "from which the flow went on. Forget the run from the stream on with "
            f"`{runs_command(self.journal.ledger.path, forget)}`, or start a new run id",
            run=self.journal.run,
        )


@final
class JournaledStream:
    """A sync stream node's call in a durable run: its items replayed or journaled."""

    __slots__ = ("_items", "_live", "_start")

    def __init__(self, items: _Items, start: Callable[[], Any]) -> None:
        self._items = items
        self._start = start
        self._live: Iterator[Any] | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        items = self._items
        value = items.replayed()
        if value is _ENDED:
            raise StopIteration
        if value is not _LIVE:
            return value
        live = self._live
        if live is None:
            live = self._live = iter(self._start())
            for position in range(items.given):  # those the flow had, run again
                items.again(position, next(live, _ENDED))
        value = next(live, _ENDED)
        items.journal.ledger.record_sync(*items.row(value))
        if value is _ENDED:
            raise StopIteration
        return value

    def close(self) -> None:
        close_stream(self._live)


@final
class JournaledAsyncStream:
    """An async stream node's call in a durable run: its items replayed or journaled."""

    __slots__ = ("_items", "_live", "_start")

    def __init__(self, items: _Items, start: Callable[[], Any]) -> None:
        self._items = items
        self._start = start
        self._live: AsyncIterator[Any] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        items = self._items
        value = items.replayed()
        if value is _ENDED:
            raise StopAsyncIteration
        if value is not _LIVE:
            return value
        live = self._live
        if live is None:
            live = self._live = aiter(self._start())
            for position in range(items.given):  # those the flow had, run again
                items.again(position, await anext(live, _ENDED))
        value = await anext(live, _ENDED)
        await items.journal.ledger.record(*items.row(value))
        if value is _ENDED:
            raise StopAsyncIteration
        return value

    async def aclose(self) -> None:
        await aclose_stream(self._live)


@final
class Placed:
    """A sync stream whose code runs in `place` (each step of it: it runs as it is iterated)."""

    __slots__ = ("_place", "_stream")

    def __init__(self, stream: Iterator[Any], place: str) -> None:
        self._stream = stream
        self._place = place

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        token = PLACE.set(self._place)
        try:
            return next(self._stream)
        finally:
            PLACE.reset(token)

    def close(self) -> None:
        token = PLACE.set(self._place)
        try:
            close_stream(self._stream)
        finally:
            PLACE.reset(token)


@final
class PlacedAsync:
    """An async stream whose code runs in `place`, step by step."""

    __slots__ = ("_place", "_stream")

    def __init__(self, stream: AsyncIterator[Any], place: str) -> None:
        self._stream = stream
        self._place = place

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        token = PLACE.set(self._place)
        try:
            return await anext(self._stream)
        finally:
            PLACE.reset(token)

    async def aclose(self) -> None:
        token = PLACE.set(self._place)
        try:
            await aclose_stream(self._stream)
        finally:
            PLACE.reset(token)
