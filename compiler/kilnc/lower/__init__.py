"""lower_flow: a flow's body to a block of steps, nested node calls lifted out.

Example input::

    @flow
    async def digest(path: str) -> str:
        return join([await summarize(p) for p in load(path)])

Output (`kiln compile --dump ir`)::

    s0 line 3: Call load reads=['path'] writes=['_kiln_load']
    s1 line 3: FanOut summarize (list) reads=['_kiln_load'] writes=['_kiln_summarize']
    s2 line 3: Call join reads=['_kiln_summarize'] writes=['_kiln_join']
    s3 line 3: Return reads=['_kiln_join'] writes=[] barrier

Lifting follows Python's evaluation order, so the steps run in the order the
source would run them. A node call the compiler cannot order (under `and`,
`or`, a conditional expression, a lambda, a comprehension's condition) and
every construct outside the flow language is a located diagnostic.

One module per job of the pass: `statements.py` lowers each statement (and
lifts nested calls out with `lift.py`), `calls.py` recognises node calls and
checks how they are written, `fan_out.py` lowers comprehensions that call a
node, `steps.py` makes the steps, `changes.py` orders them by what their
code may change, `scope.py` follows what the flow's names hold,
`sharing.py` which names may hold one object (`unshared.py`: what holds
nothing that can change; `places.py`: which steps run before which),
`idioms.py` and `report.py` say what is wrong.

A subflow's call keeps the place of the subflow's own statements that keep
theirs (`Lowering.outside`): the subflow is lowered too, in its own module,
and its first outside effect is carried into the caller's step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import final

import libcst as cst

from kiln.options import DEFAULT_MAX_VISITS
from kilnc.annotations import type_names
from kilnc.changing import repeated_changes
from kilnc.diagnostics import Diagnostic
from kilnc.effect_ir import Change
from kilnc.front import ParsedModule
from kilnc.ir import (
    Block,
    Call,
    FanOut,
    FlowDef,
    FlowIR,
    NodeCall,
    Resolver,
    Step,
    TypeVariables,
    child_blocks,
    with_child_blocks,
)
from kilnc.lower.changes import EffectSource, OutsideOf
from kilnc.lower.sharing import PASSED_IN
from kilnc.lower.statements import Lowerer
from kilnc.names import parameter_names

__all__ = ["LowerContext", "Lowering", "annotation_names", "lower_flow"]


@final
@dataclass(frozen=True, slots=True)
class LowerContext:
    parsed: ParsedModule = field(repr=False)
    resolve: Resolver = field(repr=False)
    effects: EffectSource = field(repr=False)
    type_variables: TypeVariables = field(repr=False)
    # What a subflow's own statements do outside it (`Lowering.outside`).
    outside: OutsideOf = field(repr=False)
    # The max_visits of flows that set none: [tool.kiln]'s, else 5.
    max_visits: int = DEFAULT_MAX_VISITS


def lower_flow(flow: FlowDef, context: LowerContext) -> tuple[FlowIR, list[Diagnostic]]:
    max_visits = flow.options.max_visits or context.max_visits
    lowerer = Lowerer(
        context.parsed,
        context.resolve,
        context.effects,
        context.type_variables,
        context.outside,
        flow,
        max_visits,
    )
    body = lowerer.shared.settle(lowerer.flow_body())
    body = _visible(body, frozenset(parameter_names(flow.function.params)))
    tokens = frozenset(lowerer.shared.tokens - {PASSED_IN})
    calls = tuple(lowerer.calls.sites)
    late = frozenset(lowerer.scope.late)
    state = tuple(sorted(lowerer.steps.calls_state.items()))
    flow_ir = FlowIR(flow, body, calls, tokens, late, state)
    return flow_ir, lowerer.report.diagnostics + repeated_changes(flow_ir)


class Lowering:
    """The project's flows lowered on demand, each once, in its own module's context.

    `x = await sub()` runs the statements of `sub` where the caller calls it:
    a statement of `sub` that keeps its place in `sub` (it reads or changes
    module state, prints) keeps it in the caller too, as if it were written
    there. What it is comes from `sub` lowered, by the analysis that decides
    its place in `sub`, wherever `sub` is defined; subflows it calls carry
    theirs into it the same way.
    """

    def __init__(self, context_of: Callable[[str], LowerContext | None]) -> None:
        self._context_of = context_of  # the context of a module's flows
        self._lowered: dict[tuple[str, str], tuple[FlowIR, list[Diagnostic]]] = {}
        self._lowering: set[tuple[str, str]] = set()

    def lower(self, flow: FlowDef) -> tuple[FlowIR, list[Diagnostic]]:
        key = (flow.module, flow.identifier)
        if key not in self._lowered:
            context = self._context_of(flow.module)
            assert context is not None, "a flow's module is read before its flows"
            self._lowering.add(key)
            try:
                flow_ir, found = lower_flow(flow, context)
                self._lowered[key] = (self._awaiting_subflows(flow_ir), found)
            finally:
                self._lowering.discard(key)
        return self._lowered[key]

    def _runs_async(self, flow: FlowDef) -> bool:
        """Whether the flow's compiled body awaits: an `async def`, or a `def`
        that awaits a call (a thread=True node's, a sync node's waits between
        its retries, such a subflow's)."""
        if flow.is_async:
            return True
        if (flow.module, flow.identifier) in self._lowering:
            return False  # a flow that calls itself: KLN401, the compile stops
        # A `def` awaits nothing but its calls (a fan-out's element's too).
        return any(call.suspends for call in self.lower(flow)[0].calls)

    def _awaiting_subflows(self, flow_ir: FlowIR) -> FlowIR:
        """The flow, each call of a sync subflow whose body awaits marked to await it.

        Its sync entry would run it on a loop of its own and block the
        caller's meanwhile: a call beside it could not go on, nor give back
        a `Limit` slot the subflow waits for. Awaited, it runs on the
        caller's loop, its body where the caller's sync call would run it.
        """
        awaited = frozenset(
            call.site
            for call in flow_ir.calls
            if isinstance(call.callee, FlowDef)
            and not call.callee.streams
            and not call.callee.is_async
            and self._runs_async(call.callee)
        )
        if not awaited:
            return flow_ir

        def mark(call: NodeCall) -> NodeCall:
            return replace(call, awaited_flow=True) if call.site in awaited else call

        return replace(
            flow_ir,
            body=_with_calls(flow_ir.body, mark),
            calls=tuple(map(mark, flow_ir.calls)),
        )

    def outside(self, flow: FlowDef) -> Change | None:
        """The first effect of the flow's own statements that keeps their place."""
        if (flow.module, flow.identifier) in self._lowering:
            return None  # a flow that calls itself: KLN401, the compile stops
        return _first_outside(self.lower(flow)[0].body)


def _with_calls(block: Block, mark: Callable[[NodeCall], NodeCall]) -> Block:
    """The block with each of its node calls, however deep, as `mark` makes it."""
    steps: list[Step] = []
    for step in block.steps:
        action = step.action
        if isinstance(action, Call):
            action = replace(action, call=mark(action.call))
        elif isinstance(action, FanOut):
            action = replace(action, result=mark(action.result))
        children = tuple(_with_calls(child, mark) for child in child_blocks(action))
        steps.append(replace(step, action=with_child_blocks(action, children)))
    return Block(tuple(steps))


def _first_outside(block: Block) -> Change | None:
    for step in block.steps:
        if step.external is not None:  # at the statement: a lifted copy has no place
            return replace(step.external, span=step.span)
        for child in child_blocks(step.action):
            found = _first_outside(child)
            if found is not None:
                return found
    return None


def annotation_names(block: Block) -> frozenset[str]:
    """The names the generated code may write in the annotations of a flow's values:
    their types, as the nodes that make them declare them. The module keeps
    what binds them, though the flow's source never reads them."""
    found: set[str] = set()
    for step in block.steps:
        action = step.action
        types = [step.value_type]
        if isinstance(action, FanOut):
            types.append(action.element_type)
        for text in types:
            if text is not None:
                found |= type_names(cst.parse_expression(text))
        for child in child_blocks(action):
            found |= annotation_names(child)
    return frozenset(found)


def _visible(block: Block, params: frozenset[str]) -> Block:
    """The block, each step that may change a parameter's object marked `visible`:
    the caller sees that change even when the flow fails, so it must not happen
    before a step the source runs first, which may fail and end the flow."""
    steps = []
    for step in block.steps:
        children = tuple(_visible(child, params) for child in child_blocks(step.action))
        action = with_child_blocks(step.action, children) if children else step.action
        steps.append(replace(step, action=action, visible=bool(step.uses & params)))
    return Block(tuple(steps))
