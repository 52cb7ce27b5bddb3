"""The project around a source file: its imported modules, read on demand, never imported.

A flow may call nodes and flows of other modules (`from .nodes import fetch`).
`Project.resolver(defs)` answers, for the function part of a call in `defs`'
module, which node or flow it names and whether that one is defined locally.
Modules are read (`Reader`) and collected once each, when a name first leads
to them, by the front end the pipeline hands in (`FrontEnd`, as
`pipeline.FRONT_END`): which passes read a module, and in what order, is the
pipeline's to say, for these modules as for the one it compiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import final

import libcst as cst

from kilnc.diagnostics import Diagnostic
from kilnc.front import ASK_NAMES, Located, ModuleDefs
from kilnc.ir import Callee, NodeDef, NodeKind, NodeOptions, Resolver
from kilnc.names import identifier
from kilnc.resolve import module_file
from kilnc.source import SourceFile, Span, display_path, is_generated_module
from kilnc.syntax import dotted

REEXPORT_DEPTH = 8  # how far `from .a import f` chains are followed through re-exports


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

    def resolver(self, defs: ModuleDefs) -> Resolver:
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
                    else self._resolve(defs, key)
                )
            return cache[key]

        return resolve

    def _resolve(self, defs: ModuleDefs, key: str) -> tuple[Callee, bool] | None:
        if "." not in key:
            local = defs.local(key)
            if local is not None:
                return local, True
            found = self._imported(defs, key, REEXPORT_DEPTH)
            return (found, False) if found is not None else None
        head, *middle, attribute = key.split(".")
        imported = defs.imports.get(head)
        if imported is None:
            return None
        base = (
            imported.module
            if imported.attribute is None
            else f"{imported.module}.{imported.attribute}"
        )
        # `import app.sub` binds `app`: `app.sub.inner` is `inner` of app.sub.
        target = self.load(".".join([base, *middle]))
        if target is None:
            return None
        callee = target.local(attribute) or self._imported(
            target, attribute, REEXPORT_DEPTH
        )
        return (callee, False) if callee is not None else None

    def _imported(self, defs: ModuleDefs, name: str, depth: int) -> Callee | None:
        imported = defs.imports.get(identifier(name))
        if imported is None or imported.attribute is None or depth == 0:
            return None
        target = self.load(imported.module)
        if target is None:
            return None
        return target.local(imported.attribute) or self._imported(
            target, imported.attribute, depth - 1
        )

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
