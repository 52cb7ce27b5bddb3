"""build_graph and build_flow_graph: the networkx graphs the checks and the scheduler read.

Example input (a block)::

    a = await fetch(x)          s0
    b = await fetch(y)          s1
    c = merge(a, b)             s2
    out.append(c)               s3   (an inline call: it may mutate `out` and `c`)

Output: a DiGraph with edges s0->s2, s1->s2 (data) and s2->s3 (data). s0 and
s1 have no path between them, so they run at the same time.

Edges follow the reader/writer discipline: a read waits for the latest write
of the name; a write (or a use that may mutate) also waits for every read
since that write. A barrier (return, raise, break, continue, or a compound
statement holding one) waits for every earlier step and holds back every
later one, so the source's control flow is kept exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from kilnc.ir import Block, FlowDef, FlowIR, Step, StepId


def build_graph(block: Block) -> nx.DiGraph:
    graph = nx.DiGraph()
    last_write: dict[str, StepId] = {}
    reads_since: dict[str, list[StepId]] = {}
    barrier: StepId | None = None
    earlier: list[StepId] = []  # since the last barrier
    for step in block.steps:
        graph.add_node(step.id, step=step)
        if barrier is not None:
            graph.add_edge(barrier, step.id)
        if step.barrier:
            # Waiting for the steps nothing else waits for covers every earlier step:
            # the transitive reduction keeps chains intact for the scheduler.
            for previous in earlier:
                if graph.out_degree(previous) == 0:
                    graph.add_edge(previous, step.id)
        for name in step.reads - step.uses:
            if name in last_write:
                graph.add_edge(last_write[name], step.id)
        for name in step.writes | step.uses:
            for previous in (last_write.get(name), *reads_since.get(name, ())):
                if previous is not None and previous != step.id:
                    graph.add_edge(previous, step.id)
        for name in step.reads - step.uses - step.writes:
            reads_since.setdefault(name, []).append(step.id)
        for name in step.writes | step.uses:
            last_write[name] = step.id
            reads_since[name] = []
        if step.barrier:
            barrier = step.id
            earlier = []
        earlier.append(step.id)
    return graph


def step_of(graph: nx.DiGraph, step_id: StepId) -> Step:
    step = graph.nodes[step_id]["step"]
    assert isinstance(step, Step)
    return step


def build_flow_graph(flows: Iterable[FlowIR]) -> nx.DiGraph:
    """Flows as nodes, an edge from each flow to every flow it calls (with the call's span)."""
    graph = nx.DiGraph()
    for flow_ir in flows:
        graph.add_node(_flow_key(flow_ir.flow), flow=flow_ir.flow)
        for call in flow_ir.calls:
            if isinstance(call.callee, FlowDef):
                graph.add_node(_flow_key(call.callee), flow=call.callee)
                graph.add_edge(
                    _flow_key(flow_ir.flow), _flow_key(call.callee), span=call.span
                )
    return graph


def _flow_key(flow: FlowDef) -> str:
    return f"{flow.module}.{flow.identifier}"
