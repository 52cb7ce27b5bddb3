"""The project around a source file: its imported modules, read on demand, never imported.

A flow may call nodes and flows of other modules (`from .nodes import fetch`).
`Project.resolver(defs)` answers, for the function part of a call in `defs`'
module, which node or flow it names and whether that one is defined locally.
Modules are read (`Reader`) and collected once each, when a name first leads
to them, by the front end the pipeline hands in (`FrontEnd`, as
`pipeline.FRONT_END`): which passes read a module, and in what order, is the
pipeline's to say, for these modules as for the one it compiles.

A name is followed through the project's modules as Python's import system
binds it (`attribute_of`, `follow`): `from app.flows import crawl` takes the
attribute `crawl` of the package `app.flows` once its `__init__.py` has run.
After `from .crawl import crawl` there, that is the function, though the
package has a submodule `crawl` too (importing it bound the module first, and
the from-import bound the function over it); a package that binds no `crawl`
gives its submodule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, final

import libcst as cst

from kilnc.diagnostics import Diagnostic
from kilnc.final_bindings import (
    UNSURE,
    binds_last,
    bound_after,
    final_binding,
    is_import,
)
from kilnc.front import ASK_NAMES, ImportedName, Located, ModuleDefs
from kilnc.ir import Callee, NodeDef, NodeKind, NodeOptions, Resolver
from kilnc.names import identifier, import_local_name, target_names
from kilnc.resolve import absolute_module, module_file
from kilnc.source import SourceFile, Span, display_path, is_generated_module
from kilnc.syntax import chain_root, dotted

REEXPORT_DEPTH = 8  # how far `from .a import f` chains are followed through re-exports

# How a module's top level binds a name last: an import of its own submodule of
# that name (which binds it as the package's attribute), another import of the
# name, any other binding.
Binding = Literal["submodule", "import", "own"]


@final
@dataclass(frozen=True, slots=True)
class FrontEnd:
    """How a module of the project is read, and what is collected of it.

    `read` turns a file's source into the module every pass reads (parsed,
    its star imports resolved through the reader), or the diagnostic that
    says why it cannot; `collect` finds its definitions.
    """

    read: Callable[[SourceFile, Path, Reader], Located | Diagnostic]
    collect: Callable[[Located], tuple[ModuleDefs, list[Diagnostic]]]


class Reader:
    """The project's modules by absolute name, read by the front end, once each."""

    def __init__(self, root: Path, front: FrontEnd) -> None:
        self.root = root
        self.front = front
        self.parsed: dict[str, Located | None] = {}
        self.sources: dict[str, SourceFile] = {}  # every file read, by display path
        self.diagnostics: list[Diagnostic] = []

    def __call__(self, name: str) -> Located | None:
        if name in self.parsed:
            return self.parsed[name]
        self.parsed[name] = None  # also guards against import cycles while reading
        path = module_file(self.root, name)
        if path is None or is_generated_module(path):
            # A module kiln wrote is read as an installed package is: not read.
            return None
        source = SourceFile.from_bytes(display_path(path), name, path.read_bytes())
        self.sources[source.path] = source
        found = self.front.read(source, path, self)
        if isinstance(found, Diagnostic):
            self.diagnostics.append(found)
            return None
        self.parsed[name] = found
        return found


