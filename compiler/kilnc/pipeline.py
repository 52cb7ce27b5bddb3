"""compile_file: the passes in order, stopping after a phase that reported errors.

    parse_source -> resolve_star_imports -> collect_definitions
      -> check_imports (the modules the module imports read, and checked)
      -> read_effects, lower_flow (each flow)
      -> the checks: check_duplicates, check_flows_in_nodes, check_node_values,
         check_cycles (build_flow_graph), check_questions, check_storable,
         check_limits and check_order (each flow), check_imported_flows, check_copies
      -> fingerprint_node (each cached node; the file of one imported from its
         source), find_result_classes (each callee)
      -> schedule_flow (each flow) -> shake_module
      -> arrange_module -> emit_module -> format_module -> map_lines

The project's other modules, which the passes read on demand (project.py),
and the sources plan_tree and with_imported_flows read (packages.py), go
through the same front end, FRONT_END: parse_source and resolve_star_imports,
then collect_definitions once a name leads to them.

Every error of a phase is reported before stopping. An exception inside a
pass is kiln's bug, reported as an internal error naming the phase and the
definition it was working on, never as the user's mistake.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, final

from kiln.options import DEFAULT_MAX_VISITS
from kilnc.annotations import type_variables
from kilnc.arrange import Classes, arrange_module
from kilnc.checks import check_cycles, check_duplicates, check_limits, check_questions
from kilnc.collect import check_imported_exceptions, collect_definitions
from kilnc.copies import check_copies
from kilnc.depth import run_deep
from kilnc.diagnostics import Code, Diagnostic, Severity, error
from kilnc.dumps import dump_listings
from kilnc.effects import read_effects
from kilnc.effects.program import unread_warnings
from kilnc.emit import emit_module
from kilnc.fingerprint import fingerprint_node
from kilnc.format import TooDeep, format_module
from kilnc.front import Located, ModuleDefs, ParsedModule
from kilnc.graph import build_flow_graph
from kilnc.imports import check_imports
from kilnc.ir import Callee, FlowIR, NodeDef
from kilnc.linemap import map_lines
from kilnc.lower import LowerContext, Lowering, annotation_names
from kilnc.node_checks import check_flows_in_nodes
from kilnc.node_values import check_node_values
from kilnc.ordering import check_order
from kilnc.packages import check_imported_flows
from kilnc.parse import parse_source
from kilnc.plan import STANDALONE, FlowPlan, Links
from kilnc.project import FrontEnd, Project, Reader
from kilnc.resolve import ModuleLocation, locate
from kilnc.result_classes import find_result_classes, find_retry_classes
from kilnc.schedule import schedule_flow
from kilnc.shake import shake_module
from kilnc.site_lines import place_site_lines
from kilnc.source import SourceFile, Span, display_path
from kilnc.stars import Unresolved, resolve_star_imports
from kilnc.storable import check_storable

MAX_INDENTATION: Final = 100  # levels of indentation CPython's tokenizer takes


@final
@dataclass(frozen=True, slots=True)
class Compilation:
    source: SourceFile
    output: str | None  # None when there were errors, or no flow to compile
    diagnostics: tuple[Diagnostic, ...]
    sources: dict[str, SourceFile] = field(
        repr=False
    )  # every file read, by display path
    dumps: tuple[str, ...] = ()  # --dump listings, in flow order
    # The source position each line of `output` comes from, for `kiln check`.
    line_map: tuple[Span | None, ...] = field(default=(), repr=False)
    # The lowered flows, for `kiln graph`.
    flows: tuple[FlowIR, ...] = field(default=(), repr=False)

    @property
    def failed(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def warnings_as_errors(self) -> Compilation:
        """The compilation with each warning an error: it fails, and writes nothing."""
        if not any(d.severity is Severity.WARNING for d in self.diagnostics):
            return self
        promoted = tuple(replace(d, severity=Severity.ERROR) for d in self.diagnostics)
        return replace(self, output=None, diagnostics=promoted)


class InternalError(Exception):
    def __init__(self, phase: str, subject: str, cause: BaseException) -> None:
        super().__init__(f"{phase} ({subject}): {type(cause).__name__}: {cause}")
        self.phase = phase
        self.subject = subject
        self.details = "".join(traceback.format_exception(cause))


@contextmanager
def phase(name: str, subject: str) -> Iterator[None]:
    try:
        yield
    except InternalError:
        raise
    except Exception as exc:
        raise InternalError(name, subject, exc) from exc


def compile_file(
    path: Path,
    dump: str | None = None,
    max_visits: int | None = None,
    ledger: str | None = None,
    links: Links = STANDALONE,
) -> Compilation:
    """Compile one source; `max_visits` is the default of flows that set none,
    `ledger` the default ledger of its cached nodes, relative to where the module
    is written (both from [tool.kiln]), and `links` how it imports the other
    modules of its compile (packages.py)."""
    shown = display_path(path)
    location = locate(path)
    source = SourceFile.from_bytes(shown, location.name, path.read_bytes())
    try:
        try:
            visits = max_visits or DEFAULT_MAX_VISITS
            return run_deep(lambda: _compile(source, path, dump, visits, ledger, links))
        except InternalError:
            raise
        except (
            Exception
        ) as exc:  # outside a named phase: still kiln's bug, never a traceback
            raise InternalError("the pipeline", source.path, exc) from exc
    except InternalError as exc:
        diagnostic = error(
            Span.at(shown, 1),
            Code.INTERNAL,
            f"internal error in kiln while running {exc.phase} on {exc.subject}",
            "this is a bug in kiln, not in your code; please report it with this file",
        )
        return Compilation(source, None, (diagnostic,), {shown: source}, (exc.details,))


def _compile(
    source: SourceFile,
    path: Path,
    dump: str | None,
    max_visits: int,
    ledger: str | None,
    links: Links,
) -> Compilation:
    location = locate(path)
    with phase("parse_source", source.path):
        parsed = parse_source(source)
    if isinstance(parsed, Diagnostic):
        return Compilation(source, None, (parsed,), {source.path: source})
    reader = Reader(location.root, FRONT_END)
    with phase("resolve_star_imports", source.path):
        parsed, unresolved = resolve_star_imports(parsed, location, reader)
    with phase("collect_definitions", source.path):
        defs, diagnostics = collect_definitions(parsed, location)
    if defs.flows and _imports_refused(
        parsed, location, reader, unresolved, diagnostics
    ):
        return Compilation(
            source,
            None,
            (*diagnostics, *reader.diagnostics),
            {source.path: source} | reader.sources,
        )
    project = Project(defs, reader)
    diagnostics += check_imported_exceptions(defs, project.load)
    lowered = _lower_flows(defs, project, max_visits, diagnostics)
    with phase("check", source.path):
        diagnostics += _check(project, lowered)
        diagnostics += _check_links(defs, lowered, links, project)
    sources = dict(project.sources)

    def done(output: str | None, dumps: tuple[str, ...] = ()) -> Compilation:
        return Compilation(
            source, output, tuple(diagnostics), sources, dumps, flows=tuple(lowered)
        )

    if any(d.is_error for d in diagnostics):
        return done(None)
    if not lowered:
        return done(None)
    cached = _cached_nodes(lowered)
    with phase("fingerprint_node", source.path):
        fingerprints = {node: fingerprint_node(project, node) for node in cached}
    with phase("find_result_classes", source.path):
        # Every callee's, not only the cached ones': a durable run journals all.
        results = {
            callee: find_result_classes(project, callee) for callee in _callees(lowered)
        }
        retry_on = {
            callee: find_retry_classes(project, callee)
            for callee in _callees(lowered)
            if isinstance(callee, NodeDef) and callee.options.retry_on
        }
    sources = dict(project.sources)  # the modules the fingerprints reach, too
    live = _imported_live(cached, source, links, sources)
    plans: list[FlowPlan] = []
    for flow_ir in lowered:
        with phase("schedule_flow", f"flow '{flow_ir.flow.name}'"):
            plans.append(schedule_flow(flow_ir))
    with phase("shake_module", source.path):
        shaken, found = shake_module(
            parsed,
            location,
            {ir.flow.identifier: ir.flow.function for ir in lowered},
            links,
            frozenset().union(*(annotation_names(ir.body) for ir in lowered)),
            project.load,
        )
    diagnostics += found
    if any(d.is_error for d in diagnostics):
        return done(None)
    with phase("arrange_module", source.path):
        arranged = arrange_module(
            source,
            defs,
            shaken,
            plans,
            lowered,
            sources,
            fingerprints,
            live,
            Classes(results, retry_on),
            ledger,
            links.compiled,
        )
        module = replace(arranged, source_path=links.source_path)
    with phase("emit_module", source.path):
        text, origins, tables = emit_module(module)
    with phase("format_module", source.path):
        try:
            formatted = format_module(text)
        except TooDeep as deep:
            if deep.indentation:  # black's text does not parse: map the emitter's
                diagnostics.append(_too_indented(source, text, origins))
            else:
                line_map = map_lines(text, origins, deep.text)
                diagnostics.append(_too_deep(source, line_map, deep))
            return done(None)
        formatted, line_map = place_site_lines(
            formatted, map_lines(text, origins, formatted), tables
        )
    return replace(
        done(formatted, dump_listings(dump, lowered, plans, project)), line_map=line_map
    )


def _imports_refused(
    parsed: ParsedModule,
    location: ModuleLocation,
    reader: Reader,
    unresolved: list[Unresolved],
    diagnostics: list[Diagnostic],
) -> bool:
    """The module's imports checked (their diagnostics added to `diagnostics`), and
    whether one is refused: an import Python refuses, or a module imported that does
    not parse. The flows would then be read without the names it binds, and every
    error found would follow from that one."""
    with phase("check_imports", parsed.source.path):
        imported = check_imports(parsed, location, reader)
    said = {d.span for d in imported}  # a relative star import, reported once
    diagnostics += [
        d
        for star in unresolved
        if (d := _unresolved_star(parsed, star)).span not in said
    ]
    diagnostics += imported
    return bool(imported) or any(d.is_error for d in reader.diagnostics)


def _read_module(
    source: SourceFile, path: Path, reader: Reader
) -> Located | Diagnostic:
    """Another module of the project, read as `_compile` reads the one it compiles:
    parsed, its star imports resolved (an unresolved one is reported there only)."""
    parsed = parse_source(source)
    if isinstance(parsed, Diagnostic):
        return parsed
    # Named as the project imports it: `ns.flows` of `from ns.flows import f`,
    # though `ns/` has no `__init__.py` (a namespace package) and the file alone
    # would be the top-level module `flows`.
    location = ModuleLocation(source.module, reader.root, path.name == "__init__.py")
    parsed, _ = resolve_star_imports(parsed, location, reader)
    return Located(parsed, location)


def _collect_module(module: Located) -> tuple[ModuleDefs, list[Diagnostic]]:
    return collect_definitions(module.parsed, module.location)


# The front end of the project's other modules, read on demand by the passes
# (project.py) and by plan_tree and with_imported_flows (packages.py).
FRONT_END: Final = FrontEnd(_read_module, _collect_module)


def _lower_flows(
    defs: ModuleDefs, project: Project, max_visits: int, diagnostics: list[Diagnostic]
) -> list[FlowIR]:
    """Each flow of the module lowered, its effects read from the project's code."""
    effects = read_effects(project)
    # Asked at every call of a callee, answered once for each.
    generics = functools.cache(functools.partial(type_variables, project))

    def context(module: str) -> LowerContext | None:
        found = project.load(module)
        if found is None:
            return None
        resolver = project.resolver(found)
        outside = lowering.outside
        return LowerContext(
            found.parsed, resolver, effects, generics, outside, max_visits
        )

    # A subflow, here or in another module, is lowered once where a call asks.
    lowering = Lowering(context)
    lowered: list[FlowIR] = []
    for flow in defs.flows.values():
        with phase("lower_flow", f"flow '{flow.name}'"):
            flow_ir, found = lowering.lower(flow)
        lowered.append(flow_ir)
        diagnostics += found
    diagnostics += unread_warnings(effects.classes.program)  # program.py's KLN405
    return lowered


