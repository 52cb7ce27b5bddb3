"""Values in the ledger: JSON that keeps Python's types, and never pickle.

A value becomes a JSON tree in which whatever JSON cannot tell apart is tagged
by a one-key object whose key starts with ``$``::

    (1, [2.0, None])           {"$tuple": [1, [2.0, null]]}
    float("nan"), -inf         {"$float": "nan"}, {"$float": "-inf"}
    {3: "a"}, {"$x": 1}        {"$dict": [[3, "a"]]}, {"$dict": [["$x", 1]]}
    {1, 2}, frozenset()        {"$set": [1, 2]}, {"$frozenset": []}
    b"\\x00"                    {"$bytes": "AA=="}
    Point(x=1, y=2)            {"$dataclass": ["Point", {"x": 1, "y": 2}]}
    geometry.Point(1, 2)       {"$dataclass": ["geometry:Point", {"x": 1, "y": 2}]}
    Pair(a=1, b="b")           {"$namedtuple": ["Pair", {"a": 1, "b": "b"}]}
    Color.RED                  {"$enum": ["Color", 1]}
    datetime(2026, 1, 2, 3, 4) {"$datetime": "2026-01-02T03:04:00"}
    ... tzinfo=ZoneInfo("UTC") {"$datetime": ["2026-01-02T03:04:00+00:00", "UTC"]}
    date(2026, 1, 2)           {"$date": "2026-01-02"}
    time(3, 4, 5)              {"$time": "03:04:05"}
    timedelta(days=1, ms=5)    {"$timedelta": [1, 0, 5000]}
    UUID("12345678-...")       {"$uuid": "12345678-..."}
    Decimal("1.10")            {"$decimal": "1.10"}
    PurePosixPath("a/b")       {"$path": ["PurePosixPath", "a/b"]}
    Answer(text="hi")          {"$model": ["Answer", {"text": "hi"}]}   (pydantic)

The same text is a call's key and a stored result, so two values share a text
only when the node could not tell them apart: ``1``, ``1.0`` and ``True``,
``(1,)`` and ``[1]``, ``0.0`` and ``-0.0``, ``{"a": 1, "b": 2}`` and
``{"b": 2, "a": 1}`` (dict order is kept), an ``IntEnum`` member and its int,
two classes of one name in different modules, all encode differently. Set
items are sorted by their text: a set's iteration order is not a property
of its value (it changes with the hash seed between processes), so it is
not part of a key. Only exact types are taken (a subclass of `list` or `str`
might behave differently once rebuilt as its base); anything else raises
`Unencodable`, which says where in the value the culprit was.

A class is named by its qualified name when it lives in the node's own
module (`home`), and by ``module:qualname`` otherwise: a compiled flow holds
copies of its source module's classes, and a key must not change with the
name of the output module.

A datetime or time keeps its offset, and the key of a `zoneinfo.ZoneInfo`
zone (other tzinfo classes, and a `timezone` with a name of its own, are
refused: their values would come back as others); `fold` is kept where it
is 1. A pydantic v2 model (a class with `model_fields` and
`model_construct`: kiln imports no pydantic) is stored by its fields and
its extra fields, each stored as any value is, and rebuilt with
`model_construct`, which sets them as they were without running the
model's validators again (a validator that changes a value would change
it twice).

Values come back with `kiln.ledger.decoding.decode`, which rebuilds only
the classes it is allowed.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import functools
import json
import json.encoder
import math
import pathlib
import typing
import uuid
import zoneinfo
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, Final, TypeAlias

__all__ = [
    "JSON",
    "PATH_CLASSES",
    "STORED_TYPES",
    "Undecodable",
    "Unencodable",
    "class_name",
    "encode",
    "is_model",
]

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None

_SCALARS: Final = frozenset({str, int, bool, type(None)})
_SHORT: Final = 10**18
_string: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii


#: What the ledger stores, as messages say it.
STORED_TYPES: Final = (
    "JSON values, tuples, sets, bytes, datetimes, UUIDs, Decimals, paths, Enums, "
    "dataclasses, NamedTuples and pydantic models"
)


class Unencodable(TypeError):
    """A value that the ledger cannot store: its type `kind`, found at `where` inside it.

    `where` is a path like ``"[2].name"`` (empty for the value itself).
    """

    def __init__(self, kind: str, where: str = "", reason: str = "") -> None:
        self.kind = kind
        self.where = where
        self.reason = reason or f"a value of type {kind}"
        inside = f" at {where}" if where else ""
        super().__init__(f"{self.reason}{inside}")

    def inside(self, step: str) -> Unencodable:
        """The same problem, one level further out (`step` is the way in)."""
        return Unencodable(self.kind, step + self.where, self.reason)


class Undecodable(ValueError):
    """Stored JSON that is not a value this node may return (a class it may not rebuild, say)."""


def class_name(cls: type, home: str) -> str:
    """How a text names `cls`: its qualified name in module `home`, else ``module:qualname``."""
    module = cls.__module__
    return cls.__qualname__ if module == home else f"{module}:{cls.__qualname__}"


def encode(value: object, home: str = "") -> str:
    """The JSON text of `value`: a call's key and a stored result.

    Equal texts mean values the node cannot tell apart (same types all the way
    down, same dict order); `home` is the node's module, whose classes are
    named without it.
    """
    kind = type(value)
    if kind is str:  # the common arguments, without building a tree
        return _string(typing.cast(str, value))
    if kind is int and -_SHORT < typing.cast(int, value) < _SHORT:
        return int.__repr__(typing.cast(int, value))
    if kind is float and math.isfinite(typing.cast(float, value)):
        return float.__repr__(typing.cast(float, value))  # what json.dumps writes
    try:
        return _dumps(_tree(value, home))
    except RecursionError:
        name = kind.__name__
        raise Unencodable(
            name, reason=f"a {name} nested too deeply, or circular"
        ) from None


def _dumps(tree: JSON) -> str:
    try:
        return json.dumps(
            tree,
            separators=(",", ":"),
            # ASCII: a lone surrogate in a str survives as an escape, which
            # SQLite's UTF-8 text would reject.
            ensure_ascii=True,
            allow_nan=False,
        )
    except ValueError as error:  # an int longer than sys.get_int_max_str_digits()
        raise Unencodable("int", reason=f"an int too long to write ({error})") from None


def _tree(value: object, home: str) -> JSON:
    kind = type(value)
    if kind in _SCALARS:
        return typing.cast(JSON, value)
    if kind is float:
        return _float(typing.cast(float, value))
    if kind is list:
        return _items(typing.cast(list[object], value), home, _index)
    if kind is tuple:
        return {"$tuple": _items(typing.cast(tuple[object, ...], value), home, _index)}
    if kind is dict:
        return _mapping(typing.cast(dict[object, object], value), home)
    if kind is set or kind is frozenset:
        items = _items(typing.cast(set[object], value), home, _member)
        items.sort(key=_dumps)
        return {f"${kind.__name__}": items}
    if kind is bytes:
        return {"$bytes": base64.b64encode(typing.cast(bytes, value)).decode("ascii")}
    stored = _STANDARD.get(kind)
    if stored is not None:
        return stored(value)
    if is_model(kind):
        return {"$model": _model_body(value, class_name(kind, home), home)}
    if isinstance(value, Enum):
        return {"$enum": [class_name(kind, home), _within(value.value, home, ".value")]}
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        if getattr(value, "__dict__", None):
            raise Unencodable(
                _kind(kind), reason=f"a {_kind(kind)} with attributes beyond its fields"
            )
        fields = _fields(value, kind._fields, home)
        return {"$namedtuple": [class_name(kind, home), fields]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        # Attributes set beside the fields are part of what the node sees; a
        # cached_property's value is not, since it is computed from them again.
        extra = getattr(value, "__dict__", {})
        names += [
            name
            for name in extra
            if name not in names
            and not isinstance(getattr(kind, name, None), functools.cached_property)
        ]
        return {"$dataclass": [class_name(kind, home), _fields(value, names, home)]}
    raise Unencodable(_kind(kind))


def _moment(value: datetime.datetime | datetime.time) -> JSON:
    """A datetime or a time: its ISO text, with its zone's key and fold where it has them."""
    zone = value.tzinfo
    key: str | None = None
    if isinstance(zone, zoneinfo.ZoneInfo):
        key = zone.key
    elif zone is not None and (
        type(zone) is not datetime.timezone
        or zone.tzname(None) != datetime.timezone(_offset(zone)).tzname(None)
    ):
        kind = type(value).__name__
        raise Unencodable(
            kind,
            reason=f"a {kind} whose tzinfo is a {type(zone).__qualname__} "
            f"({zone!r}); the ledger keeps fixed offsets and zoneinfo zones",
        )
    text = value.isoformat()
    if key is None and not value.fold:
        return text
    return [text, key, value.fold] if value.fold else [text, key]


