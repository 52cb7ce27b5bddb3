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
later one, so the source's control flow is kept exactly. Module state orders
by the kind of each use (`Access`): a run of uses of one kind that commute
(reads, accumulations, fills) waits for the run before it, and is waited for
as a whole; a write is a run of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from kilnc.effect_ir import Access, part_of
from kilnc.ir import (
    Block,
    Call,
    FanOut,
    FlowDef,
    FlowIR,
    Step,
    StepId,
    WhileLoop,
    child_blocks,
)


def build_graph(block: Block, *, effects: bool = True) -> nx.DiGraph:
    """The block's dependency graph; each edge's `why` holds the names that order it.

    Without `effects`, only the values the steps bind and read order them (and
    barriers): the order a reader of the flow expects, against which the
    checks measure what effects cost.
    """
    graph = nx.DiGraph()
    last_write: dict[str, StepId] = {}  # the latest step to bind or change a name
    last_bind: dict[str, StepId] = {}  # the latest step to bind it
    reads_since: dict[str, list[StepId]] = {}
    barrier: StepId | None = None
    barrier_why = BARRIER
    earlier: list[StepId] = []  # since the last barrier
    keys = _every_key(block) if effects else {}
    runs: dict[str, _Run] = {}  # each piece of module state's latest run of uses
    pieces = {name for step in block.steps for name, _ in step.state}
    for step in block.steps:
        graph.add_node(step.id, step=step)
        if barrier is not None:
            _edge(graph, barrier, step.id, barrier_why)
        # A statement of the flow's with an effect outside its names (module
        # state, I/O) keeps its place among the steps: after every step
        # before it, before every step after it, which may read that state.
        external = effects and step.external is not None
        if step.barrier or external or (effects and step.visible):
            # Waiting for the steps nothing else waits for covers every earlier step:
            # the transitive reduction keeps chains intact for the scheduler.
            why = BARRIER if step.barrier else EXTERNAL if external else VISIBLE
            for previous in earlier:
                if graph.out_degree(previous) == 0:
                    _edge(graph, previous, step.id, why)
        uses = step.uses | _expand(step.key_writes, keys) if effects else frozenset()
        reads = step.reads | (_expand(step.key_reads, keys) if effects else frozenset())
        for name in reads | uses:
            # The value comes from the step that bound the name, even when a
            # later step changed the object: the scheduler hands it over there.
            if name in last_bind and last_bind[name] != step.id:
                _edge(graph, last_bind[name], step.id, name)
        for name in reads - uses:
            if name in last_write:
                _edge(graph, last_write[name], step.id, name)
        for name in step.writes | uses:
            for previous in (last_write.get(name), *reads_since.get(name, ())):
                if previous is not None and previous != step.id:
                    _edge(graph, previous, step.id, name)
        for name in reads - uses - step.writes:
            reads_since.setdefault(name, []).append(step.id)
        for name in step.writes | uses:
            last_write[name] = step.id
            reads_since[name] = []
        for name in step.writes:
            last_bind[name] = step.id
        for name, access in _spread(step, pieces) if effects else ():
            _order_state(graph, runs, name, access, step.id)
        if step.barrier or external:
            barrier = step.id
            barrier_why = BARRIER if step.barrier else EXTERNAL
            earlier = []
        earlier.append(step.id)
    return graph


BARRIER = "(barrier)"  # an edge's reason: return, raise, assert, break, continue
EXTERNAL = "(external)"  # an edge's reason: an effect outside the flow's names
VISIBLE = "(visible)"  # an edge's reason: a change the flow's caller sees


STATE = "@s:"  # an edge's reason: `@s:app.cache.SEEN`, a piece of module state


@dataclass(slots=True)
class _Run:
    """Uses of one piece of module state, of one kind, that need no order among
    themselves; `before` is the run they all wait for."""

    access: Access
    members: list[StepId]
    before: list[StepId] = field(default_factory=list)


def _spread(step: Step, pieces: set[str]) -> list[tuple[str, Access]]:
    """The step's uses of module state, a use of a whole object a use of each of
    its attributes the block uses (`app.GAUGE` of `app.GAUGE.now`)."""
    found: dict[str, Access] = {}
    for name, use in step.state:
        for piece in (p for p in pieces if part_of(p, name)):
            before = found.get(piece)
            found[piece] = use.access if before is None else before.join(use.access)
    return sorted(found.items())


def _order_state(
    graph: nx.DiGraph, runs: dict[str, _Run], name: str, access: Access, step: StepId
) -> None:
    run = runs.get(name)
    if run is not None and not run.access.conflicts(access):
        run.members.append(step)
        waits = run.before
    else:
        waits = run.members if run is not None else []
        runs[name] = _Run(access, [step], waits)
    for previous in waits:
        if previous != step:
            _edge(graph, previous, step, STATE + name)


def _edge(graph: nx.DiGraph, source: StepId, target: StepId, why: str) -> None:
    if graph.has_edge(source, target):
        graph.edges[source, target]["why"].add(why)
    else:
        graph.add_edge(source, target, why={why})


def _every_key(block: Block) -> dict[str, frozenset[str]]:
    """Each Memory store's keys used in the block, by the store's prefix `@g:root:`."""
    found: dict[str, set[str]] = {}
    for step in block.steps:
        for key in step.key_reads | step.key_writes:
            found.setdefault(_store(key), set()).add(key)
    return {store: frozenset(names) for store, names in found.items()}


def _expand(keys: frozenset[str], every: dict[str, frozenset[str]]) -> frozenset[str]:
    """`@g:root:*` stands for every key of that store the block uses."""
    expanded = set(keys)
    for key in keys:
        if key.startswith("@c:"):  # a clone copies one token's local store
            expanded |= every.get("@l" + _store(key)[2:], frozenset())
        elif key.endswith(":*"):
            expanded |= every.get(_store(key), frozenset())
    return frozenset(expanded)


def _store(key: str) -> str:
    """`@g:root` of `@g:root:name` (a key's own name may hold colons)."""
    store, owner, _ = key.split(":", 2)
    return f"{store}:{owner}"


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


def build_loop_graph(flow: FlowIR) -> nx.DiGraph:
    """Call sites and `while` headers, with each loop's back edges: its cycles.

    Example input: `while not await review(text): text = await revise(text)`.
    Output: nodes `while@12`, `review@12`, `revise@13`; edges from the header to
    each call site in the loop and back, so the loop is one strongly connected
    component whose call sites carry their visit bounds.
    """
    graph = nx.DiGraph()
    _add_loops(graph, flow.body, [])
    return graph


def _add_loops(graph: nx.DiGraph, block: Block, headers: list[str]) -> None:
    for step in block.steps:
        action = step.action
        calls = []
        if isinstance(action, Call):
            calls = [action.call]
        elif isinstance(action, FanOut):
            calls = [action.result]
        for call in calls:
            site = f"{call.callee.name}@{call.span.line}"
            graph.add_node(site, call=call)
            for header in headers:
                graph.add_edge(header, site)
                graph.add_edge(site, header)
        inner = headers
        if isinstance(action, WhileLoop):
            header = f"while@{step.span.line}"
            graph.add_node(header, call=None)
            inner = [*headers, header]
        if not isinstance(
            action, FanOut
        ):  # a fan-out counts as one visit of its call site
            for child in child_blocks(action):
                _add_loops(graph, child, inner)
