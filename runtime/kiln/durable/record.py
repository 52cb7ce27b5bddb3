"""A durable run's record (the `durable` table's row), read as data that may be damaged.

A ledger may come from elsewhere, and SQLite keeps whatever a column is
given: a question that is not JSON, a start time that is text, a payload
nested thousands deep. `from_row` checks each column's type and reads the
question (a JSON object of five strings) before a `DurableRun` is made of
them, and refuses a row that fails with a `DurableRunError` that names the
run, what is wrong and what to do, as a journal row whose checksum fails is
refused::

    the record of run 'r1' in /p/.kiln/ledger.db is damaged (its question is
    not JSON); forget the run with `kiln runs forget r1`

`arguments_match` says whether the arguments a record keeps are those its
digest was made of: a record that says otherwise was changed by hand.
`parameters_changed` says why a run cannot go on in a flow whose parameters
changed since it started: it goes on only with the arguments it started with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shlex
from dataclasses import dataclass
from typing import Any, Final, Literal, final

from kiln.errors import DurableRunError, runs_command

__all__ = [
    "DurableRun",
    "Question",
    "State",
    "argument_names",
    "arguments_match",
    "damaged",
    "from_row",
    "parameters_changed",
    "short",
]

State = Literal["running", "suspended", "failed", "done"]

_STATES: Final = frozenset(("running", "suspended", "failed", "done"))
_LATEST: Final = 253_402_214_400  # 9999-12-30 UTC: a time every calendar can show
_DIGEST_LENGTH: Final = 32  # as kiln.durable.replay


@final
@dataclass(frozen=True, slots=True)
class Question:
    """The question a suspended run waits at: its name, place, line, type and payload."""

    name: str
    key: str
    where: str
    expected: str  # the answer's type, as the flow's source writes it
    payload: str  # the payload's codec text, or its repr when it cannot be stored


@final
@dataclass(frozen=True, slots=True)
class DurableRun:
    """What the ledger knows of one durable run (`kiln runs list` and `show`)."""

    run: str
    flow: str
    target: str
    state: State
    owner: str
    started: float
    updated: float
    calls: int
    arguments: str | None
    question: Question | None
    outcome: str | None


_FIELDS: Final = tuple(field.name for field in dataclasses.fields(DurableRun))
_QUESTION: Final = tuple(field.name for field in dataclasses.fields(Question))


def damaged(run: object, path: str, what: str) -> DurableRunError:
    """The error of a run record that is damaged: what is wrong, and what to do."""
    shown = run if isinstance(run, str) else repr(run)
    forget = runs_command(path, f"forget {shlex.quote(shown)}")
    return DurableRunError(
        f"the record of run {shown!r} in {path} is damaged ({what}); forget the run"
        f" with `{forget}` (its journal goes with it: run it again as a new run)",
        run=shown,
    )


def from_row(row: tuple[Any, ...], path: str) -> DurableRun:
    """The record of a row whose columns are DurableRun's fields, in order; checked."""
    fields = dict(zip(_FIELDS, row, strict=True))
    problem = _problem(fields)
    if problem is None:
        try:
            fields["question"] = _question(fields["question"])
        except ValueError as error:
            problem = str(error)
    if problem is not None:
        raise damaged(fields["run"], path, problem)
    return DurableRun(**fields)


def arguments_match(arguments: str | None, digest: object) -> bool:
    """Whether `digest` is that of the arguments' text (a record that cannot store them
    has none to compare)."""
    if arguments is None or not isinstance(digest, str) or not digest:
        return True
    made = hashlib.sha256(arguments.encode("utf-8", "surrogatepass")).hexdigest()
    return made[:_DIGEST_LENGTH] == digest


def argument_names(arguments: str | None) -> list[str] | None:
    """The parameters, in order, that a run's arguments (codec text) were bound to.

    Every parameter of the flow's entry point, defaults applied: a plain JSON
    object, since no parameter's name starts with ``$``. None if unknown.
    """
    try:
        named = json.loads(arguments) if arguments is not None else None
    except (ValueError, RecursionError):
        return None
    return list(named) if isinstance(named, dict) else None


def parameters_changed(
    run: str, arguments: str | None, now: list[str] | None
) -> str | None:
    """Why run `run`, started with `arguments`, cannot go on in a flow whose entry
    point takes parameters `now`; None when they are those it was started for
    (or either is unknown).

    A run goes on only with the arguments it was started with (their digest is
    checked), so resuming it again cannot help: the flow must change back, or
    a new run start.
    """
    was = argument_names(arguments)
    if was is None or now is None or was == now:
        return None
    return (
        f"run {run!r} was started with arguments ({short(arguments or '')}) for the"
        f" parameters ({', '.join(was)}), but its flow takes ({', '.join(now)}) now:"
        " a run goes on only with the arguments it was started with, so it cannot"
        " be resumed while the flow's parameters differ; start a new run with"
        f" another run id, or give the flow back its parameters ({', '.join(was)})"
        " to resume this one"
    )


def short(text: str) -> str:
    """A run's arguments (codec text) as an error message shows them."""
    return text if len(text) <= 80 else f"{text[:77]}..."


def _problem(fields: dict[str, Any]) -> str | None:
    """What is wrong with the row's plain columns, or None."""
    for name in ("run", "flow", "target", "owner"):
        if not isinstance(fields[name], str):
            return f"its {name} is {_kind(fields[name])}, not text"
    if fields["state"] not in _STATES:
        return f"its state is {_shown(fields['state'])}, none of {', '.join(sorted(_STATES))}"
    for name in ("started", "updated"):
        value = fields[name]
        if not _time(value):
            return f"its {name} time is {_shown(value)}, not a time"
    for name in ("arguments", "outcome"):
        if fields[name] is not None and not isinstance(fields[name], str):
            return f"its {name} column is {_kind(fields[name])}, not text"
    if fields["question"] is not None and not isinstance(fields["question"], str):
        return f"its question is {_kind(fields['question'])}, not JSON text"
    return None


def _question(text: str | None) -> Question | None:
    """The question a record keeps as JSON; ValueError says what is wrong with it."""
    if text is None:
        return None
    try:
        found = json.loads(text)
    except RecursionError:
        raise ValueError("its question is nested too deeply") from None
    except ValueError:
        raise ValueError("its question is not JSON") from None
    if (
        not isinstance(found, dict)
        or sorted(found) != sorted(_QUESTION)
        or not all(isinstance(found[name], str) for name in _QUESTION)
    ):
        raise ValueError(
            f"its question is not an object of text {', '.join(_QUESTION)}"
        )
    return Question(**found)


def _time(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= _LATEST
    )


def _kind(value: object) -> str:
    return "NULL" if value is None else f"of type {type(value).__name__}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