def _check(project: Project, lowered: list[FlowIR]) -> list[Diagnostic]:
    """The project-wide checks, and each flow's limits and effect orders."""
    found = [*project.diagnostics, *check_duplicates(project.nodes())]
    found += check_flows_in_nodes(project.main, project.resolver(project.main))
    found += check_node_values(project)
    found += check_cycles(build_flow_graph(lowered))
    found += check_questions(lowered)
    found += check_storable(project, lowered)
    for flow_ir in lowered:
        found += check_limits(flow_ir)
        found += check_order(flow_ir)
    return found


def _check_links(
    defs: ModuleDefs, lowered: list[FlowIR], links: Links, project: Project
) -> list[Diagnostic]:
    """How the module's output imports the others of its compile: the flows that
    will not run compiled, the objects it would reach the source's copy of."""
    found = check_imported_flows(defs, lowered, links, project.load)
    return found + check_copies(defs, links, project)


def _unresolved_star(parsed: ParsedModule, star: Unresolved) -> Diagnostic:
    return error(
        parsed.span(star.statement),
        Code.UNRESOLVED_IMPORT,
        f"kiln cannot tell which names 'from {star.module} import *' binds: "
        "it reads the project's modules and never imports one",
        f"import the names this module uses by name: 'from {star.module} import a, b'",
    )


