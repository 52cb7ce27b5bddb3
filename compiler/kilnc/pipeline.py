"""compile_file: the passes in order, stopping after a phase that reported errors.

    parse_source -> collect_definitions -> lower_flow (each flow)
      -> check_duplicates, build_flow_graph + check_cycles
      -> schedule_flow (build_graph per block) -> shake_module
      -> emit_module -> format_module

Every error of a phase is reported before stopping. An exception inside a
pass is kiln's bug, reported as an internal error naming the phase and the
definition it was working on, never as the user's mistake.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import final

import libcst as cst

from kilnc.checks import (
    check_cycles,
    check_duplicates,
    check_limits,
    check_visit_limits,
)
from kilnc.collect import check_imported_exceptions, collect_definitions
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.emit import emit_module
from kilnc.format import TooDeep, format_module
from kilnc.graph import build_flow_graph, build_graph, build_loop_graph
from kilnc.ir import DEFAULT_MAX_VISITS, Block, FlowIR, NodeDef, dump_block
from kilnc.linemap import map_lines
from kilnc.lower import LowerContext, lower_flow
from kilnc.names import BUILTINS, mentioned_names
from kilnc.parse import ParsedModule, parse_source
from kilnc.plan import (
    Compiled,
    FallbackImport,
    FlowPlan,
    Kept,
    ModulePlan,
    PolicyConstant,
    dump_plan,
)
from kilnc.project import Project
from kilnc.resolve import locate
from kilnc.schedule import schedule_flow
from kilnc.shake import Shaken, fingerprint, shake_module
from kilnc.source import SourceFile, Span, display_path
from kilnc.writer import Names


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
) -> Compilation:
    """Compile one source; `max_visits` is the default of flows that set none, and
    `ledger` the default ledger of its cached nodes, relative to where the module
    is written (both from [tool.kiln])."""
    shown = display_path(path)
    location = locate(path)
    source = SourceFile.from_bytes(shown, location.name, path.read_bytes())
    try:
        try:
            visits = max_visits or DEFAULT_MAX_VISITS
            return _compile(source, path, dump, visits, ledger)
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
) -> Compilation:
    location = locate(path)
    with phase("parse_source", source.path):
        parsed = parse_source(source)
    if isinstance(parsed, Diagnostic):
        return Compilation(source, None, (parsed,), {source.path: source})
    with phase("collect_definitions", source.path):
        defs, diagnostics = collect_definitions(parsed, location)
    project = Project(defs)
    diagnostics += check_imported_exceptions(defs, project.load)
    lowered: list[FlowIR] = []
    for flow in defs.flows.values():
        with phase("lower_flow", f"flow '{flow.name}'"):
            flow_ir, found = lower_flow(
                flow, LowerContext(parsed, project.resolver(defs), max_visits)
            )
        lowered.append(flow_ir)
        diagnostics += found
    with phase("check", source.path):
        diagnostics += project.diagnostics
        diagnostics += check_duplicates(project.nodes())
        diagnostics += check_cycles(build_flow_graph(lowered))
        for flow_ir in lowered:
            diagnostics += check_limits(flow_ir)
    sources = dict(project.sources)

    def done(output: str | None, dumps: tuple[str, ...] = ()) -> Compilation:
        return Compilation(
            source, output, tuple(diagnostics), sources, dumps, flows=tuple(lowered)
        )

    if any(d.is_error for d in diagnostics):
        return done(None)
    if not lowered:
        return done(None)
    plans: list[FlowPlan] = []
    for flow_ir in lowered:
        with phase("schedule_flow", f"flow '{flow_ir.flow.name}'"):
            plans.append(schedule_flow(flow_ir))
    with phase("shake_module", source.path):
        shaken, found = shake_module(
            parsed, location, {ir.flow.identifier: ir.flow.function for ir in lowered}
        )
    diagnostics += found
    if any(d.is_error for d in diagnostics):
        return done(None)
    with phase("emit_module", source.path):
        paths = {shown: _project_path(Path(shown)) for shown in sources}
        fingerprints = _fingerprints(project, lowered)
        arranged = _arrange(
            source, parsed, shaken, plans, lowered, sources, paths, fingerprints
        )
        module = replace(
            arranged,
            ledger=ledger,
            module_names=parsed.global_names,
            star_import=parsed.star_import,
        )
        text, origins = emit_module(module)
    with phase("format_module", source.path):
        try:
            formatted = format_module(text)
        except TooDeep as deep:
            diagnostics.append(
                _too_deep(source, map_lines(text, origins, deep.text), deep)
            )
            return done(None)
        line_map = map_lines(text, origins, formatted)
    return replace(done(formatted, _dumps(dump, lowered, plans)), line_map=line_map)


def _arrange(
    source: SourceFile,
    parsed: ParsedModule,
    shaken: Shaken,
    plans: list[FlowPlan],
    lowered: list[FlowIR],
    sources: dict[str, SourceFile],
    paths: dict[str, str],
    fingerprints: dict[NodeDef, str],
) -> ModulePlan:
    """The output in source order, with each resilient node's Policy after its definition.

    A node imported from another module gets its Policy (and its fallback, imported
    under a reserved name) just before the first flow, after every kept import.
    """
    # A flow's class must hide nothing: not a builtin, nor a name of unknown origin.
    names = Names(parsed.global_names | BUILTINS | mentioned_names(parsed.module))
    called = {
        c.callee for ir in lowered for c in ir.calls if isinstance(c.callee, NodeDef)
    }
    local = {node.function: node for node in called if node.module == source.module}
    policies = {
        node: names.plain(f"_KILN_POLICY_{node.function.upper()}")
        for node in sorted(called, key=lambda n: (n.module, n.function))
        if node.options.resilient
    }
    fallbacks: dict[NodeDef, str] = {}
    imported: list[PolicyConstant | FallbackImport] = []
    for node in sorted(called, key=lambda n: (n.module, n.function)):
        fallback = node.options.fallback
        if fallback is not None and node.module == source.module:
            fallbacks[node] = fallback
        elif fallback is not None:
            fallbacks[node] = names.plain(f"_KILN_FALLBACK_{fallback.upper()}")
            imported.append(FallbackImport(fallbacks[node], node.module, fallback))
        if node in policies and node.module != source.module:
            imported.append(
                PolicyConstant(policies[node], node, _where(paths, node.span))
            )
    by_identifier = {plan.flow.flow.identifier: plan for plan in plans}
    body: list[Kept | PolicyConstant | FallbackImport | Compiled] = []
    # A flow's class lists its call sites, which name its nodes and subflows when
    # the module runs: a flow written above one it calls comes out below it.
    # (Flows never call each other in a cycle: KLN401.)
    waiting: list[tuple[Compiled, set[str]]] = []
    emitted: set[str] = set()  # the nodes and flows of this module defined so far
    for item, span in zip(shaken.body, shaken.spans, strict=True):
        if isinstance(item, str):
            body += imported
            imported = []
            plan = by_identifier[item]
            compiled = Compiled(plan, names.plain(_class_name(item)))
            needs = _local_callees(plan, local, by_identifier) - emitted
            waiting.append((compiled, needs))
        else:
            body.append(Kept(item, span))
            defined = (
                local.get(item.name.value)
                if isinstance(item, cst.FunctionDef)
                else None
            )
            if defined is not None and defined in policies:
                body.append(
                    PolicyConstant(
                        policies[defined], defined, _where(paths, defined.span)
                    )
                )
            if defined is not None:
                emitted.add(defined.function)
                for _, needs in waiting:
                    needs.discard(defined.function)
        while ready := [item for item in waiting if not item[1]]:
            waiting = [item for item in waiting if item[1]]
            for compiled, _ in ready:
                body.append(compiled)
                emitted.add(compiled.plan.flow.flow.identifier)
                for _, needs in waiting:
                    needs.discard(compiled.plan.flow.flow.identifier)
    body += [compiled for compiled, _ in waiting]
    return ModulePlan(
        source,
        paths[source.path],
        tuple(sources.values()),
        shaken.prelude,
        tuple(body),
        paths,
        policies,
        fallbacks,
        fingerprints,
    )


def _too_deep(
    source: SourceFile, line_map: tuple[Span | None, ...], deep: TooDeep
) -> Diagnostic:
    origin = line_map[deep.line - 1] if deep.line <= len(line_map) else None
    return error(
        origin or Span.at(source.path, 1),
        Code.TOO_COMPLEX,
        "the compiled flow nests blocks deeper than Python allows (20): each node "
        "call adds a `try` to the blocks around it",
        "move the innermost loops or branches into a node or a subflow",
    )


def _fingerprints(project: Project, lowered: list[FlowIR]) -> dict[NodeDef, str]:
    """The source hash of every cached node a flow calls, from the module defining it."""
    hashes: dict[NodeDef, str] = {}
    for flow_ir in lowered:
        for call in flow_ir.calls:
            node = call.callee
            if isinstance(node, NodeDef) and node.options.cache and node not in hashes:
                defs = project.modules[node.module]
                assert defs is not None, "a called node's module was loaded"
                hashes[node] = fingerprint(defs.parsed, node.function, defs.flows)
    return hashes


def _local_callees(
    plan: FlowPlan, nodes: dict[str, NodeDef], flows: dict[str, FlowPlan]
) -> set[str]:
    """The names of the nodes and flows of this module that a flow calls."""
    return {
        name
        for call in plan.flow.calls
        for name in (
            [call.callee.function]
            if isinstance(call.callee, NodeDef)
            else [call.callee.identifier] if call.local else []
        )
        if name in nodes or name in flows
    }


def _where(paths: dict[str, str], span: Span) -> str:
    return f"{paths.get(span.path, span.path)}:{span.line}"


def _class_name(identifier: str) -> str:
    words = [w for w in identifier.split("_") if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Flow"


def _project_path(path: Path) -> str:
    """The source path relative to the project root: the nearest pyproject.toml, else the
    directory imports start from."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if (parent / "pyproject.toml").is_file():
            return resolved.relative_to(parent).as_posix()
    return resolved.relative_to(locate(resolved).root).as_posix()


def _dumps(
    dump: str | None, lowered: list[FlowIR], plans: list[FlowPlan]
) -> tuple[str, ...]:
    if dump is None:
        return ()
    listings = []
    for flow_ir, plan in zip(lowered, plans, strict=True):
        title = f"flow {flow_ir.flow.name}"
        if dump == "ir":
            listings.append(f"{title}\n{dump_block(flow_ir.body, '    ')}")
        elif dump == "graph":
            report = check_visit_limits(flow_ir, build_loop_graph(flow_ir))
            loops = "\n".join(f"    {line}" for line in report.lines())
            listings.append(f"{title}\n{_dump_graph(flow_ir.body)}\n{loops}")
        else:
            listings.append(f"{title}\n{_indent(dump_plan(plan.plan(flow_ir.body)))}")
    return tuple(listings)


def _dump_graph(block: Block) -> str:
    graph = build_graph(block)
    edges = sorted(graph.edges)
    lines = [f"    s{a} -> s{b}" for a, b in edges] or ["    (no edges)"]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())
