"""Which generator expressions of a flow are read to their end where they are made.

Example input: `total = sum(price(item) for item in cart)` and
`found = any(check(x) for x in xs)`. Output: the first generator, which `sum`
reads whole, and not the second: `any` stops at the first true item, so the
source calls `check` only up to it, and a fan-out, which calls it for every
item, would compute something else (a call that raises past that item, or
changes something, is made where the source never makes it). kiln makes a
fan-out only of a generator read whole: by a builtin that consumes its
argument (`list`, `sum`, `sorted`, `", ".join`, ...), by being unpacked
(`[*gen]`, `f(*gen)`), or as the iterable of a comprehension that is itself
read whole.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import libcst as cst
from libcst.metadata import QualifiedName

from kilnc.walk import walk

# The builtins that iterate their first argument to its end before returning.
_CONSUMERS = frozenset(
    f"builtins.{name}"
    for name in (
        "list",
        "tuple",
        "set",
        "frozenset",
        "dict",
        "sorted",
        "sum",
        "min",
        "max",
    )
)

_Comprehension = cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp


def generators_read_whole(
    function: cst.FunctionDef,
    qualified: Mapping[cst.CSTNode, Collection[QualifiedName]],
) -> frozenset[cst.GeneratorExp]:
    """The generator expressions in `function` that are read to their end where they are."""
    finder = _ReadWhole(qualified)
    walk(function, finder)
    return frozenset(finder.found)


class _ReadWhole(cst.CSTVisitor):
    def __init__(self, qualified: Mapping[cst.CSTNode, Collection[QualifiedName]]):
        self.qualified = qualified
        self.found: set[cst.GeneratorExp] = set()

    def visit_Call(self, node: cst.Call) -> None:
        for position, arg in enumerate(node.args):
            if arg.star == "*" or (
                position == 0 and arg.keyword is None and self._consumes(node.func)
            ):
                self._read(arg.value)

    def visit_StarredElement(self, node: cst.StarredElement) -> None:
        self._read(node.value)  # `[*gen]`, `(*gen,)`, `{*gen}`

    def visit_ListComp(self, node: cst.ListComp) -> None:
        self._iterables_read(node)

    def visit_SetComp(self, node: cst.SetComp) -> None:
        self._iterables_read(node)

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self._iterables_read(node)

    def _iterables_read(self, node: _Comprehension) -> None:
        clauses: cst.CompFor | None = node.for_in
        while clauses is not None:
            self._read(clauses.iter)
            clauses = clauses.inner_for_in

    def _read(self, value: cst.BaseExpression) -> None:
        if isinstance(value, cst.GeneratorExp) and value not in self.found:
            self.found.add(value)
            self._iterables_read(value)  # reading it whole reads its iterables whole

    def _consumes(self, func: cst.BaseExpression) -> bool:
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value == "join"
            and isinstance(func.value, cst.SimpleString | cst.ConcatenatedString)
        ):
            return True  # `", ".join(gen)`: a str's join reads every item
        names = {name.name for name in self.qualified.get(func, ())}
        return bool(names) and names <= _CONSUMERS
