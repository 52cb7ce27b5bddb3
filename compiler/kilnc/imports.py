"""check_imports: the module's imports of the project, checked as Python would run them.

Example input: b4.py, beside no `__init__.py`, starting::

    from .missing import thing

Output: KLN402 at the import, "a relative import in a module that is in no
package": Python has no package to start from, and refuses the import when
the source runs, where the compiled module, which imports by absolute name,
would run. A relative import that climbs above the top-level package is
KLN402 too.

Each project module imported is read, so one that does not parse is
reported (by the reader) before the flows that import it are read without
its names. Only the imports at the module's top level are checked: one
under an `if` or a `try` may be guarded (`except ImportError:`), and one in
a function runs when the function does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import Located, ParsedModule
from kilnc.resolve import ModuleLocation, absolute_module, unresolved_relative
from kilnc.syntax import dotted


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
        read(module)
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
