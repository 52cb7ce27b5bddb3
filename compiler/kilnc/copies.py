"""check_copies: the imports by which compiled code would use a source copy of an object.

Example input: a compile of app/reports.py (a flow, and a node `publish` that
appends to its module-level `OUTBOX`) and app/flows.py, whose flow calls
`publish` and `outbox_size` of app/stats.py, a module without flows that
reads `OUTBOX` (`from app.reports import OUTBOX`). Output: KLN404 at that
import in app/stats.py. The compiled build/app/flows.py imports `publish`
from build.app.reports, which holds its own OUTBOX, and `outbox_size` from
the source app.stats, which reads the source's: one list of the source run
would be two, and the flow would read the one nothing appends to.

The compiled modules import from its source each module without output they
import, and each module that one imports, all the way: what their names
reach, and what their imports at the top level load, whose code runs then
(an import the output keeps for that, `from . import plugins`: loads.py).
Every import those modules make of a compiled module is the source's; it is
an error where what it names is that module's own object, which its output
copies: module state, a class (an instance a compiled node makes is no
instance of the source's class, and an exception it raises is not the
source's), or a function that reaches either. A constant (a number, a
string), a function that reaches neither, a name the compiled module imports
from a module without flows (one object for all) and a name used only in
annotations are the same in both, and pass. A compiled module's own imports of another are
of its output (shake.py), but for two forms: `import app.reports`, which
binds the source package `app`, and a name imported through a module
without output (`from app import publish`, app/__init__.py's re-export).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.carried import NOUNS, Carried, Objects, read_paths
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import ImportedName, ModuleDefs, ParsedModule
from kilnc.loads import import_runs_code
from kilnc.names import identifier, import_local_name
from kilnc.plan import Links
from kilnc.project import Project
from kilnc.resolve import ModuleLocation, absolute_module
from kilnc.syntax import dotted
from kilnc.walk import walk


@final
@dataclass(frozen=True, slots=True)
class Binding:
    """A name an import binds: `from module import attribute as local`, or `import
    module as local` (attribute None); `whole`: `import a.b`, which binds `a`."""

    node: cst.CSTNode  # where it is written: the alias, or a star import
    local: str
    module: str
    attribute: str | None
    whole: bool
    top: bool  # at the module's top level, not in a function or a block


def import_bindings(parsed: ParsedModule, location: ModuleLocation) -> list[Binding]:
    """Every name the module's imports bind where they run: not under `if
    TYPE_CHECKING:`, nor in the `__main__` block, which `import` never runs."""
    finder = _Imports(parsed, location)
    walk(parsed.module, finder)
    return finder.found


def nested_imports(defs: ModuleDefs) -> list[ImportedName]:
    """What the imports in the module's functions and blocks import: a compiled
    module keeps the names another's imports there name (packages.py)."""
    return [
        ImportedName(b.local if b.whole else b.module, b.attribute)
        for b in import_bindings(defs.parsed, defs.location)
        if not b.top
    ]


def check_copies(defs: ModuleDefs, links: Links, project: Project) -> list[Diagnostic]:
    """KLN404 at each import that gives the compiled modules a source copy of an
    object a module compiled with `defs` copies into its output."""
    if not links.compiled:
        return []
    carried = Objects(project, links.compiled)
    root = defs.location.root
    runs = functools.cache(
        functools.partial(import_runs_code, root=root, load=project.load)
    )
    found: list[Diagnostic] = []
    seen = {defs.location.name}
    todo = [defs]
    while todo:
        here = todo.pop()
        uses = read_paths(here.parsed)
        for binding in import_bindings(here.parsed, here.location):
            if here is defs and _linked(binding, links):
                continue  # shake.py points it at the compiled module
            said, reached = _check(binding, here, here is defs, uses, carried)
            found += said
            runs_then = _loaded(binding) if binding.top else set()
            if here is not defs or any(runs(module) for module in runs_then):
                reached |= runs_then  # run as the module loads (kept for it: shake)
            for module in sorted(reached - seen):  # the same order every run
                seen.add(module)
                loaded = project.load(module)
                if loaded is not None and module not in links.compiled:
                    todo.append(loaded)
    return found


def _loaded(binding: Binding) -> set[str]:
    """The modules an import loads: `app.steps.sub` loads app and app.steps first."""
    parts = binding.module.split(".")
    loaded = {".".join(parts[: i + 1]) for i in range(len(parts))}
    if binding.attribute is not None:
        loaded.add(f"{binding.module}.{binding.attribute}")
    return loaded


def _linked(binding: Binding, links: Links) -> bool:
    """Whether the compiled module imports it from an output (shake's `_compiled`)."""
    compiled = links.compiled
    if binding.attribute is None:
        return not binding.whole and binding.module in compiled
    whole = f"{binding.module}.{binding.attribute}"
    return (binding.module in compiled and whole not in links.stays) or (
        whole in compiled and whole not in links.rebound
    )


def _check(
    binding: Binding,
    here: ModuleDefs,
    own: bool,
    uses: Mapping[str, list[tuple[str, ...]]],
    objects: Objects,
) -> tuple[list[Diagnostic], set[str]]:
    """The error at one import, if what its uses reach is a compiled module's own,
    and the modules without output they reach (imported from their source)."""
    project, compiled = objects.project, objects.compiled
    if binding.whole:
        base = ImportedName(binding.local, None)
    else:
        base = ImportedName(binding.module, binding.attribute)
    reached: set[str] = set()
    for path in _own_paths(binding, uses.get(binding.local, [])):
        target = project.follow(base, path)
        if target is None:
            continue
        if target.module not in compiled:
            reached.add(target.module)
            continue
        found: Carried | None = Carried(target.module, target.module, "module")
        if target.attribute is not None:
            found = objects.carried(target.module, target.attribute.split(".")[0])
        if found is not None:
            subject = target.attribute or target.module
            said = _report(binding, here, own, subject, target.module, found, objects)
            return [said], reached
    return [], reached


def _own_paths(binding: Binding, paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The uses of what the import binds that are its own: of `app` bound by
    `import app.reports`, those through `app.reports`."""
    if not binding.whole:
        return paths
    inner = tuple(binding.module.split(".")[1:])
    return [path for path in paths if path[: len(inner)] == inner]


def _report(
    binding: Binding,
    here: ModuleDefs,
    own: bool,
    subject: str,
    module: str,
    found: Carried,
    objects: Objects,
) -> Diagnostic:
    """KLN404 at the import: what the compiled code copies, why this is the
    source's, and what to write instead."""
    head = subject.split(".", maxsplit=1)[0]
    what = f"'{head}' of {module}"
    if found.kind == "module":
        what = f"module {module}"
    elif (found.module, found.name) != (module, head):
        what += f", which uses {found.module}.{found.name},"
    copy = objects.compiled[found.module]
    if found.kind != "module":
        copy = f"{copy}.{found.name}"
    why, hint = _why(binding, own, module, found, objects.compiled)
    return error(
        here.parsed.span(binding.node),
        Code.SOURCE_COPY,
        f"{what} is the source's here, as {why}: the compiled code uses "
        f"{copy}, its copy, so one {NOUNS[found.kind]} of the source run would "
        "be two",
        hint,
    )


def _why(
    binding: Binding,
    own: bool,
    module: str,
    found: Carried,
    compiled: Mapping[str, str],
) -> tuple[str, str]:
    """Why the import is the source's, and the fix: in a module without output,
    keep the object elsewhere; in a compiled module, import it so kiln can link it."""
    if not own:
        thing = "what it uses of it" if found.kind == "module" else found.name
        place = found.module.split(".", maxsplit=1)[0]
        place += "/models.py" if found.kind == "class" else "/state.py"
        return (
            "this module has no output in this compile, and the compiled modules "
            "import it from its source",
            f"keep {thing} in a module without flows (such as {place}), which "
            "every module imports from its source: one object for all",
        )
    if binding.whole:
        last = module.rpartition(".")[2]
        kind = "module" if binding.module == binding.local else "package"
        return (
            f"`import {binding.module}` binds the source {kind} {binding.local}",
            f"name the module, `import {module} as {last}`, which the compiled "
            f"module imports from {compiled[module]}",
        )
    return (
        f"it is imported through {binding.module}, which has no output",
        f"import it from {module}, which the compiled module imports compiled",
    )


class _Imports(cst.CSTVisitor):
    def __init__(self, parsed: ParsedModule, location: ModuleLocation) -> None:
        self.parsed = parsed
        self.location = location
        self.found: list[Binding] = []
        self.depth = 0  # functions and blocks around the import

    def visit_If(self, node: cst.If) -> bool:
        """`if TYPE_CHECKING:` and `if __name__ == "__main__":` never run on import."""
        test = dotted(node.test) or ""
        code = self.parsed.module.code_for_node(node.test)
        if test.split(".")[-1] == "TYPE_CHECKING" or "__main__" in code:
            if node.orelse is not None:
                walk(node.orelse, self)
            return False
        return True

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self.depth += 1

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self.depth -= 1

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> None:
        self.depth += 1

    def leave_SimpleStatementSuite(
        self, original_node: cst.SimpleStatementSuite
    ) -> None:
        self.depth -= 1

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            module = dotted(alias.name) or ""
            local = identifier(import_local_name(alias))
            whole = alias.asname is None
            self.found.append(
                Binding(alias, local, module, None, whole, not self.depth)
            )

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        base = dotted(node.module) if node.module is not None else ""
        module = absolute_module(self.location, base or "", len(node.relative))
        if module is None:
            return
        for local, attribute, where in _from_names(self.parsed, node):
            self.found.append(
                Binding(where, local, module, attribute, False, not self.depth)
            )


def _from_names(
    parsed: ParsedModule, node: cst.ImportFrom
) -> Iterator[tuple[str, str, cst.CSTNode]]:
    """Each name `from m import ...` binds, what it names in `m`, where it is written."""
    if isinstance(node.names, cst.ImportStar):
        for name in sorted(parsed.star_imports.get(node, ())):
            yield name, name, node
        return
    for alias in node.names:
        name = dotted(alias.name) or ""
        yield identifier(import_local_name(alias)), name, alias
