"""The names import statements bind, by local name: what `import x` and `from m import y` mean.

Example input: `import app.store as s` and `from .nodes import fetch as get`
in module `app.flows`. Output: `s` is the module `app.store` (ImportedName
with no attribute), `get` is `fetch` of `app.nodes`. The module's top level
(`collect`) and a function's own body (a node that imports in its body,
read by `effects`) both ask.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import libcst as cst

from kilnc.front import ImportedName, ModuleDefs, ParsedModule
from kilnc.names import identifier
from kilnc.resolve import ModuleLocation, absolute_module
from kilnc.syntax import dotted


def imports_in(
    lines: Iterable[cst.CSTNode], parsed: ParsedModule, location: ModuleLocation
) -> dict[str, ImportedName]:
    """The names the import statements among `lines` bind, by local name: the
    module's top level, or a function's body (`import app.store as s` in a node)."""
    table: dict[str, ImportedName] = {}
    for line in lines:
        if not isinstance(line, cst.SimpleStatementLine):
            continue
        for small in line.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    dotted_name = _name(alias.name)
                    if alias.asname is not None:
                        table[identifier(_as_name(alias))] = ImportedName(
                            dotted_name, None
                        )
                    else:
                        head = dotted_name.split(".")[0]
                        table[identifier(head)] = ImportedName(head, None)
            elif isinstance(small, cst.ImportFrom) and isinstance(
                small.names, cst.ImportStar
            ):
                # What a resolved star import binds (resolve_star_imports).
                for name in sorted(parsed.star_imports.get(small, ())):
                    table[name] = ImportedName(parsed.stars[name].module, name)
            elif isinstance(small, cst.ImportFrom) and not isinstance(
                small.names, cst.ImportStar
            ):
                base = _name(small.module) if small.module is not None else ""
                module = absolute_module(location, base, len(small.relative))
                if module is None:
                    continue
                for alias in small.names:
                    attribute = _name(alias.name)
                    local = _as_name(alias) if alias.asname is not None else attribute
                    table[identifier(local)] = ImportedName(module, attribute)
    return table


def _as_name(alias: cst.ImportAlias) -> str:
    assert alias.asname is not None
    name = alias.asname.name
    assert isinstance(name, cst.Name)
    return name.value


def _name(node: cst.BaseExpression) -> str:
    name = dotted(node)
    assert name is not None, "an import names a module or an attribute"
    return name


def with_body_imports(
    defs: ModuleDefs, roots: tuple[cst.CSTNode, ...]
) -> tuple[ModuleDefs, frozenset[str]]:
    """The module's definitions as a body sees them, its own imports among the
    module's, and the names those bind."""
    found = imports_in(import_lines(roots), defs.parsed, defs.location)
    if not found:
        return defs, frozenset()
    return replace(defs, imports={**defs.imports, **found}), frozenset(found)


def import_lines(roots: tuple[cst.CSTNode, ...]) -> list[cst.SimpleStatementLine]:
    """The lines of a body that import, nested blocks included: statements only,
    never into an expression (a body is read once per statement of a flow)."""
    found: list[cst.SimpleStatementLine] = []
    pending = list(roots)
    while pending:
        node = pending.pop()
        if isinstance(node, cst.SimpleStatementLine):
            if any(isinstance(s, cst.Import | cst.ImportFrom) for s in node.body):
                found.append(node)
        elif not isinstance(node, cst.FunctionDef | cst.ClassDef | cst.BaseExpression):
            pending += reversed(node.children)  # a nested def's imports are its own
    return found
