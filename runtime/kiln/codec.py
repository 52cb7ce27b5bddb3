"""The ledger's encoding of arguments and results: tagged JSON, never pickle.

Every value becomes a small JSON array whose first item says what it was, so
the encoding is canonical (equal values, equal text; ``1``, ``1.0``, ``True``,
``(1,)`` and ``[1]`` all differ) and says enough to rebuild the value::

    (1, "a")               ["t", [["i", 1], ["s", "a"]]]
    {"k": [1.5]}           ["d", [[["s", "k"], ["l", [["f", 1.5]]]]]]
    Point(x=1, y=2)        ["c", "geo.Point", [["x", ["i", 1]], ["y", ["i", 2]]]]

Dataclasses and NamedTuples are named by module and qualified name and found
again through `sys.modules`, or, for a module loaded under another name, in
the node's return annotation. Anything else cannot be stored: `encode`
raises `UncacheableValue`, naming where the value was.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import sys
import typing
from collections.abc import Callable, Iterator
from typing import Any

from kiln.errors import UncacheableValue

__all__ = ["decode", "dumps", "encode", "loads"]

Tagged = list[Any]


def encode(value: object, where: str) -> Tagged:
    """The tagged form of `value`; `where` names it in an error ("parameter 'x' of 'f'")."""
    if value is None:
        return ["n"]
    kind = type(value)
    if kind is bool:
        return ["b", value]
    if kind is int:
        return ["i", value]
    if kind is float:
        number = typing.cast(float, value)
        return ["f", number if math.isfinite(number) else repr(number)]
    if kind is str:
        return ["s", value]
    if kind is bytes:
        return ["y", base64.b64encode(typing.cast(bytes, value)).decode()]
    if kind is list:
        return ["l", [encode(item, where) for item in typing.cast(list[Any], value)]]
    if kind is tuple:
        return [
            "t",
            [encode(item, where) for item in typing.cast(tuple[Any, ...], value)],
        ]
    if kind in (set, frozenset):
        items = sorted(
            (encode(item, where) for item in typing.cast(set[Any], value)), key=dumps
        )
        return ["z" if kind is frozenset else "e", items]
    if kind is dict:
        pairs = [
            [encode(k, where), encode(v, where)]
            for k, v in typing.cast(dict[Any, Any], value).items()
        ]
        return ["d", sorted(pairs, key=lambda pair: dumps(pair[0]))]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [
            [f.name, encode(getattr(value, f.name), where)]
            for f in dataclasses.fields(value)
        ]
        return ["c", _name(kind), fields]
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        named = [
            [name, encode(item, where)]
            for name, item in zip(kind._fields, value, strict=True)
        ]
        return ["c", _name(kind), named]
    raise UncacheableValue(
        f"{where} is a {kind.__module__}.{kind.__qualname__}, which the ledger cannot "
        "store: it keeps JSON values (None, bool, int, float, str, list, dict), bytes, "
        "tuples, sets, dataclasses and NamedTuples, never pickles"
    )


def decode(tagged: Tagged, annotation: object = None) -> Any:
    """The value `encode` made `tagged` from; `annotation` helps find its classes."""
    tag = tagged[0]
    if tag == "n":
        return None
    if tag in ("b", "i", "s"):
        return tagged[1]
    if tag == "f":
        number = tagged[1]
        return float(number) if isinstance(number, str) else number
    if tag == "y":
        return base64.b64decode(tagged[1])
    if tag == "l":
        return [decode(item, annotation) for item in tagged[1]]
    if tag == "t":
        return tuple(decode(item, annotation) for item in tagged[1])
    if tag in ("e", "z"):
        items = (decode(item, annotation) for item in tagged[1])
        return frozenset(items) if tag == "z" else set(items)
    if tag == "d":
        return {decode(k, annotation): decode(v, annotation) for k, v in tagged[1]}
    if tag == "c":
        cls = _find(tagged[1], annotation)
        values = {name: decode(item, annotation) for name, item in tagged[2]}
        return _rebuild(cls, values)
    raise ValueError(f"not a value the ledger wrote: {tagged!r}")


def dumps(tagged: Tagged) -> str:
    """The canonical text of a tagged value."""
    return json.dumps(
        tagged, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def loads(text: str) -> Tagged:
    loaded: Tagged = json.loads(text)
    return loaded


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _find(name: str, annotation: object) -> type:
    module, _, qualname = name.partition(":")
    found: object = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type):
        return found
    for candidate in _classes(annotation):
        if candidate.__qualname__ == qualname:
            return candidate
    raise LookupError(
        f"the ledger holds a {qualname} from {module}, which is not loaded"
    )


def _classes(annotation: object) -> Iterator[type]:
    """The classes an annotation names, however deeply (`list[dict[str, Point]]`)."""
    if isinstance(annotation, type):
        yield annotation
        hints = _hints(annotation)
        for hint in hints.values():
            if hint is not annotation:
                yield from _classes(hint)
    for argument in typing.get_args(annotation):
        yield from _classes(argument)


def _hints(cls: type) -> dict[str, Any]:
    if not (dataclasses.is_dataclass(cls) or hasattr(cls, "_fields")):
        return {}
    try:
        return typing.get_type_hints(cls)
    except (
        Exception
    ):  # an annotation that does not resolve: no classes found through it
        return {}


def _rebuild(cls: type, values: dict[str, Any]) -> Any:
    if not dataclasses.is_dataclass(cls):
        return cls(**values)
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    instance = cls(**{k: v for k, v in values.items() if k in init})
    for name, value in values.items():
        if name not in init:
            object.__setattr__(instance, name, value)
    return instance


def returns(fn: Callable[..., Any]) -> object:
    """A node's return annotation, or None when it has none or it does not resolve."""
    try:
        return typing.get_type_hints(fn).get("return")
    except (
        Exception
    ):  # a forward reference to a name the module lacks: search by name only
        return None
