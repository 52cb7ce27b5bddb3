"""walk: a libcst visitor run over a tree that is read, never rebuilt.

`node.visit(visitor)` is libcst's transformer walk for a plain visitor too:
it rebuilds and validates every node it passes, and calls two attribute
hooks per field, which made up most of what kiln's analyses cost.
`walk(node, visitor)` calls the same `visit_X` and `leave_X` methods on the
same nodes in the same order (each node's children in source order, as
libcst visits them; none below a node whose `visit_X` returns False), and
makes nothing. It calls no `visit_X_attr` hooks: no kiln visitor has one.

Example: `walk(statement, finder)` where `finder` is a `cst.CSTVisitor`,
in place of `statement.visit(finder)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

import libcst as cst

_Hook = Callable[[cst.CSTVisitor, cst.CSTNode], object]

# Per node class, its fields in the order libcst visits them; per visitor
# and node class, the methods to call.
_FIELDS: Final[dict[type[cst.CSTNode], tuple[str, ...]]] = {}
_HOOKS: Final[dict[tuple[type, type], tuple[_Hook | None, _Hook | None]]] = {}


def walk(node: cst.CSTNode, visitor: cst.CSTVisitor) -> None:
    enter, leave = _hooks(type(visitor), type(node))
    if enter is None or enter(visitor, node) is not False:
        fields = _FIELDS.get(type(node)) or _fields(node)
        for name in fields:
            value = getattr(node, name)
            if isinstance(value, cst.CSTNode):
                walk(value, visitor)
            elif isinstance(value, tuple | list):
                for child in value:
                    if isinstance(child, cst.CSTNode):
                        walk(child, visitor)
    if leave is not None:
        leave(visitor, node)


def _hooks(visitor: type, node: type) -> tuple[_Hook | None, _Hook | None]:
    found = _HOOKS.get((visitor, node))
    if found is None:
        # The visitor's own visit_X and leave_X are the whole of its walk.
        assert visitor.on_visit is cst.CSTVisitor.on_visit  # type: ignore[attr-defined]
        assert visitor.on_leave is cst.CSTVisitor.on_leave  # type: ignore[attr-defined]
        found = _HOOKS[visitor, node] = (
            getattr(visitor, f"visit_{node.__name__}", None),
            getattr(visitor, f"leave_{node.__name__}", None),
        )
    return found


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
