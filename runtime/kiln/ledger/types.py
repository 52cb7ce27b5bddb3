"""Whether a value is of the type an annotation names: what the ledger may answer with.

A cached node's result is checked against its return annotation when it is
stored and again whenever a stored one is read, so that the ledger never
answers a call with a value of a type the node could not return::

    conforms([1, 2], list[int])                  True
    conforms((1, "a"), tuple[int, ...])          False
    conforms(Point(1, "x"), Point)               False: Point.y is a float
    conforms(None, Shape | None)                 True

Checked as a type checker reads annotations: `float` takes an int, `int` a
bool; unions, `Optional`, `Literal`, `Annotated`, `NewType`, type aliases,
the generic containers of `builtins` and `collections.abc` item by item,
dataclasses and NamedTuples field by field (by their own annotations, type
variables taken as `Any`), a TypedDict as a dict whose keys hold values of
their annotations. What cannot be checked without running code
(a `Protocol`, a `Callable`'s signature, an unresolved forward reference) is
taken as it is: the classes a stored value may rebuild are limited anyway
(`decoding.Allowed`).

`checker(hint)` turns a hint into a check once (a hit checks its value on
every call); a class's fields are read the first time a value of it is
checked, so recursive classes (``parent: Shape | None``) cost nothing more.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import pathlib
import types
import typing
import uuid
import weakref
from collections import abc
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Final

from kiln.ledger.codec import is_model

__all__ = ["Check", "checker", "conforms", "describe", "is_typed_dict", "unstorable"]

Check = Callable[[object], bool]

_ANY: Final = object()  # a hint that takes every value
# Generic origins whose one argument is the type of every item.
_COLLECTIONS: Final = frozenset(
    {
        list,
        set,
        frozenset,
        abc.Sequence,
        abc.MutableSequence,
        abc.Iterable,
        abc.Collection,
        abc.Container,
        abc.Reversible,
        abc.Set,
        abc.MutableSet,
    }
)
_MAPPINGS: Final = frozenset({dict, abc.Mapping, abc.MutableMapping})
# Generic origins the codec stores, whose arguments must be stored too.
_STORED: Final = frozenset({list, tuple, dict, set, frozenset})
# Types without fields to check: a value of one is of a class hint it is an instance of.
_PLAIN: Final = frozenset(
    {int, float, bool, str, bytes, type(None), list, tuple, dict, set, frozenset}
)
# Classes the codec stores by a tag of its own (`codec._STANDARD`), fields unseen.
_TAGGED: Final = frozenset(
    {
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
        decimal.Decimal,
        pathlib.PurePath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        pathlib.Path,
        pathlib.PosixPath,
        pathlib.WindowsPath,
    }
)
_REAL: Final = frozenset({float, int, bool})
_COMPLEX: Final = frozenset({complex, float, int, bool})


def conforms(value: object, hint: object) -> bool:
    """Whether `value` is of the type `hint` names, as far as the ledger checks types."""
    return checker(hint)(value)


def checker(hint: object) -> Check:
    """The check of `hint`, made once; it never raises (what it cannot check passes)."""
    check = _check(hint)

    def guarded(value: object) -> bool:
        try:
            return check(value)
        except RecursionError:  # a value too deep to check is not one to answer with
            return False
        except TypeError:  # isinstance of a Protocol that is not runtime_checkable
            return True

    return guarded


def unstorable(hint: object) -> str | None:
    """The first type `hint` names whose values the codec cannot store, or None.

    None too where the hint cannot tell (Any, a TypeVar, a string, a
    Protocol): only a type the codec certainly refuses is named.
    """
    return _unstorable(hint, set())


def _unstorable(hint: object, seen: set[int]) -> str | None:
    if hint is Any or hint is object or hint is _ANY or hint is None:
        return None
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        return _unstorable_class(hint, seen)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return None
    if origin is typing.Annotated:
        return _unstorable(args[0], seen)
    if origin is typing.Union or origin is types.UnionType or origin in _STORED:
        return next(
            (found for arg in args if (found := _unstorable(arg, seen)) is not None),
            None,
        )
    if isinstance(origin, type):  # a generic class of the user's (Box[int])
        return _unstorable_class(origin, seen)
    return None


def _unstorable_class(cls: type, seen: set[int]) -> str | None:
    if cls in _PLAIN or cls in _TAGGED or issubclass(cls, Enum) or id(cls) in seen:
        return None
    seen.add(id(cls))
    if is_model(cls):  # pydantic: its fields' annotations, as the model holds them
        model: Any = cls
        fields: Mapping[str, object] = {
            name: field.annotation for name, field in model.model_fields.items()
        }
    elif (
        dataclasses.is_dataclass(cls)
        or (issubclass(cls, tuple) and hasattr(cls, "_fields"))
        or is_typed_dict(cls)
    ):
        try:
            fields = typing.get_type_hints(cls)
        except Exception:  # an annotation that does not resolve: cannot tell
            return None
    else:
        return cls.__qualname__
    return next(
        (
            found
            for hint in fields.values()
            if (found := _unstorable(_unbound(hint), seen)) is not None
        ),
        None,
    )


def is_typed_dict(cls: type) -> bool:
    """Whether `cls` is a TypedDict class (typing's or typing_extensions'): its values
    are plain dicts, stored as dicts are, its keys' annotations checked as fields."""
    return (
        issubclass(cls, dict)
        and hasattr(cls, "__required_keys__")
        and hasattr(cls, "__optional_keys__")
    )


