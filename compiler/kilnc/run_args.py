"""`name=value` words of `kiln run`, converted by the flow's annotations and bound to it.

Example input: the words ``["path=notes.md", "top=3", "tags=[\\"a\\", \\"b\\"]"]``
for ``async def digest(path: Path, top: int = 5, tags: list[str] | None = None)``.
``bind_arguments(signature, hints, parse_assignments(words, signature))`` gives
the call's arguments ``((), {"path": Path("notes.md"), "top": 3, "tags": ["a", "b"]})``.
A word that does not fit is an `ArgumentError` naming its mistake and what
the flow takes: ``notes.md`` alone has no '=' (``path=notes.md``, say), ``topp=3``
is unknown (did you mean 'top'?), ``top=3 top=4`` gives it twice, no ``path`` at
all leaves a required argument missing.

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
`X | Y`, `Optional[X]`      each member in turn, `str` last; none/null for None
none, `Any`, `object`       JSON when it parses, else the text itself
a pydantic model            its JSON, validated by the model
anything else               JSON; a list for tuple/set/frozenset and for a
                            NamedTuple's fields, an object for a dataclass,
                            each item and field read as its annotation says;
                            checked against the class
==========================  ===============================================

Inside JSON, a value of a type above that JSON has not is a string (a
datetime's ISO text, a path, a UUID) or, for a timedelta, a number of seconds.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import decimal
import difflib
import inspect
import json
import shlex
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import PurePath
from typing import Any, Final

from kiln.ledger.codec import is_model

__all__ = [
    "ArgumentError",
    "bind_arguments",
    "convert",
    "parse_assignments",
    "type_hints",
]

_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0"})
_NONE: Final = frozenset({"none", "null"})
_FROM_LIST: Final[dict[Any, Callable[[list[Any]], Any]]] = {
    tuple: tuple,
    set: set,
    frozenset: frozenset,
}


class ArgumentError(Exception):
    """A `name=value` word that does not fit the flow; the message says how."""


def parse_assignments(
    words: Sequence[str], signature: inspect.Signature
) -> dict[str, str]:
    """``name=value`` words as a mapping; the value is everything after the first ``=``.

    A name that is not one of the flow's is left for `bind_arguments` to name.
    """
    given: dict[str, str] = {}
    first: dict[str, str] = {}  # the word that gave each name
    for index, word in enumerate(words):
        name, equals, value = word.partition("=")
        name = name.strip()
        if not equals:
            raise ArgumentError(_no_equals(word, words[:index], signature))
        if not name:
            raise ArgumentError(
                f"argument {word!r} has no name before '=' ({_takes(signature)})"
            )
        if name in given:
            raise ArgumentError(
                f"argument {name!r} is given twice ({first[name]!r}, then {word!r});"
                " give it once"
            )
        given[name], first[name] = value, word
    return given


def _no_equals(word: str, before: Sequence[str], signature: inspect.Signature) -> str:
    """What a word without '=' most likely is, said with what the flow takes.

    A parameter's name without its value, the rest of a value the shell split
    at a space, or a value without its name.
    """
    parameters = _named(signature)
    previous = before[-1] if before else ""
    if word.strip() in {p.name for p in parameters}:
        hint = f"; give its value as {word.strip()}=VALUE"
    elif "=" in previous and not any(c.isspace() for c in word):
        joined = shlex.quote(f"{previous} {word}")
        hint = f"; if it is the rest of the value before it, quote both: {joined}"
    else:
        named = {w.partition("=")[0].strip() for w in before}
        free = [p for p in parameters if p.name not in named]
        free.sort(key=lambda p: p.default is not p.empty)  # a required one first
        hint = f", such as {shlex.quote(f'{free[0].name}={word}')}" if free else ""
    return (
        f"argument {word!r} has no '=': arguments are name=value{hint}"
        f" ({_takes(signature)})"
    )


def _named(signature: inspect.Signature) -> list[inspect.Parameter]:
    """The parameters an argument can name: all but ``*args`` and ``**kwargs``."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p for p in signature.parameters.values() if p.kind not in variadic]


def _takes(signature: inspect.Signature) -> str:
    names = [p.name for p in _named(signature)]
    return (
        f"the flow takes: {', '.join(names)}"
        if names
        else "the flow takes no arguments"
    )


def type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The evaluated annotations of `function`, each one that evaluates.

    `typing.get_type_hints` gives up on the whole function when one name is
    only imported under TYPE_CHECKING; then each annotation is tried alone, and
    one that still fails stays a string (read as for no annotation).
    """
    try:
        return typing.get_type_hints(function)
    except Exception:
        pass
    namespace = getattr(function, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in inspect.get_annotations(function).items():
        try:
            hints[name] = (
                eval(annotation, namespace)  # the module's own annotation text
                if isinstance(annotation, str)
                else annotation
            )
        except Exception:
            hints[name] = annotation
    return hints


def bind_arguments(
    signature: inspect.Signature, hints: Mapping[str, Any], given: Mapping[str, str]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments of the call that `given` asks for."""
    kinds = inspect.Parameter
    named = _named(signature)
    extra = next(
        (p for p in signature.parameters.values() if p.kind is kinds.VAR_KEYWORD), None
    )
    unknown = [name for name in given if name not in {p.name for p in named}]
    if unknown and extra is None:
        raise ArgumentError(_unknown(unknown[0], signature))
    missing = [p for p in named if p.default is p.empty and p.name not in given]
    if missing:
        listed = ", ".join(
            f"{p.name} ({_type_name(hints.get(p.name, p.empty))})" for p in missing
        )
        how = f"{missing[0].name}=VALUE" if len(missing) == 1 else "name=value"
        raise ArgumentError(
            f"missing required argument{'s' * (len(missing) > 1)}: {listed};"
            f" give {'it' if len(missing) == 1 else 'each'} as {how}"
        )
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    skipped: str | None = None
    for parameter in named:
        if parameter.name not in given:
            skipped = skipped or parameter.name
            continue
        value = convert(
            parameter.name,
            hints.get(parameter.name, parameter.empty),
            given[parameter.name],
        )
        if parameter.kind is kinds.POSITIONAL_ONLY:
            if skipped is not None:
                raise ArgumentError(
                    f"{parameter.name!r} is positional-only: give {skipped!r} too"
                )
            args.append(value)
        else:
            kwargs[parameter.name] = value
    for name in unknown:
        assert extra is not None
        kwargs[name] = convert(name, hints.get(extra.name, extra.empty), given[name])
    return tuple(args), kwargs


