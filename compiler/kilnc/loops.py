"""report_visit_limits: each loop of a flow, the visit bound of its calls, the worst case.

Example input: a flow whose `while not await good(text):` loop calls `revise`,
both under the flow's `max_visits=5`. Output (`kiln compile --dump graph`)::

    cycle while@4: good@4 (max 5), revise@5 (max 5)
    worst case: 10 node executions

A report, not a check: every call site inside a `while` loop already carries
its bound (lowering sets it, the emitter counts it), so nothing here can fail.
The worst case multiplies through `for` loops and fan-outs over `range(N)`
with a literal N, the only widths known ahead of time; anything else makes it
unbounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import final

import libcst as cst
import networkx as nx

from kilnc.ir import (
    Block,
    Branch,
    Call,
    FanOut,
    FlowIR,
    Loop,
    Match,
    Step,
    WhileLoop,
    child_blocks,
)


@final
@dataclass(frozen=True, slots=True)
class LoopReport:
    """What `--dump graph` says of a flow's loops: each cycle with its bounds, the worst case."""

    cycles: tuple[
        tuple[str, tuple[tuple[str, int], ...]], ...
    ]  # header, (call site, bound)
    worst_case: int | None  # node executions in the worst case; None when unbounded

    def lines(self) -> list[str]:
        shown = [
            f"cycle {header}: "
            + ", ".join(f"{site} (max {bound})" for site, bound in sites)
            for header, sites in self.cycles
        ]
        worst = "unbounded" if self.worst_case is None else str(self.worst_case)
        return [*shown, f"worst case: {worst} node executions"]


def report_visit_limits(flow: FlowIR, loops: nx.DiGraph) -> LoopReport:
    """Every call site on a cycle of `loops` carries its bound; count the worst case."""
    cycles = []
    for component in nx.strongly_connected_components(loops):
        if len(component) < 2:
            continue
        headers = sorted(n for n in component if loops.nodes[n]["call"] is None)
        sites = sorted(
            (n, loops.nodes[n]["call"].visits)
            for n in component
            if loops.nodes[n]["call"] is not None
        )
        cycles.append((", ".join(headers), tuple(sites)))
    return LoopReport(tuple(sorted(cycles)), _worst(flow.body, 1))


def _worst(block: Block, times: int | None) -> int | None:
    """Node executions of a block run `times` times (None: unknown), in the worst case."""
    total: int | None = 0
    for step in block.steps:
        total = _add(total, _step_worst(step, times))
    return total


def _step_worst(step: Step, times: int | None) -> int | None:
    action = step.action
    if isinstance(action, Call):
        bound = action.call.visits
        return bound if bound is not None else times
    if isinstance(action, FanOut):
        width = _literal_range(action.clauses)
        runs = action.result.visits if action.result.visits is not None else times
        per_item = 1 + len(action.element.steps)
        return None if width is None or runs is None else runs * width * per_item
    if isinstance(action, Branch | Match):
        arms = [_worst(block, times) for block in child_blocks(action)]
        return (
            None if None in arms else max((a for a in arms if a is not None), default=0)
        )
    if isinstance(action, Loop):
        width = _literal_range_of(action.iterable)
        runs = None if width is None or times is None else width * times
        return _sum(_worst(block, runs) for block in child_blocks(action))
    if isinstance(action, WhileLoop):
        # Every call site inside carries a bound; what has none (a nested fan-out
        # over an unknown width) makes the total unknown.
        return _sum(_worst(block, None) for block in child_blocks(action))
    return 0


def _literal_range(clauses: cst.CompFor) -> int | None:
    if clauses.inner_for_in is not None:
        return None
    return _literal_range_of(clauses.iter)


def _literal_range_of(expression: cst.BaseExpression) -> int | None:
    """N for `range(N)` with an integer literal: the only width known statically."""
    if (
        isinstance(expression, cst.Call)
        and isinstance(expression.func, cst.Name)
        and expression.func.value == "range"
        and len(expression.args) == 1
        and isinstance(expression.args[0].value, cst.Integer)
    ):
        value = expression.args[0].value.evaluated_value
        return value if isinstance(value, int) else None
    return None


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _sum(values: Iterable[int | None]) -> int | None:
    total: int | None = 0
    for value in values:
        total = _add(total, value)
    return total
