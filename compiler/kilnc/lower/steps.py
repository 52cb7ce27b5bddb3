"""Steps: one per statement or call, numbered in source order, with what orders them.

Example input: `summary: str = await summarize(text)` in a flow. Output: the
step `Call summarize reads={text} writes={summary}`, its value typed `str`,
and also ordered by what `summarize` may change (changes.py). A statement
that calls no node is an `Inline` step (a `return` a `Return`), a barrier when
it leaves the block (`return`, `raise`, `assert`, `break`, `continue`); a
compound statement's step reads, writes and changes what its blocks do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import final

import libcst as cst

from kilnc.effect_ir import Change, Effects, StateUses, join_state
from kilnc.front import ParsedModule
from kilnc.ir import (
    Action,
    Block,
    Branch,
    Call,
    FlowDef,
    Inline,
    Loop,
    Match,
    NodeCall,
    NodeDef,
    Return,
    Step,
    StepId,
    WhileLoop,
    child_blocks,
    yields,
)
from kilnc.lower.changes import Changes
from kilnc.lower.drawn import Drawn, lazy, lazy_value
from kilnc.lower.scope import Scope
from kilnc.names import name_uses, target_names, walrus_targets
from kilnc.syntax import code


@final
@dataclass(slots=True)
class Steps:
    """Makes the steps of one flow, numbering them as they are made."""

    parsed: ParsedModule
    scope: Scope
    changes: Changes
    _next_id: int = field(default=0, init=False)
    # A name bound to a streaming subflow's iterator runs the subflow's statements
    # where it is read: there they keep their place (what they do, by name).
    _streams: dict[str, Change] = field(default_factory=dict, init=False)
    # Names bound to a generator: what drawing from it does where it is read.
    drawn: Drawn = field(default_factory=Drawn, init=False)
    # How each node or subflow call's own code uses module state, by call site
    # (a fan-out's element call too, whose step holds its clauses' uses).
    calls_state: dict[int, StateUses] = field(default_factory=dict, init=False)

    def call_step(
        self,
        node: cst.CSTNode,
        action: Call,
        target: cst.BaseAssignTargetExpression | None,
        annotation: cst.Annotation | None,
    ) -> Step:
        uses = name_uses(action.call.call)
        writes = frozenset(target_names(target)) if target is not None else frozenset()
        writes |= walrus_targets(action.call.call)  # `f(y := x + 1)` binds y too
        reads = uses.read_names
        value_type = (
            code(annotation.annotation)
            if annotation
            else self.scope.visible_returns(action.call)
        )
        if isinstance(target, cst.Name):
            self.scope.note_value(
                target.value, annotation, value_type, action.call.callee
            )
        # A question holds back what follows it, as a person's answer would:
        # nothing after it runs before it is answered, all before it finishes.
        asks = isinstance(action.call.callee, NodeDef) and action.call.callee.asks
        step = self.make(
            node, action, reads, writes, frozenset(), value_type, barrier=asks
        )
        self.changes.share_result(action.call, writes, value_type)
        self.changes.share_walruses(action.call.call)
        effects = self.changes.effects_of(action.call.call)
        self.changes.share_held(effects, writes)
        # "passes it to fill, which assigns state['answer']": the step is the call.
        passed = f"passes it to {code(action.call.call.func)}, which "
        changes = tuple(
            (name, _without(change, passed)) for name, change in effects.changes
        )
        state = self.note_state(action.call, effects)
        # A node's own outside effects overlap; a subflow's statements keep their place.
        external = self.changes.kept_place(action.call)
        callee = action.call.callee
        if external is not None and isinstance(callee, FlowDef) and callee.streams:
            self._streams.update(dict.fromkeys(writes, external))
        drawn = self.drawn.as_drawn(state, code(action.call.call.func))
        self.drawn.bound(step, effects, lazy(callee, self.scope.type_names), drawn)
        return self.changes.with_effects(
            replace(effects, changes=changes, external=external, state_uses=state), step
        )

    def note_state(self, call: NodeCall, effects: Effects) -> StateUses:
        """The call's uses of module state, as `effects` (the call's) says them,
        kept for its site: "calls HISTORY.append", not "calls f, which calls ..."."""
        called = f"calls {code(call.call.func)}, which "
        state = tuple(
            (name, replace(use, where=_without(use.where, called)))
            for name, use in effects.state_uses
        )
        self.calls_state[call.site] = state
        return state

    def simple_step(self, statement: cst.CSTNode, origin: cst.CSTNode) -> Step:
        assert isinstance(statement, cst.BaseSmallStatement | cst.BaseCompoundStatement)
        uses = name_uses(statement)
        reads = uses.read_names
        writes = frozenset(uses.writes)
        # What the statement may change is what its effects say: the names it
        # changes, widened to every name sharing their objects, and Memory keys.
        effects = self.changes.effects_of(statement)
        if isinstance(statement, cst.Del) and _names_only(statement.target):
            # `del raw` unbinds a name of the flow's own frame: it runs in the
            # flow's task, ordered by the name alone, not by every effect.
            effects = replace(effects, external=None, context=effects.external)
        # The statement as parsed: a lifted copy's annotation has no qualified name.
        self.scope.track_assignment(origin)
        self.changes.share_assignment(statement)
        self.changes.share_walruses(statement)
        self.changes.share_held(effects, writes)
        barrier = leaves_early(statement)
        action: Action = Inline(statement)
        if isinstance(statement, cst.Return):
            action = Return(statement.value)
        step = self.make(origin, action, reads, writes, frozenset(), None, barrier)
        lazy = lazy_value(statement, self.scope.module, self.changes.effects)
        self.drawn.bound(step, effects, lazy, self.drawn.as_drawn(effects.state_uses))
        return self.changes.with_effects(effects, step)

    def compound(
        self,
        node: cst.CSTNode,
        action: Action,
        blocks: Sequence[Block],
        tested: Sequence[cst.CSTNode],
        writes: set[str] | None = None,
    ) -> Step:
        reads: set[str] = set()
        written: set[str] = set(writes or ())
        for part in tested:
            uses = name_uses(part)
            reads |= uses.read_names
            written |= uses.writes  # a walrus in a test
            self.changes.share_walruses(part)
        inner = [step for block in blocks for step in block.steps]
        for step in inner:
            reads |= step.reads
            written |= step.writes
        barrier = returns(blocks) or any(s.barrier for b in blocks for s in b.steps)
        step = self.make(
            node,
            action,
            frozenset(reads),
            frozenset(written),
            frozenset().union(*(s.uses for s in inner)),
            None,
            barrier,
        )
        step = replace(
            step,
            key_reads=frozenset().union(*(s.key_reads for s in inner)),
            key_writes=frozenset().union(*(s.key_writes for s in inner)),
            external=step.external
            or next((s.external for s in inner if s.external), None),
            why=tuple(why for s in inner for why in s.why),
            state=join_state(*(s.state for s in inner)),
            context=any(s.context for s in inner),
        )
        for part in tested:
            if isinstance(part, cst.BaseExpression):
                step = self.changes.with_effects(self.changes.effects_of(part), step)
        return step

    def make(
        self,
        node: cst.CSTNode,
        action: Action,
        reads: frozenset[str],
        writes: frozenset[str],
        uses: frozenset[str],
        value_type: str | None,
        barrier: bool = False,
    ) -> Step:
        step_id = StepId(self._next_id)
        self._next_id += 1
        span = self.parsed.span(node)
        deferred = self.scope.deferred
        given = reads & deferred.keys()
        # A step given a lambda reads its names while it runs: binding one of
        # them again waits for the step, as a write waits for every read.
        reads = reads.union(*(deferred[name] for name in given))
        step = Step(step_id, span, action, reads, writes, uses, barrier, value_type)
        step = self.drawn.drawing(step)
        iterated = sorted(reads & self._streams.keys())
        if iterated:
            step = replace(step, external=self._streams[iterated[0]])
        for name in writes:
            self._streams.pop(name, None)
        late = sorted(given & self.scope.stale.keys())
        self.scope.rebound(writes)
        if not late:
            return step
        # `k = lambda: x; x = await g(x); await use(k)`: `use` calls `k`, which
        # reads the `x` bound after it, in the flow's own frame. So the step
        # runs there, after every step before it, as the source runs it.
        held = late[0]
        reads_late = self.scope.stale[held]
        reason = f"is given {held}, which reads {reads_late} when it runs"
        return replace(step, external=Change(reason, span))


def _without(change: Change, prefix: str) -> Change:
    return replace(change, reason=change.reason.removeprefix(prefix))


def written(block: Block) -> set[str]:
    return set().union(*(step.writes for step in block.steps)) if block.steps else set()


def leaves_early(statement: cst.CSTNode, *, in_loop: bool = False) -> bool:
    """Whether a statement that calls no node may leave the code around it early:
    a `return`, `raise`, `assert` or `yield` in it (a consumer may stop a stream
    at any item it yields), or a `break` or `continue` that is not its own
    loops' (`in_loop`: inside a loop's body, where they are; the `else:` of a
    loop is the enclosing loop's)."""
    if isinstance(statement, cst.Return | cst.Raise | cst.Assert | cst.Yield):
        return True
    if isinstance(statement, cst.Break | cst.Continue):
        return not in_loop
    if isinstance(statement, cst.FunctionDef | cst.ClassDef | cst.Lambda):
        return False  # its code runs when called
    body = statement.body if isinstance(statement, cst.For | cst.While) else None
    return any(
        leaves_early(child, in_loop=child is body if body is not None else in_loop)
        for child in statement.children
    )


