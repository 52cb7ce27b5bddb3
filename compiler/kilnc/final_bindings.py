"""final_binding: which statement of a module binds a name last, as the module runs.

A flow looks its global names up when it runs, after its module has run: `f(x)`
in a flow calls what the module's last binding of `f` left there, wherever the
flow is written. Example input::

    @node
    def f(a: int) -> int: ...         # line 2

    @flow
    async def main(x: int) -> int:
        return f(x)                   # calls the `f` of line 9

    @node(retries=2)
    def f(a: int) -> int: ...         # line 9: the last binding of `f`

    g = helper                        # the last binding of `g`, no node

    if FAST:
        h = quick                     # `h` bound last in a block

Output: for `f`, the def of line 9, so a flow's call of `f` is a call of that
node, with its options; for `g`, the assignment; for `h`, `UNSURE`: a name
bound last in a block (`if`, `try`, `for`, `with`, `match`), or declared
`global` in a function, may hold any of its values when the flow runs. The
project's resolver follows a flow's name to a node only where its last binding
is that node (project.py); `check_node_values` warns at a call it does not
follow (KLN317).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

import libcst as cst

from kilnc.front import NODE_DECORATORS, ModuleDefs, ParsedModule
from kilnc.ir import Callee
from kilnc.names import identifier, imported_names, name_uses, target_names
from kilnc.walk import walk

# The last binding of a name that kiln cannot tell: in a block, or by a function.
UNSURE: Final = cst.Pass()


def final_binding(parsed: ParsedModule, name: str) -> cst.CSTNode | None:
    """The top-level statement that binds `name` last, `UNSURE`, or None when the
    module's top level binds no `name` (a builtin, an undefined name)."""
    return _final_bindings(parsed).get(identifier(name))


def binds_last(defs: ModuleDefs, name: str, callee: Callee) -> bool:
    """Whether the module's last binding of `name` is the def of `callee` (a node or
    a flow of the module), or the call form that marks it (`f = node(...)(f)`)."""
    statement = final_binding(defs.parsed, name)
    if isinstance(statement, cst.FunctionDef):
        return defs.parsed.span(statement.name) == callee.span
    marked = _marked(defs.parsed, statement)
    return marked is not None and identifier(marked) == identifier(name)


def _marked(parsed: ParsedModule, statement: cst.CSTNode | None) -> str | None:
    """`f` of `f = node(...)(f)` or `f = node(f)`: `node` returns the function it
    marks, so the name is bound to it again (node_forms.py reads the marking)."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target, value = small.targets[0].target, small.value
    elif isinstance(small, cst.AnnAssign) and small.value is not None:
        target, value = small.target, small.value
    else:
        return None
    if not isinstance(value, cst.Call) or len(value.args) != 1:
        return None
    func, argument = value.func, value.args[0].value
    names = parsed.qualified_names(func)
    if isinstance(func, cst.Call) and not names & NODE_DECORATORS:
        names = parsed.qualified_names(func.func)
    written = target.value if isinstance(target, cst.Name) else None
    if names & NODE_DECORATORS and isinstance(argument, cst.Name):
        return written if written == argument.value else None
    return None


def bound_after(parsed: ParsedModule, name: str, statement: cst.CSTNode) -> bool:
    """Whether the module binds (the head of) the dotted `name` again after
    `statement` (`get = fetch`, then `def fetch` once more), or where kiln cannot
    tell: what `statement` bound is not what the name holds last."""
    last = final_binding(parsed, name.partition(".")[0])
    if last is None:
        return False
    if last is UNSURE:
        return True
    place = {id(line): index for index, line in enumerate(parsed.module.body)}
    return place.get(id(last), -1) > place.get(id(statement), len(place))


def is_import(statement: cst.CSTNode | None) -> bool:
    """Whether a final binding is an import statement (`from .steps import fetch`)."""
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Import | cst.ImportFrom) for small in statement.body
    )


@functools.lru_cache(maxsize=64)  # the resolver asks for each call of each flow
def _final_bindings(parsed: ParsedModule) -> Mapping[str, cst.CSTNode]:
    declared = global_names(parsed.module)
    found: dict[str, cst.CSTNode] = {}
    for statement in parsed.module.body:
        sure = isinstance(
            statement, cst.FunctionDef | cst.ClassDef | cst.SimpleStatementLine
        )
        for name in _bound_by(parsed, statement):
            found[name] = statement if sure and name not in declared else UNSURE
    return found


def _bound_by(parsed: ParsedModule, statement: cst.BaseStatement) -> set[str]:
    """The names a top-level statement binds in the module, in any of its blocks."""
    names = name_uses(statement).writes | imported_names(statement)
    finder = _AsNames()
    walk(statement, finder)
    names |= finder.names
    if isinstance(statement, cst.SimpleStatementLine):
        for small in statement.body:
            if isinstance(small, cst.ImportFrom):
                names |= parsed.star_imports.get(small, frozenset())
    return names


class _AsNames(cst.CSTVisitor):
    """`with open(p) as f`, `except E as f`: names `name_uses` does not read."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_AsName(self, node: cst.AsName) -> None:
        self.names |= target_names(node.name)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def global_names(code: cst.CSTNode) -> frozenset[str]:
    """The names a function in `code` declares `global`, which it may bind again."""
    finder = _Globals()
    walk(code, finder)
    return frozenset(finder.names)


class _Globals(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Global(self, node: cst.Global) -> None:
        self.names |= {identifier(item.name.value) for item in node.names}
