"""shake_module: keep the module-level code the flows need, rewritten to stand alone.

Example input::

    from kiln import Memory, flow, node
    from .util import clean
    import json
    DEBUG = True

    @node
    def load(path: str) -> str: return clean(open(path).read())

    @flow
    def run(path: str) -> str: return load(path)

Output: `from kiln import Memory` is dropped (nothing kept uses it), `from
pipelines.util import clean` (relative import made absolute), `load` without
its `@node`, and `run` marked as the place where its compiled class goes;
`json` and `DEBUG` are dropped because nothing reachable from a flow uses them.
"""

from __future__ import annotations

import ast
import hashlib
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.collect import FLOW_DECORATORS, NODE_DECORATORS
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.names import identifier, name_uses
from kilnc.parse import ParsedModule
from kilnc.resolve import ModuleLocation, absolute_module
from kilnc.source import Span
from kilnc.syntax import dotted, is_docstring

KILN_DECORATORS = NODE_DECORATORS | FLOW_DECORATORS


@final
@dataclass(frozen=True, slots=True)
class Shaken:
    prelude: tuple[cst.CSTNode, ...]  # the docstring and `from __future__` imports
    body: tuple[
        cst.CSTNode | str, ...
    ]  # kept statements; a str is the identifier of a flow
    spans: tuple[Span, ...]  # where each item of `body` is in the source


def shake_module(
    parsed: ParsedModule, location: ModuleLocation, flows: Sequence[str]
) -> tuple[Shaken, list[Diagnostic]]:
    module = parsed.module
    prelude: list[cst.CSTNode] = []
    statements: list[cst.BaseStatement] = []
    for index, line in enumerate(module.body):
        if (index == 0 and is_docstring(line)) or _is_future(line):
            prelude.append(line)
        else:
            statements.append(line)
    binds = [_bound(parsed, s) for s in statements]
    flow_set = set(flows)
    needed = _needed(parsed, statements, binds, flow_set)
    diagnostics: list[Diagnostic] = []
    body: list[cst.CSTNode | str] = []
    spans: list[Span] = []
    for statement, bound in zip(statements, binds, strict=True):
        if isinstance(statement, cst.FunctionDef) and statement.name.value in flow_set:
            body.append(statement.name.value)
            spans.append(parsed.span(statement))
        elif bound & needed:
            rewritten = _rewrite(parsed, location, statement, needed, diagnostics)
            if rewritten is not None:
                body.append(rewritten)
                spans.append(parsed.span(statement))
    return Shaken(tuple(prelude), tuple(body), tuple(spans)), diagnostics


def fingerprint(parsed: ParsedModule, function: str) -> str:
    """A hash of a node's definition and of the module-level code it uses.

    The ledger keys a cached node's results with it, so editing the node, or a
    helper or constant it reads, invalidates exactly that node's entries. The
    code is hashed as Python sees it (`ast.dump`): comments, layout and kiln's
    own decorator options leave it unchanged.
    """
    statements = [line for line in parsed.module.body if not _is_future(line)]
    binds = [_bound(parsed, s) for s in statements]
    needed = _needed(parsed, statements, binds, {function})
    digest = hashlib.sha256()
    for statement, bound in zip(statements, binds, strict=True):
        if bound & needed:
            text = parsed.module.code_for_node(
                _without_kiln_decorators(parsed, statement)
            )
            digest.update(ast.dump(ast.parse(textwrap.dedent(text))).encode())
    return digest.hexdigest()


def _needed(
    parsed: ParsedModule,
    statements: Sequence[cst.BaseStatement],
    binds: Sequence[set[str]],
    roots: set[str],
) -> set[str]:
    """Names reachable from `roots` through module-level definitions."""
    reads = [_reads(parsed, s) for s in statements]
    by_name: dict[str, list[int]] = {}
    for index, bound in enumerate(binds):
        for name in bound:
            by_name.setdefault(name, []).append(index)
    needed: set[str] = set()
    frontier = [identifier(name) for name in roots]
    while frontier:
        name = frontier.pop()
        if name in needed:
            continue
        needed.add(name)
        for index in by_name.get(name, ()):
            frontier.extend(reads[index] - needed)
    return needed


def _reads(parsed: ParsedModule, statement: cst.BaseStatement) -> set[str]:
    if isinstance(statement, cst.SimpleStatementLine):
        # An import reads no module-level name: keeping `Memory` must not keep `node`.
        return set().union(
            *(
                _Reads.of(s)
                for s in statement.body
                if not isinstance(s, cst.Import | cst.ImportFrom)
            )
        )
    reads = _Reads.of(_without_kiln_decorators(parsed, statement))
    if isinstance(statement, cst.FunctionDef):
        # retry_on and fallback name things the generated code calls directly.
        for decorator in statement.decorators:
            call = decorator.decorator
            if _is_kiln(parsed, decorator) and isinstance(call, cst.Call):
                for arg in call.args:
                    if arg.keyword is not None and arg.keyword.value in (
                        "retry_on",
                        "fallback",
                    ):
                        reads |= _Reads.of(arg.value)
    return reads


