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
Statements that change what the kept code reads (`PRICES["apple"] = 3`,
`random.seed(1)`) stay, in source order: `reach.py` decides which; code that
uses a flow at import is an error (KLN403), since the flow becomes a class.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import FLOW_DECORATORS, NODE_DECORATORS, ParsedModule
from kilnc.names import identifier, imported_names, name_uses
from kilnc.packages import STANDALONE, Links
from kilnc.reach import Facts, keep_statements, statement_facts
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
    parsed: ParsedModule,
    location: ModuleLocation,
    flows: Mapping[str, cst.FunctionDef],
    links: Links = STANDALONE,
) -> tuple[Shaken, list[Diagnostic]]:
    """`flows` maps each flow's identifier to its definition in `parsed`; `links` says
    which names other compiled modules import from this one (kept), and which
    modules this one imports compiled (packages.py)."""
    module = parsed.module
    prelude: list[cst.CSTNode] = []
    statements: list[cst.BaseStatement] = []
    for index, line in enumerate(module.body):
        if (index == 0 and is_docstring(line)) or _is_future(line):
            prelude.append(line)
        else:
            statements.append(line)
    facts = [_facts(parsed, s) for s in statements]
    flow_names = frozenset(identifier(name) for name in flows)
    roots = flow_names | (
        frozenset().union(*(fact.binds for fact in facts))
        if links.exports is None
        else {identifier(name) for name in links.exports}
    )
    kept = keep_statements(facts, roots, flow_names)
    needed = _needed_names(facts, kept, roots)
    definitions = {id(definition) for definition in flows.values()}
    diagnostics: list[Diagnostic] = []
    body: list[cst.CSTNode | str] = []
    spans: list[Span] = []
    for index, (statement, fact) in enumerate(zip(statements, facts, strict=True)):
        if id(statement) in definitions:
            assert isinstance(statement, cst.FunctionDef)
            body.append(statement.name.value)
            spans.append(parsed.span(statement))
            continue
        found = _flow_uses(parsed, statement, fact, index in kept, flow_names)
        diagnostics += found
        if index in kept and not found:
            rewritten = _rewrite(
                parsed, location, statement, needed, links, diagnostics
            )
            if rewritten is not None:
                body.append(rewritten)
                spans.append(parsed.span(statement))
    return Shaken(tuple(prelude), tuple(body), tuple(spans)), diagnostics


def reached(
    parsed: ParsedModule, roots: Collection[str] | None
) -> list[cst.BaseStatement]:
    """The module-level statements the names `roots` reach, kiln's decorators removed.

    All of them (but `from __future__` imports) when `roots` is None. They are
    what shaking would keep for those names, statements that change them
    included: what a cached node's fingerprint hashes (fingerprint.py).
    """
    statements = [line for line in parsed.module.body if not _is_future(line)]
    if roots is not None:
        facts = [_facts(parsed, s) for s in statements]
        wanted = {identifier(name) for name in roots}
        kept = keep_statements(facts, wanted, frozenset())
        statements = [s for index, s in enumerate(statements) if index in kept]
    return [_without_kiln_decorators(parsed, s) for s in statements]


def _facts(parsed: ParsedModule, statement: cst.BaseStatement) -> Facts:
    return statement_facts(
        statement,
        _bound(parsed, statement),
        _reads(parsed, statement),
        _reads(parsed, statement, strings=False),
    )


def _needed_names(
    facts: Sequence[Facts], kept: frozenset[int], roots: frozenset[str]
) -> set[str]:
    """The names the kept statements use: the imports to keep of a kept import line."""
    return set(roots).union(*(facts[index].uses for index in kept))


def _flow_uses(
    parsed: ParsedModule,
    statement: cst.BaseStatement,
    fact: Facts,
    kept: bool,
    flows: frozenset[str],
) -> list[Diagnostic]:
    """Module-level code that rebinds a flow, or uses one when the module is imported.

    The compiled module replaces each flow with an instance of its class, made
    where the flow is defined or below the nodes it calls: code that uses the
    function at import cannot run there as written. A definition nothing kept
    needs is dropped with its use; an effect runs, so it is an error even then.
    """
    if fact.main_guard:
        return []
    rebound = sorted(fact.binds & flows)
    if rebound:
        return [
            error(
                parsed.span(statement),
                Code.FLOW_AT_IMPORT,
                f"this statement rebinds flow '{rebound[0]}', which the compiled "
                "module defines as an instance of the flow's class",
                "give the flow and the value bound here different names",
            )
        ]
    if not (kept or fact.effect):
        return []
    for name, node in fact.at_import:
        if name in flows:
            return [
                error(
                    parsed.span(node),
                    Code.FLOW_AT_IMPORT,
                    f"module-level code uses flow '{name}' at import, where the "
                    "compiled module has an instance of the flow's class instead",
                    "use the flow inside a function, or under "
                    'if __name__ == "__main__": (kiln leaves that block out)',
                )
            ]
    return []


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
    reads = _Reads.of(_without_kiln_decorators(parsed, statement), strings)
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
                        reads |= _Reads.of(arg.value, strings)
    return reads


