"""What the ledger makes of a node call: its key, the text of its result, their refusals.

A key is the sha256 of one JSON text::

    ["summarize","3f2a...",{"paragraph":"It was a dark...","words":50}]

the node's name, its source hash, and its arguments by parameter name
(defaults filled in, so ``f(1)``, ``f(x=1)`` and a default of 1 are one
call), each written by `codec.encode`. `Shape` holds what this needs of a
node function, worked out once per function: its signature, its return
annotation, and the classes its results may rebuild (`decoding.Allowed`, from
the compiled flow).

An argument or a result that cannot be stored is an `UncacheableValue` that
names the node, the argument (or "its result") and the type. A result is
stored only when the ledger could answer with it: it is of its annotated
type, and its text decodes to a value of the same types and the same text
(`result_text`). A stored text is answered with only when it decodes, with
the allowed classes, to a value of the annotated type (`Shape.decode`).
"""

from __future__ import annotations

import collections.abc
import hashlib
import inspect
import json.encoder
import reprlib
import typing
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, final

from kiln.errors import UncacheableValue
from kiln.ledger.codec import STORED_TYPES, Undecodable, Unencodable, encode
from kiln.ledger.decoding import Allowed, decode
from kiln.ledger.types import checker, describe

__all__ = ["Shape", "call_key", "result_text", "shape_of"]

_string: Final[Callable[[str], str]] = json.encoder.encode_basestring_ascii
_EMPTY: Final = inspect.Parameter.empty
_STORABLE: Final = f"the ledger stores {STORED_TYPES}, and never pickles"
_INSTEAD: Final = (
    "or build the flow with uncacheable='run' to run such calls without the cache"
)


