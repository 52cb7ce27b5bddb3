"""The methods Python calls for operators, tests and conversions, read as the
calls they are where the operand is an object of a project class.

Example input (a node's body; `BUDGET = Budget()`, `a: Money`, `q: Queue`,
all classes of the project)::

    total = a + b             # Money.__add__(a, b), or b's __radd__
    if BUDGET:                # Budget.__bool__, else Budget.__len__
    while q != done:          # Queue.__ne__, and done's __ne__ reflected
    x = -a                    # Money.__neg__
    print(f"{a}")             # Money.__format__ (else __str__, __repr__)
    str(a), repr(a), abs(a)   # __str__ (else __repr__), __repr__, __abs__
    first, second = BUDGET    # Budget.__iter__, then __next__
    await a                   # Money.__await__

Output, on the `Body`: what each method does, as a call of it would. Where
kiln cannot type the operand, or its class defines no such method, the
expression is read as before. `EffectVisitor` is made with these: its own
`visit_` methods of the same nodes run first, these as each node is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from weakref import WeakKeyDictionary

import libcst as cst

from kilnc.effects.body import Body
from kilnc.effects.implicit import implicit_call, iterated
from kilnc.effects.methods import not_none
from kilnc.effects.receivers import method_of, overriding, type_of

# A binary operator's method, and the reflected one its right operand runs.
_BINARY: Final = {
    cst.Add: "add",
    cst.Subtract: "sub",
    cst.Multiply: "mul",
    cst.MatrixMultiply: "matmul",
    cst.Divide: "truediv",
    cst.FloorDivide: "floordiv",
    cst.Modulo: "mod",
    cst.Power: "pow",
    cst.LeftShift: "lshift",
    cst.RightShift: "rshift",
    cst.BitAnd: "and",
    cst.BitOr: "or",
    cst.BitXor: "xor",
}
# By the name of the operator an in-place one (`+=`, `AddAssign`) stands for.
_IN_PLACE: Final = {operator.__name__: name for operator, name in _BINARY.items()}
# A comparison's method, and the one its right operand runs reflected.
_COMPARED: Final = {
    cst.Equal: ("__eq__", "__eq__"),
    cst.NotEqual: ("__ne__", "__ne__"),
    cst.LessThan: ("__lt__", "__gt__"),
    cst.LessThanEqual: ("__le__", "__ge__"),
    cst.GreaterThan: ("__gt__", "__lt__"),
    cst.GreaterThanEqual: ("__ge__", "__le__"),
}
_UNARY: Final = {cst.Minus: "__neg__", cst.Plus: "__pos__", cst.BitInvert: "__invert__"}
# The methods a builtin runs on its first argument, each tried in turn.
_CONVERSIONS: Final = {
    "str": ("__str__", "__repr__"),
    "repr": ("__repr__",),
    "format": ("__format__", "__str__", "__repr__"),
    "bool": ("__bool__", "__len__"),
    "abs": ("__abs__",),
    "hash": ("__hash__",),
    "int": ("__int__", "__index__"),
    "float": ("__float__", "__index__"),
    "complex": ("__complex__",),
    "round": ("__round__",),
    "reversed": ("__reversed__",),
    "bytes": ("__bytes__",),
    "divmod": ("__divmod__",),
}
_SHOWN: Final = ("__str__", "__repr__")  # what `print` runs on each argument
# By body, whether each name it reads holds a project class's object.
_NAMES: Final[WeakKeyDictionary[Body, dict[str, bool]]] = WeakKeyDictionary()


class OperatorVisitor(cst.CSTVisitor):
    """Records, for one body, the methods its operators and tests run."""

    body: Body

    def leave_BinaryOperation(self, original_node: cst.BinaryOperation) -> None:
        name = _BINARY.get(type(original_node.operator))
        if name is not None:
            left, right = original_node.left, original_node.right
            _first(self.body, original_node, left, [f"__{name}__"], [right])
            _first(self.body, original_node, right, [f"__r{name}__"], [left])

    def leave_AugAssign(self, original_node: cst.AugAssign) -> None:
        # `x += y` of a class with no `__iadd__` runs `x + y`.
        operator = type(original_node.operator).__name__.removesuffix("Assign")
        name = _IN_PLACE.get(operator)
        target, value = original_node.target, original_node.value
        if name is not None and not _defines(self.body, target, f"__i{name}__"):
            _first(self.body, original_node, target, [f"__{name}__"], [value])
            _first(self.body, original_node, value, [f"__r{name}__"], [target])

    def leave_UnaryOperation(self, original_node: cst.UnaryOperation) -> None:
        operator = original_node.operator
        if isinstance(operator, cst.Not):
            truth(self.body, original_node, original_node.expression)
            return
        name = _UNARY.get(type(operator))
        if name is not None:
            _first(self.body, original_node, original_node.expression, [name])

    def leave_Comparison(self, original_node: cst.Comparison) -> None:
        left = original_node.left
        for target in original_node.comparisons:
            methods = _COMPARED.get(type(target.operator))
            right = target.comparator
            if methods is not None:
                _first(self.body, original_node, left, methods[:1], [right])
                _first(self.body, original_node, right, methods[1:], [left])
            left = right

    def leave_If(self, original_node: cst.If) -> None:
        truth(self.body, original_node.test, original_node.test)

    def leave_While(self, original_node: cst.While) -> None:
        truth(self.body, original_node.test, original_node.test)

    def leave_IfExp(self, original_node: cst.IfExp) -> None:
        truth(self.body, original_node.test, original_node.test)

    def leave_Assert(self, original_node: cst.Assert) -> None:
        truth(self.body, original_node.test, original_node.test)

    def leave_BooleanOperation(self, original_node: cst.BooleanOperation) -> None:
        truth(self.body, original_node, original_node.left)
        truth(self.body, original_node, original_node.right)

    def leave_FormattedStringExpression(
        self, original_node: cst.FormattedStringExpression
    ) -> None:
        conversion = original_node.conversion
        methods = {"r": ("__repr__",), "s": _SHOWN}.get(conversion or "")
        value = original_node.expression
        _first(self.body, original_node, value, methods or _CONVERSIONS["format"])

    def leave_Await(self, original_node: cst.Await) -> None:
        _first(self.body, original_node, original_node.expression, ["__await__"])

    def leave_Assign(self, original_node: cst.Assign) -> None:
        if any(
            isinstance(t.target, cst.Tuple | cst.List) for t in original_node.targets
        ):
            _iterated(self.body, original_node, original_node.value)  # `a, b = x`

    def leave_StarredElement(self, original_node: cst.StarredElement) -> None:
        _iterated(self.body, original_node, original_node.value)  # `[*x]`

    def leave_Arg(self, original_node: cst.Arg) -> None:
        if original_node.star == "*":  # `f(*x)`
            _iterated(self.body, original_node, original_node.value)

    def leave_Call(self, original_node: cst.Call) -> None:
        func = original_node.func
        if not isinstance(func, cst.Name) or not original_node.args:
            return
        name = func.value
        if name not in _CONVERSIONS and name != "print":
            return
        if self.body.reader.resolve(self.body.defs, func) != f"builtins.{name}":
            return  # a name of the module's own
        args = original_node.args
        if name == "print":
            for arg in args:
                if arg.keyword is None and not arg.star:
                    _first(self.body, original_node, arg.value, _SHOWN)
            return
        others = [arg.value for arg in args[1:]]
        _first(self.body, original_node, args[0].value, _CONVERSIONS[name], others)


def truth(body: Body, where: cst.CSTNode, value: cst.BaseExpression) -> None:
    """`if x:`, `not x`, `x or y`: `__bool__`, else `__len__`."""
    _first(body, where, value, _CONVERSIONS["bool"])


def _first(
    body: Body,
    where: cst.CSTNode,
    value: cst.BaseExpression,
    methods: Sequence[str],
    args: Sequence[cst.BaseExpression] = (),
) -> None:
    """The first of `methods` the value's class defines, called on it."""
    if not _of_project_class(body, value):
        return
    for method in methods:
        if implicit_call(body, where, value, method, args):
            return


