"""Resuming a durable run: the answer to the question it waits at, and the run again.

A generated ``aresume`` calls `resume`; ``kiln runs resume`` and ``kiln runs
answer`` call `resume_run`, `answer_text` and `resume_arguments`. The run goes
on with the arguments it was started with, replaying what it journaled.
"""

from __future__ import annotations

import enum
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

from kiln.durable.journal import answer, run_record
from kiln.durable.record import parameters_changed, short
from kiln.durable.replay import classes_in
from kiln.durable.sites import streaming
from kiln.errors import DurableRunError
from kiln.ledger.codec import STORED_TYPES, Undecodable, Unencodable, encode
from kiln.ledger.decoding import Allowed, decode
from kiln.ledger.types import checker, describe
from kiln.process import AsyncProcess

if TYPE_CHECKING:
    from kiln.calls import Flow

__all__ = [
    "UNANSWERED",
    "Unanswered",
    "answer_text",
    "questions_of",
    "resume",
    "resume_arguments",
    "resume_run",
]

T = TypeVar("T")


class Unanswered(enum.Enum):
    """The default of a generated `resume`'s keywords: that question is not answered here."""

    UNANSWERED = "unanswered"


UNANSWERED: Final = Unanswered.UNANSWERED


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
    entries = ("aforward", "forward", "astream", "stream")
    started = next((getattr(kind, n) for n in entries if hasattr(kind, n)), None)
    if started is not None:  # the entry point the run was started by, as durable.entry
        now = list(inspect.signature(partial(started, flow)).parameters)
        changed = parameters_changed(run, record_arguments, now)
        if changed is not None:
            raise DurableRunError(changed, run=run)
    method = next((kind.__dict__[n] for n in entries if n in kind.__dict__), None)
    hints = typing.get_type_hints(method) if method is not None else {}
    classes = [c for hint in hints.values() for c in classes_in(hint)]
    try:
        named = decode(record_arguments, Allowed(classes, kind.__module__))
    except Undecodable as error:
        raise DurableRunError(
            f"run {run!r} was started with arguments this flow cannot take now ({error}); "
            "start a new run id",
            run=run,
        ) from None
    _same_values(run, record_arguments, dict(named), kind.__module__)
    return (), dict(named)


def _same_values(run: str, text: str, named: dict[str, Any], home: str) -> None:
    """Refuse arguments that the flow's classes now read as other values.

    A dataclass given a field since the run started (with a default) comes
    back with it: the run's journal, checked against the arguments' digest,
    would refuse them as other arguments, and tell the user to resume again.
    """
    try:
        again = encode(named, home)
        # As encode writes it: a text written by hand, in another layout, is
        # not other values (the journal checks it against its digest).
        written = json.dumps(json.loads(text), separators=(",", ":"), allow_nan=False)
    except (Unencodable, ValueError, RecursionError):  # nothing to compare
        return
    if again != written:
        raise DurableRunError(
            f"run {run!r} was started with arguments ({short(text)}) that this flow"
            f" reads as other values now ({short(again)}): the classes of its"
            " arguments changed since the run started, and a run goes on only with"
            " the arguments it was started with, so it cannot be resumed while they"
            " differ; start a new run with another run id, or change the classes back"
            " to resume this one",
            run=run,
        )


def _is_sync_flow(kind: type) -> bool:
    return not issubclass(kind, AsyncProcess)


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
    if streaming(flow):  # its items, all of them: those replayed, those made now
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
        for site in getattr(current, "_kiln_table", ()):
            if site.kind == "flow" and hasattr(site.fn, "_kiln_table"):
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
        again = decode(text, Allowed(classes_in(expected), home))
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
