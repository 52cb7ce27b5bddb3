"""What a body's statements bind: the expression each name may then be or hold.

Example input::

    rows = state["rows"]          # bound: rows may be part of state
    for w in words: ...           # items: w is an item of words
    out.append(w)                 # stored: out holds what w may be
    count: int = 0                # annotated: count is declared an int

`Body` reads these to a fixed point, into what each name may be (`aliases`)
and what its items may be (`contents`).
"""

from __future__ import annotations

import libcst as cst

from kilnc.mutability import MUTATING_METHODS
from kilnc.names import identifier, parameter_names, root_names, target_names
from kilnc.syntax import code


class Bindings(cst.CSTVisitor):
    """Every binding of a name and the expression whose objects it may then be
    (`bound`) or whose items it may then be (`items`: a loop's target), and every
    store of a value into a container a name holds (`stored`)."""

    def __init__(self) -> None:
        self.annotated: dict[str, list[str]] = {}  # a local's declared types
        self.bound: list[tuple[set[str], cst.BaseExpression]] = []
        self.items: list[tuple[set[str], cst.BaseExpression]] = []
        self.stored: list[tuple[set[str], cst.BaseExpression]] = []

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._assign(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name):
            declared = self.annotated.setdefault(identifier(node.target.value), [])
            declared.append(code(node.annotation.annotation))
        if node.value is not None:
            self._assign(node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.stored.append((root_names(node.target), node.value))  # `out += [w]`

    def _assign(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if isinstance(target, cst.Tuple | cst.List):  # `a, b = pair`: its items
            self.items.append((target_names(target), value))
        else:
            self.bound.append((target_names(target), value))
        if isinstance(target, cst.Subscript | cst.Attribute):  # `table[k] = w`
            self.stored.append((root_names(target), value))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.bound.append((target_names(node.target), node.value))

    def visit_For(self, node: cst.For) -> None:
        self.items.append((target_names(node.target), node.iter))

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.items.append((target_names(node.target), node.iter))

    def visit_Call(self, node: cst.Call) -> None:
        # `map(lambda item: item.append(v), items)`: what the call passes its
        # lambda may come from any of its other arguments.
        for arg in node.args:
            if isinstance(arg.value, cst.Lambda):
                params = parameter_names(arg.value.params)
                self.items += [(params, o.value) for o in node.args if o is not arg]
        # `parts.append(state)`: parts now holds state's object.
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in MUTATING_METHODS:
            for arg in node.args:
                self.stored.append((root_names(func.value), arg.value))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self.bound.append((target_names(node.asname.name), node.item))


# Displays, comprehensions and operators: each makes a new value.
NEW_VALUES = (
    cst.List,
    cst.Tuple,
    cst.Set,
    cst.Dict,
    cst.ListComp,
    cst.SetComp,
    cst.GeneratorExp,
    cst.DictComp,
    cst.BinaryOperation,
)


def bound_values(statement: cst.CSTNode) -> list[cst.BaseExpression]:
    """What a flow's statement binds its names to: an assignment's value, a
    loop's iterable (its items), a call's or a fan-out's own value."""
    if isinstance(statement, cst.BaseExpression):
        return [statement]
    if isinstance(statement, cst.For):
        return [statement.iter]
    smalls = (
        statement.body
        if isinstance(statement, cst.SimpleStatementLine)
        else (statement,)
    )
    return [
        small.value
        for small in smalls
        if isinstance(small, cst.Assign | cst.AnnAssign) and small.value is not None
    ]