@final
class Shape:
    """What the ledger needs of a node function, worked out once (`shape_of`).

    `classes` are those its results may rebuild: the compiler lists them from
    its return annotation; none, and only plain values come back. A stream
    node's Shape (`items`) is of each item it yields: its `returns` is the
    item type its annotation names (``AsyncIterator[str]``: str).
    """

    __slots__ = (
        "__weakref__",
        "allowed",
        "by_name",
        "conforms",
        "defaults",
        "home",
        "names",
        "positions",
        "returns",
        "signature",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        classes: tuple[object, ...] = (),
        *,
        items: bool = False,
    ) -> None:
        self.signature = inspect.signature(fn)
        parameters = self.signature.parameters.values()
        plain = all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters
        )
        # Every parameter plain: positional arguments bind by zip, defaults fill the rest.
        self.names = tuple(self.signature.parameters) if plain else None
        self.defaults = tuple(p.default for p in parameters)
        named = tuple(self.signature.parameters)
        # Those a keyword may give: a positional-only one is an error for bind().
        self.positions = {
            name: position
            for position, (name, p) in enumerate(self.signature.parameters.items())
            if p.kind is p.POSITIONAL_OR_KEYWORD
        }
        # Every parameter's position, sorted by its name: the order of a digest's text.
        self.by_name = tuple(sorted(range(len(named)), key=named.__getitem__))
        try:
            self.returns: object = typing.get_type_hints(fn).get("return", Any)
        except Exception:  # an annotation that does not resolve: not checked
            self.returns = Any
        if items:
            self.returns = _item_type(self.returns)
        elif not inspect.iscoroutinefunction(fn):
            self.returns = _awaited_type(self.returns)
        self.conforms = checker(self.returns)
        self.home: str = getattr(fn, "__module__", None) or ""
        self.allowed = Allowed(classes, self.home)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments by parameter name, defaults included; TypeError if they do not fit."""
        names = self.names
        given = len(args)
        if names is not None and given <= len(names):
            filled = [*args, *self.defaults[given:]]
            for name, value in kwargs.items():
                position = self.positions.get(name, -1)
                if position < given:  # no such parameter, or given twice
                    break
                filled[position] = value
            else:
                # By identity: `in` would compare the arguments themselves with ==.
                if not any(value is _EMPTY for value in filled):
                    return dict(zip(names, filled, strict=True))
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    def decode(self, text: str) -> Any:
        """The result stored as `text`; `codec.Undecodable` unless the node could return it."""
        value = decode(text, self.allowed)
        if not self.conforms(value):
            raise Undecodable(
                f"it holds a {type(value).__qualname__}, which is not the "
                f"{describe(self.returns)} the node's return annotation names"
            )
        return value


_SHAPES: weakref.WeakKeyDictionary[
    Callable[..., Any], dict[tuple[tuple[object, ...], bool], Shape]
] = weakref.WeakKeyDictionary()
_ITERATORS: Final = frozenset(
    {
        collections.abc.Iterator,
        collections.abc.Iterable,
        collections.abc.Generator,
        collections.abc.AsyncIterator,
        collections.abc.AsyncIterable,
        collections.abc.AsyncGenerator,
    }
)


def shape_of(
    fn: Callable[..., Any], classes: tuple[object, ...] = (), *, items: bool = False
) -> Shape:
    """The `Shape` of a node function whose results may rebuild `classes`, made once."""
    try:
        shapes = _SHAPES.get(fn)
    except TypeError:  # a callable that takes no weak reference
        return Shape(fn, classes, items=items)
    if shapes is None:
        shapes = _SHAPES[fn] = {}
    try:
        shape = shapes.get((classes, items))
    except TypeError:  # something unhashable among them: not a class to rebuild
        return Shape(fn, classes, items=items)
    if shape is None:
        shape = shapes[classes, items] = Shape(fn, classes, items=items)
    return shape


def _item_type(hint: object) -> object:
    """The type of the items of a stream annotated `hint`; Any if it does not say."""
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in _ITERATORS and arguments:
        return arguments[0]
    return Any


def _awaited_type(hint: object) -> object:
    """`T` of a function annotated `-> Awaitable[T]` (or a Future, a Coroutine):
    what the flow's `await` of its call gives, as a node a decorator of yours
    wraps returns (`@node @eager async def search`). Any other hint as it is."""
    origin = typing.get_origin(hint)
    if isinstance(origin, type) and issubclass(origin, collections.abc.Awaitable):
        arguments = typing.get_args(hint)
        return arguments[-1] if arguments else Any
    return hint


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
            texts.append(f"{_string(name)}:{encode(arguments[name], shape.home)}")
        except Unencodable as error:
            raise _unencodable(node, f"argument {name!r}", error, "pass") from None
    call = f"[{_string(node)},{_string(source)},{{{','.join(texts)}}}]"
    return hashlib.sha256(call.encode("ascii")).digest()


def result_text(node: str, shape: Shape, value: object) -> str:
    """The text to store for a result; `UncacheableValue` unless it would come back as it is.

    The result must be of the node's annotated type, and its text must decode
    (with the classes the node may rebuild) to a value of the same type whose
    text is the same: a class whose ``__init__`` or ``__post_init__`` changes
    the values it is given would otherwise come back as another value.
    """
    kind = type(value).__qualname__
    if not shape.conforms(value):
        raise _refused(
            node,
            kind,
            f"its result, a {kind}, is not the {describe(shape.returns)} its return "
            "annotation names, and the ledger answers a call only with a value of that "
            "type; correct the annotation or the value",
        )
    try:
        text = encode(value, shape.home)
    except Unencodable as error:
        raise _unencodable(node, "result", error, "return") from None
    try:
        again = decode(text, shape.allowed)
    except Undecodable as error:
        raise _refused(
            node,
            kind,
            f"the ledger could not rebuild its result, a {kind}, from what it would store "
            f"({error}); it rebuilds only the classes that the node's return annotation "
            "names, and the classes their fields name, as the compiler finds them in the "
            "project: name the class in the annotation",
        ) from None
    if type(again) is not type(value) or encode(again, shape.home) != text:
        raise _refused(
            node,
            kind,
            f"its result would come back from the ledger as {reprlib.repr(again)}, not as "
            f"the {reprlib.repr(value)} it returned: a class whose __init__ or "
            "__post_init__ changes the values it is given cannot be rebuilt as it was; "
            "make building it from its own fields give it back unchanged",
        )
    return text


def _refused(node: str, kind: str, why: str) -> UncacheableValue:
    return UncacheableValue(
        f"node {node!r} is cache=True, but {why}, {_INSTEAD}",
        node=node,
        what="result",
        kind=kind,
    )


def _unencodable(
    node: str, what: str, error: Unencodable, verb: str
) -> UncacheableValue:
    found = (
        f"holds {error.reason} (at {error.where})"
        if error.where
        else f"is {error.reason}"
    )
    return UncacheableValue(
        f"node {node!r} is cache=True, but its {what} {found}, which the ledger cannot "
        f"store ({_STORABLE}); {verb} a value it can store, {_INSTEAD}",
        node=node,
        what=what,
        kind=error.kind,
    )
