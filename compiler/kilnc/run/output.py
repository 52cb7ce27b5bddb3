"""What `kiln run` prints of a run's result and error: any value, without ever raising.

Example input: a flow that returned ``10 ** 5000`` (more digits than Python
prints in decimal), or one whose node raised an exception whose `__str__`
raises. ``shown(result)`` is the hexadecimal literal of the same number
(``note(result)`` says why), and ``failure_text("digest", error, False)`` is
``kiln: flow 'digest' failed:`` and ``BadError: <exception str() failed>``.
In `--json`, a result that is not JSON (after dataclasses, pydantic models,
Enums as their values, paths, sets, bytes as base64, datetimes as ISO text,
UUIDs and Decimals as text, timedeltas as seconds: what `kiln run` reads its
arguments from) is its repr, and one nested deeper than Python's recursion
limit is its repr cut at 24 levels (``[[[...]]]``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import json
import shlex
import traceback
import uuid
from collections.abc import Iterator
from enum import Enum
from pathlib import PurePath
from typing import Any, Final, final

from kiln.durable.journal import Question
from kiln.ledger.codec import is_model
from kilnc.run.load import RUN_PACKAGE
from kilnc.run.observe import NodeSummary
from kilnc.terminal import LINES, printable, safe_repr, safe_str

__all__ = [
    "Outcome",
    "failure_text",
    "json_document",
    "json_value",
    "note",
    "payload_value",
    "question_json",
    "question_text",
    "shown",
]

_DEPTH: Final = 24  # levels of a result kept as JSON when it is not JSON as a whole
_PAYLOAD_DEPTH: Final = (
    200  # levels of a journal's JSON shown as JSON; deeper: its text
)


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: its result or its error, and when it began and ended.

    `closed`: stdout's reader went away, and the stream was stopped there.
    """

    result: Any
    error: BaseException | None
    interrupted: bool
    began: float
    ended: float
    closed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


def shown(value: object) -> str | None:
    """How a result prints: a string as it is, None not at all, anything else its repr."""
    if value is None:
        return None
    if isinstance(value, str):
        return str.__str__(value)  # a subclass's own __str__ is not asked
    return safe_repr(value)


