"""The exceptions kiln raises on its own account.

Every kiln exception derives from `KilnError`, so a caller can tell a problem
kiln detected from one raised by a node. Exceptions raised by user code are never
wrapped: they leave a flow as the original objects (`raise_as_is` raises one
where it is handed over, keeping its context). Each message names what went
wrong and says what to do about it.
"""

from __future__ import annotations

import inspect
import itertools
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FrameType, TracebackType
from typing import NoReturn, cast

__all__ = [
    "DeniedError",
    "DurableRunError",
    "KilnError",
    "LedgerError",
    "OptionError",
    "RefusedEntry",
    "ReservedNameError",
    "StaleModuleError",
    "Suspended",
    "UncacheableValue",
    "VisitLimitError",
    "carried",
    "converted",
    "generator_stopped",
    "left",
    "raise_as_is",
    "spawned_from",
    "stopped",
    "visits",
]


class KilnError(Exception):
    """Base class of every exception that kiln itself raises."""


class OptionError(KilnError, ValueError):
    """A decorator option (or a `Limit`) has a value kiln cannot use.

    A `ValueError` too, so code that validates its own configuration with
    `except ValueError` keeps working.
    """


class ReservedNameError(KilnError, ValueError):
    """A `Memory` write used a name that `Memory` keeps for itself."""


class VisitLimitError(KilnError):
    """A node inside a `while` loop was called more often than it may be.

    kiln counts the calls at each call site inside a loop, so a loop that never
    meets its exit condition stops with this error instead of running forever.
    """

    node: str
    limit: int
    where: str

    def __init__(self, node: str, limit: int, where: str) -> None:
        self.node = node
        self.limit = limit
        self.where = where
        super().__init__(
            f"node {node!r} exceeded its visit limit of {limit} (called at {where}); "
            "raise max_visits or check the loop's exit condition"
        )

    def __reduce__(self) -> tuple[type[VisitLimitError], tuple[str, int, str]]:
        # The default reduction would call `VisitLimitError(message)`, which does
        # not match the constructor; pickling matters for process pools and Dask.
        return (type(self), (self.node, self.limit, self.where))


def visits(node: str, limit: int, where: str) -> Iterator[int]:
    """The visits a call site in a loop may make: `next()` takes one, in each iteration.

    The visit past `limit` raises `VisitLimitError`. A compiled flow keeps one
    per call site in a loop: `next(review_visits)` is one line, and costs what
    an inline `+= 1` and `if` would (a C iterator; Python runs only the raise).
    """
    return itertools.chain(range(1, limit + 1), _past(node, limit, where))


def _past(node: str, limit: int, where: str) -> Iterator[int]:
    yield from ()  # a generator: it raises when the visit past the limit is taken
    raise VisitLimitError(node, limit, where)


class DeniedError(KilnError):
    """A Processor's `request_permission` refused an event too often: it is ABORTED.

    Recorded as the aborted event's `error`, never raised out of the processor.
    """

    event_id: int
    denials: int

    def __init__(self, event_id: int, denials: int) -> None:
        self.event_id = event_id
        self.denials = denials
        super().__init__(
            f"event {event_id} was denied by request_permission {denials} times "
            "(Processor.max_denials) and is aborted; let request_permission admit it, "
            "return True from handle_denied to skip it, or raise max_denials"
        )

    def __reduce__(self) -> tuple[type[DeniedError], tuple[int, int]]:
        return (type(self), (self.event_id, self.denials))


class LedgerError(KilnError):
    """The ledger file cannot be used: not kiln's, another version, unreadable, unwritable.

    The message names the file and what to do; kiln never overwrites a file that
    is not its own ledger.
    """


class UncacheableValue(LedgerError, TypeError):
    """An argument or a result of a `cache=True` node that the ledger cannot store.

    Also a `TypeError`: the value's type is the problem. Pass
    ``uncacheable="run"`` to the flow to run such calls without the cache.
    `node` is the node's name, `what` says which value (``"argument 'x'"`` or
    ``"its result"``) and `kind` is the type that cannot be stored.
    """

    node: str
    what: str
    kind: str

    def __init__(
        self, message: str, *, node: str = "", what: str = "", kind: str = ""
    ) -> None:
        # Keyword fields: pickling rebuilds the exception from `message` and its __dict__.
        super().__init__(message)
        self.node = node
        self.what = what
        self.kind = kind


