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
An import stays for what it loads, too: a module of the project's or of a
library's runs code as it loads (`from . import plugins`), and a submodule
becomes an attribute of its package (loads.py). When importing the source
module would run code in a package's `__init__.py` first (loads.py's
`package_first`), the output imports that package first, as `_kiln_package`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TypeVar

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.facts import Facts, is_future, module_facts, without_kiln_decorators
from kilnc.front import ParsedModule
from kilnc.loads import Form, Load, ModuleImports, import_runs_code, package_first
from kilnc.names import identifier
from kilnc.plan import STANDALONE, Links, Shaken
from kilnc.reach import keep_statements
from kilnc.resolve import ModuleLocation, absolute_module, unresolved_relative
from kilnc.source import Span
from kilnc.syntax import attached_comments, dotted, is_docstring


def shake_module(
    parsed: ParsedModule,
    location: ModuleLocation,
    flows: Mapping[str, cst.FunctionDef],
    links: Links = STANDALONE,
    annotated: frozenset[str] = frozenset(),
    load: Load = lambda name: None,
) -> tuple[Shaken, list[Diagnostic]]:
    """`flows` maps each flow's identifier to its definition in `parsed`; `links` says
    which names other compiled modules import from this one (kept), and which
    modules this one imports compiled (packages.py); `annotated`, the names the
    compiled flows write in annotations of their own (kept too); `load`, the
    project's modules by name, read for what importing them runs."""
    module = parsed.module
    prelude: list[cst.CSTNode] = []
    statements: list[cst.BaseStatement] = []
    for index, line in enumerate(module.body):
        if (index == 0 and is_docstring(line)) or is_future(line):
            prelude.append(line)
        else:
            statements.append(line)
    facts = [module_facts(parsed, s) for s in statements]
    flow_names = frozenset(identifier(name) for name in flows)
    roots = (
        flow_names
        | (
            frozenset().union(*(fact.binds for fact in facts))
            if links.exports is None
            else {identifier(name) for name in links.exports}
        )
        | (annotated & parsed.global_names)
    )
    runs = functools.cache(
        functools.partial(import_runs_code, root=location.root, load=load)
    )
    imports = ModuleImports(statements, location, links, runs)
    kept = keep_statements(facts, roots, flow_names, imports.loading())
    aliases = imports.kept(kept, _needed_names(facts, kept, roots))
    kept |= imports.holding(aliases)
    definitions = {id(definition) for definition in flows.values()}
    diagnostics: list[Diagnostic] = []
    body: list[cst.CSTNode | str] = []
    spans: list[Span] = []
    package = package_first(location, links.compiled, runs)
    if package is not None:
        body.append(_package_import(package))
        spans.append(Span.at(parsed.source.path, 1))
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
                parsed, location, statement, aliases, links, diagnostics
            )
            if rewritten is not None:
                body.append(rewritten)
                spans.append(parsed.span(statement))
    return Shaken(tuple(prelude), tuple(body), tuple(spans)), diagnostics


def _needed_names(
    facts: Sequence[Facts], kept: frozenset[int], roots: frozenset[str]
) -> set[str]:
    """The names the kept statements use: the imports to keep of a kept import line."""
    return set(roots).union(*(facts[index].uses for index in kept))


def _package_import(package: str) -> cst.SimpleStatementLine:
    """`import app as _kiln_package`: the source package's `__init__.py` run first."""
    line = cst.parse_statement(
        f"import {package} as _kiln_package  # runs its __init__.py first, as"
        " importing the source module does\n"
    )
    assert isinstance(line, cst.SimpleStatementLine)
    return line


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


