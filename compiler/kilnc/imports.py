"""check_imports: the module's imports of the project, checked as Python would run them.

Example input: crawl/crawler.py, a module of package `crawl`, starting::

    from .nodes import fetch, parse

where crawl/nodes.py defines `fetch_page` and `parse`. Output: KLN402 at
`fetch`, "name 'fetch' is not defined in crawl/nodes.py", with the hint "did
you mean 'fetch_page'?": Python would refuse the import, and kiln, reading
the call `fetch(u)` as a call of a function it cannot see, would compile it
without the node's limit, retries or cache.

A relative import that climbs above the top-level package, or that is made in
a module in no package (no `__init__.py` beside it, so Python has no package
to start from), is KLN402 at the import too.

Only the imports at the module's top level are checked: one under an `if` or
a `try` may be guarded (`except ImportError:`), and one in a function runs
when the function does. A name is reported only when the module read
certainly binds none of that name: a module whose names depend on code kiln
does not run (a star import kiln cannot read, a module-level `__getattr__`,
`globals()`, `exec`, `sys.modules`...) is taken to bind any name, and so is a
dunder name, which a module object may have without binding it. Reading each
module this way is also what tells the pipeline that one does not parse.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Final

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import Located, ParsedModule
from kilnc.names import identifier, target_names
from kilnc.resolve import ModuleLocation, absolute_module, unresolved_relative
from kilnc.syntax import dotted
from kilnc.walk import walk

# Names through which a module binds names kiln cannot see: by code that runs.
DYNAMIC: Final = frozenset(
    {
        "__getattr__",  # PEP 562: asked for every name the module does not bind
        "__dict__",
        "__import__",
        "eval",
        "exec",
        "globals",
        "import_module",
        "locals",
        "modules",  # sys.modules[__name__]
        "vars",
    }
)


def check_imports(
    parsed: ParsedModule,
    location: ModuleLocation,
    read: Callable[[str], Located | None],
) -> list[Diagnostic]:
    """KLN402 at each top-level import of the project that Python would refuse;
    `read` gives the project's modules (None for one that is not the project's,
    or that does not parse, which the reader reports itself)."""
    found: list[Diagnostic] = []
    for statement in _top_level_imports(parsed.module):
        if isinstance(statement, cst.Import):
            for alias in statement.names:
                read(dotted(alias.name) or "")
            continue
        base = dotted(statement.module) if statement.module is not None else ""
        module = absolute_module(location, base or "", len(statement.relative))
        if module is None:
            found.append(_relative(parsed, location, statement))
            continue
        imported = read(module)
        if imported is None or isinstance(statement.names, cst.ImportStar):
            continue
        bound = _bound_names(imported)
        if bound is None:
            continue
        for alias in statement.names:
            name = identifier(dotted(alias.name) or "")
            if _dunder(name) or name in bound or _submodule(imported, name):
                continue
            found.append(_undefined(parsed, alias, name, imported, bound))
    return found


def _top_level_imports(module: cst.Module) -> Iterator[cst.Import | cst.ImportFrom]:
    for line in module.body:
        if isinstance(line, cst.SimpleStatementLine):
            for small in line.body:
                if isinstance(small, cst.Import | cst.ImportFrom):
                    yield small


def _relative(
    parsed: ParsedModule, location: ModuleLocation, statement: cst.ImportFrom
) -> Diagnostic:
    return error(
        parsed.span(statement),
        Code.UNRESOLVED_IMPORT,
        unresolved_relative(location),
        "add __init__.py files up to the package root, or import by absolute name",
    )


def _undefined(
    parsed: ParsedModule,
    alias: cst.ImportAlias,
    name: str,
    imported: Located,
    bound: frozenset[str],
) -> Diagnostic:
    path = imported.parsed.source.path
    close = difflib.get_close_matches(name, sorted(bound), n=1)
    return error(
        parsed.span(alias.name),
        Code.UNRESOLVED_IMPORT,
        f"name '{name}' is not defined in {path}",
        f"did you mean '{close[0]}'?" if close else f"define it in {path}",
    )


def _bound_names(imported: Located) -> frozenset[str] | None:
    """Every name the module may bind at its top level; None when that is any name."""
    module = imported.parsed
    if module.star_import:
        return None  # a star import kiln cannot read binds names it cannot know
    finder = _Binders()
    walk(module.module, finder)
    if finder.dynamic:
        return None
    return frozenset(identifier(n) for n in module.global_names) | finder.bound


def _dunder(name: str) -> bool:
    """`__version__`, `__file__`: a module object has some without binding them."""
    return name.startswith("__") and name.endswith("__")


def _submodule(imported: Located, name: str) -> bool:
    """`from package import name` imports the package's submodule `name`."""
    location = imported.location
    if not location.is_package:
        return False
    directory = location.root.joinpath(*location.name.split("."))
    return (directory / name).exists() or any(directory.glob(f"{name}.*"))


class _Binders(cst.CSTVisitor):
    """What libcst's scopes leave out of a module's names: a `case` pattern's
    captures, `:=` in a comprehension, a function's `global`; and whether code
    binds names kiln cannot see."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.dynamic = False

    def visit_Name(self, node: cst.Name) -> None:  # an attribute's name too
        self.dynamic = self.dynamic or node.value in DYNAMIC

    def visit_MatchAs(self, node: cst.MatchAs) -> None:
        if node.name is not None:
            self.bound.add(identifier(node.name.value))

    def visit_MatchStar(self, node: cst.MatchStar) -> None:
        if node.name is not None:
            self.bound.add(identifier(node.name.value))

    def visit_MatchMapping(self, node: cst.MatchMapping) -> None:
        if node.rest is not None:
            self.bound.add(identifier(node.rest.value))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.bound |= target_names(node.target)

    def visit_Global(self, node: cst.Global) -> None:
        self.bound |= {identifier(item.name.value) for item in node.names}