class _Reads(cst.CSTVisitor):
    """Every name a statement mentions, including in nested function bodies and annotations."""

    def __init__(self, strings: bool) -> None:
        self.names: set[str] = set()
        self.strings = strings

    @staticmethod
    def of(node: cst.CSTNode, strings: bool = True) -> set[str]:
        reads = _Reads(strings)
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
        if self.strings and isinstance(value, str) and value.isidentifier():
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
    # if/try/for/with at module level: what they assign and import
    return name_uses(statement).writes | imported_names(statement)


def _rewrite(
    parsed: ParsedModule,
    location: ModuleLocation,
    statement: cst.BaseStatement,
    needed: set[str],
    links: Links,
    diagnostics: list[Diagnostic],
) -> cst.CSTNode | None:
    """The statement as the output holds it: relative imports made absolute, kiln's
    decorators dropped, of an import line only the names something kept needs, and
    imports of modules compiled with this one made imports of the compiled modules."""
    if not isinstance(statement, cst.SimpleStatementLine):
        stripped = _without_kiln_decorators(parsed, statement)
        absolute = stripped.visit(_Absolute(parsed, location, diagnostics))
        assert isinstance(
            absolute, cst.BaseStatement
        ), "imports are rewritten, never removed"
        return absolute
    kept: list[cst.BaseSmallStatement] = []
    for small in statement.body:
        if isinstance(small, cst.Import | cst.ImportFrom):
            imported = _import(parsed, location, small, needed, diagnostics)
            if imported is not None:
                kept += _compiled(imported, links.compiled)
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
) -> cst.Import | cst.ImportFrom | None:
    if isinstance(node.names, cst.ImportStar):
        assert isinstance(node, cst.ImportFrom)
        return _absolute(parsed, location, node, diagnostics)
    aliases = [a for a in node.names if identifier(_import_local(a)) in needed]
    if not aliases:
        return None
    aliases[-1] = aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    if isinstance(node, cst.Import):
        assert not isinstance(aliases, cst.ImportStar)
        return node.with_changes(names=aliases)
    absolute = _absolute(parsed, location, node, diagnostics)
    if absolute is None:
        return None
    return absolute.with_changes(names=aliases, lpar=None, rpar=None)


def _compiled(
    node: cst.Import | cst.ImportFrom, compiled: Mapping[str, str]
) -> list[cst.Import | cst.ImportFrom]:
    """The import, of the compiled modules where it names modules compiled with this one.

    `from app.sub import inner` is `from build.app.sub import inner`; `from app
    import sub, util` (sub compiled, util not) is two imports; `import app.sub as
    sub` is `import build.app.sub as sub`. `import app.sub` binds `app`, which
    has no compiled counterpart to bind, and stays the source's: a flow called
    through it is no call kiln sees.
    """
    if not compiled:
        return [node]
    if isinstance(node, cst.Import):
        names = [
            (
                alias.with_changes(name=cst.parse_expression(compiled[name]))
                if alias.asname is not None
                and (name := _dotted(alias.name)) in compiled
                else alias
            )
            for alias in node.names
        ]
        return [node.with_changes(names=names)]
    assert node.module is not None, "absolute imports name their module"
    module = _dotted(node.module)
    if module in compiled:
        return [node.with_changes(module=cst.parse_expression(compiled[module]))]
    if isinstance(node.names, cst.ImportStar):
        return [node]
    submodules = [a for a in node.names if f"{module}.{_dotted(a.name)}" in compiled]
    if not submodules:
        return [node]
    rest = [a for a in node.names if a not in submodules]
    package = compiled[f"{module}.{_dotted(submodules[0].name)}"].rpartition(".")[0]
    split: list[cst.Import | cst.ImportFrom] = [
        node.with_changes(module=cst.parse_expression(package), names=_last(submodules))
    ]
    return [node.with_changes(names=_last(rest)), *split] if rest else split


def _last(aliases: Sequence[cst.ImportAlias]) -> list[cst.ImportAlias]:
    """The aliases with no comma after the last one."""
    return [
        *aliases[:-1],
        aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT),
    ]


def _absolute(
    parsed: ParsedModule,
    location: ModuleLocation,
    node: cst.ImportFrom,
    diagnostics: list[Diagnostic],
) -> cst.ImportFrom | None:
    """`from .util import clean` as `from pipelines.util import clean`: the output
    is written elsewhere, and imported as a top-level module."""
    if not node.relative:
        return node
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
    return node.with_changes(module=cst.parse_expression(absolute), relative=())


class _Absolute(cst.CSTTransformer):
    """Every relative import inside a kept statement (a function's, a `try`'s) made absolute."""

    def __init__(
        self,
        parsed: ParsedModule,
        location: ModuleLocation,
        diagnostics: list[Diagnostic],
    ) -> None:
        self.parsed = parsed
        self.location = location
        self.diagnostics = diagnostics

    def leave_ImportFrom(
        self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom
    ) -> cst.ImportFrom:
        absolute = _absolute(
            self.parsed, self.location, original_node, self.diagnostics
        )
        if absolute is None:
            return updated_node
        return updated_node.with_changes(
            module=absolute.module, relative=absolute.relative
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
