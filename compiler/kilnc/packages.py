"""plan_tree: where a compile writes each module, and by what name the modules import each other.

The output directory is a package, and the compiled modules mirror the
sources' packages inside it. Compiling `app/main.py` and `app/sub.py` (beside
`app/__init__.py`, which has no flow) into `build/` writes::

    build/__init__.py        a package marker, unless one is there
    build/app/__init__.py    a package marker
    build/app/main.py        module build.app.main
    build/app/sub.py         module build.app.sub

A compiled module that imports from another module of the compile imports the
compiled one: `from app.sub import inner` in app/main.py is `from
build.app.sub import inner` in build/app/main.py, so a subflow called across
modules runs compiled, under its limits, retries, ledger and events, and a node
imported from a compiled module shares that module's state with its flows. The
names other compiled modules import (in their functions' bodies too) are kept
by that module's tree shaking (`Links.exports`). A module without flows has no
output: one that imports a compiled module's state or classes would give the
compiled code the source's copy of them, which `check_copies` refuses.

The package's name is the output directory's, by Python's own rule (its
parents' names too while they hold an `__init__.py`): the compiled tree imports
the same way from any working directory that has the directory above it on
`sys.path`, as the sources need their import root there. A directory whose name
is no Python name, or that holds modules or packages of the user's (a src
layout's `src/`), is not made a package:
its modules compile as before, and one that imports another compiled module is
an error (KLN704) rather than a module that silently calls the source.
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

import libcst as cst

from kilnc import __version__
from kilnc.copies import nested_imports
from kilnc.depth import run_deep
from kilnc.diagnostics import Code, Diagnostic, error, warning
from kilnc.front import ImportedName, ModuleDefs
from kilnc.ir import FlowDef, FlowIR
from kilnc.names import identifier
from kilnc.plan import Links
from kilnc.project import FrontEnd, Reader, attribute_of
from kilnc.resolve import ModuleLocation, locate, module_file
from kilnc.source import is_generated_module
from kilnc.syntax import chain_root, code

MARKER: Final = "__init__.py"


@final
@dataclass(frozen=True, slots=True)
class OutputTree:
    directory: Path
    package: str | None  # the output directory's module name; None when it can be none
    locations: Mapping[Path, ModuleLocation]  # each source file's module
    exports: Mapping[str, frozenset[str] | None]  # per module with a flow: see Links
    rebound: frozenset[str] = frozenset()  # see Links
    stays: frozenset[str] = frozenset()  # see Links

    def links(self, file: Path) -> Links:
        """How the output of `file` imports the other modules of the compile."""
        source = self.source_path(file)
        if self.package is None:
            return Links(unlinked=frozenset(self.exports), source_path=source)
        compiled = {name: f"{self.package}.{name}" for name in self.exports}
        location = self.locations.get(file)
        exports = self.exports.get(location.name) if location else frozenset()
        return Links(compiled, exports, frozenset(), self.rebound, self.stays, source)

    def source_path(self, file: Path) -> str | None:
        """`file` as the header of its output names it: its path from the output's
        directory (``../../app/sub.py``); None where there is none (another drive).

        The source's links are resolved, so naming it through one changes
        nothing; the output's are not, so an output directory that is a link
        to a disk elsewhere still names ``../app/sub.py``, not that disk's path.
        """
        here = os.path.abspath(self.target(file).parent)
        try:
            return Path(os.path.relpath(os.path.realpath(file), here)).as_posix()
        except ValueError:
            return None

    def target(self, file: Path) -> Path:
        """The output file of `file`: its module's place in the tree."""
        location = self.locations.get(file)
        if location is None:  # unreadable: the compile reports it, nothing is written
            return self.directory / f"{file.stem}.py"
        parts = location.name.split(".")
        if location.is_package:
            return self.directory.joinpath(*parts, MARKER)
        return self.directory.joinpath(*parts[:-1], f"{parts[-1]}.py")

    def clashes(self) -> list[str]:
        """Usage errors: two sources of one module name (in two import roots)."""
        first: dict[Path, Path] = {}
        found = []
        for file in self.locations:
            target = self.target(file)
            other = first.setdefault(target, file)
            if other != file:
                found.append(
                    f"kiln: error: {other} and {file} would both be written as "
                    f"{target}: they are both module "
                    f"'{self.locations[file].name}' of their import roots"
                )
        return found

    def markers(self, targets: Iterable[Path]) -> list[Path]:
        """The `__init__.py` files that make packages of the directories holding `targets`,
        the output directory's own included when it is a package; targets are not markers.
        """
        written = set(targets)
        directories: dict[Path, None] = {}
        for target in sorted(written):
            folder = target.parent
            while folder != self.directory and folder.is_relative_to(self.directory):
                directories[folder] = None
                folder = folder.parent
        if self.package is not None:
            directories[self.directory] = None
        return [
            marker
            for folder in sorted(directories)
            if (marker := folder / MARKER) not in written
        ]


