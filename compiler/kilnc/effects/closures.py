"""The functions a project function makes, and the state they share: its cells.

Example input (the module `app`)::

    def make_store():
        store: dict[str, list[str]] = {}

        def put(k: str, v: str) -> None:
            store.setdefault(k, []).append(v)

        def get(k: str) -> list[str]:
            return list(store.get(k, []))

        return put, get

    put, get = make_store()            # called at module level

    def traced(fn):
        log: list[str] = []

        async def wrapper(*args):
            log.append(fn.__name__)
            return await fn(*args)

        return wrapper

Output: `nested_functions(make_store, "app.put")` gives `put` and `get`,
each with the cells it may use, `store` as the piece `app.put.store`: the
cells of the call that made `put` (and `get`, bound from the same value). A
node that calls `put(k, v)` writes that piece and one that calls `get(k)`
reads it, so their calls keep the source's order. A node `fetch` decorated
`@traced` adds to `app.fetch.log`, an accumulation, so such nodes overlap,
and each wrapped function has a log of its own.

kiln does not follow which of its functions a factory returns: a call of
what `make_store` made may run any function nested in it (`any_of`), which
errs toward keeping an order, never toward dropping one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import libcst as cst

from kilnc.effect_ir import Access, Effects, StateUse
from kilnc.effects.module_names import (
    defining_module,
    made_by_calls,
    module_functions,
)
from kilnc.front import ModuleDefs
from kilnc.names import identifier, name_uses, parameter_names
from kilnc.syntax import dotted
from kilnc.walk import walk

if TYPE_CHECKING:  # a body asks which of its names a decorator wrapped: a cycle
    from kilnc.effects.body import Body

# By name, the piece of state each cell a nested function may use is.
Cells = dict[str, str]
# The arguments of the call that made them that are module state: by position
# (or keyword), the piece each is.
Passed = tuple[tuple[int | str, str], ...]


def nested_functions(
    function: cst.FunctionDef, qualified: str, passed: Passed = ()
) -> list[tuple[cst.FunctionDef, Cells]]:
    """Each function defined inside `function` (the project function `qualified`),
    at any depth, with the cells of the functions around it that it may use:
    a parameter the call that made them `passed` module state holds that piece
    (`sink` of `audited(AUDIT)` is `app.AUDIT`)."""
    params = function.params
    positional = [p.name.value for p in (*params.posonly_params, *params.params)]
    given: Cells = {}
    for at, piece in passed:
        if isinstance(at, int) and at < len(positional):
            given[identifier(positional[at])] = piece
        elif isinstance(at, str) and at in parameter_names(params):
            given[at] = piece
    found: list[tuple[cst.FunctionDef, Cells]] = []
    _nest(function, qualified, {}, found, given)
    return found


def passed_state(
    call: cst.Call, piece_of: Callable[[cst.BaseExpression], str | None]
) -> Passed:
    """The arguments of a call making functions that are module state: each
    one's position (or keyword) and piece."""
    found: list[tuple[int | str, str]] = []
    for at, arg in enumerate(call.args):
        piece = piece_of(arg.value) if not arg.star else None
        if piece is not None:
            found.append((arg.keyword.value if arg.keyword else at, piece))
    return tuple(found)


def _nest(
    scope: cst.FunctionDef,
    qualified: str,
    outer: Cells,
    found: list[tuple[cst.FunctionDef, Cells]],
    given: Cells | None = None,
) -> None:
    own = parameter_names(scope.params) | _own_writes(scope)
    given = given or {}
    cells = {
        **outer,
        **{name: given.get(name, f"{qualified}.{name}") for name in sorted(own)},
    }
    for inner in _defined_in(scope.body):
        # Its parameters and its own locals hide the cells of the same names;
        # a name it declares `nonlocal` is the cell, bound again.
        hidden = parameter_names(inner.params) | (
            _own_writes(inner) - nonlocal_names(inner.body)
        )
        visible = {name: piece for name, piece in cells.items() if name not in hidden}
        found.append((inner, visible))
        _nest(inner, f"{qualified}.{identifier(inner.name.value)}", visible, found)


def wrapped_state(body: Body, name: str) -> str | None:
    """`app.first`, the piece `first.log` is part of, where a project decorator
    wraps the module-level function `first` (`wrapper.log = log`, read as
    `first.log`) with functions over the cells of its call; None otherwise."""
    defining = defining_module(body, name)
    if defining is None:
        return None
    defs, name = defining
    function = module_functions(defs.parsed.module).get(name)
    if function is None or not function.decorators:
        return None
    qualified = f"{defs.location.name}.{name}"
    found = next(wrappers(body, defs, function, qualified), None)
    return qualified if found is not None else None


def wrappers(
    body: Body, defs: ModuleDefs, function: cst.FunctionDef, qualified: str
) -> Iterator[tuple[cst.BaseExpression, cst.BaseExpression, Effects]]:
    """Each project decorator of `function` (of `defs`' module) that makes
    functions over cells: the decorator, the factory it names (`traced` of
    `@traced`, `retry_on` of `@retry_on(KeyError)`), and what a call of what it
    made may do, its cells under `qualified`."""
    for decorator in function.decorators:
        found = wrapper(body, defs, decorator.decorator, qualified)
        if found is not None:
            yield (decorator.decorator, *found)


