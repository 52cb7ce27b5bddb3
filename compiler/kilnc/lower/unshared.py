"""Which values a flow hands on share nothing that any code may change.

Example input::

    async def react(tasks: list[str], counts: dict[str, int]) -> None:
        pad: dict[str, list[str]] = {"thoughts": []}
        await think(pad, tasks[0])       # think(pad, task): pad["thoughts"].append(task)
        snap = dict(counts)

Output: `shares_nothing` holds for `tasks[0]`, an item of a list of `str`, so
`think` keeping it in `pad` links `pad` to no name of the flow, and a later
change of `pad` orders nothing that reads `tasks`; so it does for an
argument of a parameter annotated with a deeply immutable type (`task:
str`), whatever the flow passes. `fresh` holds for `dict(counts)`: a copy of
`str` keys and `int` values shares nothing with `counts`.
"""

from __future__ import annotations

from typing import Final

import libcst as cst

from kilnc.effect_ir import Effects
from kilnc.lower.scope import Scope
from kilnc.mutability import (
    COPYING_BUILTINS,
    Qualify,
    fresh_builtin,
    holds_immutable,
    is_immutable,
)
from kilnc.names import identifier, name_uses, target_names
from kilnc.syntax import code


def shares_nothing(
    scope: Scope, effects: Effects, param: str | None, argument: cst.BaseExpression
) -> bool:
    """Whether a call's argument holds nothing that can change: one its
    parameter's annotation says is deeply immutable (`task: str`), an item or
    a copy of a container whose items cannot change (`tasks[0]`, `dict(counts)`
    of a `dict[str, int]`)."""
    fixed = param is not None and param in effects.fixed
    return fixed or item(scope, argument) or fresh(scope, argument)


def fresh(scope: Scope, value: cst.BaseExpression) -> bool:
    """`len(log)`, `str(state)`: a builtin's result that shares nothing it
    read; `dict(counts)`, `sorted(names)`: a copy of what cannot change."""
    if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)):
        return False
    name = value.func.value
    if name in scope.own | scope.parsed.global_names:
        return False  # not the builtin
    if fresh_builtin(name, value):
        return True
    copied = [_copied(scope, arg) for arg in value.args]
    return name in COPYING_BUILTINS and bool(copied) and all(copied)


def _copied(scope: Scope, arg: cst.Arg) -> bool:
    """Whether a copying builtin's argument is a name of the flow's none of whose
    items can change (a keyword's value is held itself: `dict(k=rows)`)."""
    if arg.star or arg.keyword is not None or not isinstance(arg.value, cst.Name):
        return False
    held = scope.types.get(identifier(arg.value.value))
    return held is not None and holds_immutable(held, scope.qualify)


def item(scope: Scope, value: cst.BaseExpression) -> bool:
    """`xs.pop()`, `next(it)`, `xs[0]` of a container whose items never change
    (`xs: list[int]`): what it binds shares nothing with the container."""
    match value:
        case cst.Call(
            func=cst.Attribute(value=cst.Name(container), attr=cst.Name(method))
        ) if (method in _TAKES_AN_ITEM):
            pass
        case cst.Call(func=cst.Name("next"), args=[cst.Arg(value=cst.Name(container))]):
            if "next" in scope.own | scope.parsed.global_names:
                return False
        case cst.Subscript(value=cst.Name(container), slice=[_]):
            pass
        case _:
            return False
    held = scope.types.get(identifier(container))
    if held is None or held.partition("[")[0].rpartition(".")[2] not in _CONTAINERS:
        return False
    found = item_type(held)
    return found is not None and is_immutable(found, scope.qualify)


# The builtin and standard containers of one item type, and their methods that
# return one of their items.
_CONTAINERS: Final = frozenset(
    {"list", "List", "deque", "Deque", "set", "Set", "Iterator", "Sequence"}
    | {"MutableSequence", "MutableSet"}
)
_TAKES_AN_ITEM: Final = frozenset({"pop", "popleft"})


def item_sources(
    clauses: cst.CompFor, given: set[str], types: dict[str, str], qualify: Qualify
) -> frozenset[str]:
    """The iterables whose items the loop targets in `given` are, where an item can change."""
    sources: set[str] = set()
    clause: cst.CompFor | None = clauses
    while clause is not None:
        bound = target_names(clause.target)
        if bound & given:
            given -= bound
            for name in name_uses(clause.iter).read_names:
                found = item_type(types.get(name))
                if found is None or not is_immutable(found, qualify):
                    sources.add(name)
        clause = clause.inner_for_in
    return frozenset(sources)


def item_type(annotation: str | None) -> str | None:
    """`str` of `list[str]`: the type of a container's items, when it says."""
    if annotation is None:
        return None
    try:
        parsed = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return None
    if isinstance(parsed, cst.Subscript) and len(parsed.slice) == 1:
        found = parsed.slice[0].slice
        if isinstance(found, cst.Index):
            return code(found.value)
    return None
