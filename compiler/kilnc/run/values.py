"""read_value: the text of a `name=value` word read as its parameter's annotation asks.

Example input: the annotation `list[datetime.date]` and the text
``["2024-01-31", "2024-02-29"]``. Output: the list of two `date`s. A text
that does not fit raises ValueError or TypeError (`Mismatch` when its
message says what JSON was wrong), which `args.convert` turns into an
`ArgumentError` naming the parameter.

How a value is read, by the parameter's annotation:

==========================  ===============================================
annotation                  the text is read as
==========================  ===============================================
`str`                       itself
`int`, `float`              Python's `int()`, `float()`
`bool`                      true/false, yes/no, 1/0 (any case)
`pathlib.Path` (a PurePath) the class called on it (a NewType: its base)
`datetime`, `date`, `time`  ISO 8601 (`fromisoformat`)
`timedelta`                 seconds
`UUID`, `Decimal`           the class called on it
`bytes`                     base64
`Literal[...]`, an `Enum`    the choice it spells (an Enum member's name or value)
`X | Y`, `Optional[X]`      each member in turn, `str` last; none/null for None,
                            and a JSON string for the str it quotes
none, `Any`, `object`       JSON when it parses, else the text itself
a pydantic model            its JSON, validated by the model
anything else               JSON; a list for tuple/set/frozenset and for a
                            NamedTuple's fields, an object for a dataclass or
                            a TypedDict (records.py), each item and field read
                            as its annotation says; checked against the class
==========================  ===============================================

A mismatch inside the value says where it is (``tags.0: the JSON is int, not
str``). An annotation kiln could not evaluate is never read here: `convert`
refuses its argument.

Inside JSON, a value of a type above that JSON has not is a string (a
datetime's ISO text, a path, a UUID) or, for a timedelta, a number of seconds.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import inspect
import json
import types
import typing
import uuid
from collections.abc import Callable
from enum import Enum
from pathlib import PurePath
from typing import Any, Final

from kiln.ledger.codec import is_model
from kilnc.run.mismatch import Mismatch, type_name
from kilnc.run.records import is_record, read_record

_TRUE: Final = frozenset({"true", "yes", "1"})


_FALSE: Final = frozenset({"false", "no", "0"})


_NONE: Final = frozenset({"none", "null"})


_FROM_LIST: Final[dict[Any, Callable[[list[Any]], Any]]] = {
    tuple: tuple,
    set: set,
    frozenset: frozenset,
}


def read_value(annotation: Any, text: str) -> Any:
    if annotation in (inspect.Parameter.empty, Any, object):
        return _json_or_text(text)
    if annotation is str:
        return text
    if annotation is bool:
        return _bool(text)
    if annotation in (int, float) or (
        isinstance(annotation, type) and issubclass(annotation, PurePath)
    ):
        return annotation(text)
    standard = _STANDARD.get(annotation)
    if standard is not None:
        return standard(text)
    if annotation is bytes:
        return _base64(text)
    if isinstance(annotation, typing.NewType):
        return read_value(annotation.__supertype__, text)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum(annotation, text)
    if annotation is type(None):
        if text.lower() in _NONE:
            return None
        raise ValueError(text)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return _literal(typing.get_args(annotation), text)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(annotation), text)
    return _shaped(annotation, origin, _json(text))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Mismatch(f"not JSON ({exc})") from None
    except RecursionError:
        raise Mismatch("JSON nested too deeply to read") from None


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:
        raise Mismatch("JSON nested too deeply to read") from None


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def _enum(kind: type[Enum], text: str) -> Enum:
    for member in kind:
        if text in (member.name, str(member.value)):
            return member
    raise Mismatch(f"one of {', '.join(member.name for member in kind)}")


def _literal(choices: tuple[Any, ...], text: str) -> Any:
    for choice in choices:
        parsed = _json_or_text(text)
        if text == str(choice) or (type(parsed) is type(choice) and parsed == choice):
            return choice
    raise Mismatch(f"one of {', '.join(map(repr, choices))}")


def _union(members: tuple[Any, ...], text: str) -> Any:
    # A quoted string is the text inside: `'"null"'` is "null" for `str | None`.
    if str in members and text.startswith('"'):
        quoted = _json_or_text(text)
        if isinstance(quoted, str) and quoted is not text:
            return quoted
    # str takes any text, so it is tried last: `int | str` reads "5" as 5.
    ordered = sorted(members, key=lambda member: member is str)
    for member in ordered:
        try:
            return read_value(member, text)
        except (ValueError, TypeError):
            continue
    raise ValueError(text)


def _decimal(text: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(text) from None


# Standard types read from their text (or, inside JSON, from a string or a number).
_STANDARD: Final[dict[Any, Callable[[Any], Any]]] = {
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    datetime.time: datetime.time.fromisoformat,
    datetime.timedelta: lambda text: datetime.timedelta(seconds=float(text)),
    uuid.UUID: uuid.UUID,
    decimal.Decimal: _decimal,
}


def _from_json(annotation: Any, value: Any) -> Any:
    """A JSON value inside an argument read as its annotation says, item by item."""
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return annotation(value) if isinstance(value, str) else value
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum(annotation, str(value))
    standard = _STANDARD.get(annotation)
    if standard is not None and isinstance(value, str | int | float):
        return standard(value if annotation is datetime.timedelta else str(value))
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            try:
                return _from_json(member, value)
            except (ValueError, TypeError):
                continue
        raise Mismatch(
            f"the JSON is {type(value).__name__}, not {type_name(annotation)}"
        )
    if origin is typing.Annotated:
        return _from_json(typing.get_args(annotation)[0], value)
    return (
        _shaped(annotation, origin, value)
        if origin or isinstance(annotation, type)
        else value
    )


def _items_of(annotation: Any, origin: Any, value: list[Any]) -> list[Any]:
    args = typing.get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise Mismatch(f"{len(args)} items, not {len(value)}")
        return [
            _at(i, arg, item)
            for i, (arg, item) in enumerate(zip(args, value, strict=True))
        ]
    item = args[0] if args else Any
    return [_at(i, item, element) for i, element in enumerate(value)]


def _at(key: object, annotation: Any, value: Any) -> Any:
    """`_from_json` of the item or field `key` of a value; a mismatch in it says where."""
    try:
        return _from_json(annotation, value)
    except Mismatch as exc:
        raise exc.within(key) from None


def _validation_errors(error: ValueError) -> str:
    """A pydantic ValidationError as one line: each field's path and what it needs."""
    errors = getattr(error, "errors", None)
    try:
        found = errors() if callable(errors) else None
    except Exception:  # not pydantic's after all
        found = None
    if not isinstance(found, list) or not found:
        return " ".join(str(error).split())
    return "; ".join(
        f"{'.'.join(map(str, item.get('loc', ()))) or 'the value'}: {item.get('msg', '')}"
        for item in found
        if isinstance(item, dict)
    )


