"""walk: a libcst visitor run over a tree that is read, never rebuilt.

`node.visit(visitor)` is libcst's transformer walk for a plain visitor too:
it rebuilds and validates every node it passes, and calls two attribute
hooks per field, which made up most of what kiln's analyses cost.
`walk(node, visitor)` calls the same `visit_X` and `leave_X` methods on the
same nodes in the same order (each node's children in source order, as
libcst visits them; none below a node whose `visit_X` returns False), and
makes nothing. It calls no `visit_X_attr` hooks: no kiln visitor has one.
A visitor with no method for layout or punctuation (whitespace, commas,
brackets, operators) is not walked through them.

Example: `walk(statement, finder)` where `finder` is a `cst.CSTVisitor`,
in place of `statement.visit(finder)`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Final, NamedTuple

import libcst as cst

_Hook = Callable[[cst.CSTVisitor, cst.CSTNode], object]

# Layout and punctuation: whitespace, comments, brackets, commas, operators.
# Below them is only more of the same, so a visitor with no method for any
# of them is spared walking them at all (most of a tree's nodes).
_TRIVIA_BASES: Final = frozenset(
    {
        cst.BaseParenthesizableWhitespace,
        cst.TrailingWhitespace,
        cst.EmptyLine,
        cst.Comment,
        cst.Newline,
        cst.LeftParen,
        cst.RightParen,
        cst.LeftSquareBracket,
        cst.RightSquareBracket,
        cst.LeftCurlyBrace,
        cst.RightCurlyBrace,
        cst.Comma,
        cst.Dot,
        cst.Colon,
        cst.AssignEqual,
        cst.Semicolon,
        cst.BaseBinaryOp,
        cst.BaseBooleanOp,
        cst.BaseCompOp,
        cst.BaseUnaryOp,
        cst.BaseAugOp,
    }
)
# Read off each class's MRO: `issubclass` of libcst's abstract bases goes
# through ABCMeta, which made this a tenth of `kilnc`'s import.
_TRIVIA: Final = frozenset(
    cls
    for cls in vars(cst).values()
    if isinstance(cls, type)
    and not _TRIVIA_BASES.isdisjoint(cls.__mro__)
    and not inspect.isabstract(cls)
)


class _Step(NamedTuple):
    """What walking one node class takes for one visitor class."""

    enter: _Hook | None
    leave: _Hook | None
    fields: tuple[str, ...]  # empty when nothing below the node is walked


# Per node class, its fields in the order libcst visits them; per visitor
# and node class, the walk's step.
_FIELDS: Final[dict[type[cst.CSTNode], tuple[str, ...]]] = {}
_STEPS: Final[dict[tuple[type, type], _Step]] = {}
_SPARES_TRIVIA: Final[dict[type[cst.CSTVisitor], bool]] = {}


def walk(node: cst.CSTNode, visitor: cst.CSTVisitor) -> None:
    step = _STEPS.get((type(visitor), type(node))) or _step(visitor, node)
    if step.enter is None or step.enter(visitor, node) is not False:
        for name in step.fields:
            value = getattr(node, name)
            if isinstance(value, tuple | list):
                for child in value:
                    if _IS_NODE[type(child)]:
                        walk(child, visitor)
            elif _IS_NODE[type(value)]:
                walk(value, visitor)
    if step.leave is not None:
        step.leave(visitor, node)


class _NodeClasses(dict[type, bool]):
    """By class, whether a field's value is a node, learnt on first sight.

    CSTNode is an ABC, and `isinstance` of an ABC costs ten times a dict
    lookup, on every field walked.
    """

    def __missing__(self, kind: type) -> bool:
        found = self[kind] = issubclass(kind, cst.CSTNode)
        return found


_IS_NODE: Final = _NodeClasses()


def _step(visitor: cst.CSTVisitor, node: cst.CSTNode) -> _Step:
    kind, cls = type(visitor), type(node)
    # The visitor's own visit_X and leave_X are the whole of its walk.
    assert kind.on_visit is cst.CSTVisitor.on_visit
    assert kind.on_leave is cst.CSTVisitor.on_leave
    spared = cls in _TRIVIA and _spares_trivia(kind)
    found = _STEPS[kind, cls] = _Step(
        None if spared else _own(kind, f"visit_{cls.__name__}"),
        None if spared else _own(kind, f"leave_{cls.__name__}"),
        () if spared else _FIELDS.get(cls) or _fields(node),
    )
    return found


def _own(kind: type[cst.CSTVisitor], name: str) -> _Hook | None:
    """The visitor's method, unless it is CSTVisitor's own, which does nothing."""
    found: _Hook | None = getattr(kind, name, None)
    return None if found is getattr(cst.CSTVisitor, name, None) else found


def _spares_trivia(kind: type[cst.CSTVisitor]) -> bool:
    if kind not in _SPARES_TRIVIA:
        _SPARES_TRIVIA[kind] = not any(
            _own(kind, f"{hook}_{cls.__name__}")
            for cls in _TRIVIA
            for hook in ("visit", "leave")
        )
    return _SPARES_TRIVIA[kind]


def _fields(node: cst.CSTNode) -> tuple[str, ...]:
    """The node's fields in libcst's order, read off one shallow visit of it.

    libcst visits every field through a helper that names it, whatever its
    value; the fields it never names hold no node (a `Name`'s `value`) but
    for a format spec that is absent, which is visited last when present.
    """
    recorder = _FieldRecorder()
    node._visit_and_replace_children(recorder)
    named = dict.fromkeys(recorder.names)
    rest = [f.name for f in dataclasses.fields(node) if f.name not in named]
    found = _FIELDS[type(node)] = (*named, *rest)
    return found


class _FieldRecorder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.names.append(attribute)