def _iterated(body: Body, where: cst.CSTNode, value: cst.BaseExpression) -> None:
    if _of_project_class(body, value):
        iterated(body, where, value)


def _of_project_class(body: Body, value: cst.BaseExpression) -> bool:
    """Whether kiln types `value` as an object of a project class (or its
    class, `type[Agent]`): the one kind of value whose methods it reads. Asked
    first, once per name of a body: most operands are numbers and strings."""
    if not isinstance(value, cst.Name):
        return _typed(body, value)
    known = _NAMES.setdefault(body, {})
    if value.value not in known:
        known[value.value] = _typed(body, value)
    return known[value.value]


def _typed(body: Body, value: cst.BaseExpression) -> bool:
    if isinstance(value, cst.BaseString | cst.BaseNumber):
        return False
    typed = type_of(body, value)
    if typed is None:
        return False
    defs, annotation = typed
    head, bracket, rest = not_none(annotation).partition("[")
    named = rest.removesuffix("]") if bracket and head in ("type", "Type") else head
    return body.reader.classes.find(defs, named) is not None


def _defines(body: Body, value: cst.BaseExpression, method: str) -> bool:
    """Whether the value's project class (or a subclass) defines `method`."""
    return method_of(body, value, method) is not None or bool(
        overriding(body, value, method)
    )
