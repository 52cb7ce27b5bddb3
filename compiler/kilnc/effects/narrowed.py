"""What a body narrows to another type, or changes in place as written.

Example input::

    def normalize(rows: Sequence[int]) -> int:
        if isinstance(rows, list):
            rows.sort()
        return len(rows)

Output: `rows`, twice: the `isinstance` test narrows it and `rows.sort()`
changes it in place. A parameter annotated read-only (`Sequence[int]`,
`Mapping[str, str]`) is trusted never to change through its function: a
view has no method that changes it. That holds only where the body keeps to
the view: one that narrows the parameter (`isinstance(rows, list)`,
`issubclass(type(rows), list)`, `type(rows) is list`, `cast(list[int],
rows)`, a `match` on it) may reach a list's methods, and one that changes it
as written (`rows.sort()`, `cfg["k"] = v`, `del rows[0]`, `rows += [x]`,
`rows.x = 1`) changes it whatever the annotation says, as Python runs it.
A deeply immutable annotation (`str`, `tuple[int, ...]`) stays trusted:
nothing changes such a value, narrowed or not.
Flow-insensitive: a test anywhere in the body, of the parameter or of a
local that may hold it (`body.py` asks through what each name may hold),
counts for all of the body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import libcst as cst

from kilnc.mutability import (
    IMMUTABLE_CONTAINERS,
    IMMUTABLE_TYPES,
    MUTATING_METHODS,
    VIEWS,
    Qualify,
    is_immutable,
    is_read_only,
)
from kilnc.syntax import dotted
from kilnc.walk import walk

if TYPE_CHECKING:
    from kilnc.effects.body import Body

# Calls that narrow their first argument's type, and `cast`, its second.
_TESTS: Final = frozenset({"isinstance", "issubclass", "type"})
_CASTS: Final = frozenset({"cast", "typing.cast", "typing_extensions.cast"})
# The classes a test may narrow to and stay read-only: `isinstance(cfg, Mapping)`.
_KEPT: Final = VIEWS | IMMUTABLE_TYPES | IMMUTABLE_CONTAINERS


def read_only(body: Body, name: str) -> bool:
    """Whether the parameter's annotation keeps its function from changing it:
    a deeply immutable type always, a read-only view where the body neither
    narrows it nor changes it as written, through any name that may hold it."""
    annotation = body.params[name].annotation
    if annotation is None or not is_read_only(annotation, body.qualify):
        return False
    if is_immutable(annotation, body.qualify):
        return True
    if body.written is None:
        body.written = {
            origin
            for found in written_through(body.roots, body.qualify)
            for origin in body.origins(found)
            if isinstance(origin, str)
        }
    return name not in body.written


def written_through(
    roots: Iterable[cst.CSTNode], qualify: Qualify
) -> list[cst.BaseExpression]:
    """The expressions the code narrows to another type, or changes in place as
    written: what a read-only annotation of theirs does not keep from changing.
    A test that narrows to read-only classes only (`isinstance(cfg, Mapping)`,
    `isinstance(x, (str, tuple))`) keeps it read-only."""
    finder = _Finder(qualify)
    for root in roots:
        walk(root, finder)
    return finder.found


class _Finder(cst.CSTVisitor):
    def __init__(self, qualify: Qualify) -> None:
        self.qualify = qualify
        self.found: list[cst.BaseExpression] = []

    def visit_Call(self, node: cst.Call) -> None:
        name = dotted(node.func)
        args = [arg.value for arg in node.args if arg.keyword is None]
        if name in _TESTS and args and not self._read_only(args[1:2]):
            self.found.append(args[0])
        elif name in _CASTS and len(args) > 1:
            self.found.append(args[1])
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in MUTATING_METHODS:
            self.found.append(func.value)  # `rows.sort()`, `cfg.update(x)`

    def _read_only(self, classes: list[cst.BaseExpression]) -> bool:
        """Whether a test's classes (`Mapping`, `(str, tuple)`) are all read-only."""
        if not classes:
            return False  # `type(x)`: compared with anything
        found = classes[0]
        named = (
            [e.value for e in found.elements]
            if isinstance(found, cst.Tuple)
            else [found]
        )
        names = [dotted(n) for n in named]
        return all(n is not None and self.qualify(n) in _KEPT for n in names)

    def visit_Match(self, node: cst.Match) -> None:
        self.found.append(node.subject)

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._stored(target.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._stored(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):
            self.found.append(node.target)  # `rows += [x]` extends a list in place
        self._stored(node.target)

    def visit_Del(self, node: cst.Del) -> None:
        self._stored(node.target)

    def _stored(self, target: cst.BaseExpression) -> None:
        """`cfg["k"] = v`, `rows.x = 1`: a store into what `cfg` holds."""
        if isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._stored(element.value)
        elif isinstance(target, cst.StarredElement):
            self._stored(target.value)
        elif isinstance(target, cst.Attribute | cst.Subscript):
            self.found.append(target.value)