class RefusedEntry(LedgerError, UserWarning):
    """A stored result the ledger would not answer a call with; the call ran instead.

    Its checksum failed (the file was damaged or edited), or it holds a value
    the node could not return: a class its return annotation does not name, a
    value of another type. Issued as a warning, once per entry and message,
    since the call goes on as a miss and its result overwrites the entry; turn
    it into an error with ``warnings.simplefilter("error", kiln.RefusedEntry)``.
    `node` is the node's name and `key` the entry's key.
    """

    node: str
    key: bytes

    def __init__(self, message: str, *, node: str = "", key: bytes = b"") -> None:
        super().__init__(message)
        self.node = node
        self.key = key


class StaleModuleError(KilnError):
    """A compiled module runs a cached node from a source file edited since it was compiled.

    The node's cache key carries the fingerprint of the code the module was
    compiled from, and the run would store the new code's results under it;
    refused before anything is stored. Run ``kiln compile`` again. `module`
    is the compiled module, `source` the edited file, `node` the node's name.
    """

    module: str
    source: str
    node: str

    def __init__(
        self, message: str, *, module: str = "", source: str = "", node: str = ""
    ) -> None:
        # Keyword fields: pickling rebuilds the exception from `message` and its __dict__.
        super().__init__(message)
        self.module = module
        self.source = source
        self.node = node


class DurableRunError(KilnError):
    """A durable run that cannot go on as asked, and why; the message says what to do.

    Its run id is taken by a live process, or was started with other
    arguments or by another flow; its journal holds, at a call the run makes
    again, a call of another node or with other arguments (the flow's source
    or its inputs changed before that point); a question's answer is missing,
    unknown or of the wrong type; a value the run must journal cannot be stored.
    `run` is the run id.
    """

    run: str

    def __init__(self, message: str, *, run: str = "") -> None:
        super().__init__(message)
        self.run = run


class Suspended(KilnError):
    """A durable run stopped at a question to a person (`kiln.ask`) with no answer yet.

    Everything the run did before the question is journaled; answer it with
    ``F(run_id=run_id).resume(question=answer)`` (or ``kiln runs answer``), and
    the run replays to the question and goes on. `run_id` is the run's id,
    `question` the question's name, `payload` what the flow passed with it,
    `where` the source line of the `ask`, `expected` the answer's type, and
    `key` the question's place in the run (a visit of a loop, an element of a
    fan-out each ask on their own).
    """

    run_id: str
    question: str
    payload: object
    where: str
    expected: object
    key: str

    def __init__(
        self,
        run_id: str,
        question: str,
        payload: object,
        *,
        where: str = "",
        expected: object = object,
        key: str = "",
        ledger: str | os.PathLike[str] | None = None,
    ) -> None:
        answer = runs_command(ledger, f"answer {run_id} {question}=VALUE")
        super().__init__(
            f"run {run_id!r} waits for an answer to {question!r} (asked at {where}); "
            f"answer it with resume({question}=...) or `{answer}`"
        )
        self.run_id = run_id
        self.question = question
        self.payload = payload
        self.where = where
        self.expected = expected
        self.key = key
        self.ledger = ledger

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _suspended,
            (
                self.run_id,
                self.question,
                self.payload,
                self.where,
                self.expected,
                self.key,
                self.ledger,
            ),
        )


def _suspended(
    run_id: str,
    question: str,
    payload: object,
    where: str,
    expected: object,
    key: str,
    ledger: str | os.PathLike[str] | None = None,
) -> Suspended:
    return Suspended(
        run_id,
        question,
        payload,
        where=where,
        expected=expected,
        key=key,
        ledger=ledger,
    )