class Project:
    def __init__(self, main: ModuleDefs, reader: Reader) -> None:
        self.main = main
        self.root: Path = main.location.root
        self.reader = reader
        self.modules: dict[str, ModuleDefs | None] = {main.location.name: main}
        self._diagnostics: list[Diagnostic] = []
        self._attributes: dict[tuple[str, str], ImportedName | None] = {}

    @property
    def sources(self) -> dict[str, SourceFile]:
        """Every file read: the module compiled, and the project's modules it led to."""
        return {main.path: main for main in [self.main.parsed.source]} | dict(
            self.reader.sources
        )

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.reader.diagnostics + self._diagnostics

    def load(self, name: str) -> ModuleDefs | None:
        if name in self.modules:
            return self.modules[name]
        self.modules[name] = None  # also guards against import cycles while loading
        found = self.reader(name)
        if found is None:
            return None
        defs, diagnostics = self.reader.front.collect(found)
        self._diagnostics += diagnostics
        self.modules[name] = defs
        return defs

    def attribute(self, module: str, name: str) -> ImportedName | None:
        """What `module`'s attribute `name` is once it is imported (`attribute_of`)."""
        key = (module, name)
        if key not in self._attributes:
            self._attributes[key] = attribute_of(self.load, module, name)
        return self._attributes[key]

    def follow(
        self, imported: ImportedName, path: Sequence[str]
    ) -> ImportedName | None:
        """What `local.a.b` means where `local` was bound by `imported` (`follow`)."""
        return follow(self.attribute, imported, path)

    def resolver(self, defs: ModuleDefs, *, final: bool = True) -> Resolver:
        """Which node or flow a call's function names where the flow calls it.

        `final=False`: the node or flow a name was bound to, even where the
        module binds it again, last to something else (for KLN317, which says
        the call is not the node's)."""
        cache: dict[str, tuple[Callee, bool] | None] = {}

        def resolve(func: cst.BaseExpression) -> tuple[Callee, bool] | None:
            written = dotted(func)
            if written is None:
                return None
            key = ".".join(map(identifier, written.split(".")))
            if key not in cache:
                cache[key] = (
                    (question(defs.parsed.source.path), False)
                    if _names_ask(defs, key)
                    else self._resolve(defs, key, final=final)
                )
            # Asked last: a name's scope links every binding of it (a flow's
            # `x = await step(x)`, each time), and most names are no callee.
            if cache[key] is None or _bound_locally(defs, func):
                return None
            return cache[key]

        return resolve

    def _resolve(
        self,
        defs: ModuleDefs,
        key: str,
        depth: int = REEXPORT_DEPTH,
        *,
        final: bool = True,
    ) -> tuple[Callee, bool] | None:
        head, *path = key.split(".")
        # The flow finds what the module's last binding of the name left there.
        last = final_binding(defs.parsed, head) if final else None
        if last is UNSURE:
            return None
        if not path:
            local = defs.local(key)
            if local is not None:
                sure = not final or binds_last(defs, key, local)
                return (local, True) if sure else None
        if key in defs.aliases:  # `alias = fetch`: what the name is bound to
            aliased = defs.aliases[key]
            if last is not None and bound_after(defs.parsed, aliased, last):
                return None  # the alias holds what `fetch` was, not what it is last
            return (
                self._resolve(defs, aliased, depth - 1, final=final) if depth else None
            )
        imported = defs.imports.get(head)
        if imported is None or (last is not None and not is_import(last)):
            return None
        found = self.follow(imported, path)
        if found is None or found.attribute is None:
            return None  # a module is no callee
        target = self.load(found.module)
        callee = target.local(found.attribute) if target is not None else None
        if (
            final
            and callee is not None
            and target is not None
            and not binds_last(target, found.attribute, callee)
        ):
            return None  # that module binds the name again, to something else
        if callee is None and target is not None and found.attribute in target.aliases:
            # A name that module binds to a node: `from .ops import get`, `get = fetch`.
            further = (
                self._resolve(target, found.attribute, depth - 1, final=final)
                if depth
                else None
            )
            callee = further[0] if further is not None else None
        return (callee, False) if callee is not None else None

    def nodes(self) -> list[NodeDef]:
        """Every node of every module read so far."""
        return [
            node
            for defs in self.modules.values()
            if defs
            for node in defs.nodes.values()
        ]


def question(path: str) -> NodeDef:
    """`kiln.ask` as a callee: a question, named and typed at each call (`lower`)."""
    return NodeDef(
        "ask",
        "kiln",
        NodeKind.ASYNC,
        NodeOptions("ask"),
        None,
        Span.at(path, 1),
        asks=True,
    )


def _names_ask(defs: ModuleDefs, key: str) -> bool:
    """Whether `ask` or `kiln.ask` (as the module imports it) is `kiln.ask`."""
    head, _, attribute = key.partition(".")
    imported = defs.imports.get(head)
    if imported is None:
        return False
    full = imported.module
    if imported.attribute is not None:
        full = f"{full}.{imported.attribute}"
    if attribute:
        full = f"{full}.{attribute}"
    return full in ASK_NAMES


def attribute_of(
    load: Callable[[str], ModuleDefs | None],
    module: str,
    name: str,
    depth: int = REEXPORT_DEPTH,
) -> ImportedName | None:
    """What `module`'s attribute `name` is once Python has imported `module`.

    `ImportedName(m, None)`: the module `m` (a package's submodule). `ImportedName(m,
    a)`: what module `m` binds to `a` itself (a function, a class, a value), or
    the attribute `a` of a module outside the project, as named. None: no
    such attribute, or one kiln cannot tell (bound by code, or too many
    re-exports deep). An import the module makes of the name is followed to
    what it imports; `from package import name` of a name the package binds
    none of imports the submodule `name`, as Python does.
    """
    defs = load(module)
    if defs is None:
        return ImportedName(module, name)
    binding = _binding(defs, name)
    submodule = f"{module}.{name}"
    if binding == "submodule" or (
        binding is None
        and defs.location.is_package
        and module_file(defs.location.root, submodule) is not None
    ):
        return ImportedName(submodule, None)
    if binding == "import":
        imported = defs.imports.get(identifier(name))
        if imported is None or depth == 0:
            return None  # imported in a block: kiln cannot tell which runs
        if imported.attribute is None:
            return imported
        return attribute_of(load, imported.module, imported.attribute, depth - 1)
    if binding == "own" or identifier(name) in defs.parsed.global_names:
        return ImportedName(module, name)
    return None