def _offset(zone: datetime.tzinfo) -> datetime.timedelta:
    offset = zone.utcoffset(None)
    assert offset is not None, "a timezone has a fixed offset"
    return offset


def _delta(value: datetime.timedelta) -> JSON:
    return [value.days, value.seconds, value.microseconds]


def _path(value: pathlib.PurePath) -> JSON:
    return [type(value).__name__, str(value)]


# The path classes stored, by their name ({"$path": ["PurePosixPath", "a/b"]}).
PATH_CLASSES: Final[tuple[type[pathlib.PurePath], ...]] = (
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.PosixPath,
    pathlib.WindowsPath,
)
# Standard types stored by a tag of their own: what each becomes.
_STANDARD: Final[dict[type, Callable[[Any], JSON]]] = {
    datetime.datetime: lambda value: {"$datetime": _moment(value)},
    datetime.date: lambda value: {"$date": value.isoformat()},
    datetime.time: lambda value: {"$time": _moment(value)},
    datetime.timedelta: lambda value: {"$timedelta": _delta(value)},
    uuid.UUID: lambda value: {"$uuid": str(value)},
    decimal.Decimal: lambda value: {"$decimal": str(value)},
    **{kind: lambda value: {"$path": _path(value)} for kind in PATH_CLASSES},
}


