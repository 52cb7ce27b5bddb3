"""keep_statements: which module-level statements the kept code can observe.

Example input (the roots: the flow `quote`)::

    import logging, random
    from kiln import flow, node
    PRICES = {}
    PRICES["apple"] = 3              # changes PRICES, which `price` reads
    UNUSED = []
    UNUSED.append(1)                 # touches only UNUSED, which nothing kept reads
    random.seed(1234)                # reaches an import: state a node may see
    logging.basicConfig(level=10)    # the same, though no node names `logging`

    @node
    def price(item: str) -> float: return PRICES[item] + random.random()

    @flow
    def quote(item: str) -> float: return price(item)

    if __name__ == "__main__":
        print(quote("apple"))

Output: every statement but `UNUSED = []`, `UNUSED.append(1)`, `from kiln
import ...` and the `__main__` block, which a module run by `import` never
runs.

A statement is a *definition* when it runs for the names it binds (`def`,
`class`, an import, an assignment to plain names, an `if` or `try` holding
only those): it is kept when something kept reads a name it binds. Any other
statement is an *effect*: a call, a store into an object, `+=`, `del x[k]`,
a loop. It is kept when what it reaches (the names it uses, and through them
the module-level definitions they name) holds anything the kept code may see:
a name something kept reads, an import (module state: seeding, logging,
registries), or a name of unknown origin. An effect that reaches only
module-level names nothing kept uses is dropped. Builtins and the flows
themselves count for nothing: a flow is replaced by its compiled instance,
and code that uses it at import is `shake`'s error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.names import BUILTINS, identifier, imported_names

STAR = "*"  # what a star import uses: names of unknown origin, never a local name


@final
@dataclass(frozen=True, slots=True)
class Facts:
    """What one module-level statement binds and uses."""

    binds: frozenset[str]
    imports: frozenset[str]  # the names it binds by import
    uses: frozenset[str]  # the names its code uses; kept with it
    reaches: frozenset[str]  # the same, less strings that may name a type
    # The names used by code that runs when the statement does (not inside
    # the functions it defines), each with its first occurrence.
    at_import: tuple[tuple[str, cst.Name], ...]
    effect: bool
    main_guard: bool  # `if __name__ == "__main__":`, which `import` never runs


def keep_statements(
    facts: Sequence[Facts], roots: Iterable[str], flows: frozenset[str]
) -> frozenset[int]:
    """The indices of the statements kept for `roots`, the names the output needs."""
    by_name: dict[str, list[int]] = {}
    for index, fact in enumerate(facts):
        for name in fact.binds:
            by_name.setdefault(name, []).append(index)
    imported = frozenset().union(*(f.imports for f in facts))
    local = frozenset().union(*(f.binds - f.imports for f in facts))
    needed: set[str] = set()

    def need(names: Iterable[str]) -> None:
        frontier = list(names)
        while frontier:
            name = frontier.pop()
            if name not in needed:
                needed.add(name)
                for index in by_name.get(name, ()):
                    frontier.extend(facts[index].uses - needed)

    def observable(start: Iterable[str]) -> bool:
        seen: set[str] = set()
        frontier = list(start)
        while frontier:
            name = frontier.pop()
            if (
                name in seen
                or name in flows
                or (name in BUILTINS and name not in local)
            ):
                continue
            seen.add(name)
            if name in needed or name in imported or name not in local:
                return True
            for index in by_name[name]:
                frontier.extend(facts[index].reaches)
        return False

    need(roots)
    effects: set[int] = set()
    changed = True
    while changed:  # each kept effect may make the code it reaches needed
        changed = False
        for index, fact in enumerate(facts):
            if not fact.effect or fact.main_guard or index in effects:
                continue
            if observable(fact.reaches - (fact.binds - needed)):
                effects.add(index)
                need(fact.uses)
                changed = True
    return frozenset(
        index
        for index, fact in enumerate(facts)
        if not fact.main_guard and (index in effects or fact.binds & needed)
    )


def statement_facts(
    statement: cst.BaseStatement, binds: set[str], uses: set[str], reaches: set[str]
) -> Facts:
    """The facts of a statement that binds `binds` and whose code uses `uses`."""
    if _is_main_guard(statement):
        nothing: frozenset[str] = frozenset()
        return Facts(nothing, nothing, nothing, nothing, (), True, True)
    at_import = _AtImport()
    statement.visit(at_import)
    if _star_import(statement):
        # It binds names no one can list: keep it, as an import of unknown names.
        reaches = {*reaches, STAR}
    targets = _local_targets(statement)
    return Facts(
        frozenset(binds),
        frozenset(imported_names(statement)),
        frozenset(uses - targets),
        frozenset(reaches - targets),
        tuple(at_import.first.items()),
        not _is_definition(statement),
        False,
    )


def _star_import(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and any(
        isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar)
        for small in statement.body
    )


def _is_definition(statement: cst.BaseStatement) -> bool:
    """Whether a statement runs for the names it binds, and nothing else."""
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return True
    if isinstance(statement, cst.SimpleStatementLine):
        return all(_binds_only(small) for small in statement.body)
    if isinstance(statement, cst.If):
        # `if TYPE_CHECKING:`, `if sys.version_info >= ...:` around imports
        branches: list[cst.BaseSuite] = [statement.body]
        orelse = statement.orelse
        while orelse is not None:
            branches.append(orelse.body)
            orelse = orelse.orelse if isinstance(orelse, cst.If) else None
        return all(_block_binds_only(branch) for branch in branches)
    if isinstance(statement, cst.Try):  # `try: import x  except ImportError: ...`
        suites = [
            statement.body,
            *(h.body for h in statement.handlers),
            *(s.body for s in (statement.orelse, statement.finalbody) if s),
        ]
        return all(_block_binds_only(suite) for suite in suites)
    return False


def _block_binds_only(suite: cst.BaseSuite) -> bool:
    if isinstance(suite, cst.SimpleStatementSuite):
        return all(_binds_only(small) for small in suite.body)
    assert isinstance(suite, cst.IndentedBlock)
    return all(_is_definition(statement) for statement in suite.body)


def _binds_only(small: cst.BaseSmallStatement) -> bool:
    if isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar):
        return False  # an effect that reaches names of unknown origin
    if isinstance(small, cst.Import | cst.ImportFrom | cst.Pass):
        return True
    if isinstance(small, cst.Assign):
        return all(_plain_target(t.target) for t in small.targets)
    if isinstance(small, cst.AnnAssign):
        return _plain_target(small.target)
    if isinstance(small, cst.Del):
        return _plain_target(small.target)
    if isinstance(small, cst.Expr):  # a docstring or `...`: no effect
        return isinstance(
            small.value,
            cst.SimpleString | cst.ConcatenatedString | cst.Ellipsis | cst.Integer,
        )
    return False


def _plain_target(target: cst.BaseExpression) -> bool:
    if isinstance(target, cst.Name):
        return True
    if isinstance(target, cst.Tuple | cst.List):
        return all(_plain_target(element.value) for element in target.elements)
    if isinstance(target, cst.StarredElement):
        return _plain_target(target.value)
    return False


def _is_main_guard(statement: cst.BaseStatement) -> bool:
    if not isinstance(statement, cst.If) or statement.orelse is not None:
        return False
    test = statement.test
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    target = test.comparisons[0]
    if not isinstance(target.operator, cst.Equal):
        return False
    sides = {_main_guard_side(test.left), _main_guard_side(target.comparator)}
    return sides == {"name", "main"}


def _main_guard_side(node: cst.BaseExpression) -> str | None:
    if isinstance(node, cst.Name) and node.value == "__name__":
        return "name"
    if isinstance(node, cst.SimpleString) and node.evaluated_value == "__main__":
        return "main"
    return None


def _local_targets(statement: cst.BaseStatement) -> set[str]:
    """Loop, `with` and `except` targets: names a statement binds before it uses them."""
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return set()
    finder = _LocalTargets()
    statement.visit(finder)
    return finder.names


class _LocalTargets(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def _add(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.names.add(identifier(target.value))
        elif isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._add(element.value)
        elif isinstance(target, cst.StarredElement):
            self._add(target.value)

    def visit_For(self, node: cst.For) -> None:
        self._add(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._add(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        if not isinstance(node.name, cst.Name):
            self._add(node.name)
        else:
            self.names.add(identifier(node.name.value))

    def visit_Import(self, node: cst.Import) -> bool:
        return False  # `import a as b` binds a module name, not a local target

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


class _AtImport(cst.CSTVisitor):
    """The names used by code that runs when its statement does, first use of each.

    A function's body runs when it is called; its decorators and defaults run
    when it is defined. A class body runs when it is defined. Annotations run
    too, but only to be kept for introspection: they do not count.
    """

    def __init__(self) -> None:
        self.first: dict[str, cst.Name] = {}

    def visit_Name(self, node: cst.Name) -> None:
        self.first.setdefault(identifier(node.value), node)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        for decorator in node.decorators:
            decorator.visit(self)
        node.params.visit(self)
        if node.returns is not None:
            node.returns.visit(self)
        return False

    def visit_Param(self, node: cst.Param) -> bool:
        for part in (node.annotation, node.default):
            if part is not None:
                part.visit(self)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        node.params.visit(self)
        return False

    def visit_Annotation(self, node: cst.Annotation) -> bool:
        return False  # evaluated, but kept for introspection only

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False
