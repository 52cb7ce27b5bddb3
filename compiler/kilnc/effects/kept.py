"""What a body hands on of a Memory: the keys its result holds, and the keys
its stores make hold one object.

Example input::

    def rank(memory: Memory, extra: list[str]) -> list[str]:
        memory.best = memory.ranked[0]
        memory.extra = extra
        return memory.ranked

Output, on the `Body`: the result may hold the value at `ranked`
(`MemoryUse.returned`), and `best`, `ranked` and `extra` may hold one
object with what the caller passes (`MemoryUse.shares`): the caller links
them, so a change through one is ordered with every use of the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from kilnc.effect_ir import ANY_KEY, Keys, MemoryUse
from kilnc.effects.module_state import holds_state
from kilnc.mutability import is_immutable

if TYPE_CHECKING:  # body.py and visitor.py record through this module
    from kilnc.effects.body import Body
    from kilnc.effects.found import Origin


def hand_back(body: Body, value: cst.BaseExpression, *, params: bool = True) -> None:
    """`return value`, or a flow's statement binding it: the Memory keys its
    object may be at (every key for the Memory itself), and with `params`
    the parameters whose objects it may share."""
    held = body.within(value)
    if isinstance(value, cst.GeneratorExp):
        # A lazy view of what it iterates: what changes that later, it yields.
        held |= body.within(value.for_in.iter)
    for origin in held:
        token, keys = _in_memory(body, origin)
        if params:
            body.found.returns.add(origin if isinstance(origin, str) else origin[0])
        if token is not None:
            body.memory(token, MemoryUse(returned=keys))


def keep(body: Body, into: cst.BaseExpression, value: cst.BaseExpression) -> None:
    """`value` stored into what `into` is (`memory.best = ...`, `out.append(...)`):
    where one side is in a Memory and the other may change, each Memory key of
    either side may hold what the other side holds from then on."""
    inside, given = _stored_at(body, into), body.within(value)
    if any(isinstance(origin, str) for origin in given):  # a parameter's object
        body.found.keeps |= {origin for origin in inside if isinstance(origin, str)}
    if holds_state(body, value):
        # `out["rows"] = CACHE[k]`: what the caller passed holds module state now,
        # and a change through it later changes that state.
        body.found.escapes |= {origin for origin in inside if isinstance(origin, str)}
    sides = [
        [_in_memory(body, origin) for origin in side if _changeable(body, origin)]
        for side in (inside, given)
    ]
    if not all(sides) or not any(t for side in sides for t, _ in side):
        return
    for side in sides:
        for token, keys in side:
            if token is not None:
                body.memory(token, MemoryUse(shares=keys))


def _stored_at(body: Body, into: cst.BaseExpression) -> set[Origin]:
    """What a store changes: a Memory key named by a parameter is that
    parameter's (the caller's argument says which), `memory.local` its store."""
    local = body.local_view(into)
    if local is not None:  # `memory.local.update(...)`
        return {(local, "local", ANY_KEY)}
    if isinstance(into, cst.Attribute | cst.Subscript):
        token = body.token(into.value)
        if token is not None:
            return {(token, "global", body.keys_of(into))}
        local = body.local_view(into.value)
        if local is not None:
            return {(local, "local", body.keys_of(into))}
    return body.origins(into)


def _in_memory(body: Body, origin: Origin) -> tuple[str | None, Keys]:
    """The Memory parameter an origin is in, and at which keys (any: itself)."""
    if isinstance(origin, str):
        return (origin, ANY_KEY) if body.params[origin].memory else (None, ANY_KEY)
    token, _, keys = origin
    return token, keys


def _changeable(body: Body, origin: Origin) -> bool:
    if not isinstance(origin, str):
        return True
    annotation = body.params[origin].annotation
    return annotation is None or not is_immutable(annotation, body.qualify)
