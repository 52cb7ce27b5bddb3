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
variables taken as `Any`). What cannot be checked without running code
(a `Protocol`, a `Callable`'s signature, an unresolved forward reference) is
taken as it is: the classes a stored value may rebuild are limited anyway
(`codec.Allowed`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
import weakref
from collections import abc
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["conforms", "describe"]

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
# Types without fields to check: a value of one is of a class hint it is an instance of.
_PLAIN: Final = frozenset(
    {int, float, bool, str, bytes, type(None), list, tuple, dict, set, frozenset}
)


def conforms(value: object, hint: object) -> bool:
    """Whether `value` is of the type `hint` names, as far as the ledger checks types."""
    try:
        return _conforms(value, hint)
    except RecursionError:  # a value too deep to check is not one to answer with
        return False


def describe(hint: object) -> str:
    """How a message names a hint: ``list[int]``, ``Point``, ``int | None``."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def _conforms(value: object, hint: object) -> bool:
    if hint is Any or hint is object or hint is _ANY:
        return True
    if hint is None or hint is type(None):
        return value is None
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        return _instance_of(value, hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_conforms(value, arg) for arg in args)
    if origin is typing.Literal:
        return any(type(value) is type(arg) and value == arg for arg in args)
    if origin is typing.Annotated:
        return _conforms(value, args[0])
    if origin is not None:
        return _generic(value, origin, args)
    supertype = getattr(hint, "__supertype__", None)  # a NewType
    if supertype is not None:
        return _conforms(value, supertype)
    alias = getattr(hint, "__value__", None)  # `type Rows = list[Row]`
    if alias is not None:
        return _conforms(value, alias)
    return True  # a TypeVar, a string, a form this does not know: not checked


def _instance_of(value: object, cls: type) -> bool:
    if cls is float:
        return type(value) in (float, int, bool)
    if cls is complex:
        return type(value) in (complex, float, int, bool)
    if not isinstance(value, cls):
        return False
    if type(value) in _PLAIN:
        return True
    check = _field_checks(type(value))
    return check is None or check(value)


def _generic(value: object, origin: object, args: tuple[object, ...]) -> bool:
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(item, args[0]) for item in value)
        if args == ((),):  # tuple[()]
            return value == ()
        return len(value) == len(args) and all(
            _conforms(item, arg) for item, arg in zip(value, args, strict=True)
        )
    if not isinstance(origin, type):  # Final[int], Required[int] and the like
        return _conforms(value, args[0]) if len(args) == 1 else True
    if not isinstance(value, origin):
        return False
    if args and origin in _COLLECTIONS:
        items = typing.cast(abc.Iterable[object], value)
        return all(_conforms(item, args[0]) for item in items)
    if len(args) == 2 and origin in _MAPPINGS:
        mapping = typing.cast(Mapping[object, object], value)
        return all(
            _conforms(key, args[0]) and _conforms(item, args[1])
            for key, item in mapping.items()
        )
    # A generic class of the user's (Box[int]): its fields by its own annotations.
    check = _field_checks(type(value))
    return check is None or check(value)


# --- fields ---------------------------------------------------------------------------

_CHECKS: weakref.WeakKeyDictionary[type, Callable[[object], bool] | None] = (
    weakref.WeakKeyDictionary()
)


def _field_checks(cls: type) -> Callable[[object], bool] | None:
    """A check of a dataclass's or NamedTuple's fields by their annotations; None for others."""
    try:
        return _CHECKS[cls]
    except KeyError:
        pass
    except TypeError:  # a class that takes no weak reference
        return _make_check(cls)
    check = _CHECKS[cls] = _make_check(cls)
    return check


def _make_check(cls: type) -> Callable[[object], bool] | None:
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
    fields = [(name, _unbound(hints[name])) for name in names if name in hints]

    def check(value: object) -> bool:
        return all(_conforms(getattr(value, name, None), hint) for name, hint in fields)

    return check


def _unbound(hint: object) -> object:
    """A field's hint, a `ClassVar` or `InitVar` taken as anything (they are not fields)."""
    if (
        isinstance(hint, dataclasses.InitVar)
        or typing.get_origin(hint) is typing.ClassVar
    ):
        return _ANY
    return hint
