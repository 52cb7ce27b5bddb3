"""Durable runs: a run with an id journals every call it finishes, and replays them.

``Publish(run_id="r1")(doc)`` claims run id "r1" in the flow's ledger file
(`journal.open_run`) and reads back what the run journaled before. Each node
call, subflow call and question of the run then has a *key*, its place in
the run, the same however the run's tasks interleave:

    0.0           the first call at site 0 (the flow's sites, in source order)
    2.1           the second call at site 2: the visit of a loop
    [3]4.0        the call at site 4 in element 3 of a fan-out
    1.0/0.0       the call at site 0 of the subflow called at site 1
    3.0#2         item 2 of the stream node called at site 3 (3.0: its end)

A call of one site happens once at a time in one place (a loop's visits run
one after another; each element of a fan-out is a place of its own, which
`kiln.run` gives it), so counting a site's calls per place names each call
once. A call whose key the journal holds returns the journaled value
without running, once the journal says it was the same call (the same node;
arguments of the same digest, when they can be written): anything else means
the flow's source or its inputs changed before this point, and is refused.
A call the journal lacks runs live, and its value is committed to the
journal before the run uses it. A call that fails is not journaled: resuming
a run that failed runs the failed call again, and what comes after.

`ask` is a question to a person: its answer is journaled at its key like a
call's value, and while there is none the run stops with `Suspended`; the
steps before it in the source finish (and are journaled) first. Stream
nodes' items are journaled one by one (`streams`).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import inspect
import sys
import typing
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
)
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar, cast, final

from kiln.durable.journal import (
    Entry,
    Question,
    answer,
    close_run,
    open_run,
    run_record,
)
from kiln.errors import DurableRunError, Suspended, runs_command
from kiln.ledger.codec import (
    STORED_TYPES,
    Allowed,
    Undecodable,
    Unencodable,
    decode,
    encode,
)
from kiln.ledger.keys import Shape, shape_of
from kiln.ledger.types import checker, describe, unstorable
from kiln.process import AsyncProcess
from kiln.run import PLACE

if TYPE_CHECKING:
    from kiln.calls import Flow, Site
    from kiln.ledger import Ledger
    from kiln.sites import Run

__all__ = [
    "JOURNAL",
    "UNANSWERED",
    "DurableSubflow",
    "Journal",
    "Unanswered",
    "aclose_stream",
    "close_stream",
    "digest",
    "durable_entry",
    "journal_of",
    "journaled",
    "question",
    "questions_of",
    "recorded_name",
    "resume",
    "resume_run",
    "started_by",
    "undurable",
]

T = TypeVar("T")


class Unanswered(enum.Enum):
    """The default of a generated `resume`'s keywords: that question is not answered here."""

    UNANSWERED = "unanswered"


UNANSWERED: Final = Unanswered.UNANSWERED

# The journal of the durable run the current task belongs to.
JOURNAL: ContextVar[Journal | None] = ContextVar("kiln_journal", default=None)

# The digest of arguments the journal cannot write: the node name is checked alone.
_NO_DIGEST: Final = ""
# A digest's length: a sha256 in hex, cut. A shorter text of arguments is its own
# digest; it always holds a ":", which a hex digest never does.
_DIGEST_LENGTH: Final = 32
# Values whose codec text always decodes to an equal value of the same type.
_EXACT: Final = frozenset({str, int, bool, type(None)})


