"""Rule 1, chains: a step whose only consumer is the next step joins its coroutine.

Example: `a = await f(x)`, `b = await g(a)`, `c = await h(b)` is one chain,
one coroutine, not three tasks; a chain of 200 dependent calls is one too.
A step of a nested block that writes a user's name ends its chain: only a
chain's last value leaves its coroutine.
"""

from __future__ import annotations

import libcst as cst
import networkx as nx

from kilnc.graph import step_of
from kilnc.ir import RESERVED_PREFIX, Block, Call, FanOut, Inline, Step, StepId


def _chainable(step: Step) -> bool:
    action = step.action
    if isinstance(action, Call | FanOut):
        target = action.target
        return target is None or isinstance(target, cst.Name | cst.Tuple | cst.List)
    return isinstance(action, Inline) and not step.uses and not step.barrier


def find_chains(block: Block, graph: nx.DiGraph, nested: bool) -> list[list[Step]]:
    chain_of: dict[StepId, list[Step]] = {}
    chains: list[list[Step]] = []
    for step in block.steps:
        if not _chainable(step):
            continue
        joinable = [
            p
            for p in graph.predecessors(step.id)
            if p in chain_of
            and graph.out_degree(p) == 1
            and chain_of[p][-1].id == p
            and not (nested and _outlives(step_of(graph, p)))
        ]
        if joinable:
            chain = chain_of[max(joinable)]
        else:
            chain = []
            chains.append(chain)
        chain.append(step)
        chain_of[step.id] = chain
    return chains


def _outlives(step: Step) -> bool:
    """Whether a step of a nested block writes a name code after the block may read.

    Only a chain's last value leaves its coroutine, so such a step ends its
    chain. A user's name may be read after an arm or in a loop's next
    iteration; a lifted temporary never is.
    """
    return any(not name.startswith(RESERVED_PREFIX) for name in step.writes)
