"""check_cycles and check_duplicates: whole-project checks between lowering and scheduling.

Example input: flow `a` awaits flow `b`, and `b` awaits `a`. Output, at the
call in `a`: "flows call each other in a cycle: a -> b -> a". Two nodes that
share a name (their function names, or `@node(name=...)`) would share events
and ledger keys, so the second is an error at its definition.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.ir import FlowDef, NodeDef
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