def _rewrite(
    parsed: ParsedModule,
    location: ModuleLocation,
    statement: cst.BaseStatement,
    aliases: Mapping[int, Form],
    links: Links,
    diagnostics: list[Diagnostic],
) -> cst.CSTNode | None:
    """The statement as the output holds it: relative imports made absolute, kiln's
    decorators dropped, of an import line only the names kept (`aliases`), and
    imports of modules compiled with this one made imports of the compiled modules,
    in a function's body or a block as at the top level."""
    if not isinstance(statement, cst.SimpleStatementLine):
        stripped = without_kiln_decorators(parsed, statement)
        if stripped is not statement:  # a node: its comments stay, its decorators go
            assert isinstance(statement, cst.FunctionDef | cst.ClassDef)
            stripped = stripped.with_changes(leading_lines=attached_comments(statement))
        absolute = stripped.visit(_Absolute(parsed, location, links, diagnostics))
        assert isinstance(
            absolute, cst.BaseStatement
        ), "imports are rewritten, never removed"
        return absolute
    kept: list[cst.BaseSmallStatement] = []
    for small in statement.body:
        if not isinstance(small, cst.Import | cst.ImportFrom):
            kept.append(small)
            continue
        for form in Form:
            names = {key for key, made in aliases.items() if made is form}
            imported = _import(parsed, location, small, names, diagnostics, form)
            if imported is None:
                continue
            if form is Form.LOADED:  # what it loads is all it is kept for
                assert isinstance(imported, cst.Import), "only `import a.b` loads so"
                loaded = cst.AsName(cst.Name("_kiln_loaded"))
                named = [a.with_changes(asname=loaded) for a in imported.names]
                imported = imported.with_changes(names=named)
            kept += [imported] if form is Form.SOURCE else _compiled(imported, links)
    if not kept:
        return None
    last = kept[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
    return statement.with_changes(
        body=[*kept[:-1], last], leading_lines=attached_comments(statement)
    )


def _import(
    parsed: ParsedModule,
    location: ModuleLocation,
    node: cst.Import | cst.ImportFrom,
    kept: set[int],
    diagnostics: list[Diagnostic],
    form: Form,
) -> cst.Import | cst.ImportFrom | None:
    """The import with the names `kept` (by id), absolute; a star import whole."""
    if isinstance(node.names, cst.ImportStar):
        assert isinstance(node, cst.ImportFrom)
        if form is not Form.LINKED:
            return None
        return _absolute(parsed, location, node, diagnostics)
    aliases = _last([a for a in node.names if id(a) in kept])
    if not aliases:
        return None
    if isinstance(node, cst.Import):
        return node.with_changes(names=aliases)
    absolute = _absolute(parsed, location, node, diagnostics)
    if absolute is None:
        return None
    return absolute.with_changes(names=aliases, lpar=None, rpar=None)


def _compiled(
    node: cst.Import | cst.ImportFrom, links: Links
) -> list[cst.Import | cst.ImportFrom]:
    """The import, of the compiled modules where it names modules compiled with this one.

    `from app.sub import inner` is `from build.app.sub import inner`; `from app
    import sub, util` (sub compiled, util not) is two imports; `import app.sub as
    sub` is `import build.app.sub as sub`. `import app.sub` binds `app`, which
    has no compiled counterpart to bind, and stays the source's: a flow called
    through it is no call kiln sees, and state or a class reached through it is
    KLN404 (copies.py). `from app import sub` where app/__init__.py
    binds `sub` to something else (`from .sub import sub`) takes that, not the
    module, and stays the source's too; so does `from app.steps import ingest`,
    where app/steps/__init__.py has a flow and ingest.py none (`Links.stays`).
    """
    compiled = links.compiled
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
    if isinstance(node.names, cst.ImportStar):
        if module in compiled:
            return [node.with_changes(module=cst.parse_expression(compiled[module]))]
        return [node]
    if module in compiled:  # but its submodules without output, the source's
        ours = [a for a in node.names if f"{module}.{_dotted(a.name)}" in links.stays]
        linked = cst.parse_expression(compiled[module])
        if not ours:
            return [node.with_changes(module=linked)]
        rest = [a for a in node.names if a not in ours]
        both: list[cst.Import | cst.ImportFrom] = (
            [node.with_changes(module=linked, names=_last(rest))] if rest else []
        )
        return [*both, node.with_changes(names=_last(ours))]
    submodules = [
        alias
        for alias in node.names
        if (whole := f"{module}.{_dotted(alias.name)}") in compiled
        and whole not in links.rebound
    ]
    if not submodules:
        return [node]
    rest = [a for a in node.names if a not in submodules]
    package = compiled[f"{module}.{_dotted(submodules[0].name)}"].rpartition(".")[0]
    split: list[cst.Import | cst.ImportFrom] = [
        node.with_changes(module=cst.parse_expression(package), names=_last(submodules))
    ]
    return [node.with_changes(names=_last(rest)), *split] if rest else split


def _last(aliases: Sequence[cst.ImportAlias]) -> list[cst.ImportAlias]:
    """The aliases on one line, with no comma after the last one.

    The source's layout of them is dropped with its parentheses: a name kept
    from ``from x import (\n    a,\n    b,\n)`` would keep its line break.
    """
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [
        alias.with_changes(
            comma=comma if index < len(aliases) - 1 else cst.MaybeSentinel.DEFAULT,
            asname=alias.asname and cst.AsName(alias.asname.name),
        )
        for index, alias in enumerate(aliases)
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
                unresolved_relative(location),
                "add __init__.py files up to the package root, or import by absolute name",
            )
        )
        return None
    return node.with_changes(module=cst.parse_expression(absolute), relative=())


_Line = TypeVar("_Line", cst.SimpleStatementLine, cst.SimpleStatementSuite)


class _Absolute(cst.CSTTransformer):
    """Every import inside a kept statement (a function's, a `try`'s) made absolute,
    and of the compiled module where it names one compiled with this one: a node
    that imports `OUTBOX` in its body (`from app.reports import OUTBOX`) reads the
    object the compiled `publish` appends to, as in the source, not the source's."""

    def __init__(
        self,
        parsed: ParsedModule,
        location: ModuleLocation,
        links: Links,
        diagnostics: list[Diagnostic],
    ) -> None:
        self.parsed = parsed
        self.location = location
        self.links = links
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

    def leave_SimpleStatementLine(
        self,
        original_node: cst.SimpleStatementLine,
        updated_node: cst.SimpleStatementLine,
    ) -> cst.SimpleStatementLine:
        return self._linked(updated_node)

    def leave_SimpleStatementSuite(
        self,
        original_node: cst.SimpleStatementSuite,
        updated_node: cst.SimpleStatementSuite,
    ) -> cst.SimpleStatementSuite:
        return self._linked(updated_node)

    def _linked(self, line: _Line) -> _Line:
        """The line with its imports of compiled modules made imports of their outputs."""
        body: list[cst.BaseSmallStatement] = []
        for small in line.body:
            if isinstance(small, cst.Import) or (
                isinstance(small, cst.ImportFrom) and not small.relative
            ):
                body += _compiled(small, self.links)
            else:
                body.append(small)
        if [id(small) for small in body] == [id(small) for small in line.body]:
            return line  # nothing compiled: the line as it was, its layout too
        last = body[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        return line.with_changes(body=[*body[:-1], last])


def _dotted(node: cst.BaseExpression) -> str:
    name = dotted(node)
    assert name is not None, "an import names a module or an attribute"
    return name
