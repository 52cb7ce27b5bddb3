"""What a module's imports load beyond the names they bind, which the output keeps.

Example input (app/flows.py; app/steps/sub.py has a flow too)::

    import json                     # nothing kept uses it
    from . import plugins           # nothing kept uses it: it registers handlers
    from . import cli               # nothing kept uses it: it only defines
    from . import steps
    from .steps import sub as _sub  # nothing kept uses the name
    ...  steps.sub.inner(n)  ...    # in a flow

Output: `plugins` is kept, as is every import of a module whose import runs
code that may change what kept code sees (`import_runs_code`): a module of
the project's with a statement that does (`register(...)`, a registering
decorator: reach.py's effects), or that imports one that does, all the way,
and an installed library's (kiln cannot read it; the standard library's load
nothing kept code sees: import_effects.py's `loads_code`). `json` and `cli`
are dropped. `_sub` is kept too, and from the source (`from app.steps import
sub as _sub`), not the compiled module: the kept `steps` is the source
package, whose attribute `sub`, which the flow reads, exists because this
import loaded the submodule (`ModuleImports.kept`).

`package_first` is the source package a compiled module imports before
anything else, when an `__init__.py` above it runs code as it loads
(`os.environ.setdefault(...)`): importing the source module runs it first.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import final

import libcst as cst

from kilnc.facts import is_future, module_facts
from kilnc.front import ModuleDefs
from kilnc.import_effects import loads_code
from kilnc.names import identifier, import_local_name
from kilnc.plan import Links
from kilnc.resolve import ModuleLocation, absolute_module, module_file
from kilnc.syntax import dotted, is_docstring
from kilnc.walk import walk

Load = Callable[[str], ModuleDefs | None]  # a project module by name (Project.load)
Runs = Callable[[str], bool]  # whether importing a module runs code (by name)


def import_runs_code(module: str, root: Path, load: Load) -> bool:
    """Whether importing `module` (absolute) may run code that changes what kept
    code sees: an installed library's, or a module of the project under `root`
    one of whose packages or itself does as it loads (`runs_at_import`)."""
    if not loads_code(module, root):
        return False
    if module_file(root, module.partition(".")[0]) is None:
        return True  # an installed library: kiln cannot read what it does
    seen: set[str] = set()
    return any(_runs(prefix, root, load, seen) for prefix in _prefixes(module))


def _runs(module: str, root: Path, load: Load, seen: set[str]) -> bool:
    if module in seen or module_file(root, module) is None:
        return False  # being read (an import cycle), or no module: an attribute
    seen.add(module)
    defs = load(module)
    if defs is None:
        return True  # a module kiln cannot read may do anything
    location = defs.location
    return runs_at_import(defs) or any(
        (
            _runs(prefix, root, load, seen)
            if module_file(root, prefix.partition(".")[0]) is not None
            else loads_code(prefix, root)
        )
        for imported in _imported_at_import(defs.parsed.module, location)
        for prefix in _prefixes(imported)
    )


def runs_at_import(defs: ModuleDefs) -> bool:
    """Whether a statement of the module, as it loads, changes state kept code may
    see: one shake keeps for its own sake, an effect (its imports aside)."""
    parsed = defs.parsed
    key = (parsed.source.module, parsed.source.digest)
    found = _RUNS.get(key)
    if found is None:
        found = _RUNS[key] = any(
            (facts := module_facts(parsed, statement)).effect and not facts.main_guard
            for index, statement in enumerate(parsed.module.body)
            if not ((index == 0 and is_docstring(statement)) or is_future(statement))
        )
    return found


# By module and the digest of its source: asked of each module an import loads,
# by every module of a compile that imports it.
_RUNS: dict[tuple[str, str], bool] = {}


def package_first(
    location: ModuleLocation, compiled: Collection[str], runs: Runs
) -> str | None:
    """The source package the output of the module at `location` imports first:
    the innermost around it, when importing it runs code (`import_runs_code`),
    as importing the source module runs it first. None when it runs none, or
    when a package around it is compiled too: that package's output, a package
    of the compiled module's, runs first as the source's does, and imports the
    packages above it itself (the source's packages below it cannot run
    without the source's copy of it)."""
    packages = _prefixes(location.name)[:-1]
    if not packages or any(package in compiled for package in packages):
        return None
    return packages[-1] if runs(packages[-1]) else None


@final
@dataclass(frozen=True, slots=True)
class Loaded:
    """One name an import at the module's top level binds, and what it loads."""

    alias: cst.ImportAlias
    local: str  # the name it binds
    modules: tuple[str, ...]  # the modules importing it loads, outermost first
    holds: str  # the module its name may hold (`steps` of `from app import steps`)
    linked: bool  # whether the output imports what it names compiled (shake)
    compiled: bool  # of `import a.b.c`, whether a.b.c has an output (`Form.LOADED`)
    code: bool  # whether loading what it names runs code (a submodule's, of `from`)
    base: bool  # of `from m import n`, whether loading `m` does (its other names do)


def import_loads(
    statement: cst.BaseSmallStatement,
    location: ModuleLocation,
    links: Links,
    runs: Runs,
) -> list[Loaded]:
    """The names `import ...` or `from ... import ...` binds, each with what it loads;
    none for a star import (kept always) or a relative one Python refuses."""
    if isinstance(statement, cst.Import):
        return [_imported(alias, links, runs) for alias in statement.names]
    module = _from_module(statement, location)
    if module is None or not isinstance(statement, cst.ImportFrom):
        return []
    assert not isinstance(statement.names, cst.ImportStar)
    outer = _prefixes(module)
    base = any(runs(m) for m in outer)
    found = []
    for alias in statement.names:
        whole = f"{module}.{dotted(alias.name)}"
        submodule = module_file(location.root, whole) is not None
        linked = (module in links.compiled and whole not in links.stays) or (
            whole in links.compiled and whole not in links.rebound
        )
        local = identifier(import_local_name(alias))
        loaded = (*outer, whole) if submodule else outer
        code = submodule and runs(whole)
        found.append(Loaded(alias, local, loaded, whole, linked, linked, code, base))
    return found


def _from_module(
    statement: cst.BaseSmallStatement, location: ModuleLocation
) -> str | None:
    """The absolute module of `from m import a, b`; None for a star import, another
    statement, or a relative import Python refuses."""
    if not isinstance(statement, cst.ImportFrom) or isinstance(
        statement.names, cst.ImportStar
    ):
        return None
    base = dotted(statement.module) if statement.module is not None else ""
    return absolute_module(location, base or "", len(statement.relative))


def _imported(alias: cst.ImportAlias, links: Links, runs: Runs) -> Loaded:
    """`import a.b.c`: it loads a, a.b and a.b.c, and binds `a` (or, named, a.b.c)."""
    name = dotted(alias.name) or ""
    named = alias.asname is not None
    return Loaded(
        alias,
        identifier(import_local_name(alias)),
        _prefixes(name),
        name if named else name.partition(".")[0],
        named and name in links.compiled,
        name in links.compiled,
        any(runs(m) for m in _prefixes(name)),
        False,
    )


def _prefixes(module: str) -> tuple[str, ...]:
    parts = module.split(".")
    return tuple(".".join(parts[: i + 1]) for i in range(len(parts)))


def _loading(loads: Sequence[Loaded], needed: Collection[str]) -> list[Loaded]:
    """The names of one import kept for what loading them runs, beside those
    `needed`: each whose module runs code, and where none is kept, the first of
    a `from m import ...` whose `m` does."""
    kept = [load for load in loads if load.local in needed or load.code]
    if not kept and loads and loads[0].base:
        kept = [loads[0]]
    return kept


_Held = tuple[str, str, bool]  # a module a kept name holds, a path read through it


class Form(enum.Enum):
    """How the output writes an import it keeps."""

    LINKED = "linked"  # of the compiled module where it names one (shake's `_compiled`)
    SOURCE = "source"  # of the source's module
    LOADED = "loaded"  # `import app.sub` as `import build.app.sub as _kiln_loaded`


def _attributes(loads: Sequence[Loaded], held: Sequence[_Held]) -> dict[int, Form]:
    """Of names nothing kept uses, those whose import makes the submodule it loads
    an attribute of a package a kept name holds, which kept code reads it through
    (`steps.sub.inner` where `steps` is app.steps, for `import app.steps.sub`),
    by id of alias: the import loads the source's submodule where that package
    is the source's, the compiled one where it is compiled."""
    found: dict[int, Form] = {}
    for load in loads:
        through = [
            linked
            for package, path, linked in held
            for module in load.modules
            if module.startswith(f"{package}.")
            and (path == module or path.startswith(f"{module}."))
        ]
        if through and not all(through):
            found[id(load.alias)] = Form.SOURCE
        elif through:
            found[id(load.alias)] = (
                Form.LOADED if load.compiled and not load.linked else Form.LINKED
            )
    return found


class ModuleImports:
    """The module's statements at the top level, as what their imports load: of an
    import line, each name's `Loaded`; of a block, whether it imports, as it
    runs, a module whose import runs code."""

    def __init__(
        self,
        statements: Sequence[cst.BaseStatement],
        location: ModuleLocation,
        links: Links,
        runs: Runs,
    ) -> None:
        self.statements = statements
        self.loads: list[list[list[Loaded]] | bool] = [
            (
                [import_loads(small, location, links, runs) for small in statement.body]
                if isinstance(statement, cst.SimpleStatementLine)
                else any(
                    runs(m)
                    for imported in _imported_at_import(statement, location)
                    for m in _prefixes(imported)
                )
            )
            for statement in statements
        ]

    def loading(self) -> list[int]:
        """The statements kept for what they load, whatever kept code reads."""
        return [
            index
            for index, found in enumerate(self.loads)
            if found is True
            or (isinstance(found, list) and any(_loading(n, ()) for n in found))
        ]

    def kept(self, kept: frozenset[int], needed: Collection[str]) -> dict[int, Form]:
        """By id, the names of import lines kept, and how: those `needed` of the
        statements `kept`, those kept for what they load, and those for the
        attribute they make of a package (`_attributes`)."""
        aliases: dict[int, Form] = {}
        held: list[_Held] = []
        lines = [(i, f) for i, f in enumerate(self.loads) if isinstance(f, list)]
        paths = _read_paths([self.statements[index] for index in sorted(kept)])
        for index, found in lines:
            if index not in kept:
                continue
            for names in found:
                aliases.update(
                    (id(n.alias), Form.LINKED) for n in _loading(names, needed)
                )
                held += [
                    (load.holds, f"{load.holds}.{path}", load.linked)
                    for load in names
                    if load.local in needed
                    for path in paths.get(load.local, ())
                ]
        for _, found in lines:
            for names in found:
                unused = [load for load in names if load.local not in needed]
                aliases.update(_attributes(unused, held))
        return aliases

    def holding(self, aliases: Mapping[int, Form]) -> set[int]:
        """The import lines holding any of `aliases`."""
        return {
            index
            for index, found in enumerate(self.loads)
            if isinstance(found, list)
            and any(id(load.alias) in aliases for names in found for load in names)
        }


def _read_paths(statements: Sequence[cst.BaseStatement]) -> dict[str, set[str]]:
    """By name, the attributes the code reads through it: `steps` reads `sub.inner`
    in `steps.sub.inner(n)`."""
    finder = _Paths()
    for statement in statements:
        walk(statement, finder)
    return finder.paths


class _Paths(cst.CSTVisitor):
    def __init__(self) -> None:
        self.paths: dict[str, set[str]] = {}

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        chain = dotted(node)
        if chain is None:
            return True  # `f().x`: what is below may still read it
        head, _, rest = chain.partition(".")
        self.paths.setdefault(identifier(head), set()).add(rest)
        return False


def _imported_at_import(node: cst.CSTNode, location: ModuleLocation) -> list[str]:
    """The modules the imports in `node` name that run as it does: not in a
    function's body, nor under `if TYPE_CHECKING:` or the `__main__` block;
    `from m import n` names m, and m.n (a submodule, or nothing)."""
    finder = _Imports(location)
    walk(node, finder)
    return finder.found


class _Imports(cst.CSTVisitor):
    def __init__(self, location: ModuleLocation) -> None:
        self.location = location
        self.found: list[str] = []

    def visit_If(self, node: cst.If) -> bool:
        test = dotted(node.test) or ""
        if test.split(".")[-1] == "TYPE_CHECKING" or _is_main(node.test):
            if node.orelse is not None:
                walk(node.orelse, self)
            return False
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # runs when called

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_Import(self, node: cst.Import) -> None:
        self.found += [dotted(alias.name) or "" for alias in node.names]

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        module = _from_module(node, self.location)
        if module is None and isinstance(node.names, cst.ImportStar):
            base = dotted(node.module) if node.module is not None else ""
            module = absolute_module(self.location, base or "", len(node.relative))
        if module is not None:
            self.found.append(module)
            if not isinstance(node.names, cst.ImportStar):
                self.found += [f"{module}.{dotted(a.name)}" for a in node.names]


def _is_main(test: cst.BaseExpression) -> bool:
    """`__name__ == "__main__"`, either way round."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return False
    sides = [test.left, test.comparisons[0].comparator]
    names = {dotted(side) for side in sides} | {
        side.evaluated_value for side in sides if isinstance(side, cst.SimpleString)
    }
    return {"__name__", "__main__"} <= names
