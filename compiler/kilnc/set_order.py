"""set_orders: where a flow's body reads the order of a set.

Example input::

    @flow
    async def agent(tools: list[str]) -> list[str]:
        unique = set(tools)
        results = [await run_tool(t) for t in unique]   # the order of `unique`

Output: the `unique` of the comprehension. A set iterates in the order of
its items' hashes, and the hash of a str or bytes changes from process to
process (hash randomization, `PYTHONHASHSEED`): a durable run resumed in
another process iterates it in another order, and calls its nodes in
another order, or with other arguments, than the run it resumes, which the
journal refuses. A set of numbers keeps its order (their hashes are their
values): one known to hold numbers only (`set[int]`, `set(range(n))`, `{1,
2}`) is left alone. What reads the order: a `for` loop or a comprehension
over it (a fan-out too), `list`, `tuple`, `enumerate`, `iter`, `zip`, `map`,
`filter`, `dict.fromkeys` and a str's `join` of it, `[*s]` and `f(*s)`,
`a, b = s`, `s.pop()`, and its text (`str(s)`, `f"{s}"`). `sorted`, `len`,
`min`, `max`, `in` and handing it to a node (whose arguments the journal
digests sorted) do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import libcst as cst

from kilnc.front import ParsedModule
from kilnc.ir import FlowIR
from kilnc.names import identifier, target_names
from kilnc.syntax import dotted
from kilnc.walk import walk

_SETS: Final = frozenset({"builtins.set", "builtins.frozenset"})
# Set types as annotations name them, by their last part.
_SET_TYPES: Final = frozenset(
    {"set", "frozenset", "Set", "FrozenSet", "AbstractSet", "MutableSet"}
)
# Items whose hash is the same in every process.
_STABLE_ITEMS: Final = frozenset({"int", "float", "bool", "complex", "None"})
# Builtins whose result follows the order of their arguments' items.
_ORDERED_BY: Final = frozenset(
    {
        *("builtins.list", "builtins.tuple", "builtins.enumerate", "builtins.iter"),
        *("builtins.zip", "builtins.map", "builtins.filter", "builtins.str"),
        "builtins.repr",
    }
)
_SET_METHODS: Final = frozenset(
    {"union", "intersection", "difference", "symmetric_difference", "copy"}
)
_SET_OPERATORS: Final = (cst.BitOr, cst.BitAnd, cst.Subtract, cst.BitXor)


def set_orders(parsed: ParsedModule, flow: FlowIR) -> list[cst.BaseExpression]:
    """The sets of str or bytes (or of items kiln cannot tell) whose order the
    flow's body reads, where it reads it."""
    returns = {
        id(call.call): call.callee.returns
        for call in flow.calls
        if call.callee.returns is not None
    }
    sets = _Sets(parsed, returns)
    function = flow.flow.function
    for param in _params(function.params):
        if param.annotation is not None and _set_annotation(param.annotation):
            sets.names.add(identifier(param.name.value))
    binder = _Binder(sets)
    for _ in range(len(flow.flow.bound) + 1):  # `b = a | c`: to a fixed point
        before = len(sets.names)
        walk(function.body, binder)
        if len(sets.names) == before:
            break
    reader = _OrderReads(sets)
    walk(function.body, reader)
    return reader.found


class _Sets:
    """Which of the flow's expressions may be a set whose order varies."""

    def __init__(self, parsed: ParsedModule, returns: dict[int, str]) -> None:
        self.parsed = parsed
        self.returns = returns
        self.names: set[str] = set()

    def holds(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.Name):
            return identifier(node.value) in self.names
        if isinstance(node, cst.Set):
            return not all(_number(e.value) for e in node.elements)
        if isinstance(node, cst.SetComp):
            return not _number(node.elt)
        if isinstance(node, cst.Await):
            return self.holds(node.expression)
        if isinstance(node, cst.BinaryOperation) and isinstance(
            node.operator, _SET_OPERATORS
        ):
            return self.holds(node.left) or self.holds(node.right)
        if isinstance(node, cst.Call):
            return self._call(node)
        return False

    def _call(self, node: cst.Call) -> bool:
        if id(node) in self.returns:  # a node's result: by its return annotation
            return _set_annotation_text(self.returns[id(node)])
        if self.parsed.qualified_names(node.func) & _SETS:
            return bool(node.args) and not _stable_items(
                self.parsed, node.args[0].value
            )
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in _SET_METHODS:
            return self.holds(func.value)
        return False