def _unknown(name: str, signature: inspect.Signature) -> str:
    names = [p.name for p in _named(signature)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown argument {name!r} ({_takes(signature)}){hint}"


def convert(name: str, annotation: Any, text: str, what: str = "argument") -> Any:
    """`text` read as `annotation` asks; ArgumentError naming the parameter when it cannot be.

    `what` is what the message calls the value (an "answer" to a question, say).
    """
    try:
        return _read(annotation, text)
    except (ValueError, TypeError, OverflowError) as exc:  # a timedelta of 1e300 s
        reason = f": {exc}" if isinstance(exc, _Mismatch) else ""
        raise ArgumentError(
            f"{what} {name!r} expects {_type_name(annotation)}; got {text!r}{reason}"
        ) from None


class _Mismatch(ValueError):
    """A JSON value of the wrong shape: its message is worth showing."""


def _read(annotation: Any, text: str) -> Any:
    if annotation in (inspect.Parameter.empty, Any, object) or isinstance(
        annotation, str
    ):
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
        return _read(annotation.__supertype__, text)
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
        raise _Mismatch(f"not JSON ({exc})") from None


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


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
    raise _Mismatch(f"one of {', '.join(member.name for member in kind)}")


def _literal(choices: tuple[Any, ...], text: str) -> Any:
    for choice in choices:
        parsed = _json_or_text(text)
        if text == str(choice) or (type(parsed) is type(choice) and parsed == choice):
            return choice
    raise _Mismatch(f"one of {', '.join(map(repr, choices))}")


def _union(members: tuple[Any, ...], text: str) -> Any:
    # str takes any text, so it is tried last: `int | str` reads "5" as 5.
    ordered = sorted(members, key=lambda member: member is str)
    for member in ordered:
        try:
            return _read(member, text)
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
        return value
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
            raise _Mismatch(f"{len(args)} items, not {len(value)}")
        return [_from_json(arg, item) for arg, item in zip(args, value, strict=True)]
    item = args[0] if args else Any
    return [_from_json(item, element) for element in value]


def _named_tuple(kind: type[tuple[Any, ...]], value: Any) -> Any:
    """A NamedTuple from a JSON array of its fields in order (as JSON writes one)."""
    if not isinstance(value, list):
        raise _Mismatch(f"a JSON array of {kind.__name__}'s fields")
    hints = typing.get_type_hints(kind)
    names: tuple[str, ...] = getattr(kind, "_fields", ())
    if len(value) != len(names):
        raise _Mismatch(f"{len(names)} fields ({', '.join(names)}), not {len(value)}")
    return kind(
        *(_from_json(hints.get(n, Any), v) for n, v in zip(names, value, strict=True))
    )


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
        item = typing.get_args(annotation)[1]
        return {key: _from_json(item, element) for key, element in value.items()}
    if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields"):
        return _named_tuple(kind, value)
    if is_model(kind) and isinstance(kind, type):
        model: Any = kind  # pydantic is installed: the model's own module imports it
        try:
            return model.model_validate(value)
        except ValueError as exc:  # pydantic's ValidationError
            raise _Mismatch(_validation_errors(exc)) from None
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            raise _Mismatch(f"a JSON object of {kind.__name__}'s fields")
        hints = typing.get_type_hints(kind)
        # A field __init__ does not take is in what --json prints: it is made again.
        made = {f.name for f in dataclasses.fields(kind) if not f.init}
        try:
            return kind(
                **{
                    name: _from_json(hints.get(name, Any), field)
                    for name, field in value.items()
                    if name not in made
                }
            )
        except TypeError as exc:
            raise _Mismatch(str(exc)) from None
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
            raise _Mismatch(f"the JSON is {type(value).__name__}, not {kind.__name__}")
    return value


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise _Mismatch(f"not base64 ({exc})") from None


def _type_name(annotation: Any) -> str:
    """An annotation as the user wrote it, short: ``list[Path]``, ``int | None``."""
    if annotation is inspect.Parameter.empty:
        return "any value"
    if isinstance(annotation, str):
        return annotation
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(map(_type_name, args))
    if origin is not None and args:
        return f"{_type_name(origin)}[{', '.join(map(_type_name, args))}]"
    name = getattr(annotation, "__qualname__", None) or getattr(
        annotation, "__name__", None
    )
    return name if isinstance(name, str) else repr(annotation)
