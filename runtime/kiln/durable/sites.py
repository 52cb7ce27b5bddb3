"""The wrapped calls of a durable run: each answered from the journal, or journaled.

`kiln.binding` wraps a durable instance's sites once more: a node call with
`journaled`, a question with `question`, a subflow with `DurableSubflow`
(one call of the run, its own calls keyed under it), a stream node with
`kiln.durable.streams`. Before any of it runs, `undurable` refuses a site
whose calls a durable run could not journal or replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, final

from kiln.durable.journal import Entry
from kiln.durable.replay import Journal, classes_in, journal_of
from kiln.errors import DurableRunError, Suspended
from kiln.ledger.codec import STORED_TYPES, Undecodable
from kiln.ledger.decoding import Allowed, decode
from kiln.ledger.keys import Shape, shape_of
from kiln.ledger.types import checker, describe, unstorable
from kiln.run import PLACE

if TYPE_CHECKING:
    from kiln.site_table import Site
    from kiln.sites import Run

__all__ = ["DurableSubflow", "journaled", "question", "streaming", "undurable"]


def undurable(site: Site) -> str | None:
    """Why a durable run cannot journal or replay the calls of `site`; None if it can."""
    what = "flow" if site.kind == "flow" else "node"
    if site.changes is not None:
        return (
            f"{what} {site.node!r}, called at {site.where}, may change what it is passed "
            f"({site.changes}), and a durable run replays a call's value, not its "
            "changes: return the new value instead of changing the one passed in "
            "(if it only reads it, annotate the parameter read-only: Sequence[...], "
            "Mapping[...]), or run the flow without a run id"
        )
    if site.changes_state is not None:
        return (
            f"{what} {site.node!r}, called at {site.where}, {site.changes_state}, "
            "and a durable run replays a call's value, not its changes, so a "
            "resumed run would go on without the change: return the value and let "
            "the flow pass it on to what reads it, instead of keeping it in module "
            "state, or run the flow without a run id"
        )
    if site.kind == "ask" or (site.kind == "flow" and streaming(site.fn)):
        return None  # an answer is checked as it comes; a subflow's calls by its own
    streams = site.kind in ("stream", "astream")
    returns = (
        shape_of(site.fn, site.classes, items=True)
        if streams
        else _called_shape(site.fn, site.classes)
    ).returns
    refused = unstorable(returns)
    if refused is None:
        return None
    does = "yields items of type" if streams else "returns"
    return (
        f"{what} {site.node!r}, called at {site.where}, {does} {describe(returns)}, and "
        f"a durable run journals every call's value, which cannot be a {refused} "
        f"(the journal stores {STORED_TYPES}); return such a value, or run the flow "
        "without a run id"
    )


def journaled(index: int, site: Site, inner: Callable[..., Any]) -> Callable[..., Any]:
    """`inner`, a site's wrapped call, answered from the run's journal or journaled."""
    shape = shape_of(site.fn, site.classes)
    node = site.node
    if site.kind == "sync":

        def call_sync(run: Run, /, *args: Any, **kwargs: Any) -> Any:
            journal = journal_of(run)
            key, checked, entry = journal.look_up(run, index, site, shape, args, kwargs)
            if entry is not None:
                return journal.value(entry, shape)
            value = inner(run, *args, **kwargs)
            text = journal.text(node, shape, value)
            journal.ledger.record_sync(journal.run, key, node, checked, text)
            return value

        return call_sync

    async def call(run: Run, /, *args: Any, **kwargs: Any) -> Any:
        journal = journal_of(run)
        key, checked, entry = journal.look_up(run, index, site, shape, args, kwargs)
        if entry is not None:
            return journal.value(entry, shape)
        value = await inner(run, *args, **kwargs)
        text = journal.text(node, shape, value)
        await journal.ledger.record(journal.run, key, node, checked, text)
        return value

    return call


def question(index: int, site: Site) -> Callable[..., Any]:
    """An `ask` site's call: the journaled answer, or the run suspended at the question."""

    async def call(run: Run, name: str, expected: Any, payload: object = None) -> Any:
        journal = journal_of(run)
        key = journal.key(index)
        entry = journal.entry(key, f"?{name}")
        if entry is None:
            raise Suspended(
                journal.run,
                name,
                payload,
                where=site.where,
                expected=expected,
                key=key,
                ledger=journal.ledger.path,
            )
        try:
            value = decode(entry.text, Allowed(classes_in(expected), journal.home))
        except Undecodable as error:
            raise DurableRunError(
                f"the answer journaled for {name!r} in run {journal.run!r} is not a "
                f"{describe(expected)} ({error})",
                run=journal.run,
            ) from None
        if not checker(expected)(value):
            raise DurableRunError(
                f"the answer journaled for {name!r} in run {journal.run!r} is not a "
                f"{describe(expected)}",
                run=journal.run,
            )
        return value

    return call