class _Binder(cst.CSTVisitor):
    """The flow's names bound to a set (or annotated as one)."""

    def __init__(self, sets: _Sets) -> None:
        self.sets = sets

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # a nested function's names are its own

    def visit_Assign(self, node: cst.Assign) -> None:
        if self.sets.holds(node.value):
            for target in node.targets:
                self.sets.names |= target_names(target.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        value = node.value
        if _set_annotation(node.annotation) or (
            value is not None and self.sets.holds(value)
        ):
            self.sets.names |= target_names(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        if self.sets.holds(node.value):
            self.sets.names |= target_names(node.target)


class _OrderReads(cst.CSTVisitor):
    """The sets whose order the code reads, at each read."""

    def __init__(self, sets: _Sets) -> None:
        self.sets = sets
        self.found: list[cst.BaseExpression] = []
        self.unordered: set[cst.CompFor] = set()

    def _read(self, node: cst.BaseExpression) -> None:
        if self.sets.holds(node) and node not in self.found:
            self.found.append(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_For(self, node: cst.For) -> None:
        self._read(node.iter)

    def visit_SetComp(self, node: cst.SetComp) -> None:
        self.unordered.add(node.for_in)  # a set made of a set has no order to keep

    def visit_CompFor(self, node: cst.CompFor) -> None:
        if node not in self.unordered:
            self._read(node.iter)

    def visit_StarredElement(self, node: cst.StarredElement) -> None:
        self._read(node.value)

    def visit_FormattedStringExpression(
        self, node: cst.FormattedStringExpression
    ) -> None:
        self._read(node.expression)

    def visit_Assign(self, node: cst.Assign) -> None:
        if any(isinstance(t.target, cst.Tuple | cst.List) for t in node.targets):
            self._read(node.value)  # `a, b = s`

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute):
            if func.attr.value == "pop" and not node.args:
                self._read(func.value)  # an arbitrary item: the first in its order
            elif func.attr.value in ("join", "fromkeys") and node.args:
                self._read(node.args[0].value)  # `", ".join(s)`, `dict.fromkeys(s)`
            return
        ordered = bool(self.sets.parsed.qualified_names(func) & _ORDERED_BY)
        for argument in node.args:
            if ordered or argument.star == "*":
                self._read(argument.value)


def _params(params: cst.Parameters) -> Iterator[cst.Param]:
    """The parameters one value is passed to (`*args` is a tuple, `**kwargs` a dict)."""
    yield from (*params.posonly_params, *params.params, *params.kwonly_params)


def _set_annotation(annotation: cst.Annotation) -> bool:
    return _set_annotation_text(
        cst.Module(body=[]).code_for_node(annotation.annotation)
    )


def _set_annotation_text(text: str) -> bool:
    """Whether an annotation names a set type of items whose order may vary."""
    try:
        expression = cst.parse_expression(text.strip().strip("'\""))
    except cst.ParserSyntaxError:
        return False
    head = expression.value if isinstance(expression, cst.Subscript) else expression
    name = dotted(head)
    if name is None or name.rpartition(".")[2] not in _SET_TYPES:
        return False
    if not isinstance(expression, cst.Subscript) or not expression.slice:
        return True  # a bare `set`: items of any type
    item = expression.slice[0].slice
    written = dotted(item.value) if isinstance(item, cst.Index) else None
    return written is None or written.rpartition(".")[2] not in _STABLE_ITEMS


def _stable_items(parsed: ParsedModule, iterable: cst.BaseExpression) -> bool:
    """Whether what a set is made from holds numbers only: `range(n)`, `[1, 2]`."""
    if isinstance(iterable, cst.Call):
        return "builtins.range" in parsed.qualified_names(iterable.func)
    if isinstance(iterable, cst.List | cst.Tuple | cst.Set):
        return all(_number(e.value) for e in iterable.elements)
    return False


def _number(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.UnaryOperation):
        node = node.expression
    return isinstance(node, cst.Integer | cst.Float | cst.Imaginary)
