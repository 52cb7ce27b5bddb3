"""What a generator's cleanup changes: the code that runs when its consumer stops.

Example input, a token stream that marks itself open::

    async def tokens(state: dict[str, bool]) -> AsyncIterator[str]:
        state["streaming"] = True
        try:
            for word in WORDS:
                yield word
        finally:
            state["streaming"] = False

Output: the store `state["streaming"] = False`. A flow that leaves an
`async for` over the stream early has the compiled flow close it there (README,
"A stream the flow stops reading is closed at once"), where plain Python leaves
an async generator to the event loop's finalizer, which runs the `finally` at
the flow's next suspension. A cleanup that only releases what the generator
holds (`await conn.close()`) is not found: no code of the flow can see when it
ran. One that stores into an item or an attribute, changes a container, or
prints is.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from kilnc.effect_ir import Change
from kilnc.front import ModuleDefs
from kilnc.mutability import MUTATING_METHODS, STORING_VERBS
from kilnc.syntax import code, yields
from kilnc.walk import walk

__all__ = ["cleanup_change"]


def cleanup_change(defs: ModuleDefs, function: cst.FunctionDef) -> Change | None:
    """The first change made by a `finally:` or an `except` clause of a `try`
    whose body yields: what runs when the consumer stops drawing early."""
    for clause in _cleanups(function):
        changes = _Changes()
        walk(clause, changes)
        if changes.found is not None:
            span = defs.parsed.span(changes.found)
            return Change(code(changes.found), span)
    return None


def _cleanups(function: cst.FunctionDef) -> Iterator[cst.CSTNode]:
    finder = _Trys()
    walk(function.body, finder)
    for statement in finder.found:
        if not yields(statement.body):
            continue
        yield from (handler.body for handler in statement.handlers)
        if statement.finalbody is not None:
            yield statement.finalbody.body


class _Trys(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.Try] = []

    def visit_Try(self, node: cst.Try) -> None:
        self.found.append(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # another function's, run when it is called

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


class _Changes(cst.CSTVisitor):
    """A store into an item or an attribute, a container's change, a `print`."""

    def __init__(self) -> None:
        self.found: cst.CSTNode | None = None

    def visit_Assign(self, node: cst.Assign) -> None:
        if any(_stores_into(target.target) for target in node.targets):
            self._found(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if _stores_into(node.target):
            self._found(node)

    def visit_Del(self, node: cst.Del) -> None:
        if _stores_into(node.target):
            self._found(node)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        changes = isinstance(func, cst.Attribute) and func.attr.value in _CHANGING
        if changes or (isinstance(func, cst.Name) and func.value == "print"):
            self._found(node)

    def _found(self, node: cst.CSTNode) -> None:
        if self.found is None:
            self.found = node


# Not a ContextVar's `reset`: the generator's own context, no code of the flow's.
_CHANGING = (MUTATING_METHODS | STORING_VERBS) - {"reset"}


def _stores_into(target: cst.BaseExpression) -> bool:
    if isinstance(target, cst.Tuple | cst.List):
        return any(_stores_into(element.value) for element in target.elements)
    return isinstance(target, cst.Attribute | cst.Subscript)
