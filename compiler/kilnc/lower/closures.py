"""The names a value reads late: when whoever holds it calls or iterates it.

Example input, with `later` already bound to `lambda: x`::

    k = lambda: x + y              # reads x and y late
    d = lambda v=x: v + y          # reads y late (x is read now, as d is made)
    gen = (v * z for v in xs)      # reads z late (xs is read now)
    fs = [k, partial(use, later)]  # holds k and later: x, y and what later reads
    n = sum(v + w for v in xs)     # consumed here: reads nothing late

A step given `k` (or `fs`) reads those names while it runs, so a later
statement binding one of them again waits for it, and a step given one after
such a binding runs where the source runs it (`Steps.make`).
"""

from __future__ import annotations

from collections.abc import Mapping

import libcst as cst

from kilnc.names import identifier, name_uses, parameter_defaults, parameter_names
from kilnc.walk import walk

# Builtins that consume a generator or call a lambda passed to them before they
# return, and keep neither: `sum(v + w for v in xs)`, `sorted(xs, key=lambda v: v.w)`.
_CONSUMING = frozenset(
    {"all", "any", "dict", "frozenset", "len", "list", "max", "min", "set", "sorted"}
    | {"sum", "tuple"}
)


def late_reads(
    value: cst.BaseExpression, deferred: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """The names `value` reads late: those its lambdas and generators read, and those
    read late by what it holds of the names in `deferred`. A node's awaited value is
    its own, not what it was given."""
    finder = _LateReads(deferred)
    walk(value, finder)
    return frozenset(finder.found)


class _LateReads(cst.CSTVisitor):
    def __init__(self, deferred: Mapping[str, frozenset[str]]) -> None:
        self.deferred = deferred
        self.found: set[str] = set()
        self.consumed: set[cst.CSTNode] = set()

    def visit_Await(self, node: cst.Await) -> bool:
        return False

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (isinstance(func, cst.Name) and func.value in _CONSUMING) or (
            isinstance(func, cst.Attribute) and func.attr.value == "join"
        ):
            self.consumed.update(arg.value for arg in node.args)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return self._closure(node)

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> bool:
        return self._closure(node)

    def visit_Name(self, node: cst.Name) -> None:
        self.found |= self.deferred.get(identifier(node.value), frozenset())

    def _closure(self, node: cst.Lambda | cst.GeneratorExp) -> bool:
        if node in self.consumed:
            return True  # its names are read now, as any operand's are
        late = name_uses(node).read_names
        if isinstance(node, cst.Lambda):
            # `lambda v, b=base: v + b` reads `base` now, as it is made.
            late = name_uses(node.body).read_names - parameter_names(node.params)
            for default in parameter_defaults(node.params):
                walk(default, self)  # what a default holds may read late
        self.found |= late
        for name in late & self.deferred.keys():
            self.found |= self.deferred[name]  # a lambda calling another
        return False
