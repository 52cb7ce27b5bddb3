"""What the ledger makes of a node call: its key, the text of its result, their refusals.

A key is the sha256 of one canonical JSON text::

    ["summarize","3f2a...",{"paragraph":"It was a dark...","words":50}]

the node's name, its source hash, and its arguments by parameter name
(defaults filled in, so ``f(1)``, ``f(x=1)`` and a default of 1 are one
call), each written by `codec.canonical_text`. `Shape` holds what this needs
of a node function, worked out once per function: its signature, its return
annotation, and where its result's classes are found again.

An argument or a result that cannot be stored is an `UncacheableValue` that
names the node, the argument (or "its result") and the type; a result is
also refused when the ledger could not rebuild it from its text (a class
defined inside a function, say), so what is stored always decodes.
"""

from __future__ import annotations

import hashlib
import inspect
import json.encoder
import typing
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, final

from kiln.codec import (
    Classes,
    Undecodable,
    Unencodable,
    canonical_text,
    decode,
    stored_text,
)
from kiln.errors import UncacheableValue

__all__ = ["Shape", "call_key", "result_text", "shape_of"]

_string: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii
_STORABLE: Final = (
    "the ledger stores JSON values (None, bool, int, float, str, list, dict), tuples, "
    "sets, bytes, dataclasses, NamedTuples and Enums, and never pickles"
)


@final
class Shape:
    """What the ledger needs of a node function, worked out once (`shape_of`)."""

    __slots__ = ("__weakref__", "classes", "defaults", "names", "returns", "signature")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.signature = inspect.signature(fn)
        parameters = self.signature.parameters.values()
        plain = all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters
        )
        # Every parameter plain: positional arguments bind by zip, defaults fill the rest.
        self.names = tuple(self.signature.parameters) if plain else None
        self.defaults = tuple(p.default for p in parameters)
        try:
            self.returns: object = typing.get_type_hints(fn).get("return", Any)
        except Exception:  # an annotation that does not resolve: classes by module name
            self.returns = Any
        self.classes = Classes(self.returns, getattr(fn, "__globals__", {}))

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments by parameter name, defaults included; TypeError if they do not fit."""
        names = self.names
        if names is not None and not kwargs and len(args) <= len(names):
            filled = args + self.defaults[len(args) :]
            if inspect.Parameter.empty not in filled[len(args) :]:
                return dict(zip(names, filled, strict=True))
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    def decode(self, text: str) -> Any:
        """The result stored as `text`; `codec.Undecodable` if it no longer fits."""
        return decode(text, self.classes)


_SHAPES: weakref.WeakKeyDictionary[Callable[..., Any], Shape] = (
    weakref.WeakKeyDictionary()
)


def shape_of(fn: Callable[..., Any]) -> Shape:
    """The `Shape` of a node function, made on its first call."""
    try:
        shape = _SHAPES.get(fn)
    except TypeError:  # a callable that takes no weak reference
        return Shape(fn)
    if shape is None:
        shape = _SHAPES[fn] = Shape(fn)
    return shape


def call_key(
    node: str,
    source: str,
    shape: Shape,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> bytes | None:
    """The key of a call; None if the arguments do not fit (the call raises TypeError itself).

    Raises `UncacheableValue` for an argument that cannot be stored.
    """
    try:
        arguments = shape.bind(args, kwargs)
    except TypeError:
        return None
    texts: list[str] = []
    for name in sorted(arguments):
        try:
            texts.append(f"{_string(name)}:{canonical_text(arguments[name])}")
        except Unencodable as error:
            raise _uncacheable(node, f"argument {name!r}", error, "pass") from None
    call = f"[{_string(node)},{_string(source)},{{{','.join(texts)}}}]"
    return hashlib.sha256(call.encode("ascii")).digest()


def result_text(node: str, shape: Shape, value: object) -> str:
    """The text to store for a result, checked to decode; or `UncacheableValue`."""
    try:
        text = stored_text(value)
        shape.decode(text)
    except Unencodable as error:
        raise _uncacheable(node, "result", error, "return") from None
    except Undecodable as error:
        kind = type(value).__qualname__
        raise UncacheableValue(
            f"node {node!r} is cache=True, but the ledger could not rebuild its result, a "
            f"{kind}, from what it would store ({error}); define the classes it holds at "
            "module level or name them in the node's return annotation, or build the flow "
            "with uncacheable='run' to run such calls without the cache",
            node=node,
            what="result",
            kind=kind,
        ) from None
    return text


def _uncacheable(
    node: str, what: str, error: Unencodable, verb: str
) -> UncacheableValue:
    found = (
        f"holds {error.reason} (at {error.where})"
        if error.where
        else f"is {error.reason}"
    )
    return UncacheableValue(
        f"node {node!r} is cache=True, but its {what} {found}, which the ledger cannot "
        f"store ({_STORABLE}); {verb} a value it can store, or build the flow with "
        "uncacheable='run' to run such calls without the cache",
        node=node,
        what=what,
        kind=error.kind,
    )
