"""dump_listings: what `kiln compile --dump ir|graph|plan|schema` prints of a module.

Example input: `--dump graph` for a module with the flow::

    @flow
    async def digest(path: str) -> list[str]:
        paragraphs = await load(path)
        summaries = [await summarize(p) for p in paragraphs]
        return summaries

Output (a fan-out over a list of unknown length has no bound)::

    flow digest
        s0 -> s1  (paragraphs)
        s1 -> s2  ((barrier), summaries)
        worst case: unbounded node executions

`ir` lists each flow's steps with what they read and write (`dump_block`),
`graph` the dependency edges of its top block and its loops
(`report_visit_limits`), `plan` the scheduler's plan with why each task waits
(`dump_plan`), `schema` one JSON array of the flows' argument and result
schemas (`flow_schema`). One listing per flow, in source order; `schema` is
one listing for the file.
"""

from __future__ import annotations

import json

from kilnc.graph import build_graph, build_loop_graph
from kilnc.ir import Block, Call, FanOut, FlowIR, child_blocks
from kilnc.loops import report_visit_limits
from kilnc.plan import FlowPlan, dump_plan
from kilnc.project import Project
from kilnc.schema import flow_schema


def dump_listings(
    dump: str | None, lowered: list[FlowIR], plans: list[FlowPlan], project: Project
) -> tuple[str, ...]:
    if dump is None:
        return ()
    if dump == "schema":  # the file's flows, in JSON: `kiln compile` prints one array
        schemas = [
            {
                "file": project.main.parsed.source.path,
                **flow_schema(project, flow_ir.flow),
            }
            for flow_ir in lowered
        ]
        return (json.dumps(schemas),)
    listings = []
    for flow_ir, plan in zip(lowered, plans, strict=True):
        title = f"flow {flow_ir.flow.name}"
        if dump == "ir":
            listings.append(f"{title}\n{dump_block(flow_ir.body, '    ')}")
        elif dump == "graph":
            report = report_visit_limits(flow_ir, build_loop_graph(flow_ir))
            loops = "\n".join(f"    {line}" for line in report.lines())
            listings.append(f"{title}\n{_dump_graph(flow_ir.body)}\n{loops}")
        else:
            graph = build_graph(flow_ir.body)
            why = {(a, b): set(reasons) for a, b, reasons in graph.edges(data="why")}
            shown = dump_plan(plan.plan(flow_ir.body), why)
            listings.append(f"{title}\n{_indent(shown)}")
    return tuple(listings)


def _dump_graph(block: Block) -> str:
    graph = build_graph(block)
    lines = [
        f"    s{a} -> s{b}  ({', '.join(sorted(why))})"
        for a, b, why in sorted(graph.edges(data="why"))
    ]
    return "\n".join(lines or ["    (no edges)"])


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def dump_block(block: Block, indent: str = "") -> str:
    """A readable listing of a block: one line per step with its names."""
    lines: list[str] = []
    for step in block.steps:
        names = f"reads={sorted(step.reads)} writes={sorted(step.writes)}"
        extra = f" uses={sorted(step.uses)}" if step.uses else ""
        extra += f" key_reads={sorted(step.key_reads)}" if step.key_reads else ""
        extra += f" key_writes={sorted(step.key_writes)}" if step.key_writes else ""
        extra += " external" if step.external else ""
        extra += "".join(f" {use.access.name.lower()}={n}" for n, use in step.state)
        extra += " barrier" if step.barrier else ""
        kind = type(step.action).__name__
        what = ""
        if isinstance(step.action, Call):
            what = f" {step.action.call.callee.name}"
        elif isinstance(step.action, FanOut):
            what = f" {step.action.result.callee.name} ({step.action.kind.value})"
        lines.append(
            f"{indent}s{step.id} line {step.span.line}: {kind}{what} {names}{extra}"
        )
        for child in child_blocks(step.action):
            lines.append(dump_block(child, indent + "    "))
    return "\n".join(lines)
