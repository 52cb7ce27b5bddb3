"""What a node's options add to the effects of its function's body.

Example input::

    def degrade(prompt: str, error: Exception) -> str:
        STATE["mode"] = "degraded"
        return "canned answer"

    @node(thread=True, timeout=5, fallback=degrade)
    def llm(prompt: str) -> str:
        USAGE["tokens"] += count_tokens(prompt)
        ...

Output: `llm`'s effects with its fold into `USAGE` a change (it runs in a
thread, where another call's fold may run between its read and its store),
and `degrade`'s write of `STATE`: a call of `llm` may end in its fallback,
given the call's arguments (`degrade(*args, error=...)`), so what the
fallback does to them or to module state the call may do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import libcst as cst

from kilnc.effect_ir import Effects, as_run_in_threads, join_state
from kilnc.front import ModuleDefs

OfFunction = Callable[[str, str], Effects]


def of_node_options(
    effects: Effects, defs: ModuleDefs, function: cst.FunctionDef, read: OfFunction
) -> Effects:
    """`effects` of `function`, as the options of the nodes it is make a call."""
    for node in defs.nodes.values():
        if node.function != function.name.value:
            continue
        if node.options.fallback is not None:
            fallback = read(defs.location.name, node.options.fallback)
            effects = _or_fallback(effects, fallback)
        if node.options.thread:  # `@node(thread=True)`, `node(thread=True)(fn)`
            effects = replace(effects, state_uses=as_run_in_threads(effects.state_uses))
    return effects


def _or_fallback(effects: Effects, fallback: Effects) -> Effects:
    """What a call may do that runs the node's body and then its fallback, the
    fallback's parameters the node's by position (the last, `error`, none)."""
    named = dict(zip(fallback.params, effects.params, strict=False))
    changes = [(named[p], c) for p, c in fallback.changes if p in named]
    memory = [(named[p], u) for p, u in fallback.memory if p in named]
    return replace(
        effects,
        changes=(*effects.changes, *changes),
        memory=(*effects.memory, *memory),
        returns=effects.returns | {named[p] for p in fallback.returns if p in named},
        escapes=effects.escapes | {named[p] for p in fallback.escapes if p in named},
        external=effects.external or fallback.external,
        context=effects.context or fallback.context,
        state=effects.state or fallback.state,
        result_state=effects.result_state or fallback.result_state,
        result_pieces=effects.result_pieces | fallback.result_pieces,
        state_uses=join_state(effects.state_uses, fallback.state_uses),
    )
