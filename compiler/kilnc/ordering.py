"""check_order: say where an effect costs concurrency a reader of the flow would expect.

Example input::

    @flow
    async def enrich(state: dict[str, int]) -> int:
        await fill(state)                 # fill assigns state["answer"]
        extra = await fetch(3)
        return await read(state) + extra

Output: a warning at `read(state)`: it waits for `fill` (line 3) because
`fill` may change `state`. `fetch` still overlaps both. Each block's graph
is built twice, with effects and with only the names steps bind and read; a
call that waits for another only in the first has lost the overlap its
reader expects, and the warning names the first edge that makes it wait.
A fan-out whose elements run one after another says why too.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import partial

import networkx as nx

from kilnc.diagnostics import Code, Diagnostic, warning
from kilnc.effect_ir import EVERY_PIECE, STATE_REASON, part_of
from kilnc.graph import BARRIER, EXTERNAL, STATE, VISIBLE, build_graph, step_of
from kilnc.ir import (
    RESERVED_PREFIX,
    Block,
    Call,
    FanOut,
    FlowIR,
    Step,
    StepId,
    child_blocks,
)
from kilnc.names import parameter_names, shown

CHANGE_HINT = (
    "return a new value instead of changing the one passed in, and they overlap"
)
KEY_HINT = (
    "give each branch its own literal key, or keep its values in its clone's "
    "local store (memory.local), and they overlap"
)
HELD_HINT = (
    "hand the nodes the Memory itself, not its store or a value it holds, "
    "and kiln orders them by the keys they use"
)
EXTERNAL_HINT = "move the call into a node, or after the steps that need to wait for it"
CONTEXT_HINT = (
    "pass the value to the nodes that need it, or reset the ContextVar in the node "
    "(token = VAR.set(value) ... VAR.reset(token)) where the calls after it need not "
    "see it"
)
YIELD_HINT = (
    "yield a new object each time (bind a new list after the yield, or yield a "
    "copy), and the elements overlap"
)
DRAW_HINT = (
    "yield what the elements need with each item instead of keeping it where "
    "drawing the next item changes it, and they overlap"
)
STATE_HINT = (
    "pass the value to the nodes that need it instead of keeping it in module "
    "state, and they overlap"
)


def check_order(flow: FlowIR) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    params = frozenset(parameter_names(flow.flow.function.params))
    for block in _blocks(flow.body):
        found += _lost_overlaps(block, params)
        for step in block.steps:
            action = step.action
            if isinstance(action, FanOut) and action.in_order and step.awaits:
                found.append(
                    warning(
                        step.span,
                        Code.EFFECT_ORDER,
                        f"the elements of this fan-out run one after another: "
                        f"{action.in_order}",
                        _in_order_hint(action.in_order, step),
                    )
                )
    return found


def _in_order_hint(in_order: str, step: Step) -> str:
    if in_order.startswith("the generator it iterates changes what it yielded"):
        return YIELD_HINT
    if in_order.startswith("drawing its items"):
        return DRAW_HINT
    if in_order.startswith("every element writes the same Memory"):
        return KEY_HINT
    if step.external is not None and in_order.startswith("each element calls"):
        return _external_hint(step)  # a call that keeps its place
    if " changes the module state " in in_order:  # `_in_order`'s, of a write
        return STATE_HINT
    return CHANGE_HINT


def _external_hint(step: Step) -> str:
    """The hint for a step kept in its place: one that sets a ContextVar for the
    steps after it, or a statement's (a subflow's among them)."""
    return CONTEXT_HINT if step.context else EXTERNAL_HINT


def _blocks(block: Block) -> Iterator[Block]:
    yield block
    for step in block.steps:
        if not isinstance(step.action, FanOut):
            for child in child_blocks(step.action):
                yield from _blocks(child)


def _lost_overlaps(block: Block, params: frozenset[str]) -> list[Diagnostic]:
    waiting = [step for step in block.steps if _overlaps(step)]
    if len(waiting) < 2:
        return []
    full = build_graph(block)
    plain = build_graph(block, effects=False)
    expected = nx.DiGraph()
    expected.add_nodes_from(full.nodes)
    for source, target, why in full.edges(data="why"):
        if not _surprising(why, plain, step_of(full, source), step_of(full, target)):
            expected.add_edge(source, target)
    before_full, before_expected = _ancestors(full), _ancestors(expected)
    found: list[Diagnostic] = []
    lost = {step: before_full[step] & ~before_expected[step] for step in full.nodes}
    said: set[StepId] = set()  # warned, or waiting only as what it reads from does
    for later_index, later in enumerate(waiting):
        lost_ones = lost[later.id]
        # What a call it reads from already waits for costs it nothing more: the
        # warning is that call's (`answer(ctx)` after `ctx = retrieve(store)`),
        # or the call's that one reads from, however far back.
        for source in expected.predecessors(later.id):
            if source in said:
                lost_ones &= ~lost[source]
        if not lost_ones:  # the common case: no scan of the steps before it
            said.add(later.id)
            continue
        last = next(
            (
                waiting[index]
                for index in range(later_index - 1, -1, -1)
                if lost_ones >> waiting[index].id & 1
            ),
            None,
        )
        if last is not None:
            found.append(_explain(full, plain, last, later, params))
            said.add(later.id)
    return found


def _ancestors(graph: nx.DiGraph) -> dict[StepId, int]:
    """Each step's ancestors as a bit set over step ids: linear in the edges."""
    found: dict[StepId, int] = {}
    for step in nx.topological_sort(graph):
        bits = 0
        for parent in graph.predecessors(step):
            bits |= found[parent] | (1 << parent)
        found[step] = bits
    return found


