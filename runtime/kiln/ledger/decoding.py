"""Values out of the ledger: the JSON that `kiln.ledger.codec` wrote, rebuilt.

Decoding never looks a class up by the name it reads. `Allowed` holds the
classes a node's results may rebuild (the compiler lists them from the node's
return annotation); a stored name is only ever matched against those, and
anything else is `Undecodable`. Decoding is one `json.loads` whose object
hook rebuilds each tagged object, innermost first.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import decimal
import functools
import json
import math
import pathlib
import typing
import uuid
import zoneinfo
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, Final, NoReturn, TypeVar

from kiln.ledger.codec import PATH_CLASSES, Undecodable, class_name, is_model

__all__ = ["Allowed", "decode"]

Moment = TypeVar("Moment", datetime.datetime, datetime.time)

_NON_FINITE: Final = {
    "nan": math.nan,
    "-nan": -math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
}
_PATHS: Final[dict[str, type[pathlib.PurePath]]] = {
    kind.__name__: kind for kind in PATH_CLASSES
}


class Allowed:
    """The classes a stored value may rebuild, found by the name `encode` gives them.

    `classes` come from the compiled flow (the node's return annotation, and
    the field types of the classes it names); whatever in it is not a
    dataclass, NamedTuple, Enum or pydantic model class is ignored. Two of one name make that
    name ambiguous: a value naming it is `Undecodable`.
    """

    __slots__ = ("_by_name", "decoder")

    def __init__(self, classes: Iterable[object] = (), home: str = "") -> None:
        by_name: dict[str, _Class | None] = {}
        for cls in classes:
            found = _rebuilt(cls) if isinstance(cls, type) else None
            if found is not None:
                name = class_name(found.cls, home)
                known = by_name.get(name, found)
                by_name[name] = (
                    found if known is not None and known.cls is cls else None
                )
        self._by_name = by_name
        # Made once: a decoder costs more to build than a short text to decode.
        self.decoder = json.JSONDecoder(
            object_hook=functools.partial(_tagged, allowed=self),
            parse_constant=_constant,
        )

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def find(self, name: object, tag: str) -> _Class:
        """The allowed class called `name`, which `tag` must fit; else `Undecodable`."""
        found = self._by_name.get(name) if type(name) is str else None
        if found is not None and found.tag == tag:
            return found
        if type(name) is not str:
            raise Undecodable(f"a {tag} named by {type(name).__name__}, not by a str")
        if name not in self._by_name:
            allowed = ", ".join(map(repr, sorted(self._by_name))) or "none"
            raise Undecodable(
                f"class {name!r} is not one the node's return annotation names "
                f"(it names {allowed})"
            )
        if found is None:
            raise Undecodable(f"two classes named {name!r} in the return annotation")
        raise Undecodable(f"{name!r} is not stored as {tag}")


@dataclasses.dataclass(frozen=True, slots=True)
class _Class:
    """An allowed class, and what rebuilding one of its values needs."""

    cls: type
    tag: str  # how its values are stored: $dataclass, $namedtuple, $enum, $model
    init: frozenset[str]  # the fields its __init__ takes (a dataclass's)
    fields: frozenset[str]  # all of its fields (a dataclass's)


def _rebuilt(kind: type) -> _Class | None:
    """`kind` as `decode` rebuilds it; None if it is not a class the ledger stores."""
    if issubclass(kind, Enum):
        return _Class(kind, "$enum", frozenset(), frozenset())
    if issubclass(kind, tuple) and hasattr(kind, "_fields"):
        return _Class(kind, "$namedtuple", frozenset(), frozenset())
    if dataclasses.is_dataclass(kind):
        fields = dataclasses.fields(kind)
        init = frozenset(f.name for f in fields if f.init)
        return _Class(kind, "$dataclass", init, frozenset(f.name for f in fields))
    if is_model(kind):
        return _Class(kind, "$model", frozenset(), frozenset())
    return None


def decode(text: str, allowed: Allowed) -> Any:
    """The value that `encode` wrote as `text`, its classes among `allowed`.

    Whatever the text holds, nothing runs but the constructors of `allowed`
    classes; a text that is not such a value is `Undecodable`.
    """
    try:
        return allowed.decoder.decode(text)
    except Undecodable:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as error:
        raise Undecodable(f"{type(error).__name__}: {error}") from error


def _tagged(data: dict[str, Any], allowed: Allowed) -> Any:
    """A decoded JSON object: a tagged value rebuilt, or a plain dict."""
    if len(data) == 1:
        ((tag, body),) = data.items()
        if tag.startswith("$"):
            rebuild = _TAGS.get(tag)
            if rebuild is None:
                raise Undecodable(f"unknown tag {tag!r}")
            return rebuild(body, allowed, tag)
    elif any(key.startswith("$") for key in data):
        raise Undecodable("a tag beside other keys")
    return data


def _constant(name: str) -> NoReturn:
    raise Undecodable(f"{name} is not JSON")  # NaN, Infinity: `encode` tags them


def _listed(body: object, tag: str) -> list[Any]:
    if type(body) is not list:
        raise Undecodable(f"{tag} holds a {type(body).__name__}, not a list")
    return body


def _non_finite(body: object, allowed: Allowed, tag: str) -> float:
    if type(body) is not str or body not in _NON_FINITE:
        raise Undecodable(f"{tag} holds {body!r}")
    return _NON_FINITE[body]


def _bytes(body: object, allowed: Allowed, tag: str) -> bytes:
    if type(body) is not str:
        raise Undecodable(f"{tag} holds a {type(body).__name__}, not a str")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as error:
        raise Undecodable(f"{tag}: {error}") from None


def _pairs(body: object, allowed: Allowed, tag: str) -> dict[Any, Any]:
    pairs = _listed(body, tag)
    if not all(type(pair) is list and len(pair) == 2 for pair in pairs):
        raise Undecodable(f"{tag} holds something other than [key, value] pairs")
    return dict(pairs)


def _instance(body: object, allowed: Allowed, tag: str) -> Any:
    parts = _listed(body, tag)
    if len(parts) != 2 or type(parts[1]) is not dict:
        raise Undecodable(f"{tag} holds something other than [name, fields]")
    name, values = parts
    found = allowed.find(name, tag)
    cls = found.cls
    if tag == "$namedtuple" or values.keys() <= found.init:
        return cls(**values)
    # Fields that __init__ does not take, and attributes set beside the fields,
    # are set as they were: only names that are not the class's own attributes
    # (a method, a property), unless they are fields.
    instance = cls(**{k: v for k, v in values.items() if k in found.init})
    for key, value in values.items():
        if key in found.init:
            continue
        if key not in found.fields and (
            not key.isidentifier() or key.startswith("__") or hasattr(cls, key)
        ):
            raise Undecodable(f"{key!r} is not an attribute a {cls.__qualname__} holds")
        object.__setattr__(instance, key, value)
    return instance


def _enum(body: object, allowed: Allowed, tag: str) -> Enum:
    parts = _listed(body, tag)
    if len(parts) != 2:
        raise Undecodable(f"{tag} holds something other than [name, value]")
    name, value = parts
    return typing.cast(Enum, allowed.find(name, tag).cls(value))


def _model(body: object, allowed: Allowed, tag: str) -> Any:
    parts = _listed(body, tag)
    if not (
        len(parts) in (2, 3)
        and type(parts[1]) is dict
        and (
            len(parts) == 2
            or all(type(unset) is str for unset in _listed(parts[2], tag))
        )
    ):
        raise Undecodable(f"{tag} holds something other than [name, fields, unset]")
    name, values, *unset = parts
    given = values.keys() - set(*unset)
    # As the model was: its validators ran when it was made, not again.
    model: Any = allowed.find(name, tag).cls
    return model.model_construct(_fields_set=given, **values)


def _text(body: object, tag: str) -> str:
    if type(body) is not str:
        raise Undecodable(f"{tag} holds a {type(body).__name__}, not a str")
    return body


def _zoned(body: object, tag: str) -> tuple[str, zoneinfo.ZoneInfo | None, int]:
    """A datetime's or a time's ISO text, its zone, its fold."""
    if type(body) is str:
        return body, None, 0
    parts = _listed(body, tag)
    if not (
        len(parts) in (2, 3)
        and type(parts[0]) is str
        and (parts[1] is None or type(parts[1]) is str)
        and (len(parts) == 2 or parts[2] == 1)
    ):
        raise Undecodable(f"{tag} holds something other than [text, zone, fold]")
    zone = None if parts[1] is None else zoneinfo.ZoneInfo(parts[1])
    return parts[0], zone, len(parts) - 2


def _rebuilt_moment(
    parse: Callable[[str], Moment],
) -> Callable[[object, Allowed, str], Moment]:
    """The decoder of a datetime's or a time's body: its ISO text, zone and fold."""

    def rebuild(body: object, allowed: Allowed, tag: str) -> Moment:
        text, zone, fold = _zoned(body, tag)
        value = parse(text)
        if zone is not None:  # the wall clock of the text, in the zone it named
            value = value.replace(tzinfo=zone)
        return value.replace(fold=fold)

    return rebuild


def _timedelta(body: object, allowed: Allowed, tag: str) -> datetime.timedelta:
    parts = _listed(body, tag)
    if len(parts) != 3 or not all(type(part) is int for part in parts):
        raise Undecodable(f"{tag} holds something other than [days, seconds, µs]")
    days, seconds, microseconds = parts
    return datetime.timedelta(days, seconds, microseconds)


def _decimal(body: object, allowed: Allowed, tag: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(_text(body, tag))
    except decimal.InvalidOperation:
        raise Undecodable(f"{tag} holds {body!r}, not a decimal") from None


def _pathname(body: object, allowed: Allowed, tag: str) -> pathlib.PurePath:
    parts = _listed(body, tag)
    if len(parts) != 2 or parts[0] not in _PATHS or type(parts[1]) is not str:
        raise Undecodable(f"{tag} holds something other than [path class, text]")
    try:
        return _PATHS[parts[0]](parts[1])
    except NotImplementedError:  # a WindowsPath, here: the path class cannot be made
        raise Undecodable(f"{parts[0]} cannot be made on this system") from None


_TAGS: Final[dict[str, Callable[[object, Allowed, str], Any]]] = {
    "$tuple": lambda body, _, tag: tuple(_listed(body, tag)),
    "$set": lambda body, _, tag: set(_listed(body, tag)),
    "$frozenset": lambda body, _, tag: frozenset(_listed(body, tag)),
    "$dict": _pairs,
    "$float": _non_finite,
    "$bytes": _bytes,
    "$dataclass": _instance,
    "$namedtuple": _instance,
    "$enum": _enum,
    "$model": _model,
    "$datetime": _rebuilt_moment(datetime.datetime.fromisoformat),
    "$date": lambda body, _, tag: datetime.date.fromisoformat(_text(body, tag)),
    "$time": _rebuilt_moment(datetime.time.fromisoformat),
    "$timedelta": _timedelta,
    "$uuid": lambda body, _, tag: uuid.UUID(_text(body, tag)),
    "$decimal": _decimal,
    "$path": _pathname,
}
