"""draw_flow: a lowered flow to a drawing of boxes, clusters and edges, for `kiln graph`.

Example input::

    @flow
    async def digest(path: str) -> str:
        paragraphs = load(path)
        summaries = [await summarize(p) for p in paragraphs]
        return join(summaries)

Output (as `text.to_mermaid` prints it)::

    subgraph f0 ["flow digest"]
      f0_in(["inputs<br>path: str"])
      f0_out(["result: str"])
      f0_s0["load<br>sync"]
      f0_s1[["summarize<br>async<br>× each p in paragraphs"]]
      f0_s2["join<br>sync"]
    end
    f0_in -->|"path"| f0_s0
    f0_s0 -->|"paragraphs"| f0_s1
    ...

An edge runs from the step that last wrote a name to each step that reads it,
as the scheduler orders them (ir.py's reads, writes and uses), through the
arms of branches and around loops: a loop's body is walked twice, so a value
carried from one iteration to the next is an edge back. A Memory token's
edges are ordering edges; a branch or a match is a decision box whose edges
to its arms carry the tests; `for` and `while` loops and fan-outs with lifted
arguments are clusters. Ids come from step ids, so the drawing is the same
for the same source.
"""  # noqa: RUF002 (the multiplication sign marks a fan-out, as `kiln graph` draws it)

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import libcst as cst

from kilnc.drawing.labels import (
    call_code,
    call_lines,
    cut,
    fan_out_items,
    flow_parameters,
    flow_title,
    is_temporary,
    result_label,
    shown_code,
)
from kilnc.drawing.model import Box, Cluster, Edge, EdgeKind, FlowDrawing, Shape
from kilnc.ir import (
    Action,
    Block,
    Branch,
    Call,
    FanOut,
    FlowIR,
    Inline,
    Loop,
    Match,
    NodeDef,
    Return,
    Step,
    WhileLoop,
    Yield,
)
from kilnc.names import name_uses, target_names
from kilnc.syntax import comprehension_targets

_MEMORY_TYPES: Final = frozenset({"Memory", "kiln.Memory"})


def draw_flow(flow: FlowIR, prefix: str) -> FlowDrawing:
    """The drawing of one flow; every id starts with `prefix` (e.g. "f0")."""
    drawer = _Drawer(flow, prefix)
    return drawer.draw()


# Where each name was last written: the boxes whose value a reader may see.
Defs = dict[str, tuple[str, ...]]