def wrapper(
    body: Body, defs: ModuleDefs, decorator: cst.BaseExpression, qualified: str
) -> tuple[cst.BaseExpression, Effects] | None:
    """`wrappers`' answer for one decorator of `qualified` (written in `defs`'
    module): the factory it names, and what a call of what it made may do."""
    piece_of = partial(body.reader.state_name, defs, called=False)
    made = _unpartial(decorator)  # `@partial(audit, LOG)` makes what `audit(LOG)` does
    made_by = made.func if isinstance(made, cst.Call) else made
    factory = project_function_in(body, defs, made_by)
    cells = qualified  # each function decorated has cells of its own
    if factory is None and isinstance(made_by, cst.Name):
        # `limited = budget(1)`, then `@limited`: what that one call made,
        # its cells shared by every function `limited` decorates.
        call = made_by_calls(defs.parsed.module).get(identifier(made_by.value))
        if call is not None:
            made, factory = call, project_function_in(body, defs, call.func)
            cells = piece_of(made_by) or qualified
    passed = passed_state(made, piece_of) if isinstance(made, cst.Call) else ()
    effects = (
        body.reader.closures(*factory, cells, passed, qualified) if factory else None
    )
    return (made_by, effects) if effects is not None else None


def _unpartial(decorator: cst.BaseExpression) -> cst.BaseExpression:
    """`audit(LOG)` of `partial(audit, LOG)`: the call a partial stands for."""
    if not isinstance(decorator, cst.Call) or not decorator.args:
        return decorator
    if (dotted(decorator.func) or "").rpartition(".")[2] != "partial":
        return decorator
    first, *rest = decorator.args
    return decorator.with_changes(func=first.value, args=rest)


def project_function_in(
    body: Body, defs: ModuleDefs, func: cst.BaseExpression
) -> tuple[str, str] | None:
    """The project function `func` names in the module of `defs`."""
    qualified = body.reader.resolve(defs, func)
    return body.reader.project_function(qualified) if qualified else None


def any_of(effects: Sequence[Effects], maker: str) -> Effects:
    """What a call of a function `maker` made may do beyond its arguments, where
    it may run any of the functions `maker` defines, with these `effects`. A
    piece two of them use in two ways is changed: the call may be the `get`
    that reads it or the `put` that fills it, and must wait for what either
    must wait for (not a fill with its own reads, as in one body)."""
    uses: dict[str, StateUse] = {}
    for each in effects:
        for piece, use in each.state_uses:
            before = uses.setdefault(piece, use)
            if before.access.conflicts(use.access):
                # Where it is changed, not read: the use that makes it a change.
                where = use.where if before.access is Access.READ else before.where
                said = f" in a function {maker} makes"  # once, round after round
                reason = where.reason.removesuffix(said) + said
                uses[piece] = StateUse(Access.WRITE, replace(where, reason=reason))
            else:  # an accumulation and a fold: a fold
                uses[piece] = before.join(use)
    return Effects(
        params=(),
        external=next((e.external for e in effects if e.external), None),
        reads_state=next((e.reads_state for e in effects if e.reads_state), None),
        state=any(e.state for e in effects),
        state_uses=tuple(sorted(uses.items())),
        context=next((e.context for e in effects if e.context), None),
    )


def fills_as_writes(effects: Effects) -> Effects:
    """`effects` with each fill a change: the value filled is not the same
    whoever fills it, or filling it does more than store it."""
    uses = tuple(
        (piece, replace(use, access=Access.WRITE) if use.access is Access.FILL else use)
        for piece, use in effects.state_uses
    )
    return replace(effects, state_uses=uses)


def nonlocal_names(body: cst.BaseSuite) -> frozenset[str]:
    """The names a function's own body declares `nonlocal` (not its nested ones')."""
    finder = _Nonlocals()
    walk(body, finder)
    return frozenset(finder.names)


def _own_writes(function: cst.FunctionDef) -> set[str]:
    """The names a function binds in its own scope: not those its nested
    functions bind in theirs, but the nested functions' own names."""
    nested = _defined_in(function.body)
    hollow = function.body.visit(_Hollowed())
    assert isinstance(hollow, cst.BaseSuite), "a body stays a body"
    return name_uses(hollow).writes | {identifier(f.name.value) for f in nested}


def _defined_in(body: cst.BaseSuite) -> list[cst.FunctionDef]:
    """The functions a body defines itself, in any block of it (not inside them)."""
    finder = _Definitions()
    walk(body, finder)
    return finder.found


class _Definitions(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.FunctionDef] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.found.append(node)
        return False  # its own are found by its own walk

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False  # a method's cells are its class's business


class _Hollowed(cst.CSTTransformer):
    """A body with its nested functions and classes left out: its own scope."""

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.RemovalSentinel:
        return cst.RemoveFromParent()

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def leave_ClassDef(
        self, original_node: cst.ClassDef, updated_node: cst.ClassDef
    ) -> cst.RemovalSentinel:
        return cst.RemoveFromParent()


class _Nonlocals(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.names.update(identifier(item.name.value) for item in node.names)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False