def marker_text(marker: Path, directory: Path) -> str:
    """A package marker: kiln's header (so kiln may write it again), nothing else."""
    package = marker.parent.relative_to(directory).as_posix()
    name = directory.resolve().name
    shown = f"{name}/{package}/" if package != "." else f"{name}/"
    digest = hashlib.sha256(shown.encode("utf-8")).hexdigest()
    return (
        f"# Generated by kiln {__version__} from the package {shown}; do not edit.\n"
        f"# sources sha256: {digest}\n"
    )


def plan_tree(files: Sequence[Path], directory: Path, front: FrontEnd) -> OutputTree:
    """The tree `files` compile to under `directory`, each read by `front` (the
    pipeline's); files that do not parse count as having no flow (their compile
    reports why)."""
    read: dict[str, Reader] = {}
    modules: dict[str, ModuleDefs] = {}
    locations: dict[Path, ModuleLocation] = {}
    loads: dict[str, Callable[[str], ModuleDefs | None]] = {}  # by root
    load_of: dict[str, Callable[[str], ModuleDefs | None]] = {}  # by module
    for file in files:
        try:
            location = locations[file] = locate(file)
        except (OSError, RuntimeError):  # a link loop: the compile reports the path
            continue
        reader = read.setdefault(str(location.root), Reader(location.root, front))
        defs = _definitions(reader, location.name)
        if defs is not None and defs.flows:
            modules[location.name] = defs
            load_of[location.name] = loads.setdefault(
                str(location.root),
                functools.cache(functools.partial(_definitions, reader)),
            )
    rebound = frozenset(name for name in modules if _rebound(load_of[name], name))
    exports: dict[str, set[str] | None] = {name: set() for name in modules}
    stays: set[str] = set()
    for defs in modules.values():
        # Deep code (a prompt of a thousand `+`) needs the passes' stack (depth.py).
        nested = run_deep(functools.partial(nested_imports, defs))
        for imported in [*defs.imports.values(), *nested]:
            # A module imported whole (`import app.sub as sub`, `from app import
            # sub`): what its importer reads of it is open, so it keeps every name.
            whole = (
                imported.module
                if imported.attribute is None
                else f"{imported.module}.{imported.attribute}"
            )
            if whole in exports and (
                imported.attribute is None or whole not in rebound
            ):
                exports[whole] = None
            elif imported.attribute is not None and imported.module in exports:
                if attribute_of(
                    load_of[imported.module], imported.module, imported.attribute
                ) == ImportedName(whole, None):
                    stays.add(whole)  # a submodule without output: the source's
                    continue
                names = exports[imported.module]
                if names is not None:
                    names.add(imported.attribute)
    kept = {n: None if e is None else frozenset(e) for n, e in exports.items()}
    return OutputTree(
        directory, _package(directory), locations, kept, rebound, frozenset(stays)
    )