class _Drawer:
    def __init__(self, flow: FlowIR, prefix: str) -> None:
        self.flow = flow
        self.prefix = prefix
        self.boxes: dict[str, Box] = {}
        self.clusters: dict[str, tuple[str, list[str]]] = {
            prefix: (flow_title(flow), [])
        }
        self.open: list[str] = [prefix]
        self.edges: dict[tuple[str, str, EdgeKind], list[str]] = {}
        self.temporaries: dict[str, str] = {}  # lifted value -> the code it stands for
        self.tokens = flow.tokens
        # For each loop being drawn: the names at its breaks, and at its continues.
        self.loops: list[tuple[list[Defs], list[Defs]]] = []
        self.result = f"{prefix}_out"

    def draw(self) -> FlowDrawing:
        defs: Defs = {}
        parameters = flow_parameters(self.flow.flow)
        if parameters:
            box = self.box("in", Shape.INPUT, ("inputs", *(p for _, p in parameters)))
            defs = {name: (box,) for name, _ in parameters}
        self.box("out", Shape.RESULT, (result_label(self.flow.flow),))
        self.block(self.flow.body, defs)
        edges = tuple(
            Edge(source, target, kind, ", ".join(_shown(names)))
            for (source, target, kind), names in self.edges.items()
        )
        return FlowDrawing(self.cluster(self.prefix), edges)

    # --- the drawing being built ------------------------------------------------------

    def box(self, key: str, shape: Shape, lines: Iterable[str]) -> str:
        """Add a box once (a loop body is walked twice) to the innermost open cluster."""
        box_id = f"{self.prefix}_{key}"
        if box_id not in self.boxes:
            self.boxes[box_id] = Box(box_id, shape, tuple(cut(line) for line in lines))
            self.clusters[self.open[-1]][1].append(box_id)
        return box_id

    def enter(self, key: str, title: str) -> None:
        cluster_id = f"{self.prefix}_{key}"
        if cluster_id not in self.clusters:
            self.clusters[cluster_id] = (title, [])
            self.clusters[self.open[-1]][1].append(cluster_id)
        self.open.append(cluster_id)

    def leave(self) -> None:
        self.open.pop()

    def cluster(self, cluster_id: str) -> Cluster:
        title, members = self.clusters[cluster_id]
        return Cluster(
            cluster_id,
            title,
            tuple(
                self.boxes[m] if m in self.boxes else self.cluster(m) for m in members
            ),
        )

    def edge(self, source: str, target: str, kind: EdgeKind, name: str = "") -> None:
        if source == target:
            return
        names = self.edges.setdefault((source, target, kind), [])
        if name and name not in names:
            names.append(name)

    def ordered(self, step: Step) -> frozenset[str]:
        """Names the step may change, and the Memory tokens it reaches keys through.

        A drawing orders the steps handed one Memory by the token, the way a
        reader sees them; the scheduler orders them by the keys they touch.
        """
        if step.key_reads or step.key_writes:
            return step.uses | (step.reads & self.tokens)
        return step.uses

    def connect(self, target: str, reads: Iterable[str], defs: Defs) -> None:
        """Edges from the last writers of each name `target` reads."""
        for name in sorted(set(reads)):
            kind = EdgeKind.ORDER if name in self.tokens else EdgeKind.DATA
            for source in defs.get(name, ()):
                self.edge(source, target, kind, name)

    # --- walking the IR -------------------------------------------------------------
    #
    # Each walk takes the last writers of every name and returns the box it
    # starts at and the last writers after it, or None when control does not
    # come out of its end (a return, a raise, a break, a continue).

    def block(self, block: Block, defs: Defs) -> tuple[str | None, Defs | None]:
        entry: str | None = None
        ends = False
        for step in block.steps:
            first, after = self.step(step, defs)
            entry = entry or first
            if after is None:
                ends = True  # steps after it are drawn, though nothing reaches them
            else:
                defs = after
        return entry, None if ends else defs

    def step(self, step: Step, defs: Defs) -> tuple[str | None, Defs | None]:
        action = step.action
        if isinstance(action, Branch):
            return self.branch(step, action, defs)
        if isinstance(action, Match):
            return self.match(step, action, defs)
        if isinstance(action, Loop):
            return self.loop(step, action, defs)
        if isinstance(action, WhileLoop):
            return self.while_loop(step, action, defs)
        if isinstance(action, FanOut) and action.element.steps:
            return self.fan_out_cluster(step, action, defs)
        if isinstance(action, Return | Yield):
            self.connect(self.result, step.reads | self.ordered(step), defs)
            return self.result, None if isinstance(action, Return) else defs
        box = self.simple(step)
        self.connect(box, step.reads | self.ordered(step), defs)
        after = _written(defs, step.writes | self.ordered(step), box)
        return box, self.jump(action, after)

    def jump(self, action: Action, defs: Defs) -> Defs | None:
        """Where `raise`, `break` and `continue` take the names: not to the next step."""
        statement = action.statement if isinstance(action, Inline) else None
        if isinstance(statement, cst.Break | cst.Continue) and self.loops:
            exits, again = self.loops[-1]
            (exits if isinstance(statement, cst.Break) else again).append(defs)
            return None
        return None if isinstance(statement, cst.Raise) else defs

    def simple(self, step: Step) -> str:
        """The box of a step that holds no block: a call, a fan-out, an inline statement."""
        action = step.action
        key = f"s{step.id}"
        if isinstance(action, Call):
            self.remember(action.target, call_code(action.call, self.temporaries))
            callee = action.call.callee
            asks = isinstance(callee, NodeDef) and callee.asks
            shape = Shape.QUESTION if asks else Shape.CALL
            return self.box(key, shape, call_lines(action.call))
        if isinstance(action, FanOut):
            self.remember(action.target, self.display(action.comprehension))
            each = fan_out_items(action, self.display)
            return self.box(key, Shape.MAP, (*call_lines(action.result), each))
        assert isinstance(action, Inline)
        return self.box(key, Shape.INLINE, (self.display(action.statement),))

    def fan_out_cluster(
        self, step: Step, action: FanOut, defs: Defs
    ) -> tuple[str | None, Defs]:
        """A fan-out whose element lifts calls out of the call's arguments: a cluster."""
        self.enter(f"c{step.id}", "fan-out")
        head = self.box(
            f"s{step.id}_each", Shape.LOOP, (fan_out_items(action, self.display),)
        )
        targets = frozenset(
            name
            for target in comprehension_targets(action.clauses)
            for name in target_names(target)
        )
        self.connect(head, _clause_reads(action.clauses, targets), defs)
        inner = _written(defs, targets, head)
        _, element = self.block(action.element, inner)
        self.remember(action.target, self.display(action.comprehension))
        box = self.box(f"s{step.id}", Shape.MAP, call_lines(action.result))
        self.connect(box, name_uses(action.result.call).read_names, element or inner)
        self.leave()
        return head, _written(defs, step.writes | self.ordered(step), box)

    def branch(
        self, step: Step, action: Branch, defs: Defs
    ) -> tuple[str | None, Defs | None]:
        tests = [test for test in action.tests if test is not None]
        shown = f"if {self.display(tests[0])}"
        decision = self.box(f"s{step.id}", Shape.DECISION, (shown,))
        defs = self.decide(decision, tests, defs)
        labels = ["true"] + [
            "else" if test is None else f"elif {self.display(test)}"
            for test in action.tests[1:]
        ]
        exhaustive = action.tests[-1] is None
        after = self.arms(decision, step, action.arms, labels, defs, exhaustive)
        return decision, after

    def match(
        self, step: Step, action: Match, defs: Defs
    ) -> tuple[str | None, Defs | None]:
        subject = self.display(action.subject)
        decision = self.box(f"s{step.id}", Shape.DECISION, (f"match {subject}",))
        tested: list[cst.CSTNode] = [action.subject]
        tested += [case.guard for case in action.cases if case.guard is not None]
        defs = self.decide(decision, tested, defs)
        labels = []
        for case in action.cases:
            guard = f" if {self.display(case.guard)}" if case.guard is not None else ""
            labels.append(f"case {self.display(case.pattern)}{guard}")
            defs = _written(defs, frozenset(name_uses(case.pattern).writes), decision)
        exhaustive = any(
            _irrefutable(case.pattern, case.guard) for case in action.cases
        )
        arms = tuple(case.body for case in action.cases)
        return decision, self.arms(decision, step, arms, labels, defs, exhaustive)

    def decide(self, decision: str, tested: Iterable[cst.CSTNode], defs: Defs) -> Defs:
        """Edges into a decision from what its tests read; a walrus in a test writes."""
        written: set[str] = set()
        for node in tested:
            uses = name_uses(node)
            self.connect(decision, uses.read_names, defs)
            written |= uses.writes
        return _written(defs, frozenset(written), decision)

    def arms(
        self,
        decision: str,
        step: Step,
        arms: tuple[Block, ...],
        labels: list[str],
        defs: Defs,
        exhaustive: bool,
    ) -> Defs | None:
        """Each arm from the decision's state; after them, what any arm may have left."""
        results: list[Defs | None] = [] if exhaustive else [defs]
        for index, (arm, label) in enumerate(zip(arms, labels, strict=True)):
            entry, after = self.block(arm, dict(defs))
            if entry is None:
                entry = self.box(f"s{step.id}_pass{index}", Shape.PASS, ("pass",))
            self.edge(decision, entry, EdgeKind.CONTROL, label)
            results.append(after)
        return _merged(results)

    def loop(
        self, step: Step, action: Loop, defs: Defs
    ) -> tuple[str | None, Defs | None]:
        """A `for` loop: a cluster whose head writes the loop's target each iteration."""
        self.enter(f"c{step.id}", "async for loop" if action.is_async else "for loop")
        words = "async for" if action.is_async else "for"
        target, iterable = self.display(action.target), self.display(action.iterable)
        head = self.box(f"s{step.id}", Shape.LOOP, (f"{words} {target} in {iterable}",))
        self.connect(head, name_uses(action.iterable).read_names, defs)
        targets = frozenset(target_names(action.target))
        self.loops.append(([], []))
        state = defs
        for _ in range(2):  # the second walk draws what one iteration hands the next
            entry, end = self.block(action.body, _written(state, targets, head))
            if entry is not None and (head, entry, EdgeKind.DATA) not in self.edges:
                self.edge(head, entry, EdgeKind.CONTROL, "each")
            state = _union(defs, end, *self.loops[-1][1])
        after = self.otherwise(head, action.orelse, state)
        self.leave()
        return head, _merged([after, *self.loops.pop()[0]])

    def while_loop(
        self, step: Step, action: WhileLoop, defs: Defs
    ) -> tuple[str | None, Defs | None]:
        """A `while` loop: its test's calls, the test, the body; each call counts visits."""
        self.enter(f"c{step.id}", "while loop")
        decision = f"{self.prefix}_s{step.id}"
        entry: str | None = None
        self.loops.append(([], []))
        state = defs
        for _ in range(2):
            start, tested = self.block(action.condition, state)
            state = _union(state, tested)
            # After the test's calls: the label shows them where the test has their values.
            test = f"while {self.display(action.test)}"
            self.box(f"s{step.id}", Shape.DECISION, (test,))
            entry = entry or start or decision
            self.connect(decision, name_uses(action.test).read_names, state)
            state = _written(state, frozenset(name_uses(action.test).writes), decision)
            body, end = self.block(action.body, state)
            if body is not None:
                self.edge(decision, body, EdgeKind.CONTROL, "true")
            state = _union(state, end, *self.loops[-1][1])
        self.leave()
        after = self.otherwise(decision, action.orelse, state)
        return entry, _merged([after, *self.loops.pop()[0]])

    def otherwise(self, head: str, orelse: Block | None, defs: Defs) -> Defs | None:
        """A loop's `else:` block, entered from its head when the loop ends without break."""
        if orelse is None:
            return defs
        entry, after = self.block(orelse, defs)
        if entry is not None:
            self.edge(head, entry, EdgeKind.CONTROL, "else")
        return after if entry is not None else defs

    # --- labels ---------------------------------------------------------------------

    def remember(self, target: cst.BaseExpression | None, shown: str) -> None:
        """A lifted value's name stands for the code that computes it, in labels."""
        if isinstance(target, cst.Name) and is_temporary(target.value):
            self.temporaries[target.value] = shown

    def display(self, node: cst.CSTNode) -> str:
        """Code as the user wrote it: lifted values shown as the calls they hold."""
        return shown_code(node, self.temporaries)


