"""What a function's signature and decorators say of the effects of its body.

Example input::

    @functools.cache
    def settings(*names: str) -> dict[str, str]:
        return {"mode": "slow"}

Output: `parameters` gives `names` as a tuple; `of_stars` says any argument
may land anywhere; `of_decorators` makes its results module state, the piece
`app.settings` (each call hands out one the cache keeps, so a node that
changes `settings()["mode"]` changes what the next call returns). And
`kept_defaults` makes the default of `def remember(k, _seen: dict = {})` the
piece `app.remember._seen`: every call that takes the default shares it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Final

import libcst as cst

from kilnc.effect_ir import Effects, Holder
from kilnc.facts import is_kiln
from kilnc.front import ModuleDefs
from kilnc.mutability import Qualify, is_immutable
from kilnc.names import identifier
from kilnc.syntax import code, dotted


def of_decorators(
    effects: Effects, defs: ModuleDefs, function: cst.FunctionDef, qualified: str
) -> Effects:
    """The effects of the function `qualified`, as its decorators make it."""
    if any(_memoises(d) for d in function.decorators):
        # Its cached results are module state: each call hands out one.
        pieces = frozenset({qualified})
        effects = replace(effects, result_state=True, result_pieces=pieces)
    if any(is_kiln(defs.parsed, d) for d in function.decorators):
        # What a node reads of module state it reads as it runs: the call's
        # place among the steps is for the flow's own reads.
        effects = replace(effects, reads_state=None)
    return effects


def kept_defaults(
    function: cst.FunctionDef,
    qualified: str,
    state_name: Callable[[cst.BaseExpression], str | None],
) -> dict[str, str]:
    """The parameters of `qualified` whose default may change, each with the
    piece of module state it is: a dict, a list or a call's value, made once as
    the function is defined and shared by every call that takes it; or a
    module-level name's object (`log: list[str] = LOG`), that name's piece."""
    params = function.params
    found: dict[str, str] = {}
    for param in (*params.posonly_params, *params.params, *params.kwonly_params):
        name = identifier(param.name.value)
        if param.default is None:
            continue
        if _may_change(param.default):
            found[name] = f"{qualified}.{name}"
        elif (piece := state_name(param.default)) is not None:
            found[name] = piece
    return found


def _may_change(default: cst.BaseExpression) -> bool:
    """A container made as the function is defined, or a call's value: not a
    literal, nor a module-level name (a constant, or state under its own name)."""
    if isinstance(default, cst.List | cst.Dict | cst.Set):
        return True
    if isinstance(default, cst.ListComp | cst.DictComp | cst.SetComp):
        return True
    return isinstance(default, cst.Call) and dotted(default.func) not in _IMMUTABLE_MADE


_IMMUTABLE_MADE: Final = frozenset(
    {"frozenset", "tuple", "str", "bytes", "int", "float", "bool", "object"}
)


def _memoises(decorator: cst.Decorator) -> bool:
    """`@functools.cache`, `@lru_cache(maxsize=None)`: a cache of the results."""
    found = decorator.decorator
    name = dotted(found.func if isinstance(found, cst.Call) else found) or ""
    return name.rpartition(".")[2] in ("cache", "lru_cache")


def parameters(
    defs: ModuleDefs, function: cst.FunctionDef | cst.Lambda
) -> dict[str, Holder]:
    """Each parameter by name, with what its annotation says it holds."""
    params = function.params
    found: dict[str, Holder] = {}
    every = (*params.posonly_params, *params.params, *params.kwonly_params)
    for param in every:
        annotation = param.annotation
        found[identifier(param.name.value)] = Holder(
            code(annotation.annotation) if annotation is not None else None,
            defs.parsed.is_memory(annotation),
        )
    # `*args` is always a tuple and `**kwargs` a dict, whatever their items are.
    if isinstance(params.star_arg, cst.Param):
        found[identifier(params.star_arg.name.value)] = Holder("tuple")
    if isinstance(params.star_kwarg, cst.Param):
        found[identifier(params.star_kwarg.name.value)] = Holder("dict")
    return found


def of_stars(function: cst.FunctionDef, effects: Effects) -> Effects:
    """A function that takes `*args` or `**kwargs`: any argument may land anywhere."""
    params = function.params
    stars = (params.star_arg, params.star_kwarg)
    if not any(isinstance(star, cst.Param) for star in stars):
        return effects
    return replace(effects, variadic=True)


def changeable(params: Mapping[str, Holder], qualify: Qualify) -> frozenset[str]:
    """The parameters whose objects may change: no `int`, `str`, `tuple[int]`."""
    return frozenset(
        name
        for name, holder in params.items()
        if holder.annotation is None or not is_immutable(holder.annotation, qualify)
    )