def _rebound(load: Callable[[str], ModuleDefs | None], module: str) -> bool:
    """Whether the package of `module` binds its name to something else once it is
    imported (`from .crawl import crawl`): `from package import name` takes that."""
    package, _, name = module.rpartition(".")
    if not package or load(package) is None:
        return False
    return attribute_of(load, package, name) != ImportedName(module, None)


def _definitions(reader: Reader, module: str) -> ModuleDefs | None:
    """The module's definitions, or None when it cannot be read or parsed.

    This only plans: the compile of the same file reports what is wrong with
    it, an unreadable file or a bug in kiln alike, in kiln's shape. So nothing
    raised here may end the command with a traceback.
    """

    def read() -> ModuleDefs | None:
        found = reader(module)
        if found is None:
            return None
        return reader.front.collect(found)[0]

    try:
        return run_deep(read)
    except Exception:
        return None


def _package(directory: Path) -> str | None:
    """The module name `directory` has as a package, or None when it cannot be one."""
    directory = directory.resolve()
    if not _is_package_name(directory.name):
        return None
    if not (directory / MARKER).exists() and _holds_modules(directory):
        return None  # a marker would rename the user's modules there
    parts = [directory.name]
    folder = directory.parent
    while (folder / MARKER).exists() and _is_package_name(folder.name):
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def _holds_modules(directory: Path) -> bool:
    try:
        entries = list(directory.iterdir())
    except OSError:  # missing (it is made) or unreadable (writing it says so)
        return False
    return any(
        (entry.suffix == ".py" and entry.is_file() and not is_generated_module(entry))
        or _is_users_package(entry)
        for entry in entries
    )


def _is_users_package(entry: Path) -> bool:
    """A package of the user's (a src layout's), its marker not one kiln wrote."""
    marker = entry / MARKER
    return marker.is_file() and not is_generated_module(marker)


def _is_package_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def check_imported_flows(
    defs: ModuleDefs,
    flows: Iterable[FlowIR],
    links: Links,
    load: Callable[[str], ModuleDefs | None],
) -> list[Diagnostic]:
    """Each call of another module's flow that will not run compiled, at the call.

    The call runs the compiled flow when the module it is imported from and the
    module defining it both have outputs in this compile (a re-export through
    `app/__init__.py` with no flow is the source's): otherwise it runs the plain
    source function, one call at a time, without the flow's limits, retries,
    ledger or events, which is worth a warning; an output that cannot import
    another is an error (KLN704).
    """
    found: list[Diagnostic] = []
    for flow_ir in flows:
        for call in flow_ir.calls:
            callee = call.callee
            if call.local or not isinstance(callee, FlowDef):
                continue
            via = _imported_from(defs, call.call.func)
            if callee.module in links.compiled and _imports(
                callee.module, defs.location.name, links, load
            ):
                found.append(
                    error(
                        call.span,
                        Code.FLOW_CYCLE,
                        f"{callee.module} imports {defs.location.name}, which calls "
                        f"its flow '{callee.name}' here: compiled, each module would "
                        "read the other's flows as it is imported, and Python could "
                        "import neither",
                        "move the flows both modules call into a module of their "
                        "own, which imports neither",
                    )
                )
            elif _through_a_package(call.call.func) and callee.module in links.compiled:
                package, _, module = callee.module.rpartition(".")
                found.append(
                    warning(
                        call.span,
                        Code.UNCOMPILED_FLOW,
                        f"flow '{callee.name}' is called through "
                        f"{_package_named(defs, call.call.func, callee.module)}, "
                        "which stays the source's: this call runs its source as "
                        "plain Python, without its limits, retries, ledger or events",
                        f"import it as `from {package} import {module}`, or import "
                        "the flow itself",
                    )
                )
            elif callee.module in links.unlinked:
                found.append(
                    error(
                        call.span,
                        Code.OUTPUT_NOT_PACKAGE,
                        f"flow '{callee.name}' of {callee.module} is compiled too, but "
                        "the output directory cannot be a package that this module "
                        "imports it from",
                        "write the output to a directory named like a Python package "
                        "that holds none of your modules, such as build",
                    )
                )
            elif callee.module not in links.compiled:
                found.append(
                    warning(
                        call.span,
                        Code.UNCOMPILED_FLOW,
                        f"flow '{callee.name}' of {callee.module} is not compiled with "
                        "this module: this call runs its source as plain Python, one "
                        "call at a time, without its limits, retries, ledger or events",
                        _compile_with(callee.module, Path(callee.span.path)),
                    )
                )
            elif via not in links.compiled:
                found.append(
                    warning(
                        call.span,
                        Code.UNCOMPILED_FLOW,
                        f"flow '{callee.name}' is imported through {via}, which has no "
                        "output in this compile: this call runs its source as plain "
                        "Python, without its limits, retries, ledger or events",
                        f"import it from {callee.module}",
                    )
                )
    return found