def is_model(kind: type) -> bool:
    """Whether `kind` is a pydantic v2 model class, told without importing pydantic."""
    return isinstance(getattr(kind, "model_fields", None), dict) and callable(
        getattr(kind, "model_construct", None)
    )


def _model_body(value: Any, name: str, home: str) -> JSON:
    """A model's name and fields, and the fields it was not given (their defaults)."""
    names = list(type(value).model_fields)
    extra = getattr(value, "__pydantic_extra__", None) or {}
    names += [name for name in extra if name not in names]
    given = value.model_fields_set
    unset: list[JSON] = [name for name in names if name not in given]
    body: list[JSON] = [name, _fields(value, names, home)]
    return [*body, unset] if unset else body


def _kind(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")


def _float(number: float) -> JSON:
    if math.isfinite(number):
        return number
    if math.isnan(number):
        # The sign of a NaN shows (math.copysign, struct), so it is kept.
        return {"$float": "-nan" if math.copysign(1.0, number) < 0 else "nan"}
    return {"$float": "inf" if number > 0 else "-inf"}


def _index(index: int, item: object) -> str:
    return f"[{index}]"


def _member(index: int, item: object) -> str:
    return f"{{{item!r}}}"


def _items(
    values: Iterable[object], home: str, step: Callable[[int, object], str]
) -> list[JSON]:
    try:
        return [_tree(item, home) for item in values]
    except Unencodable:
        pass
    # Only after a failure: find the item again, to say where it is.
    for index, item in enumerate(values):
        _within(item, home, step(index, item))
    raise AssertionError("unreachable: an item that failed to encode encoded")


def _within(value: object, home: str, step: str) -> JSON:
    try:
        return _tree(value, home)
    except Unencodable as error:
        raise error.inside(step) from None


def _fields(value: object, names: Iterable[str], home: str) -> dict[str, JSON]:
    fields: dict[str, JSON] = {}
    for name in names:
        try:
            field = getattr(value, name)
        except AttributeError:
            kind = type(value)
            raise Unencodable(
                _kind(kind), reason=f"a {_kind(kind)} whose field {name!r} is not set"
            ) from None
        fields[name] = _within(field, home, f".{name}")
    return fields


def _mapping(value: dict[object, object], home: str) -> JSON:
    if all(type(key) is str and not key.startswith("$") for key in value):
        return {
            typing.cast(str, key): _within(item, home, f"[{key!r}]")
            for key, item in value.items()
        }
    return {
        "$dict": [
            [_within(key, home, f"<key {key!r}>"), _within(item, home, f"[{key!r}]")]
            for key, item in value.items()
        ]
    }