def _surprising(why: set[str], plain: nx.DiGraph, source: Step, target: Step) -> bool:
    """Whether an edge orders two steps only by effects a reader would not expect.

    Expected: the names they bind and read, barriers, and a Memory key both
    reach through one token (a value handed on through the same Memory).
    Surprising: a change of an argument, a statement with outside effects,
    and one global key written through two different clones.
    """
    plain_why = (
        plain.edges[source.id, target.id]["why"]
        if plain.has_edge(source.id, target.id)
        else set()
    )
    return all(_surprising_reason(r, plain_why, source, target) for r in why)


def _surprising_reason(
    reason: str, plain_why: set[str], source: Step, target: Step
) -> bool:
    if reason in plain_why or reason == BARRIER:
        return False
    if reason.startswith(("@l:", "@c:")):
        return False  # a local store belongs to one token
    if reason.startswith("@g:"):
        key = reason.split(":", 2)[2]
        return not (_tokens(source, key) & _tokens(target, key))
    return True


def _tokens(step: Step, key: str) -> set[str]:
    """The tokens whose local store the step reaches for `key` (or for every key)."""
    found: set[str] = set()
    for name in step.key_reads | step.key_writes:
        store, token, local_key = name.split(":", 2)
        if store == "@l" and local_key in (key, "*"):
            found.add(token)
    return found


def _overlaps(step: Step) -> bool:
    """Whether the step may suspend: what a reader expects to run beside others."""
    if isinstance(step.action, Call | FanOut):
        return step.awaits
    return any(_overlaps(inner) for b in child_blocks(step.action) for inner in b.steps)