def _imports(
    start: str, target: str, links: Links, load: Callable[[str], ModuleDefs | None]
) -> bool:
    """Whether importing compiled `start` imports `target`, through compiled modules."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or (defs := load(name)) is None:
            continue
        seen.add(name)
        for imported in defs.imports.values():
            named = [imported.module]
            if imported.attribute is not None:
                named.append(f"{imported.module}.{imported.attribute}")
            if target in named:
                return True
            todo += [module for module in named if module in links.compiled]
    return False


def _through_a_package(func: cst.BaseExpression) -> bool:
    """`app.sub.inner(...)`: a flow reached through a package's attributes, which
    the generated module cannot point at the compiled module (see shake)."""
    return isinstance(func, cst.Attribute) and isinstance(func.value, cst.Attribute)


def _package_named(defs: ModuleDefs, func: cst.BaseExpression, module: str) -> str:
    """The package `steps.sub.inner(...)` goes through, as the source binds `steps`."""
    head = code(chain_root(func))
    imported = defs.imports.get(identifier(head))
    if imported is None or imported.attribute is None:
        return f"the package that `import {module}` binds"
    return f"the package {imported.module}.{imported.attribute} that `{head}` names"


def _imported_from(defs: ModuleDefs, func: cst.BaseExpression) -> str | None:
    """The module the called name is imported from (`m.f`: the module `m` names)."""
    head = func.value if isinstance(func, cst.Attribute) else func
    if not isinstance(head, cst.Name):
        return None
    imported = defs.imports.get(identifier(head.value))
    if imported is None:
        return None
    if isinstance(func, cst.Attribute) and imported.attribute is not None:
        return f"{imported.module}.{imported.attribute}"
    return imported.module


def with_imported_flows(file: Path, front: FrontEnd) -> list[Path]:
    """`file` and every project module with a flow it reaches through imports: what
    `kiln run` compiles, so the subflows it calls across modules run compiled."""
    location = locate(file)
    reader = Reader(location.root, front)
    found = [file]
    seen = {location.name}
    frontier = [location.name]
    while frontier:
        name = frontier.pop()
        defs = _definitions(reader, name)
        if defs is None:
            continue
        if defs.flows and name != location.name:
            path = module_file(location.root, name)
            if path is not None:
                found.append(path)
        for imported in defs.imports.values():
            for name in (imported.module, f"{imported.module}.{imported.attribute}"):
                if name not in seen and module_file(location.root, name) is not None:
                    seen.add(name)
                    frontier.append(name)
    return found


def _compile_with(module: str, path: Path) -> str:
    """What makes a flow's module compile with its caller: the command, and for a
    module of a namespace package, the `__init__.py` that makes it a regular one
    (the file alone is the top-level module kiln compiles and links it as)."""
    together = f"compile {path} together with this module"
    if "." not in module or (path.parent / "__init__.py").exists():
        return together
    return (
        f"add {path.parent / '__init__.py'} and {together}: {path.parent} has none,"
        f" so kiln compiles {path} as the top-level module '{path.stem}', not {module}"
    )