def runs_command(ledger: str | os.PathLike[str] | None, words: str) -> str:
    """``kiln runs WORDS``, with ``--ledger PATH`` unless `kiln runs` finds `ledger` here.

    Here: the working directory, where `kiln runs` looks in ``$KILN_LEDGER``,
    else ``.kiln/ledger.db``. A ledger configured in ``[tool.kiln]`` is named
    too: the command may be run from anywhere.
    """
    if ledger is None:
        return f"kiln runs {words}"
    default = Path(os.environ.get("KILN_LEDGER") or Path(".kiln", "ledger.db"))
    if Path(ledger).resolve() == default.resolve():
        return f"kiln runs {words}"
    return f"kiln runs {words} --ledger {shlex.quote(os.fspath(ledger))}"


def raise_as_is(error: BaseException) -> NoReturn:
    """Raise `error` keeping the context it was created with.

    Raising inside an exception handler (as ``__aexit__`` runs, after the body
    was cancelled) would set the handled exception as the error's
    ``__context__``, and tracebacks would claim that one caused the other.
    """
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context
        del error, context


def spawned_from(
    traceback: TracebackType | None, frame: FrameType, lasti: int
) -> TracebackType:
    """`traceback` under an entry for the line of `frame` that started its task.

    A task's failure is raised in the frames of its coroutine alone; the entry
    shows where the task came from, as a call's frame would, and a flow's note
    reads the call it made there (`kiln.notes`).
    """
    line = next(
        (line for start, end, line in frame.f_code.co_lines() if start <= lasti < end),
        None,
    )
    return TracebackType(traceback, frame, lasti, line or frame.f_code.co_firstlineno)


def carried(error: BaseException) -> BaseException:
    """What kiln's coroutines raise for `error` of a node: itself, but a StopIteration.

    A StopIteration cannot leave a coroutine, nor be awaited, nor be set on a
    future: it leaves as the RuntimeError Python makes of it (PEP 479), with
    itself as the ``__cause__``. kiln makes that RuntimeError itself, marked,
    so that its retries, fallbacks and events see the node's StopIteration
    through it (`stopped`), and the sync entry point of a flow written as a
    `def` raises the StopIteration, as the source does (`kiln.run_sync`).
    """
    if not isinstance(error, StopIteration):
        return error
    carrier = RuntimeError("coroutine raised StopIteration")
    carrier.__cause__ = error
    carrier._kiln_stopped = error  # type: ignore[attr-defined]
    return carrier


def stopped(error: BaseException) -> BaseException:
    """The node's own exception: a StopIteration for what `carried` made of one."""
    stop = getattr(error, "_kiln_stopped", None)
    return stop if isinstance(stop, StopIteration) else error


def left(error: BaseException, body: CodeType) -> None:
    """Word `carried`'s RuntimeError as Python words it where it leaves `body`.

    A node's StopIteration reaches a flow's body as the RuntimeError of the
    kiln coroutine it left; the source raised it in the body itself, and
    Python names the body's kind: a generator's, an async generator's.
    """
    if stopped(error) is error:
        return
    flags = body.co_flags
    if flags & inspect.CO_ASYNC_GENERATOR:
        error.args = ("async generator raised StopIteration",)
    elif flags & inspect.CO_GENERATOR:
        error.args = ("generator raised StopIteration",)


def converted(error: BaseException) -> StopIteration | None:
    """The StopIteration that leaving a coroutine made `error` of (`carried`'s
    RuntimeError or Python's), which a flow written as a `def` raises as itself."""
    if stopped(error) is not error:  # `carried`'s: its cause is lost if it was pickled
        return cast(StopIteration, stopped(error))
    stop = error.__cause__
    if (
        type(error) is RuntimeError
        and isinstance(stop, StopIteration)
        and str(error) == "coroutine raised StopIteration"
    ):
        return stop
    return None


def generator_stopped(error: BaseException) -> StopIteration | None:
    """The StopIteration an async generator, or `carried`, turned into `error`:
    which a streaming flow written as a `def` raises as its generator would."""
    stop = error.__cause__ if stopped(error) is error else stopped(error)
    if (
        type(error) is RuntimeError
        and isinstance(stop, StopIteration)
        and str(error) == "async generator raised StopIteration"
    ):
        return stop
    return None
