"""check_cycles, check_duplicates, check_limits: whole-project checks before scheduling.

Example input: flow `a` awaits flow `b`, and `b` awaits `a`. Output, at the
call in `a`: "flows call each other in a cycle: a -> b -> a". Two nodes that
share a name (their function names, or `@node(name=...)`) would share events
and ledger keys, so the second is an error at its definition. A call of a
`@node(limit="llm")` in a flow that declares no group "llm" is an error at the
call: the flow would have no capacity to give it.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.ir import FlowDef, FlowIR, NodeCall, NodeDef
from kilnc.source import Span


def check_cycles(flow_graph: nx.DiGraph) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for cycle in sorted(nx.simple_cycles(flow_graph), key=sorted):
        start = min(range(len(cycle)), key=lambda i: str(cycle[i]))
        ordered = cycle[start:] + cycle[:start]
        names = [_name(flow_graph, key) for key in ordered]
        span = flow_graph.edges[ordered[0], ordered[(1) % len(ordered)]]["span"]
        assert isinstance(span, Span)
        path = " -> ".join([*names, names[0]])
        diagnostics.append(
            error(
                span,
                Code.FLOW_CYCLE,
                f"flows call each other in a cycle: {path}",
                "a flow cannot call itself, directly or through other flows; use a loop",
            )
        )
    return diagnostics


def check_limits(flow: FlowIR) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    options = flow.flow.options
    for call in flow.calls:
        node = call.callee
        if not isinstance(node, NodeDef) or node.options.limit is None:
            continue
        group = node.options.limit
        if not flow.flow.declares(group):
            groups = [spec.group for spec in options.limits]
            declared = ", ".join(
                map(repr, [*groups, *(flow.flow.refused_limits or ())])
            )
            diagnostics.append(
                error(
                    call.span,
                    Code.UNDECLARED_LIMIT,
                    f"node '{node.name}' takes capacity from limit group {group!r}, "
                    f"which flow '{flow.flow.name}' does not declare",
                    f"add limits={{{group!r}: Limit(capacity)}} to @flow"
                    + (f" (it declares {declared})" if declared else ""),
                )
            )
    return diagnostics


def check_questions(lowered: Iterable[FlowIR]) -> list[Diagnostic]:
    """A question name asked with two types by a flow and the subflows it calls here.

    The flow's generated `resume` takes one keyword per name, of one type.
    (In one flow, `lower` reports it at the second `ask`.)
    """
    by_flow = {flow_ir.flow: flow_ir for flow_ir in lowered}
    found: list[Diagnostic] = []
    for flow_ir in by_flow.values():
        asked: dict[str, NodeCall] = {}
        pending, seen = [flow_ir], set()
        while pending:
            current = pending.pop()
            if current.flow in seen:
                continue
            seen.add(current.flow)
            for call in current.calls:
                callee = call.callee
                if isinstance(callee, FlowDef) and callee in by_flow:
                    pending.append(by_flow[callee])
                elif isinstance(callee, NodeDef) and callee.asks:
                    first = asked.setdefault(callee.name, call)
                    first_type = (
                        first.callee.returns
                        if isinstance(first.callee, NodeDef)
                        else None
                    )
                    if first_type != callee.returns and current is not flow_ir:
                        found.append(
                            error(
                                call.span,
                                Code.QUESTION_SHAPE,
                                f"question {callee.name!r} is asked with type "
                                f"{callee.returns} here and with {first_type} at "
                                f"{first.span.path}:{first.span.line}, in a run of "
                                f"flow '{flow_ir.flow.name}'",
                                "give each a name of its own, or one type",
                            )
                        )
    return sorted(set(found), key=lambda d: (d.span.line, d.span.column))


def check_duplicates(nodes: Iterable[NodeDef]) -> list[Diagnostic]:
    first: dict[str, NodeDef] = {}
    diagnostics: list[Diagnostic] = []
    for node in sorted(nodes, key=lambda n: (n.span.path, n.span.line)):
        seen = first.setdefault(node.name, node)
        if seen is not node:
            diagnostics.append(
                error(
                    node.span,
                    Code.DUPLICATE_NODE,
                    f"a node named '{node.name}' is already defined at {seen.span.location()}",
                    "give one of them another name with @node(name=...)",
                )
            )
    return diagnostics


def _name(graph: nx.DiGraph, key: str) -> str:
    flow = graph.nodes[key]["flow"]
    assert isinstance(flow, FlowDef)
    return flow.name