class _Reads(cst.CSTVisitor):
    """Every name a statement mentions, including in nested function bodies and annotations."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    @staticmethod
    def of(node: cst.CSTNode) -> set[str]:
        reads = _Reads()
        node.visit(reads)
        return reads.names

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(identifier(node.value))

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        # A string annotation (`-> "Page"`) names what it refers to.
        value = node.evaluated_value
        if isinstance(value, str) and value.isidentifier():
            self.names.add(identifier(value))


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
                names |= {identifier(_import_local(alias)) for alias in small.names}
            elif isinstance(small, cst.Import | cst.ImportFrom):
                pass  # a star import kiln could not resolve: binds it knows not what
            else:
                names |= name_uses(small).writes
        return names
    return name_uses(
        statement
    ).writes  # if/try/for/with at module level: what they assign


def _rewrite(
    parsed: ParsedModule,
    location: ModuleLocation,
    statement: cst.BaseStatement,
    needed: set[str],
    diagnostics: list[Diagnostic],
) -> cst.CSTNode | None:
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return _without_kiln_decorators(parsed, statement)
    if not isinstance(statement, cst.SimpleStatementLine):
        return statement
    kept: list[cst.BaseSmallStatement] = []
    for small in statement.body:
        if isinstance(small, cst.Import | cst.ImportFrom):
            imported = _import(parsed, location, small, needed, diagnostics)
            if imported is not None:
                kept.append(imported)
        else:
            kept.append(small)
    if not kept:
        return None
    last = kept[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
    return statement.with_changes(body=[*kept[:-1], last], leading_lines=())


def _import(
    parsed: ParsedModule,
    location: ModuleLocation,
    node: cst.Import | cst.ImportFrom,
    needed: set[str],
    diagnostics: list[Diagnostic],
) -> cst.BaseSmallStatement | None:
    if isinstance(node.names, cst.ImportStar):
        # Kept as written (made absolute): the compiled module binds what the
        # source binds, when kept code uses any of it.
        aliases: Sequence[cst.ImportAlias] | cst.ImportStar = node.names
    else:
        aliases = [a for a in node.names if identifier(_import_local(a)) in needed]
        if not aliases:
            return None
        aliases[-1] = aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    if isinstance(node, cst.Import):
        assert not isinstance(aliases, cst.ImportStar)
        return node.with_changes(names=aliases)
    if not node.relative:
        return node.with_changes(names=aliases, lpar=None, rpar=None)
    base = _dotted(node.module) if node.module is not None else ""
    absolute = absolute_module(location, base, len(node.relative))
    if absolute is None:
        diagnostics.append(
            error(
                parsed.span(node),
                Code.UNRESOLVED_IMPORT,
                "this relative import reaches above the top-level package",
                "add __init__.py files up to the package root, or import by absolute name",
            )
        )
        return None
    return node.with_changes(
        module=cst.parse_expression(absolute),
        relative=(),
        names=aliases,
        lpar=None,
        rpar=None,
    )


def _without_kiln_decorators(
    parsed: ParsedModule, statement: cst.CSTNodeT
) -> cst.CSTNodeT:
    if not isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return statement
    decorators = [d for d in statement.decorators if not _is_kiln(parsed, d)]
    if len(decorators) == len(statement.decorators):
        return statement
    stripped = statement.with_changes(decorators=decorators, leading_lines=())
    assert isinstance(stripped, type(statement))
    return stripped


def _is_kiln(parsed: ParsedModule, decorator: cst.Decorator) -> bool:
    expression = decorator.decorator
    target = expression.func if isinstance(expression, cst.Call) else expression
    return bool(parsed.qualified_names(target) & KILN_DECORATORS)


def _import_local(alias: cst.ImportAlias) -> str:
    if alias.asname is not None:
        name = alias.asname.name
        assert isinstance(name, cst.Name)
        return name.value
    return _dotted(alias.name).split(".")[0]


def _is_future(statement: cst.CSTNode) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    return all(
        isinstance(small, cst.ImportFrom)
        and isinstance(small.module, cst.Name)
        and small.module.value == "__future__"
        for small in statement.body
    )


def _dotted(node: cst.BaseExpression) -> str:
    name = dotted(node)
    assert name is not None, "an import names a module or an attribute"
    return name
