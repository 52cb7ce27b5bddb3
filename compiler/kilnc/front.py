"""The front end's data: a parsed module, where it is, and what is collected from it.

`parse_source` makes a `ParsedModule` (libcst's module with positions and
qualified names), `resolve_star_imports` adds the names its star imports
bind (`StarName`), and `collect_definitions` finds its nodes, flows and
imports (`ModuleDefs`). Every later pass reads these; none changes them.
The qualified names below are how kiln recognises its own decorators and
types however a module imported them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, final

import libcst as cst
from libcst.metadata import CodeRange, QualifiedName

from kilnc.ir import Callee, FlowDef, NodeDef
from kilnc.names import identifier
from kilnc.resolve import ModuleLocation
from kilnc.source import SourceFile, Span

MEMORY_TYPES: Final = frozenset({"kiln.Memory", "kiln.memory.Memory"})
ASK_NAMES: Final = frozenset({"kiln.ask", "kiln.decorators.ask"})
NODE_DECORATORS: Final = frozenset({"kiln.node", "kiln.decorators.node"})
FLOW_DECORATORS: Final = frozenset({"kiln.flow", "kiln.decorators.flow"})
KILN_DECORATORS: Final = NODE_DECORATORS | FLOW_DECORATORS


@final
@dataclass(frozen=True, slots=True)
class StarName:
    """A name `from module import *` binds: where it comes from, what it is there."""

    module: str  # the module the star import names, absolute
    qualified: str  # `kiln.node` when that module imported `node` from kiln


# Compared and hashed by identity: the passes key tables by the module they
# read (collect_definitions' cache), and its fields are a whole tree and dicts.
@final
@dataclass(frozen=True, slots=True, eq=False)
class ParsedModule:
    source: SourceFile
    module: cst.Module = field(repr=False)
    positions: Mapping[cst.CSTNode, CodeRange] = field(repr=False)
    qualified: Mapping[cst.CSTNode, Collection[QualifiedName]] = field(repr=False)
    global_names: frozenset[str]  # every name bound at module level
    # `from x import *` at module level that kiln could not resolve (see `stars`):
    # any name may be defined.
    star_import: bool
    # The names resolved star imports bind (`resolve_star_imports`), and which
    # names each of those imports binds.
    stars: Mapping[str, StarName] = field(default_factory=dict, repr=False)
    star_imports: Mapping[cst.ImportFrom, frozenset[str]] = field(
        default_factory=dict, repr=False
    )

    def span(self, node: cst.CSTNode) -> Span:
        found = self.positions.get(node)
        if found is None:  # a node the compiler made itself: no position of its own
            return Span.at(self.source.path, 1)
        start, end = found.start, found.end
        column = self.source.column
        return Span(
            self.source.path,
            start.line,
            column(start.line, start.column) + 1,
            end.line,
            column(end.line, end.column) + 1,
        )

    def is_memory(self, annotation: cst.Annotation | None) -> bool:
        """Whether an annotation names `kiln.Memory`, however it was imported."""
        if annotation is None:
            return False
        return bool(self.qualified_names(annotation.annotation) & MEMORY_TYPES)

    def is_ask(self, func: cst.BaseExpression) -> bool:
        """Whether a call's function is `kiln.ask`, however it was imported."""
        return bool(self.qualified_names(func) & ASK_NAMES)

    def qualified_names(self, node: cst.CSTNode) -> frozenset[str]:
        found: object = self.qualified.get(node, ())
        if callable(found):  # newer libcst computes qualified names lazily
            found = found()
        assert isinstance(found, Collection)
        names = frozenset(q.name for q in found if isinstance(q, QualifiedName))
        if not names and isinstance(node, cst.Name):
            # libcst sees no assignment of a name a star import binds.
            star = self.stars.get(identifier(node.value))
            if star is not None:
                return frozenset({star.qualified})
        return names


@final
@dataclass(frozen=True, slots=True)
class Located:
    parsed: ParsedModule = field(repr=False)
    location: ModuleLocation


@final
@dataclass(frozen=True, slots=True)
class ImportedName:
    """`from module import attribute as local`, or `import module as local` (attribute None)."""

    module: str
    attribute: str | None


@final
@dataclass(frozen=True, slots=True)
class ModuleDefs:
    parsed: ParsedModule = field(repr=False)
    location: ModuleLocation
    nodes: Mapping[str, NodeDef]  # by the function's identifier
    flows: Mapping[str, FlowDef]
    imports: Mapping[str, ImportedName]
    # Module-level names bound once to a dotted name (`alias = fetch`, `fetch =
    # node(retries=2)(_fetch)`, `Ops.fetch` of `class Ops: fetch =
    # staticmethod(_fetch)`): what each is bound to (node_forms.py).
    aliases: Mapping[str, str] = field(default_factory=dict)

    def local(self, name: str) -> Callee | None:
        name = identifier(name)
        return self.nodes.get(name) or self.flows.get(name)