@final
@dataclass(eq=False, slots=True)
class Journal:
    """The state one durable run shares with its subflows' runs: its journal, its counts."""

    ledger: Ledger
    run: str
    entries: dict[str, Entry]
    home: str  # the flow's module: the codec names its classes without it
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def key(self, index: int) -> str:
        """The key of the call about to happen at site `index` of the flow in this place."""
        place = PLACE.get() or ""
        slot = (place, index)
        count = self.counts.get(slot, 0)
        self.counts[slot] = count + 1
        return f"{place}{index}.{count}"

    def look_up(
        self,
        run: Run,
        index: int,
        site: Site,
        shape: Shape,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> tuple[str, str, Entry | None]:
        """The call's key, its arguments' digest, and its journaled outcome if any.

        An outcome found is checked to be of this call, and counted as the
        run's replay of it.
        """
        key = self.key(index)
        checked = digest(shape, self.home, args, kwargs)
        entry = self.entry(key, site.node, checked)
        if entry is not None:
            run.replay(index, site)
        return key, checked, entry

    def entry(self, key: str, node: str, checked: str = _NO_DIGEST) -> Entry | None:
        """The journaled outcome at `key`, checked to be of this call; None if there is none.

        This call: one of `node` (a question's is ``?name``), with arguments of
        digest `checked` when both digests are known.
        """
        entry = self.entries.get(key)
        if entry is not None and (
            entry.node != node or (checked and entry.digest and entry.digest != checked)
        ):
            self.refuse(key, entry, node)
        return entry

    def refuse(self, key: str, entry: Entry, node: str) -> NoReturn:
        """Raise that the journal holds another call at `key` than the one the flow makes."""
        what = (
            f"a call of {entry.node!r}"
            if entry.node != node
            else f"a call of {node!r} with other arguments"
        )
        raise DurableRunError(
            f"run {self.run!r} journaled {what} at {key!r}, where the flow now calls "
            f"{node!r}: the flow's source or its inputs changed before this point. "
            "Start a new run id, or forget the run from there on with "
            f"`{runs_command(self.ledger.path, f'forget {self.run} --from {key}')}`",
            run=self.run,
        )

    def text(self, node: str, shape: Shape, value: object) -> str:
        """The journal's text of `value`, which must come back from it as it is."""
        try:
            text = encode(value, self.home)
            if type(value) in _EXACT:
                return text  # JSON gives these back as they were
            again = decode(text, shape.allowed)
        except (Unencodable, Undecodable) as error:
            problem = str(error)
        else:
            if type(again) is type(value) and encode(again, self.home) == text:
                return text
            problem = "it would not come back from the journal as it is"
        raise DurableRunError(
            f"run {self.run!r} cannot journal the result of {node!r}, a "
            f"{type(value).__qualname__}: {problem}. A durable run journals what every "
            f"call returns, as the ledger stores it ({STORED_TYPES}); return such a "
            "value, or run the flow without a run id",
            run=self.run,
        )

    def value(self, entry: Entry, shape: Shape) -> Any:
        try:
            return shape.decode(entry.text)
        except Undecodable as error:
            raise DurableRunError(
                f"run {self.run!r} journaled a value of {entry.node!r} that the node "
                f"cannot return now ({error}); start a new run id",
                run=self.run,
            ) from None


def digest(
    shape: Shape, home: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> str:
    """A digest of a call's arguments by parameter name; empty if they cannot be written."""
    names = shape.names
    try:
        if names is not None and not kwargs and len(args) == len(names):
            # Every parameter given by position, as most call sites give them: no binding.
            pairs = [(names[i], args[i]) for i in shape.by_name]
        else:
            arguments = shape.bind(args, kwargs)
            pairs = [(name, arguments[name]) for name in sorted(arguments)]
        text = ",".join([f"{name}:{encode(value, home)}" for name, value in pairs])
    except (TypeError, Unencodable):
        return _NO_DIGEST
    if len(text) < _DIGEST_LENGTH:
        return text  # shorter than its hash, and as exact: one hash less per call
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:_DIGEST_LENGTH]


# --- the wrapped calls of a durable run -------------------------------------------------


def undurable(site: Site) -> str | None:
    """Why a durable run cannot journal or replay the calls of `site`; None if it can."""
    what = "flow" if site.kind == "flow" else "node"
    if site.changes is not None:
        return (
            f"{what} {site.node!r}, called at {site.where}, may change what it is passed "
            f"({site.changes}), and a durable run replays a call's value, not its "
            "changes: return the new value instead of changing the one passed in, or "
            "run the flow without a run id"
        )
    if site.kind == "ask" or (site.kind == "flow" and _streams(site.fn)):
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
            value = decode(entry.text, Allowed(_classes_in(expected), journal.home))
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


def _streams(called: object) -> bool:
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


def journal_of(run: Run) -> Journal:
    """The journal of durable run `run`: its calls are bound with one."""
    journal = run.journal
    assert journal is not None, "a durable run's calls are bound with its journal"
    return journal


# --- the entry points ------------------------------------------------------------------


def durable_entry(flow: Flow, run: str, ledger: Ledger) -> None:
    """Make `flow`'s entry points run durably as run `run`, journaled in `ledger`.

    The instance's own `aforward` and `forward` stand in for the class's:
    the first one called claims the run id, runs the flow with the journal in
    its context, and records how the run ended. A compiled flow's entry
    points call each other (an async flow's `forward` runs its `aforward`, a
    sync flow's `aforward` its `forward`, and both classes are
    `AsyncProcess`es), so the one called inside the run goes straight to the
    class's method. A streaming flow's `astream` and `stream` do the same,
    the run claimed at its first item and ended with its last: its items are
    not journaled, they come again from the calls that are.
    """
    kind = type(flow)
    entry = _Entry(flow, run, ledger)
    flow.__dict__["_kiln_durable"] = entry
    for name, wrap in (
        ("aforward", entry.asynchronous),
        ("forward", entry.synchronous),
        ("astream", entry.async_stream),
        ("stream", entry.stream),
    ):
        method: Callable[..., Any] | None = getattr(kind, name, None)
        if method is not None:
            flow.__dict__[name] = wrap(method)


@final
class _Entry:
    """One durable instance's way into its run: claim it, run it, record how it ended."""

    def __init__(self, flow: Flow, run: str, ledger: Ledger) -> None:
        kind = type(flow)
        self.flow = flow
        self.run = run
        self.ledger = ledger
        self.home = kind.__module__
        self.name = recorded_name(flow)
        self.target = _target(kind)
        method = next(
            getattr(kind, name)
            for name in ("aforward", "forward", "astream", "stream")
            if hasattr(kind, name)
        )
        self.signature = inspect.signature(partial(method, flow))

    def entry_point(
        self, body: Callable[..., Any], wrapper: Callable[..., Any]
    ) -> Callable[..., Any]:
        """`wrapper` as `body` bound to the flow looks: its signature and type hints."""
        functools.update_wrapper(wrapper, body)
        wrapper.__signature__ = self.signature  # type: ignore[attr-defined]
        return wrapper

    def asynchronous(self, body: Callable[..., Any]) -> Callable[..., Any]:
        async def durable_aforward(*args: Any, **kwargs: Any) -> Any:
            if self.inside():
                return await body(self.flow, *args, **kwargs)
            tokens = self.begin(args, kwargs)
            try:
                value = await body(self.flow, *args, **kwargs)
            except BaseException as error:
                self.end(tokens, error, None)
                raise
            self.end(tokens, None, value)
            return value

        return self.entry_point(body, durable_aforward)

    def synchronous(self, body: Callable[..., Any]) -> Callable[..., Any]:
        def durable_forward(*args: Any, **kwargs: Any) -> Any:
            if self.inside():
                return body(self.flow, *args, **kwargs)
            tokens = self.begin(args, kwargs)
            try:
                value = body(self.flow, *args, **kwargs)
            except BaseException as error:
                self.end(tokens, error, None)
                raise
            self.end(tokens, None, value)
            return value

        return self.entry_point(body, durable_forward)

    def async_stream(self, body: Callable[..., Any]) -> Callable[..., Any]:
        def durable_astream(*args: Any, **kwargs: Any) -> Any:
            if self.inside():
                return body(self.flow, *args, **kwargs)
            return self.async_run(
                partial(body, self.flow, *args, **kwargs), args, kwargs
            )

        return self.entry_point(body, durable_astream)

    def stream(self, body: Callable[..., Any]) -> Callable[..., Any]:
        def durable_stream(*args: Any, **kwargs: Any) -> Any:
            if self.inside():
                return body(self.flow, *args, **kwargs)
            return self.run_of(partial(body, self.flow, *args, **kwargs), args, kwargs)

        return self.entry_point(body, durable_stream)

    # A streaming flow's run is claimed at its first item and ended after its
    # last. The journal is in the context of each step of the flow's
    # generator, and only there: between items, the consumer's code runs in
    # a context of its own. The generator is made in the run too: a derived
    # entry point (`stream` of an async flow) iterates the other one, which
    # must see that it runs inside. Closed before its end (a ``break``), the
    # run is recorded as failed, and iterated again it replays and goes on.

    async def async_run(
        self,
        start: Callable[[], AsyncIterator[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> AsyncIterator[Any]:
        journal = self.open(args, kwargs)
        taken, error = 0, cast(BaseException | None, None)
        try:
            with _within(journal):
                stream = start()
            while True:
                with _within(journal):
                    try:
                        item = await anext(stream)
                    except StopAsyncIteration:
                        return
                yield item
                taken += 1
        except GeneratorExit:
            error = _closed(taken)
            with _within(journal):
                await aclose_stream(stream)
            raise
        except BaseException as failure:
            error = failure
            raise
        finally:
            self.close(error, _Streamed(taken))

    def run_of(
        self,
        start: Callable[[], Iterator[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Iterator[Any]:
        journal = self.open(args, kwargs)
        taken, error = 0, cast(BaseException | None, None)
        try:
            with _within(journal):
                stream = start()
            while True:
                with _within(journal):
                    try:
                        item = next(stream)
                    except StopIteration:
                        return
                yield item
                taken += 1
        except GeneratorExit:
            error = _closed(taken)
            with _within(journal):
                close_stream(stream)
            raise
        except BaseException as failure:
            error = failure
            raise
        finally:
            self.close(error, _Streamed(taken))

    def inside(self) -> bool:
        """Whether this context runs this run already: one entry point called the other."""
        journal = JOURNAL.get()
        return (
            journal is not None
            and journal.run == self.run
            and journal.ledger is self.ledger
        )

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        # Its keys start from its own root, not from the place of a run that
        # started it (a node of another durable run's fan-out, say): its journal
        # must answer it wherever it runs again.
        return JOURNAL.set(self.open(args, kwargs)), PLACE.set("")

    def open(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Journal:
        """Claim the run, started with `args` and `kwargs`: its journal so far."""
        text, checked = _arguments(self.signature, self.home, args, kwargs)
        entries = open_run(
            self.ledger,
            self.run,
            flow=self.name,
            target=self.target,
            arguments=text,
            digest=checked,
        )
        return Journal(self.ledger, self.run, entries, self.home)

    def end(
        self, tokens: tuple[Any, Any], error: BaseException | None, value: object
    ) -> None:
        _leave(tokens)
        self.close(error, value)

    def close(self, error: BaseException | None, value: object) -> None:
        """Record how the run ended: its value, the question it stopped at, its error."""
        ledger, run, home = self.ledger, self.run, self.home
        if error is None:
            shown = str(value) if isinstance(value, _Streamed) else _shown(value, home)
            close_run(ledger, run, "done", outcome=shown)
        elif isinstance(error, Suspended):
            question = Question(
                error.question,
                error.key,
                error.where,
                describe(error.expected),
                _shown(error.payload, home),
            )
            close_run(ledger, run, "suspended", question=question)
        else:
            close_run(ledger, run, "failed", outcome=f"{type(error).__name__}: {error}")


@final
@dataclass(frozen=True, slots=True)
class _Streamed:
    """What a streaming flow's run gave: its items, which are not journaled."""

    items: int

    def __str__(self) -> str:
        return f"a stream of {self.items} items"


@contextlib.contextmanager
def _within(journal: Journal) -> Generator[None, None, None]:
    """The run's journal in the context, its keys from the run's own root."""
    tokens = JOURNAL.set(journal), PLACE.set("")
    try:
        yield
    finally:
        _leave(tokens)


def _leave(tokens: tuple[Any, Any]) -> None:
    JOURNAL.reset(tokens[0])
    PLACE.reset(tokens[1])


async def aclose_stream(stream: object) -> None:
    """Close `stream` if it is an async generator (or has `aclose`): its `finally` runs."""
    aclose = getattr(stream, "aclose", None)
    if callable(aclose):
        await aclose()


def close_stream(stream: object) -> None:
    """Close `stream` if it is a generator (or has `close`)."""
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def _closed(taken: int) -> GeneratorExit:
    return GeneratorExit(f"the stream was closed by its consumer after {taken} items")


def started_by(flow: Flow, target: str) -> None:
    """Record `target` ("path.py:flow") as what starts the durable instance's run again.

    By default a run records its compiled module; `kiln run` of a source
    records the source it was given, before the run claims its id, so that a
    run killed at any point is resumed from it.
    """
    entry = flow.__dict__.get("_kiln_durable")
    if not isinstance(entry, _Entry):
        raise DurableRunError("started_by() takes a flow instance made with a run id")
    entry.target = target


def recorded_name(flow: Flow) -> str:
    """The name a durable run records its flow by: its class's.

    Not its module's: a module imported under another name (run as a
    script, from another sys.path entry, a copy elsewhere) holds the same flow.
    """
    return type(flow).__qualname__


def _is_sync_flow(kind: type) -> bool:
    return not issubclass(kind, AsyncProcess)


def _arguments(
    signature: inspect.Signature | None,
    home: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[str | None, str]:
    """The run's arguments as codec text (None if they cannot be written), and their digest."""
    if signature is None:
        return None, _NO_DIGEST
    try:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        text = encode(dict(bound.arguments), home)
    except (TypeError, Unencodable):
        return None, _NO_DIGEST
    return text, hashlib.sha256(text.encode("ascii")).hexdigest()[:_DIGEST_LENGTH]


def _shown(value: object, home: str) -> str:
    try:
        return encode(value, home)
    except Unencodable:
        return repr(value)


def _target(kind: type) -> str:
    """Where the flow's class is: its module's file and the name of its instance there.

    The generated module binds one instance of each flow class, under the flow's
    name (``publish = Publish()``); `kiln runs resume` loads the flow by it.
    """
    module = sys.modules.get(kind.__module__)
    path = getattr(module, "__file__", None) or kind.__module__
    instance = (
        next(
            (
                name
                for name, value in vars(module).items()
                if type(value) is kind and not name.startswith("_")
            ),
            kind.__qualname__,
        )
        if module is not None
        else kind.__qualname__
    )
    return f"{path}:{instance}"


def _classes_in(hint: object) -> list[type]:
    """The classes a type names, all the way down: those an answer of it may rebuild."""
    found: list[type] = []
    stack = [hint]
    while stack:
        current = stack.pop()
        if isinstance(current, type):
            found.append(current)
        stack.extend(typing.get_args(current))
    return found


def resume_arguments(
    flow: Flow, record_arguments: str | None, run: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments a durable run was started with, to run it again."""
    kind = type(flow)
    if record_arguments is None:
        raise DurableRunError(
            f"run {run!r} was started with arguments the journal could not store; run "
            f"the flow with them again, {kind.__name__}(run_id={run!r})(...), to resume it",
            run=run,
        )
    method = next(
        (
            kind.__dict__[name]
            for name in ("aforward", "forward", "astream", "stream")
            if name in kind.__dict__
        ),
        None,
    )
    hints = typing.get_type_hints(method) if method is not None else {}
    classes = [c for hint in hints.values() for c in _classes_in(hint)]
    try:
        named = decode(record_arguments, Allowed(classes, kind.__module__))
    except Undecodable as error:
        raise DurableRunError(
            f"run {run!r} was started with arguments this flow cannot take now ({error}); "
            "start a new run id",
            run=run,
        ) from None
    return (), dict(named)


# --- resuming --------------------------------------------------------------------------


async def resume(
    flow: Flow, entry: Callable[..., Awaitable[T]], **answers: object
) -> T:
    """Answer the question durable run `flow.run_id` waits at, and run it on.

    What a generated ``aresume`` calls, with the flow's `aforward` as `entry`
    (typing the result) and one keyword per question of the flow, those not
    answered `UNANSWERED`. At most one may be answered: a run waits at one
    question at a time. The run goes on with the arguments it was started
    with, replaying what it journaled.
    """
    return typing.cast(T, await resume_run(flow, answers))


async def resume_run(flow: Flow, answers: Mapping[str, object]) -> Any:
    """`resume` for any durable flow instance (`kiln runs resume` and `answer`)."""
    run = flow.run_id
    kind = type(flow)
    if run is None:
        raise DurableRunError(
            f"resume() goes on with a durable run: build the flow with its id, "
            f"{kind.__name__}(run_id='...').resume(...)"
        )
    ledger = flow.ledger_of()
    given = {name: value for name, value in answers.items() if value is not UNANSWERED}
    if len(given) > 1:
        raise DurableRunError(
            f"a run waits at one question at a time; resume() got answers to "
            f"{', '.join(map(repr, sorted(given)))}",
            run=run,
        )
    record = run_record(ledger, run)
    if record is None:
        raise DurableRunError(
            f"there is no durable run {run!r} in {ledger.path}: start it with "
            f"{kind.__name__}(run_id={run!r})(...)",
            run=run,
        )
    for name, value in given.items():
        text = answer_text(flow, run, name, value)
        # A run that is done has its answers: resuming it again (a retried
        # request) replays it to its result.
        if record.state != "done":
            answer(ledger, run, name, text)
    args, kwargs = resume_arguments(flow, record.arguments, run)
    if _streams(flow):  # its items, all of them: those replayed, those made now
        return [item async for item in flow.astream(*args, **kwargs)]  # type: ignore[attr-defined]
    if _is_sync_flow(kind):
        return flow.forward(*args, **kwargs)  # type: ignore[attr-defined]
    return await flow.aforward(*args, **kwargs)  # type: ignore[attr-defined]


def questions_of(kind: type) -> dict[str, object]:
    """The questions a run of flow class `kind` may ask, by name: their answers' types.

    The class's own (`_kiln_questions`, with its subflows' of the same module)
    and those of the compiled subflows of other modules it calls.
    """
    found: dict[str, object] = {}
    pending, seen = [kind], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, expected in getattr(current, "_kiln_questions", {}).items():
            found.setdefault(name, expected)
        for site in getattr(current, "_kiln_sites", ()):
            if site.kind == "flow" and hasattr(site.fn, "_kiln_sites"):
                pending.append(type(site.fn))
    return found


def answer_text(flow: Flow, run: str, name: str, value: object) -> str:
    """The journal's text of an answer to question `name`, checked against its type."""
    questions = questions_of(type(flow))
    if name not in questions:
        asked = ", ".join(map(repr, sorted(questions))) or "none"
        raise DurableRunError(
            f"flow {type(flow).__name__} asks no question {name!r} (it asks {asked})",
            run=run,
        )
    expected = questions[name]
    if not checker(expected)(value):
        raise DurableRunError(
            f"the answer to {name!r} must be a {describe(expected)}; got {value!r}",
            run=run,
        )
    home = type(flow).__module__
    try:
        text = encode(value, home)
        again = decode(text, Allowed(_classes_in(expected), home))
    except (Unencodable, Undecodable) as error:
        raise DurableRunError(
            f"the answer to {name!r} cannot be journaled ({error}); answer with a value "
            f"the ledger stores ({STORED_TYPES})",
            run=run,
        ) from None
    if encode(again, home) != text:
        raise DurableRunError(
            f"the answer to {name!r} would not come back from the journal as it is",
            run=run,
        )
    return text