@final
class DurableSubflow:
    """A subflow as a durable run calls it: journaled as one call, its own calls inside it.

    Its calls are keyed under the subflow call's key (``1.0/...``), so a run
    that stopped inside the subflow replays what the subflow had finished.
    """

    __slots__ = ("index", "run", "site", "subflow")

    def __init__(self, subflow: Any, run: Run, index: int, site: Site) -> None:
        self.subflow = subflow
        self.run = run
        self.index = index
        self.site = site

    @property
    def shape(self) -> Shape:
        return _called_shape(self.subflow, self.site.classes)

    def astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """A streaming subflow's items: not journaled (the calls it makes are)."""
        from kiln.durable.streams import PlacedAsync  # noqa: PLC0415 - imports this

        key = journal_of(self.run).key(self.index)
        return PlacedAsync(self.subflow.astream(*args, **kwargs), f"{key}/")

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        from kiln.durable.streams import Placed  # noqa: PLC0415 - imports this

        key = journal_of(self.run).key(self.index)
        return Placed(self.subflow.stream(*args, **kwargs), f"{key}/")

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        journal, key, checked, entry = self._look_up(args, kwargs)
        if entry is not None:
            return journal.value(entry, self.shape)
        token = PLACE.set(f"{key}/")
        try:
            value = await self.subflow.aforward(*args, **kwargs)
        finally:
            PLACE.reset(token)
        text = journal.text(self.site.node, self.shape, value)
        await journal.ledger.record(journal.run, key, self.site.node, checked, text)
        return value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        journal, key, checked, entry = self._look_up(args, kwargs)
        if entry is not None:
            return journal.value(entry, self.shape)
        token = PLACE.set(f"{key}/")
        try:
            value = self.subflow.forward(*args, **kwargs)
        finally:
            PLACE.reset(token)
        text = journal.text(self.site.node, self.shape, value)
        journal.ledger.record_sync(journal.run, key, self.site.node, checked, text)
        return value

    def _look_up(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Journal, str, str, Entry | None]:
        journal = journal_of(self.run)
        found = journal.look_up(
            self.run, self.index, self.site, self.shape, args, kwargs
        )
        return (journal, *found)


def streaming(called: object) -> bool:
    """Whether `called`, a subflow, is a streaming flow: it has no value to journal."""
    return not hasattr(called, "aforward") and not hasattr(called, "forward")


# By the class of a subflow (or a node function) and its classes: a Shape costs
# a signature and the type hints, and a durable instance is made per run.
_SHAPES: dict[tuple[object, tuple[object, ...]], Shape] = {}


def _called_shape(called: Any, classes: tuple[object, ...]) -> Shape:
    """The Shape of what a site calls: a node function, or a subflow's entry point."""
    method = getattr(called, "aforward", None) or getattr(called, "forward", None)
    if method is None:
        return shape_of(called, classes)
    key = (type(called), classes)
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = Shape(
            method, classes
        )  # bound: its signature has no self
    return shape
