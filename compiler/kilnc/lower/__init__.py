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
`sharing.py` which names may hold one object, `idioms.py` and `report.py`
say what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import final

import libcst as cst

from kiln.options import DEFAULT_MAX_VISITS
from kilnc.annotations import type_names
from kilnc.changing import repeated_changes
from kilnc.diagnostics import Diagnostic
from kilnc.front import ParsedModule
from kilnc.ir import (
    Block,
    FanOut,
    FlowDef,
    FlowIR,
    Resolver,
    TypeVariables,
    child_blocks,
    with_child_blocks,
)
from kilnc.lower.changes import EffectSource
from kilnc.lower.sharing import PASSED_IN
from kilnc.lower.statements import Lowerer
from kilnc.names import parameter_names

__all__ = ["LowerContext", "annotation_names", "lower_flow"]


@final
@dataclass(frozen=True, slots=True)
class LowerContext:
    parsed: ParsedModule = field(repr=False)
    resolve: Resolver = field(repr=False)
    effects: EffectSource = field(repr=False)
    type_variables: TypeVariables = field(repr=False)
    # The max_visits of flows that set none: [tool.kiln]'s, else 5.
    max_visits: int = DEFAULT_MAX_VISITS


def lower_flow(flow: FlowDef, context: LowerContext) -> tuple[FlowIR, list[Diagnostic]]:
    max_visits = flow.options.max_visits or context.max_visits
    lowerer = Lowerer(
        context.parsed,
        context.resolve,
        context.effects,
        context.type_variables,
        flow,
        max_visits,
    )
    body = lowerer.shared.settle(lowerer.flow_body())
    body = _visible(body, frozenset(parameter_names(flow.function.params)))
    tokens = frozenset(lowerer.shared.tokens - {PASSED_IN})
    calls = tuple(lowerer.calls.sites)
    diagnostics = lowerer.report.diagnostics + repeated_changes(body)
    return FlowIR(flow, body, calls, tokens), diagnostics


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