def _shaped(annotation: Any, origin: Any, value: Any) -> Any:
    """A JSON value made the container the annotation names, and checked against it."""
    kind = origin or annotation
    if kind in _FROM_LIST and isinstance(value, list):
        return _FROM_LIST[kind](_items_of(annotation, origin, value))
    if kind is list and isinstance(value, list):
        return _items_of(annotation, origin, value)
    if (
        kind is dict
        and isinstance(value, dict)
        and len(typing.get_args(annotation)) == 2
    ):
        key_type, item = typing.get_args(annotation)
        return {
            _key(key_type, key): _at(key, item, element)
            for key, element in value.items()
        }
    if is_model(kind) and isinstance(kind, type):
        model: Any = kind  # pydantic is installed: the model's own module imports it
        try:
            return model.model_validate(value)
        except ValueError as exc:  # pydantic's ValidationError
            raise Mismatch(_validation_errors(exc)) from None
    if is_record(kind):
        return read_record(kind, value, _at)
    if kind is float and type(value) is int:
        return float(value)  # JSON's 2 is a number, as 2.0 is
    if kind is bytes and isinstance(value, str):
        return _base64(value)
    if isinstance(kind, type):
        try:
            # JSON's true is no int: bool is an int to isinstance only.
            fits = isinstance(value, kind) and not (
                type(value) is bool and kind is not bool
            )
        except TypeError:  # a Protocol that is not runtime-checkable, say
            return value
        if not fits:
            raise Mismatch(f"the JSON is {type(value).__name__}, not {kind.__name__}")
    return value


def _key(annotation: Any, key: str) -> Any:
    """A JSON object's key, which is always text, read as the dict's key type says."""
    if annotation in (Any, object, str):
        return key
    try:
        return read_value(annotation, key)
    except (ValueError, TypeError):
        raise Mismatch(f"the key {key!r} is not {type_name(annotation)}") from None


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise Mismatch(f"not base64 ({exc})") from None