def _explain(
    full: nx.DiGraph,
    plain: nx.DiGraph,
    earlier: Step,
    later: Step,
    params: frozenset[str],
) -> Diagnostic:
    path: list[StepId] = nx.shortest_path(full, earlier.id, later.id)
    covering = _covering(earlier, later) if len(path) > 2 else None
    if covering is not None:  # what orders it after every step before it
        message = f"{_what(later)} waits for {_with_line(earlier)} {covering[0]}"
        return warning(later.span, Code.EFFECT_ORDER, message, covering[1])
    reason = "because of an effect kiln cannot see through"
    hint: str | None = CHANGE_HINT
    for source_id, target_id in itertools.pairwise(path):
        source, target = step_of(full, source_id), step_of(full, target_id)
        plain_why = (
            plain.edges[source_id, target_id]["why"]
            if plain.has_edge(source_id, target_id)
            else set()
        )
        extra = [
            reason
            for reason in full.edges[source_id, target_id]["why"]
            if _surprising_reason(reason, plain_why, source, target)
        ]
        if extra:
            best = min(extra, key=partial(_rank, source, target, params))
            reason, hint = _because(best, source, target, params)
            break
    waited = _with_line(earlier)
    # Ordered through the steps between (a read between two commuting
    # changes): the reason may be theirs, so they are named, a statement
    # unless the reason names it.
    between = list(
        dict.fromkeys(
            _with_line(step)
            for step in map(partial(step_of, full), path[1:-1])
            if isinstance(step.action, Call | FanOut) or _what(step) not in reason
        )
    )
    if between:
        waited += f" through {', '.join(between)}"
    message = f"{_what(later)} waits for {waited} {reason}"
    return warning(later.span, Code.EFFECT_ORDER, message, hint)


def _covering(earlier: Step, later: Step) -> tuple[str, str | None] | None:
    """The reason `later` waits for every step before it (a statement with an
    outside effect, a change the caller sees), or every step after `earlier`
    waits for it: that says why it waits for `earlier`, whatever is between."""
    if later.visible and later.external is None:
        return _because(VISIBLE, earlier, later, frozenset())
    if later.external is not None or earlier.external is not None:
        return _because(EXTERNAL, earlier, later, frozenset())
    return None


def _own(step: Step) -> set[str]:
    """The names the step says it changes by its own code, not only as a call
    that reaches module state holding them (`sharing.py`)."""
    return {name for name, why in step.why if not why.startswith(STATE_REASON)}


def _rank(
    source: Step, target: Step, params: frozenset[str], reason: str
) -> tuple[bool, bool, bool, bool, bool, bool, bool, str]:
    """Which of an edge's reasons explains it best, least first: a name one step
    changes and the other is given; a statement kept in its place, a change
    the caller sees, a piece of module state both use; then a name either
    changes, one either is given, what the caller passed in; a name of the
    source's before one of kiln's temporaries."""
    crossed = _own(source) & target.reads | _own(target) & source.reads
    changed = {name for step in (source, target) for name, _ in step.why}
    return (
        reason not in crossed,
        not (reason.startswith(STATE) or reason in (EXTERNAL, VISIBLE)),
        reason not in _own(source) | _own(target),
        reason not in changed,
        reason not in source.reads | target.reads,
        reason not in params,
        reason.startswith(f"{RESERVED_PREFIX}_"),
        reason,
    )


