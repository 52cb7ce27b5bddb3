"""Values in the ledger: JSON that keeps Python's types, and never pickle.

A value becomes a JSON tree in which whatever JSON cannot tell apart is tagged
by a one-key object whose key starts with ``$``::

    (1, [2.0, None])           {"$tuple": [1, [2.0, null]]}
    float("nan"), -inf         {"$float": "nan"}, {"$float": "-inf"}
    {3: "a"}, {"$x": 1}        {"$dict": [[3, "a"]]}, {"$dict": [["$x", 1]]}
    {1, 2}, frozenset()        {"$set": [1, 2]}, {"$frozenset": []}
    b"\\x00"                    {"$bytes": "AA=="}
    Point(x=1, y=2)            {"$dataclass": ["Point", {"x": 1, "y": 2}]}
    Pair(a=1, b="b")           {"$namedtuple": ["Pair", {"a": 1, "b": "b"}]}
    Color.RED                  {"$enum": ["Color", 1]}

so ``1``, ``1.0`` and ``True``, ``(1,)`` and ``[1]``, ``0.0`` and ``-0.0``
all encode differently, and decoding gives back a value equal to the one
encoded, of the same types all the way down. Only exact types are taken (a
subclass of `list` or `str` might behave differently once rebuilt as its
base); anything else raises `Unencodable`, which says where in the value the
culprit was.

Classes are named by qualified name, not by module: a compiled flow holds
copies of its source module's classes, and a key must not change with the
name of the output module. `Classes` finds a class again from its name: in
the node's return annotation first (and the field types of the classes it
names, however deep), then among the module-level names of the node's
module. Decoding is one `json.loads` whose object hook rebuilds each tagged
object, innermost first.

`canonical_text` is the deterministic text that keys hash (sorted object
keys, set items and dict pairs; no whitespace). `stored_text` keeps dict
order, since a stored result must come back as it was returned.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import json.encoder
import math
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, Final, TypeAlias

__all__ = [
    "Classes",
    "Undecodable",
    "Unencodable",
    "canonical_text",
    "decode",
    "stored_text",
]

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None

_NON_FINITE: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_SCALARS: Final = frozenset({str, int, bool, type(None)})
_SHORT: Final = 10**18
_string: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii


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
    """Stored JSON that cannot be turned back into a value (its class is gone, say)."""


def canonical_text(value: object) -> str:
    """The deterministic JSON text of `value`: equal values (of equal types), equal text."""
    kind = type(value)
    if kind is str:  # the common arguments, without building a tree
        return _string(typing.cast(str, value))
    if kind is int and -_SHORT < typing.cast(int, value) < _SHORT:
        return int.__repr__(typing.cast(int, value))
    return _dumps(_encode(value, canonical=True), canonical=True)


def stored_text(value: object) -> str:
    """The JSON text the ledger stores for `value`, with dict order kept."""
    return _dumps(_encode(value, canonical=False), canonical=False)


def _dumps(tree: JSON, *, canonical: bool) -> str:
    try:
        return json.dumps(
            tree,
            sort_keys=canonical,
            separators=(",", ":"),
            # ASCII: a lone surrogate in a str survives as an escape, which
            # SQLite's UTF-8 text would reject.
            ensure_ascii=True,
            allow_nan=False,
        )
    except ValueError as error:  # an int longer than sys.get_int_max_str_digits()
        raise Unencodable("int", reason=f"an int too long to write ({error})") from None


def _encode(value: object, *, canonical: bool) -> JSON:
    try:
        return _tree(value, canonical)
    except RecursionError:
        kind = type(value).__name__
        raise Unencodable(
            kind, reason=f"a {kind} nested too deeply, or circular"
        ) from None


def _tree(value: object, canonical: bool) -> JSON:
    kind = type(value)
    if kind in _SCALARS:
        return typing.cast(JSON, value)
    if kind is float:
        number = typing.cast(float, value)
        if math.isfinite(number):
            return number
        return {
            "$float": "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")
        }
    if kind is list:
        return _items(typing.cast(list[object], value), canonical, _index)
    if kind is tuple:
        return {
            "$tuple": _items(typing.cast(tuple[object, ...], value), canonical, _index)
        }
    if kind is dict:
        return _mapping(typing.cast(dict[object, object], value), canonical)
    if kind is set or kind is frozenset:
        items = _items(typing.cast(set[object], value), canonical, _member)
        items.sort(key=lambda item: _dumps(item, canonical=True))
        return {f"${kind.__name__}": items}
    if kind is bytes:
        return {"$bytes": base64.b64encode(typing.cast(bytes, value)).decode("ascii")}
    if isinstance(value, Enum):
        return {"$enum": [kind.__qualname__, _within(value.value, canonical, ".value")]}
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        fields = _fields(value, kind._fields, canonical)
        return {"$namedtuple": [kind.__qualname__, fields]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = tuple(f.name for f in dataclasses.fields(value))
        return {"$dataclass": [kind.__qualname__, _fields(value, names, canonical)]}
    raise Unencodable(
        f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
    )


def _index(index: int, item: object) -> str:
    return f"[{index}]"


def _member(index: int, item: object) -> str:
    return f"{{{item!r}}}"


def _items(
    values: Iterable[object], canonical: bool, step: Callable[[int, object], str]
) -> list[JSON]:
    try:
        return [_tree(item, canonical) for item in values]
    except Unencodable:
        pass
    # Only after a failure: find the item again, to say where it is.
    for index, item in enumerate(values):
        _within(item, canonical, step(index, item))
    raise AssertionError("unreachable: an item that failed to encode encoded")


def _within(value: object, canonical: bool, step: str) -> JSON:
    try:
        return _tree(value, canonical)
    except Unencodable as error:
        raise error.inside(step) from None


def _fields(value: object, names: Iterable[str], canonical: bool) -> dict[str, JSON]:
    return {
        name: _within(getattr(value, name), canonical, f".{name}") for name in names
    }


def _mapping(value: dict[object, object], canonical: bool) -> JSON:
    if all(type(key) is str and not key.startswith("$") for key in value):
        return {
            typing.cast(str, key): _within(item, canonical, f"[{key!r}]")
            for key, item in value.items()
        }
    pairs: list[JSON] = [
        [
            _within(key, canonical, f"<key {key!r}>"),
            _within(item, canonical, f"[{key!r}]"),
        ]
        for key, item in value.items()
    ]
    if canonical:
        pairs.sort(
            key=lambda pair: _dumps(typing.cast(list[JSON], pair)[0], canonical=True)
        )
    return {"$dict": pairs}


# --- decoding ------------------------------------------------------------------------


class Classes:
    """Finds a stored dataclass's, NamedTuple's or Enum's class by its qualified name.

    First among the classes that the annotation `hint` names (through unions,
    generics, `Annotated`, `NewType` and the field types of the classes it
    names, however deep), then among the module-level names of `namespace`,
    the globals of the node function. Two different classes of one name in
    the annotation make that name ambiguous: `Undecodable`.
    """

    __slots__ = ("_found", "_hint", "_named", "_namespace")

    def __init__(self, hint: object, namespace: Mapping[str, Any]) -> None:
        self._hint = hint
        self._namespace = namespace
        self._named: dict[str, type | None] | None = None  # None: ambiguous
        self._found: dict[str, type] = {}

    def find(self, name: str) -> type:
        """The class called `name`."""
        found = self._found.get(name)
        if found is None:
            found = self._found[name] = self._find(name)
        return found

    def _find(self, name: str) -> type:
        if self._named is None:
            named: dict[str, type | None] = {}
            _collect(self._hint, named, set())
            self._named = named
        if name in self._named:
            found = self._named[name]
            if found is None:
                raise Undecodable(
                    f"two classes named {name!r} in the return annotation"
                )
            return found
        found = _lookup(self._namespace, name)
        if found is None:
            raise Undecodable(
                f"no class {name!r} in the return annotation or the module"
            )
        return found


def decode(text: str, classes: Classes) -> Any:
    """The value that `stored_text` wrote as `text`, its classes found by `classes`."""

    def tagged(data: dict[str, Any]) -> Any:
        if len(data) == 1:
            ((tag, body),) = data.items()
            if tag.startswith("$"):
                return _TAGS[tag](body, classes)
        return data

    try:
        return json.loads(text, object_hook=tagged)
    except Undecodable:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as error:
        raise Undecodable(f"{type(error).__name__}: {error}") from error


def _instance(body: list[Any], classes: Classes) -> Any:
    name, values = body
    cls = classes.find(name)
    init = _init_fields(cls)
    if init is None:
        return cls(**values)
    # Fields that __init__ does not take are set as they were, as __init__ would.
    instance = cls(**{k: v for k, v in values.items() if k in init})
    for key, value in values.items():
        if key not in init:
            object.__setattr__(instance, key, value)
    return instance


def _enum(body: list[Any], classes: Classes) -> Enum:
    name, value = body
    cls = classes.find(name)
    if not issubclass(cls, Enum):
        raise Undecodable(f"{name!r} is not an Enum")
    return cls(value)


_TAGS: Final[dict[str, Callable[[Any, Classes], Any]]] = {
    "$tuple": lambda body, _: tuple(body),
    "$set": lambda body, _: set(body),
    "$frozenset": lambda body, _: frozenset(body),
    "$dict": lambda body, _: dict(body),
    "$float": lambda body, _: _NON_FINITE[body],
    "$bytes": lambda body, _: base64.b64decode(body, validate=True),
    "$dataclass": _instance,
    "$namedtuple": _instance,
    "$enum": _enum,
}

_INIT: weakref.WeakKeyDictionary[type, frozenset[str] | None] = (
    weakref.WeakKeyDictionary()
)


def _init_fields(cls: type) -> frozenset[str] | None:
    """The fields a dataclass's __init__ takes; None for another class."""
    try:
        return _INIT[cls]
    except KeyError:
        init = (
            frozenset(f.name for f in dataclasses.fields(cls) if f.init)
            if dataclasses.is_dataclass(cls)
            else None
        )
        _INIT[cls] = init
        return init


def _collect(hint: object, into: dict[str, type | None], seen: set[int]) -> None:
    """Every storable class that `hint` names, by qualified name (None: two of one name)."""
    if id(hint) in seen:
        return
    seen.add(id(hint))
    supertype = getattr(hint, "__supertype__", None)  # a NewType
    if supertype is not None:
        _collect(supertype, into, seen)
    for arg in typing.get_args(hint):  # unions, generics, Annotated (its metadata too)
        _collect(arg, into, seen)
    if not isinstance(hint, type):
        return
    named_tuple = issubclass(hint, tuple) and hasattr(hint, "_fields")
    if not (named_tuple or issubclass(hint, Enum) or dataclasses.is_dataclass(hint)):
        return
    name = hint.__qualname__
    into[name] = hint if into.get(name, hint) is hint else None
    try:
        hints = typing.get_type_hints(hint)
    except (
        Exception
    ):  # a forward reference that does not resolve: no classes through it
        return
    for field_hint in hints.values():
        _collect(field_hint, into, seen)


def _lookup(namespace: Mapping[str, Any], name: str) -> type | None:
    head, *rest = name.split(".")
    found: object = namespace.get(head)
    for part in rest:
        found = getattr(found, part, None)
    return found if isinstance(found, type) else None