def _clause_reads(clauses: cst.CompFor, targets: frozenset[str]) -> frozenset[str]:
    """What the clauses read from outside: their iterables and tests, less `targets`."""
    reads: set[str] = set()
    clause: cst.CompFor | None = clauses
    while clause is not None:
        reads |= name_uses(clause.iter).read_names
        for condition in clause.ifs:
            reads |= name_uses(condition.test).read_names
        clause = clause.inner_for_in
    return frozenset(reads - targets)


def _irrefutable(pattern: cst.MatchPattern, guard: cst.BaseExpression | None) -> bool:
    """`case _:` or `case name:` without a guard: the match always takes an arm."""
    return (
        guard is None and isinstance(pattern, cst.MatchAs) and pattern.pattern is None
    )


def _written(defs: Defs, names: Iterable[str], box: str) -> Defs:
    return {**defs, **dict.fromkeys(names, (box,))}


def _merged(states: Iterable[Defs | None]) -> Defs | None:
    """What a reader may see after one of several paths: every path's last writers.

    None when no path comes through (each returned, raised or jumped away).
    """
    live = [state for state in states if state is not None]
    if not live:
        return None
    merged: dict[str, list[str]] = {}
    for state in live:
        for name, boxes in state.items():
            known = merged.setdefault(name, [])
            known += [box for box in boxes if box not in known]
    return {name: tuple(boxes) for name, boxes in merged.items()}


def _union(first: Defs, *others: Defs | None) -> Defs:
    merged = _merged([first, *others])
    assert merged is not None
    return merged


def _shown(names: list[str]) -> list[str]:
    """Edge labels name the user's variables; lifted values speak through their boxes."""
    return sorted(name for name in names if not is_temporary(name))