def _because(
    name: str, source: Step, target: Step, params: frozenset[str]
) -> tuple[str, str | None]:
    if name.startswith(STATE):
        return _because_state(name.removeprefix(STATE), source, target), STATE_HINT
    if name == VISIBLE:
        named = [n for n, _ in target.why if not n.startswith("@")]
        # What the caller passed in is a parameter's object: name the parameter.
        given = sorted(n for n in target.uses if n in params)
        others = sorted(n for n in target.uses if not n.startswith("@"))
        changed = (named or given or others)[0]
        return (
            f"because {_what(target)} may change {shown(changed)}, which holds what "
            "the caller passed in: the caller sees the change even when the flow "
            "fails, and the source makes it only once every step before it has "
            "succeeded",
            CHANGE_HINT,
        )
    if name == EXTERNAL and target.external is not None:
        return (
            f"because the statement at line {target.span.line} "
            f"{target.external.reason}, and kiln keeps such a statement after "
            "every step before it",
            _external_hint(target),
        )
    if name == EXTERNAL:
        assert source.external is not None, "an external step orders the edge"
        return (
            f"because the statement at line {source.span.line} "
            f"{source.external.reason}, and kiln keeps every step after such a "
            "statement after it",
            _external_hint(source),
        )
    # The step that changes it where the other is given it, if either is.
    pairs = sorted(
        ((source, target), (target, source)), key=lambda pair: name not in pair[1].reads
    )
    for step, other in pairs:
        for changed, why in step.why:
            if changed != name:
                continue
            if name.startswith("@"):
                key = name.split(":", 2)[2]
                keys = "every key" if key == "*" else repr(key)
                return (
                    f"because {_what(step)} writes the Memory key {keys}, which "
                    f"{_what(other)} also uses, through another clone of the Memory",
                    KEY_HINT,
                )
            return (
                f"because {_what(step)} may change {shown(name)}: it {why}",
                _hint(step, why),
            )
    # Changed through a name that may hold the same object (`box` holding `xs`).
    for step, other in ((source, target), (target, source)):
        held = [
            (changed, why) for changed, why in step.why if not changed.startswith("@")
        ]
        every_key = (
            f"{name.rpartition(':')[0]}:*"  # a store all of whose keys it writes
        )
        if (name in step.uses or every_key in step.key_writes) and held:
            changed, why = held[0]
            return (
                f"because {_what(step)} may change {shown(changed)} (it {why}), "
                f"which may hold what {shown(name)} holds, and {_what(other)} uses "
                f"{shown(name)}",
                _hint(step, why),
            )
    # A key written of a Memory the name holds, is made over (`Memory(store)`)
    # or holds a value of (`held = memory["items"]`).
    for step, other in ((source, target), (target, source)):
        written = [c for c, _ in step.why if c.startswith(("@g:", "@l:"))]
        if name in step.uses and written and not name.startswith("@"):
            return (
                f"because {_what(step)} writes {shown(written[0])}, and "
                f"{shown(name)}, which {_what(other)} also uses, may be or hold "
                "that Memory, its store or the value at that key",
                HELD_HINT,
            )
    if name.startswith("@"):  # a Memory key: say which of the two writes it
        every = f"{name.rpartition(':')[0]}:*"
        writes = name in source.key_writes or every in source.key_writes
        writer, other = (source, target) if writes else (target, source)
        return (
            f"because {_what(writer)} writes {shown(name)}, which {_what(other)} "
            "also uses",
            KEY_HINT,
        )
    return (
        f"because {_what(target)} may change {shown(name)}, which {_what(source)} "
        "also uses",
        CHANGE_HINT,
    )


def _because_state(name: str, source: Step, target: Step) -> str:
    """`because 'warm' changes the module state 'app.SEEN' (...), which 'check'
    reads (...)`: each use, and where the code it runs makes it."""
    said = []
    for step in (source, target):
        # Its use of the piece, or of the whole object the piece is part of.
        use = max(
            ((whole, use) for whole, use in step.state if part_of(name, whole)),
            key=lambda found: len(found[0]),
        )[1]
        where = f"{use.where.reason}, at {use.where.span.location()}"
        said.append(f"{_what(step)} {use.access.value}")
        said.append(where)
    piece = "any module state" if name == EVERY_PIECE else f"the module state '{name}'"
    return f"because {said[0]} {piece} ({said[1]}), which {said[2]} ({said[3]})"


def _hint(changer: Step, why: str) -> str | None:
    """What to do about a change: a node can return a new value instead; a
    value kept in module state can be passed instead; the flow's own
    statement changes what it changes where the source does."""
    if why.startswith(STATE_REASON):
        return STATE_HINT
    return CHANGE_HINT if isinstance(changer.action, Call | FanOut) else None


def _with_line(step: Step) -> str:
    """`'fetch' (line 12)`; a statement says its line already."""
    if isinstance(step.action, Call | FanOut):
        return f"{_what(step)} (line {step.span.line})"
    return _what(step)


def _what(step: Step) -> str:
    action = step.action
    if isinstance(action, Call):
        return f"'{action.call.callee.name}'"
    if isinstance(action, FanOut):
        return f"the fan-out over '{action.result.callee.name}'"
    return f"the statement at line {step.span.line}"