def leaves(body: Block, orelse: Block | None) -> bool:
    """Whether a loop may leave the code around it early: a `return`, `raise` or
    failed `assert` anywhere in it, a `yield` (where the consumer may stop), or
    any barrier of its `else:` (whose `break` and `continue` are the enclosing
    loop's)."""
    blocks = [body] if orelse is None else [body, orelse]
    return (
        returns(blocks)
        or yields(blocks)  # a stream's consumer may stop at any item it yields
        or (orelse is not None and any(step.barrier for step in orelse.steps))
    )


def returns(blocks: Sequence[Block]) -> bool:
    """Whether a `return`, `raise` or `assert` can leave through one of the blocks."""
    for block in blocks:
        for step in block.steps:
            action = step.action
            if isinstance(action, Return):
                return True
            if isinstance(action, Inline) and isinstance(
                action.statement, cst.Raise | cst.Assert
            ):
                return True
            if isinstance(action, Branch | Match | Loop | WhileLoop) and returns(
                child_blocks(action)
            ):
                return True
    return False


def _names_only(target: cst.BaseExpression) -> bool:
    """Whether a `del` target unbinds names alone: `del t`, `del a, b`."""
    if isinstance(target, cst.Tuple | cst.List):
        return all(_names_only(element.value) for element in target.elements)
    return isinstance(target, cst.Name)