def follow(
    attribute: Callable[[str, str], ImportedName | None],
    imported: ImportedName,
    path: Sequence[str],
) -> ImportedName | None:
    """What `local.a.b` (`path` is `a`, `b`) means where `local` was bound by
    `imported`: through modules by `attribute` (`attribute_of`), then an
    object's attributes by name (`ImportedName(m, "Agent.describe")`)."""
    current: ImportedName | None = imported
    if imported.attribute is not None:
        current = attribute(imported.module, imported.attribute)
    for index, part in enumerate(path):
        if current is None:
            return None
        if current.attribute is not None:  # an object's attributes are no modules
            return ImportedName(
                current.module, ".".join([current.attribute, *path[index:]])
            )
        current = attribute(current.module, part)
    return current


def _binding(defs: ModuleDefs, name: str) -> Binding | None:
    """How the module's top level binds `name` last, as it runs."""
    name = identifier(name)
    location = defs.location
    submodule = f"{location.name}.{name}" if location.is_package else None
    found: Binding | None = None
    for statement in _run_in_order(defs.parsed.module):
        if isinstance(statement, cst.FunctionDef | cst.ClassDef):
            found = "own" if identifier(statement.name.value) == name else found
        elif isinstance(statement, cst.Import | cst.ImportFrom):
            loaded, bound = _imports(defs, statement, name)
            if submodule is not None and any(
                module == submodule or module.startswith(f"{submodule}.")
                for module in loaded
            ):
                found = "submodule"  # importing it binds it in its package
            if bound is not None:  # then the import binds the name: over it
                found = "submodule" if bound == submodule else "import"
        elif isinstance(statement, cst.Assign | cst.AnnAssign | cst.AugAssign):
            targets = (
                [t.target for t in statement.targets]
                if isinstance(statement, cst.Assign)
                else [statement.target]
            )
            if any(name in target_names(target) for target in targets):
                found = "own"
    return found


def _imports(
    defs: ModuleDefs, statement: cst.Import | cst.ImportFrom, name: str
) -> tuple[set[str], str | None]:
    """The modules an import statement loads, and what it binds `name` to, by its
    absolute name (`pkg.crawl` of `from . import crawl`), if it binds it."""
    root = defs.location.root
    if isinstance(statement, cst.Import):
        loaded = {_dotted_name(alias.name) for alias in statement.names}
        for alias in statement.names:
            if identifier(import_local_name(alias)) == name:
                whole = _dotted_name(alias.name)
                return loaded, whole if alias.asname else whole.split(".")[0]
        return loaded, None
    base = _dotted_name(statement.module) if statement.module is not None else ""
    module = absolute_module(defs.location, base, len(statement.relative))
    if module is None:
        return set(), None
    if isinstance(statement.names, cst.ImportStar):
        stars = defs.parsed.star_imports.get(statement, frozenset())
        return {module}, f"{module}.{name}" if name in stars else None
    loaded = {module}
    bound = None
    for alias in statement.names:
        whole = f"{module}.{_dotted_name(alias.name)}"
        if module_file(root, whole) is not None:
            loaded.add(whole)  # `from . import crawl` imports the submodule
        if identifier(import_local_name(alias)) == name:
            bound = whole
    return loaded, bound


def _run_in_order(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The statements a module's top level runs, small ones one by one, blocks'
    (an `if`'s, a `try`'s) in place; not the bodies of functions and classes."""
    for child in node.children:
        if isinstance(child, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            yield from child.body
        elif isinstance(child, cst.FunctionDef | cst.ClassDef):
            yield child
        elif not isinstance(child, cst.BaseExpression):
            yield from _run_in_order(child)


def _dotted_name(node: cst.BaseExpression) -> str:
    name = dotted(node)
    assert name is not None, "an import names a module or an attribute"
    return name


def _bound_locally(defs: ModuleDefs, func: cst.BaseExpression) -> bool:
    """Whether the name a call starts at is the function's own, or a
    comprehension's (`score = x + 1; score(2)`, `[score(s) for score in xs]`):
    a value the code binds, never the module's node or flow of that name."""
    root = chain_root(func)
    return isinstance(root, cst.Name) and any(
        "<locals>" in name for name in defs.parsed.qualified_names(root)
    )
