"""Small facts about libcst nodes that several passes ask: code, names, docstrings.

`code(node)` renders a node as source; `dotted(node)` reads `a.b.c`;
`comprehension_targets(clauses)` lists a comprehension's loop targets;
`is_docstring(statement)` and `without_docstring(body)`; `yields` and
`awaits` say whether code suspends the function it is in, without looking
into the functions nested inside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from kilnc.walk import walk

_RENDERER = cst.Module(body=[])


def code(node: cst.CSTNode) -> str:
    return _RENDERER.code_for_node(node)


def chain_root(node: cst.BaseExpression) -> cst.BaseExpression:
    """Where a chain of attributes and items starts: `table` of `table[k].items`."""
    while isinstance(node, cst.Attribute | cst.Subscript):
        node = node.value
    return node


def dotted(node: cst.BaseExpression) -> str | None:
    """`a.b.c` as a string, or None when the expression is not a dotted name."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = dotted(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def attached_comments(
    statement: cst.SimpleStatementLine | cst.BaseCompoundStatement,
) -> tuple[cst.EmptyLine, ...]:
    """The comment lines right above a statement, with no blank line between.

    Those say something about the statement, and go where it goes; a comment
    further up belongs to what the statement moved away from.
    """
    lines = list(statement.leading_lines)
    attached: list[cst.EmptyLine] = []
    while lines and lines[-1].comment is not None:
        attached.insert(0, lines.pop())
    return tuple(attached)


def is_docstring(statement: cst.CSTNode) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(
            statement.body[0].value, cst.SimpleString | cst.ConcatenatedString
        )
    )


def without_docstring(body: Sequence[cst.BaseStatement]) -> Sequence[cst.BaseStatement]:
    return body[1:] if body and is_docstring(body[0]) else body


def yields(node: cst.CSTNode) -> bool:
    """Whether the code holds a `yield` of its own function."""
    finder = _Suspends(awaits=False)
    walk(node, finder)
    return finder.found


def awaits(node: cst.CSTNode) -> bool:
    """Whether the code awaits: an `await`, or an `async for` comprehension."""
    finder = _Suspends(awaits=True)
    walk(node, finder)
    return finder.found


class _Suspends(cst.CSTVisitor):
    def __init__(self, *, awaits: bool) -> None:
        self.awaits = awaits
        self.found = False

    def visit_Yield(self, node: cst.Yield) -> bool:
        self.found = self.found or not self.awaits
        return True

    def visit_Await(self, node: cst.Await) -> bool:
        self.found = self.found or self.awaits
        return True

    def visit_CompFor(self, node: cst.CompFor) -> bool:
        self.found = self.found or (self.awaits and node.asynchronous is not None)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # its own suspensions

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


def returned_values(function: cst.FunctionDef) -> list[cst.BaseExpression]:
    """What the function's own `return` statements return (`None` for a bare one)."""
    finder = _Returns()
    walk(function.body, finder)
    return finder.values


class _Returns(cst.CSTVisitor):
    def __init__(self) -> None:
        self.values: list[cst.BaseExpression] = []

    def visit_Return(self, node: cst.Return) -> None:
        self.values.append(node.value or cst.Name("None"))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # its own returns

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


def comprehension_targets(clauses: cst.CompFor) -> list[cst.BaseAssignTargetExpression]:
    """The targets of a comprehension's `for` clauses, the outermost first.

    `[f(k, v) for k, v in pairs for w in v]` has the targets `k, v` and `w`.
    """
    targets: list[cst.BaseAssignTargetExpression] = []
    clause: cst.CompFor | None = clauses
    while clause is not None:
        targets.append(clause.target)
        clause = clause.inner_for_in
    return targets


def calls_made(node: cst.CSTNode) -> list[cst.Call]:
    """The calls evaluating `node` makes: not those of a lambda it defines,
    which run when the lambda is called."""
    calls = _Calls()
    walk(node, calls)
    return calls.found


class _Calls(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.found.append(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False
