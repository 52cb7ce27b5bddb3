"""Whether the project seeds a module's shared random generator, read from its bindings.

Example input (modules of the project)::

    import random as rnd                  # app/main.py
    rnd.seed(1)

    from random import seed as s          # app/setup.py, in a function's body
    s(1)

    import numpy as np                    # app/model.py
    np.random.seed(0)

Output: `seeded(reader, "random")` and `seeded(reader, "numpy.random")` are
True. A call seeds a generator where the function it names, read through
the import statements of its module (at its top level or in any body, under
whatever name they bind) and the names it binds once to another
(`reseed = random.seed`), is `random.seed` or `numpy.random.seed`, also
re-exported by a module of the project. Text that only looks like one (a
comment, a string, `my.random.seed()` of another object) is none.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import libcst as cst

from kilnc.front import ImportedName, ModuleDefs, ParsedModule
from kilnc.import_names import imports_in
from kilnc.names import identifier
from kilnc.resolve import ModuleLocation
from kilnc.syntax import dotted
from kilnc.walk import walk

if TYPE_CHECKING:
    from kilnc.effects.lookup import Lookup

__all__ = ["seeded"]

_SEED = "seed"
_ALIAS_DEPTH = 8  # `a = b`, `b = c`, ...: a chain longer than any a project writes


def seeded(reader: Lookup, module: str) -> bool:
    """Whether a module of the project kiln has read calls `module`'s `seed`
    (`random.seed(42)`, under any name an import or an alias gives it)."""
    wanted = f"{module}.{_SEED}"
    project = reader.project
    for defs in list(project.modules.values()):
        if defs is None:
            continue
        for imported, path in _imported_calls(defs):
            found = project.follow(imported, list(path))
            if found is None:  # bound where kiln cannot tell: the name as imported
                parts = (imported.module, imported.attribute, *path)
                named = ".".join(part for part in parts if part)
            elif found.attribute is None:
                named = found.module
            else:
                named = f"{found.module}.{found.attribute}"
            if named == wanted:
                return True
    return False


def _imported_calls(
    defs: ModuleDefs,
) -> frozenset[tuple[ImportedName, tuple[str, ...]]]:
    """The functions calls in `defs`' module name through an import: what the
    import binds, and the attributes after it (`np.random.seed`: numpy, then
    `random`, `seed`). Only those that may be a `seed`: an attribute of that
    name, or a name an import binds (`s` of `from random import seed as s`,
    or of a project module that re-exports it)."""
    return _calls_of(defs.parsed, defs.location, tuple(sorted(defs.aliases.items())))


@lru_cache(maxsize=256)
def _calls_of(
    parsed: ParsedModule,
    location: ModuleLocation,
    aliases: tuple[tuple[str, str], ...],
) -> frozenset[tuple[ImportedName, tuple[str, ...]]]:
    found = _Found()
    walk(parsed.module, found)
    # Every import of the module, wherever it is: a name bound in one body is
    # the same module's function in another that imports it alike.
    table = imports_in(found.imports, parsed, location)
    bound = dict(aliases)
    calls: set[tuple[ImportedName, tuple[str, ...]]] = set()
    for called in found.called:
        name = called
        for _ in range(_ALIAS_DEPTH):  # `reseed = random.seed`: what it is bound to
            head, _, rest = name.partition(".")
            if head in table or head not in bound:
                break
            name = f"{bound[head]}.{rest}".rstrip(".")
        head, _, rest = name.partition(".")
        imported = table.get(head)
        if imported is None:
            continue
        path = tuple(rest.split(".")) if rest else ()
        if not path or path[-1] == _SEED:
            calls.add((imported, path))
    return frozenset(calls)


class _Found(cst.CSTVisitor):
    """The lines that import, and the dotted names called, anywhere in a module."""

    def __init__(self) -> None:
        self.imports: list[cst.SimpleStatementLine] = []
        self.called: set[str] = set()

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        if any(isinstance(s, cst.Import | cst.ImportFrom) for s in node.body):
            self.imports.append(node)

    def visit_Call(self, node: cst.Call) -> None:
        name = dotted(node.func)
        if name is not None:
            self.called.add(".".join(map(identifier, name.split("."))))