def note(value: object) -> str | None:
    """Why a result prints in an unexpected form, if it does."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            int.__repr__(value)
        except ValueError:
            return (
                "kiln: note: the result has more digits than Python prints in decimal"
                " (sys.get_int_max_str_digits()); it is shown in hexadecimal"
            )
    return None


def failure_text(name: str, error: BaseException, show_traceback: bool) -> str:
    """The error and its notes (kiln's name the node and its lines), as Python prints them."""
    try:
        lines = (
            traceback.format_exception(error)
            if show_traceback
            else traceback.format_exception_only(error)
        )
    except Exception:  # a chain too deep to format, say
        lines = [f"{type(error).__name__}: {safe_str(error)}"]
    if not show_traceback:  # the traceback shows a group's members; else, these do
        lines[1:1] = [f"{line}\n" for line in _members(error, "  ")]
    text = _users_names("".join(lines), error)
    return printable(f"kiln: flow {name!r} failed:\n" + text.rstrip(), LINES)


def _users_names(text: str, error: BaseException) -> str:
    """The text with each class of the user's module that was compiled for the run
    named as the user's module names it: `app.errs.LoadError`, where Python says
    `_kiln_run.app.errs.LoadError` (the package `kilnc.run.load` compiles into)."""
    prefix = f"{RUN_PACKAGE}."
    for kind in _classes(error, set()):
        module = kind.__module__
        if module.startswith(prefix):
            named = f"{module}.{kind.__qualname__}"
            text = text.replace(named, named.removeprefix(prefix))
    return text


def _classes(error: BaseException, seen: set[int]) -> Iterator[type]:
    """The classes of `error`, of the errors it was raised from or during, and of
    a group's members: walked with a stack, for a chain may be deeper than the
    interpreter's recursion limit."""
    waiting = [error]
    while waiting:
        current = waiting.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield type(current)
        if isinstance(current, BaseExceptionGroup):
            waiting.extend(current.exceptions)
        waiting.extend(e for e in (current.__cause__, current.__context__) if e)


# How much of an exception group is shown, as Python's traceback module limits it.
_GROUP_WIDTH: Final = 15  # members of one group
_GROUP_DEPTH: Final = 10  # groups inside groups


def _members(error: BaseException, indent: str, depth: int = 0) -> list[str]:
    """A group's members, one line each (`TypeError: x must be a str`), a nested
    group's indented below it: what the group's own message only counts."""
    if not isinstance(error, BaseExceptionGroup):
        return []
    if depth == _GROUP_DEPTH:
        return [f"{indent}... (groups nested deeper)"]
    lines = []
    for member in error.exceptions[:_GROUP_WIDTH]:
        lines.append(f"{indent}- {type(member).__name__}: {safe_str(member)}")
        lines += _members(member, indent + "  ", depth + 1)
    if len(error.exceptions) > _GROUP_WIDTH:
        lines.append(f"{indent}... and {len(error.exceptions) - _GROUP_WIDTH} more")
    return lines


def json_document(
    name: str, outcome: Outcome, summaries: tuple[NodeSummary, ...], events: int
) -> dict[str, Any]:
    """`kiln run --json`'s document: plain JSON values only, so encoding it cannot fail."""
    return {
        "flow": name,
        "result": json_value(outcome.result),
        "ok": outcome.ok,
        "error": _error_json(outcome),
        "wall_seconds": outcome.ended - outcome.began,
        "nodes": [dataclasses.asdict(summary) for summary in summaries],
        "events": events,
    }


def question_text(run: str, question: Question, options: str = "") -> str:
    """The question a durable run waits at, and the command that answers it.

    `options` are added to that command (``" --ledger run.db"``). The payload
    is shown as it is when it is a string, else in the journal's JSON::

        run 'r1' waits for an answer to 'review' (asked at flows.py:9, key 1.0)
          expected: bool
          payload: DRAFT
        answer it: kiln runs answer r1 review=VALUE
    """
    lines = [
        f"run {run!r} waits for an answer to {question.name!r}"
        f" (asked at {question.where}, key {question.key})",
        f"  expected: {question.expected}",
    ]
    payload = payload_value(question.payload)
    if payload is not None:
        text = payload if isinstance(payload, str) else question.payload
        if "\n" in text:
            lines += ["  payload:", *(f"    {line}" for line in text.splitlines())]
        else:
            lines.append(f"  payload: {text}")
    command = f"kiln runs answer {shlex.quote(run)} {question.name}=VALUE{options}"
    lines.append(f"answer it: {command}")
    return printable("\n".join(lines), LINES)


def question_json(question: Question) -> dict[str, Any]:
    """The question as JSON; its payload the journal's JSON value (its text if not JSON)."""
    return {
        "name": question.name,
        "key": question.key,
        "where": question.where,
        "expected": question.expected,
        "payload": payload_value(question.payload),
    }


def payload_value(text: str) -> Any:
    """A journal's text as the JSON value it is: a repr (a value it could not store) as is.

    So is a text nested deeper than `_PAYLOAD_DEPTH` (a crafted ledger's), which
    no JSON document of kiln's could hold.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return value if _depth_below(value, _PAYLOAD_DEPTH) else text


def _depth_below(value: Any, limit: int) -> bool:
    """Whether the JSON value nests fewer than `limit` lists and objects deep."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            member
            for item in level
            if isinstance(item, list | dict)
            for member in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return True
    return False


def _error_json(outcome: Outcome) -> dict[str, Any] | None:
    if outcome.interrupted:
        return {"type": "KeyboardInterrupt", "message": "interrupted", "notes": []}
    error = outcome.error
    if error is None:
        return None
    return _exception_json(error)


def _exception_json(error: BaseException, depth: int = 0) -> dict[str, Any]:
    """Its type, message and notes; a group's members too, as `exceptions`."""
    notes = getattr(error, "__notes__", [])
    found: dict[str, Any] = {
        "type": type(error).__name__,
        "message": safe_str(error),
        "notes": [safe_str(n) for n in notes] if isinstance(notes, list) else [],
    }
    if isinstance(error, BaseExceptionGroup) and depth < _GROUP_DEPTH:
        members = error.exceptions[:_GROUP_WIDTH]
        found["exceptions"] = [_exception_json(m, depth + 1) for m in members]
        found["more_exceptions"] = len(error.exceptions) - len(members)
    return found


def json_value(value: object, depth: int = _DEPTH) -> object:
    """`value` as plain JSON values (dataclasses, paths and sets too), else its repr.

    A list, tuple or dict that is not JSON as a whole keeps its shape, each
    member encoded on its own (a stream's items, say), to `_DEPTH` levels.
    """
    try:
        return json.loads(json.dumps(value, default=_jsonable, allow_nan=False))
    except Exception:  # not JSON, too deep, an int too long, a conversion that raised
        pass
    # Exact types: a subclass's own iteration might raise.
    if depth > 0 and isinstance(value, list | tuple) and type(value) in (list, tuple):
        return [json_value(item, depth - 1) for item in value]
    if (
        depth > 0
        and isinstance(value, dict)
        and type(value) is dict
        and all(type(key) is str for key in value)
    ):
        return {key: json_value(item, depth - 1) for key, item in value.items()}
    return safe_repr(value)


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, PurePath | uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if is_model(type(value)):
        model: Any = value
        return model.model_dump(mode="json", by_alias=True)  # as model_validate reads
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
