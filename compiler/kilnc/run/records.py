"""read_record: a JSON value read as a class of declared fields asks.

Example input: ``class Cfg(TypedDict): k: int; tags: list[str]`` and the JSON
``{"k": 1}``. Output: a `Mismatch` naming what is wrong, here ``missing
required key of Cfg: tags (list[str])``; ``{"k": 1, "tags": ["a"]}`` is read
as it is, each value by its field's annotation (``{"k": "x", ...}`` is ``k:
the JSON is str, not int``).

The classes, and how their JSON is read:

- a dataclass: an object of the fields its ``__init__`` takes (a field it
  does not take is what ``--json`` printed, and is dropped: ``__init__``
  makes it again), those without a default required;
- a TypedDict: an object of its keys, its ``__required_keys__`` required
  (``total=False``, ``Required[...]`` and ``NotRequired[...]`` as Python
  reads them), read into a plain dict;
- a NamedTuple: an array of its fields in order, as JSON writes a tuple.

A key the class does not declare is refused, as the class's constructor
would refuse it (a TypedDict has none to ask, so kiln asks for it).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from collections.abc import Callable, Collection
from typing import Any

from kilnc.run.mismatch import Mismatch, type_name

__all__ = ["At", "is_record", "read_record"]

# values._at: a JSON value read as an annotation says, a mismatch in it named
# as inside `key` (a field's name, an item's index).
At = Callable[[object, Any, Any], Any]


def is_record(kind: Any) -> bool:
    """Whether `kind` is a dataclass, a TypedDict or a NamedTuple class."""
    return isinstance(kind, type) and (
        dataclasses.is_dataclass(kind)
        or _is_typed_dict(kind)
        or (issubclass(kind, tuple) and hasattr(kind, "_fields"))
    )


def read_record(kind: type, value: Any, at: At) -> Any:
    """`value` made an instance of the record class `kind` (`is_record`)."""
    hints = _field_types(kind)
    if _is_typed_dict(kind):
        return _fields(kind, value, hints, _required_keys(kind), "key", at)
    if issubclass(kind, tuple):
        return _named_tuple(kind, value, hints, at)
    assert dataclasses.is_dataclass(kind), "a record is one of the three"
    taken = _init_fields(kind)
    if isinstance(value, dict):
        made = {f.name for f in dataclasses.fields(kind) if not f.init}
        value = {name: field for name, field in value.items() if name not in made}
    fields = {name: hints.get(name, Any) for name in taken}
    required = frozenset(name for name, needed in taken.items() if needed)
    try:
        return kind(**_fields(kind, value, fields, required, "field", at))
    except TypeError as exc:  # raised by __post_init__, say
        raise Mismatch(str(exc)) from None


def _is_typed_dict(kind: type) -> bool:
    """A TypedDict class, typing's or typing_extensions' (which is_typeddict misses)."""
    return (
        issubclass(kind, dict)
        and hasattr(kind, "__required_keys__")
        and hasattr(kind, "__optional_keys__")
    )


def _required_keys(kind: type) -> frozenset[str]:
    """A TypedDict's required keys, a key marked `Required` or `NotRequired` as marked.

    Python 3.11 counts a marked key by the class's totality when its annotation
    is a string (``from __future__ import annotations``): `__required_keys__`
    says a ``NotRequired`` key is required there, as mypy never does.
    """
    required = set(getattr(kind, "__required_keys__", ()))
    for name, hint in _field_types(kind, extras=True).items():
        marked = hint
        while typing.get_origin(marked) is typing.Annotated:
            marked = typing.get_args(marked)[0]
        mark = getattr(typing.get_origin(marked), "_name", None)
        if mark == "Required":
            required.add(name)
        elif mark == "NotRequired":
            required.discard(name)
    return frozenset(required)


def _field_types(kind: type, *, extras: bool = False) -> dict[str, Any]:
    """The evaluated annotations of a class's fields (`Required[...]` and the like
    kept with `extras`); a Mismatch when they do not evaluate."""
    try:
        return typing.get_type_hints(kind, include_extras=extras)
    except Exception as exc:  # a name only imported under TYPE_CHECKING, say
        raise Mismatch(
            f"kiln cannot evaluate the annotations of {kind.__name__}"
            f" ({type(exc).__name__}: {exc})"
        ) from None


def _init_fields(kind: type) -> dict[str, bool]:
    """The names a dataclass's __init__ takes by keyword, each with whether it must be given."""
    parameters = inspect.signature(kind).parameters.values()
    return {
        p.name: p.default is p.empty
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _fields(
    kind: type,
    value: Any,
    declared: dict[str, Any],
    required: Collection[str],
    what: str,
    at: At,
) -> dict[str, Any]:
    """A JSON object's values read as the fields `declared` of `kind`.

    Each name in `required` must be there and no name `kind` does not
    declare; `what` is what the message calls a field (a "field", a "key").
    """
    if not isinstance(value, dict):
        raise Mismatch(f"a JSON object of {kind.__name__}'s {what}s")
    missing = [name for name in declared if name in required and name not in value]
    if missing:
        listed = ", ".join(f"{name} ({type_name(declared[name])})" for name in missing)
        plural = "s" * (len(missing) > 1)
        raise Mismatch(f"missing required {what}{plural} of {kind.__name__}: {listed}")
    for name in value:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise Mismatch(
                f"unknown {what} {name!r} ({kind.__name__}'s {what}s:"
                f" {', '.join(declared) or 'none'}){hint}"
            )
    return {name: at(name, declared[name], item) for name, item in value.items()}


def _named_tuple(kind: type, value: Any, hints: dict[str, Any], at: At) -> Any:
    """A NamedTuple from a JSON array of its fields in order (as JSON writes one)."""
    if not isinstance(value, list):
        raise Mismatch(f"a JSON array of {kind.__name__}'s fields")
    names: tuple[str, ...] = getattr(kind, "_fields", ())
    if len(value) != len(names):
        raise Mismatch(f"{len(names)} fields ({', '.join(names)}), not {len(value)}")
    return kind(
        *(at(n, hints.get(n, Any), v) for n, v in zip(names, value, strict=True))
    )