def _too_deep(
    source: SourceFile, line_map: tuple[Span | None, ...], deep: TooDeep
) -> Diagnostic:
    origin = line_map[deep.line - 1] if deep.line <= len(line_map) else None
    return error(
        origin or Span.at(source.path, 1),
        Code.TOO_COMPLEX,
        "Python compiles this statement only just: inside the compiled flow's "
        "class and method it is nested deeper than Python's compiler allows",
        "split the deepest expression into smaller statements",
    )


def _too_indented(
    source: SourceFile, text: str, origins: tuple[Span | None, ...]
) -> Diagnostic:
    """Python tokenizes at most 100 levels of indentation; the first line past them."""
    deepest = next(
        (
            origins[index]
            for index, line in enumerate(text.splitlines())
            if len(line) - len(line.lstrip(" ")) >= 4 * MAX_INDENTATION
        ),
        None,
    )
    return error(
        deepest or Span.at(source.path, 1),
        Code.TOO_COMPLEX,
        "Python indents this statement only just: inside the compiled flow's "
        "class, and the `try` that notes a failed call, it needs more than "
        f"Python's {MAX_INDENTATION} levels of indentation",
        "move the innermost branches into a node or a subflow",
    )


def _cached_nodes(lowered: list[FlowIR]) -> list[NodeDef]:
    """Every cached node a flow calls, in the order of their first calls."""
    found = {
        call.callee: None
        for flow_ir in lowered
        for call in flow_ir.calls
        if isinstance(call.callee, NodeDef) and call.callee.options.cache
    }
    return list(found)


def _imported_live(
    cached: list[NodeDef],
    source: SourceFile,
    links: Links,
    sources: dict[str, SourceFile],
) -> dict[NodeDef, str]:
    """The sha256 of the file of each cached node the output imports from its source.

    A node of this module is copied into the output, and one of a module
    compiled with it comes from that module's output: their code is the code
    fingerprinted. Any other runs as its file is when the module runs, which
    the runtime checks against this (`kiln.stale`).
    """
    return {
        node: sources[node.span.path].digest
        for node in cached
        if node.module != source.module and node.module not in links.compiled
    }


def _callees(lowered: list[FlowIR]) -> list[Callee]:
    """Every node and subflow a flow calls (not its questions), in call order."""
    found = {
        call.callee: None
        for flow_ir in lowered
        for call in flow_ir.calls
        if not (isinstance(call.callee, NodeDef) and call.callee.asks)
    }
    return list(found)
