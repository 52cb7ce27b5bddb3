"""A durable instance's entry points: claim the run, run it with its journal, record its end.

``F(run_id="r1")`` replaces the instance's own `aforward`, `forward`,
`astream` and `stream` (`durable_entry`): the first one called claims the
run id in the ledger file, runs the flow with the run's `Journal` in its
context, and records how the run ended: its value, the question it stopped
at, or its error.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import sys
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast, final

from kiln.durable.journal import Question, close_run, open_run
from kiln.durable.replay import DIGEST_LENGTH, JOURNAL, NO_DIGEST, Journal
from kiln.errors import DurableRunError, Suspended
from kiln.ledger.codec import Unencodable, encode
from kiln.ledger.types import describe
from kiln.run import PLACE

if TYPE_CHECKING:
    from kiln.calls import Flow
    from kiln.ledger import Ledger

__all__ = [
    "aclose_stream",
    "close_stream",
    "durable_entry",
    "recorded_name",
    "started_by",
]


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


def _arguments(
    signature: inspect.Signature | None,
    home: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[str | None, str]:
    """The run's arguments as codec text (None if they cannot be written), and their digest."""
    if signature is None:
        return None, NO_DIGEST
    try:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        text = encode(dict(bound.arguments), home)
    except (TypeError, Unencodable):
        return None, NO_DIGEST
    return text, hashlib.sha256(text.encode("ascii")).hexdigest()[:DIGEST_LENGTH]


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
