"""module_facts: what each module-level statement binds, uses and runs at import.

Example input: the statement ``PRICES["apple"] = 3`` of a module. Output:
`Facts` binding nothing, using ``PRICES``, an *effect* (a store into an
object, not a definition) that reaches ``PRICES``. ``@node def price(...)``
binds ``price`` and uses what its body, its annotations and its options
(`retry_on`, `fallback`) name, kiln's decorators aside: they are not in
the output. `reach.py` decides from these which statements are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.annotations import reads_types, type_names
from kilnc.front import KILN_DECORATORS, ParsedModule
from kilnc.import_effects import runs_code
from kilnc.names import identifier, import_local_name, imported_names, name_uses
from kilnc.reflective import reads_namespace
from kilnc.walk import walk

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
    # Its code reaches the module's names by a name it computes (`globals()[k]`,
    # reflective.py): any definition of the module may be the one it reads.
    reflects: bool = False


def statement_facts(
    statement: cst.BaseStatement,
    binds: set[str],
    uses: set[str],
    reaches: set[str],
    runs: bool = False,
    reflects: bool = False,
) -> Facts:
    """The facts of a statement that binds `binds` and whose code uses `uses`;
    `runs`: a definition that runs code which may change state (import_effects.py);
    `reflects`: code that reaches the module's names by computed names."""
    if _is_main_guard(statement):
        nothing: frozenset[str] = frozenset()
        return Facts(nothing, nothing, nothing, nothing, (), True, True)
    at_import = _AtImport()
    walk(statement, at_import)
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
        runs or not _is_definition(statement),
        False,
        reflects,
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
    walk(statement, finder)
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
        walk(node.value, self)
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        for decorator in node.decorators:
            walk(decorator, self)
        walk(node.params, self)
        if node.returns is not None:
            walk(node.returns, self)
        return False

    def visit_Param(self, node: cst.Param) -> bool:
        for part in (node.annotation, node.default):
            if part is not None:
                walk(part, self)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        walk(node.params, self)
        return False

    def visit_Annotation(self, node: cst.Annotation) -> bool:
        return False  # evaluated, but kept for introspection only

    def visit_Assign(self, node: cst.Assign) -> bool:
        walk(node.value, self)
        for target in node.targets:
            self._target(target.target)
        return False

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        # `answer: str` in a class body binds a field; it does not use `answer`.
        if node.value is not None:
            walk(node.value, self)
        self._target(node.target)
        return False

    def _target(self, target: cst.BaseExpression) -> None:
        """What an assignment target reads: nothing for a name it binds."""
        if isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._target(element.value)
        elif isinstance(target, cst.StarredElement):
            self._target(target.value)
        elif not isinstance(target, cst.Name):
            walk(target, self)  # `table[key] = ...` reads table and key

    def visit_Arg(self, node: cst.Arg) -> bool:
        walk(node.value, self)
        return False


def module_facts(parsed: ParsedModule, statement: cst.BaseStatement) -> Facts:
    return statement_facts(
        statement,
        _bound(parsed, statement),
        _reads(parsed, statement),
        _reads(parsed, statement, strings=False),
        runs_code(parsed, statement),
        reads_namespace(parsed, statement),
    )


def _reads(
    parsed: ParsedModule, statement: cst.BaseStatement, *, strings: bool = True
) -> set[str]:
    """The names a statement uses; with `strings`, also strings that may be annotations."""
    if isinstance(statement, cst.SimpleStatementLine):
        # An import reads no module-level name: keeping `Memory` must not keep `node`.
        return set().union(
            *(
                _Reads.of(s, strings)
                for s in statement.body
                if not isinstance(s, cst.Import | cst.ImportFrom)
            )
        )
    reads = _Reads.of(without_kiln_decorators(parsed, statement), strings)
    if isinstance(statement, cst.FunctionDef):
        # retry_on and fallback name things the generated code calls directly.
        for decorator in statement.decorators:
            call = decorator.decorator
            if is_kiln(parsed, decorator) and isinstance(call, cst.Call):
                for arg in call.args:
                    if arg.keyword is not None and arg.keyword.value in (
                        "retry_on",
                        "fallback",
                    ):
                        reads |= _Reads.of(arg.value, strings)
    return reads


class _Reads(cst.CSTVisitor):
    """Every name a statement mentions, including in nested function bodies and annotations.

    A string where typing reads a type (`reads_types`: an annotation, a
    subscript's element, ``cast("Shape", v)``, ...) uses every name it spells:
    ``"Optional[Shape]"`` keeps the imports of `Optional` and `Shape`, which
    the output's annotations, `get_type_hints` and mypy read. Any other string
    that is a bare name may name a type too, and uses it.
    """

    def __init__(self, strings: bool) -> None:
        self.names: set[str] = set()
        self.strings = strings
        self.typed = 0  # how many places typing reads a type the walk is inside

    @staticmethod
    def of(node: cst.CSTNode, strings: bool = True) -> set[str]:
        reads = _Reads(strings)
        walk(node, reads)
        return reads.names

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(identifier(node.value))

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False

    def _enter(self, node: cst.CSTNode) -> None:
        self.typed += reads_types(node)

    def _leave(self, original_node: cst.CSTNode) -> None:
        self.typed -= reads_types(original_node)

    visit_Annotation = visit_SubscriptElement = visit_Call = _enter
    visit_AnnAssign = visit_TypeAlias = _enter
    leave_Annotation = leave_SubscriptElement = leave_Call = _leave
    leave_AnnAssign = leave_TypeAlias = _leave

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if not self.strings:
            return
        value = node.evaluated_value
        if self.typed:
            self.names |= type_names(node)
        elif isinstance(value, str) and value.isidentifier():
            self.names.add(identifier(value))

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> bool:
        if self.strings and self.typed:
            self.names |= type_names(node)  # `"Optional" "[Shape]"` is one type
            return False
        return True


def _bound(parsed: ParsedModule, statement: cst.BaseStatement) -> set[str]:
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return {identifier(statement.name.value)}
    if isinstance(statement, cst.SimpleStatementLine):
        names: set[str] = set()
        for small in statement.body:
            if isinstance(small, cst.ImportFrom) and isinstance(
                small.names, cst.ImportStar
            ):
                names |= parsed.star_imports.get(small, frozenset())
            elif isinstance(small, cst.Import | cst.ImportFrom) and not isinstance(
                small.names, cst.ImportStar
            ):
                names |= {identifier(import_local_name(alias)) for alias in small.names}
            elif isinstance(small, cst.Import | cst.ImportFrom):
                pass  # a star import kiln could not resolve: binds it knows not what
            else:
                names |= name_uses(small).writes
        return names
    # if/try/for/with at module level: what they assign and import
    return name_uses(statement).writes | imported_names(statement)


def without_kiln_decorators(
    parsed: ParsedModule, statement: cst.CSTNodeT
) -> cst.CSTNodeT:
    if not isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return statement
    decorators = [d for d in statement.decorators if not is_kiln(parsed, d)]
    if len(decorators) == len(statement.decorators):
        return statement
    stripped = statement.with_changes(decorators=decorators, leading_lines=())
    assert isinstance(stripped, type(statement))
    return stripped


def is_kiln(parsed: ParsedModule, decorator: cst.Decorator) -> bool:
    expression = decorator.decorator
    target = expression.func if isinstance(expression, cst.Call) else expression
    return bool(parsed.qualified_names(target) & KILN_DECORATORS)


def is_future(statement: cst.CSTNode) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    return all(
        isinstance(small, cst.ImportFrom)
        and isinstance(small.module, cst.Name)
        and small.module.value == "__future__"
        for small in statement.body
    )