def describe(hint: object) -> str:
    """How a message names a hint: ``list[int]``, ``Point``, ``int | None``."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def _anything(value: object) -> bool:
    return True


def _is_none(value: object) -> bool:
    return value is None


def _check(hint: object) -> Check:
    if hint is Any or hint is object or hint is _ANY:
        return _anything
    if hint is None or hint is type(None):
        return _is_none
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        return _class(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _union(tuple(_check(arg) for arg in args))
    if origin is typing.Literal:
        return _literal(args)
    if origin is typing.Annotated:
        return _check(args[0])
    if origin is not None:
        return _generic(origin, args)
    supertype = getattr(hint, "__supertype__", None)  # a NewType
    if supertype is not None:
        return _check(supertype)
    if hasattr(hint, "__value__"):  # `type Rows = list[Row]`, maybe recursive: lazily
        return _lazy(lambda: _check(getattr(hint, "__value__")))  # noqa: B009
    return _anything  # a TypeVar, a string, a form this does not know: not checked


def _union(checks: tuple[Check, ...]) -> Check:
    return lambda value: any(check(value) for check in checks)


def _literal(values: tuple[object, ...]) -> Check:
    return lambda value: any(type(value) is type(v) and value == v for v in values)


def _lazy(make: Callable[[], Check]) -> Check:
    made: list[Check] = []

    def check(value: object) -> bool:
        if not made:
            made.append(make())
        return made[0](value)

    return check


def _class(cls: type) -> Check:
    if cls is float:
        return lambda value: type(value) in _REAL
    if cls is complex:
        return lambda value: type(value) in _COMPLEX
    if cls in _PLAIN:
        return lambda value: isinstance(value, cls)
    if is_typed_dict(cls):  # isinstance() refuses one: a dict, its keys' values checked
        return lambda value: isinstance(value, dict) and _keys_of(cls)(value)

    def check(value: object) -> bool:
        if not isinstance(value, cls):
            return False
        kind = type(value)
        if kind in _PLAIN:
            return True
        fields = _fields_of(kind)
        return fields is None or fields(value)

    return check


def _generic(origin: object, args: tuple[object, ...]) -> Check:
    if origin is tuple:
        return _tuple(args)
    if not isinstance(origin, type):  # Final[int], Required[int] and the like
        return _check(args[0]) if len(args) == 1 else _anything
    kind = origin
    if args and kind in _COLLECTIONS:
        item = _check(args[0])
        return lambda value: isinstance(value, kind) and all(
            item(x) for x in typing.cast(abc.Iterable[object], value)
        )
    if len(args) == 2 and kind in _MAPPINGS:
        key, item = _check(args[0]), _check(args[1])
        return lambda value: isinstance(value, kind) and all(
            key(k) and item(v)
            for k, v in typing.cast(Mapping[object, object], value).items()
        )
    # A generic class of the user's (Box[int]): its fields by its own annotations.
    return _class(kind)


def _tuple(args: tuple[object, ...]) -> Check:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _check(args[0])
        return lambda value: isinstance(value, tuple) and all(item(x) for x in value)
    if args == ((),):  # tuple[()]
        return lambda value: value == () and isinstance(value, tuple)
    checks = tuple(_check(arg) for arg in args)
    return lambda value: (
        isinstance(value, tuple)
        and len(value) == len(checks)
        and all(check(x) for check, x in zip(checks, value, strict=True))
    )


# --- fields ---------------------------------------------------------------------------

_FIELDS: weakref.WeakKeyDictionary[type, Check | None] = weakref.WeakKeyDictionary()


def _fields_of(cls: type) -> Check | None:
    """A check of a dataclass's, NamedTuple's or TypedDict's fields by their annotations;
    None for others."""
    try:
        return _FIELDS[cls]
    except KeyError:
        pass
    except TypeError:  # a class that takes no weak reference
        return _make_fields(cls)
    check = _FIELDS[cls] = _make_fields(cls)
    return check


def _keys_of(cls: type) -> Check:
    """A check of a TypedDict's keys a dict holds, by their annotations (a key it
    lacks is not checked: Python 3.11 misreads which keys a string annotation
    marks `NotRequired`)."""
    check = _fields_of(cls)
    return _anything if check is None else check


def _make_fields(cls: type) -> Check | None:
    if is_typed_dict(cls):
        return _make_keys(cls)
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        names = list(cls._fields)
    else:
        return None
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: the fields go unchecked
        return None
    fields = [(name, _check(_unbound(hints[name]))) for name in names if name in hints]

    def check(value: object) -> bool:
        return all(check(getattr(value, name, None)) for name, check in fields)

    return check


def _make_keys(cls: type) -> Check | None:
    try:
        hints = typing.get_type_hints(cls)  # Required[int], NotRequired[int]: int
    except Exception:  # an annotation that does not resolve: the keys go unchecked
        return None
    keys = [(name, _check(hint)) for name, hint in hints.items()]

    def check(value: object) -> bool:
        held = typing.cast(dict[str, object], value)
        return all(check(held[name]) for name, check in keys if name in held)

    return check


def _unbound(hint: object) -> object:
    """A field's hint, a `ClassVar` or `InitVar` taken as anything (they are not fields)."""
    if (
        isinstance(hint, dataclasses.InitVar)
        or typing.get_origin(hint) is typing.ClassVar
    ):
        return _ANY
    return hint
