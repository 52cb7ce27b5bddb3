"""Project functions a body reaches without naming them in a call.

Example input (a node's body, in a module that defines `record(x)`, which
appends to `LOG`, and binds `HOOK = record`, `HANDLERS = {"log": record}`)::

    await asyncio.to_thread(record, x)     # handed on: whoever takes it may call it
    list(map(record, xs))
    HOOK(x)                                # called through a module-level name
    HANDLERS[kind](x)                      # through a table of them

Output, on the `Body`: each line uses `app.LOG` as `record` does. A function
handed on is called with arguments kiln cannot see, so only what it does
beyond its parameters counts (module state, outside effects, a ContextVar
set); one called through a name is called with this call's arguments. A
module-level name bound once to a function, a `functools.partial` of one, a
lambda, a method of a module-level object, or a dict, list or tuple of
those, is read through what it is bound to.
"""

from __future__ import annotations

from functools import partial

import libcst as cst

from kilnc.effect_ir import Access, Change, Effects, StateUse
from kilnc.effects.body import Body
from kilnc.effects.closures import fills_as_writes, passed_state, project_function_in
from kilnc.effects.decorators import decorations
from kilnc.effects.library_objects import sets_context
from kilnc.effects.module_names import bound_once, made_by_calls
from kilnc.effects.project_calls import beyond_parameters, project_call
from kilnc.effects.state_uses import merge, record, state_of
from kilnc.mutability import PURE_METHODS
from kilnc.names import identifier
from kilnc.syntax import chain_root, code, dotted


def handed(body: Body, node: cst.Name | cst.Attribute) -> None:
    """`node`, a project function named as a value, may be called by what it is
    handed to: what it does beyond its parameters, this body may do."""
    found = _project_function(body, node)
    if found is None:
        return
    # Called with arguments kiln cannot see, on no object it can name.
    effects = body.reader.of_function(*found)
    beyond_parameters(body, node, effects, code(node), None, "hands on")


def hands_changes(body: Body, call: cst.Call) -> None:
    """A project function handed to a call (`map(add_row, [rows], [row])`) that
    changes what it is given: the call may give it any of its other arguments,
    or their items, so it may change each of them."""
    handed = [
        arg
        for arg in call.args
        if isinstance(arg.value, cst.Name | cst.Attribute)
        and (found := _project_function(body, arg.value)) is not None
        and body.reader.of_function(*found).changes
    ]
    for function in handed:
        reason = f"hands on {code(function.value)}, which changes what it is given"
        for arg in call.args:
            if arg is not function:
                body.change(arg.value, reason, call)


def called_through(body: Body, node: cst.Call) -> bool:
    """A call through a module-level name bound to project functions or lambdas
    (`HOOK(x)`, `HANDLERS[kind](x)`), read as a call of each; False where kiln
    cannot tell what the name holds."""
    func = node.func
    table = isinstance(func, cst.Subscript)
    root = func.value if isinstance(func, cst.Subscript) else func
    first = chain_root(root)
    if not isinstance(first, cst.Name) or identifier(first.value) in (
        body.local_names | body.params.keys()
    ):
        return False
    if not table:
        closure_call(body, node)
    if not isinstance(root, cst.Name):
        return False
    name = identifier(root.value)
    binding = bound_once(body.defs.parsed.module).get(name)
    value = binding.value if binding is not None else None
    if value is None:
        return not table and _imported_state_method(body, node)
    held = _items(value) if table else [value]
    if not held:
        return False
    seen = True
    for callee in held:
        seen &= _call_of(body, node, callee)
    return seen


def closure_call(body: Body, node: cst.Call) -> None:
    """`put(k, v)`, where a module binds `put, get = make_store()` (this one, or
    one it imports `put` or itself from): the call may run any function
    `make_store` defines, which use the cells of the call that made `put`,
    the pieces under `put`'s (closures.py)."""
    qualified = body.reader.resolve(body.defs, node.func)  # `app.store.put`
    module, _, name = (qualified or "").rpartition(".")
    defs = body.reader.module_defs(module) if module else None
    made = made_by_calls(defs.parsed.module).get(name) if defs else None
    if defs is None or made is None:
        return
    factory = project_function_in(body, defs, made.func)
    piece = body.reader.state_name(defs, cst.Name(name), called=False)
    passed = passed_state(made, partial(body.reader.state_name, defs, called=False))
    effects = (
        body.reader.closures(*factory, piece, passed) if factory and piece else None
    )
    if effects is not None:
        beyond_parameters(body, node, effects, code(node.func), None)


def decorated_by(body: Body, function: cst.FunctionDef, qualified: str) -> None:
    """A function a project decorator wraps (`@traced`, `@retry_on(KeyError)`):
    a call of it runs what the decorator made, which uses the cells of its
    call, the pieces under the function's own name (closures.py).

    A memo the decorator keeps (`if x not in cache: cache[x] = await fn(x)`)
    is a fill only where the function changes no state: else two calls of one
    key may both miss, and the function add twice where the source adds once.
    """
    changes = any(
        use.access is not Access.READ for use in body.found.state_uses.values()
    )
    for decorator, made_by, effects in decorations(body, function, qualified):
        made = fills_as_writes(effects) if changes else effects
        beyond_parameters(body, decorator, made, code(made_by), None, "is made by")


def _call_of(body: Body, node: cst.Call, callee: cst.BaseExpression) -> bool:
    """`node` read as a call of `callee`, what a module-level name holds."""
    if isinstance(callee, cst.Lambda):  # its parameters are what the call passes
        project_call(body, node, body.reader.of_lambda(body.defs, callee), "a lambda")
        return True
    call = node
    if isinstance(callee, cst.Call) and _partial(callee):
        # `partial(_set, STATE, "k")(v)` calls `_set(STATE, "k", v)`, its
        # keywords after every position (`sorted` keeps each group's order).
        given = [*callee.args[1:], *node.args]
        ordered = sorted(given, key=lambda arg: arg.keyword is not None)
        call = node.with_changes(args=ordered)
        callee = callee.args[0].value
    if not isinstance(callee, cst.Name | cst.Attribute):
        return False
    shown = code(callee)
    found = _project_function(body, callee)
    if found is not None:
        effects: Effects = body.reader.of_function(*found)
        project_call(body, call, effects, shown, where=node)
        return True
    if not isinstance(callee, cst.Attribute):
        return False
    method = body.reader.called(body, callee)
    if method is None:
        return _state_method(body, node, callee)
    module, qualname, receiver = method
    effects = body.reader.of_function(module, qualname)
    project_call(body, call, effects, shown, receiver, where=node)
    return True


def _imported_state_method(body: Body, node: cst.Call) -> bool:
    """`emit(e)`, where `from app.events import emit` and that module binds
    `emit = EVENTS.append`: a use of `app.events.EVENTS` as the method's name
    says (a read for a container's reading method, else a change)."""
    qualified = body.reader.resolve(body.defs, node.func) or ""
    module, _, name = qualified.rpartition(".")
    defs = body.reader.module_defs(module) if module else None
    if defs is None or defs is body.defs:
        return False
    binding = bound_once(defs.parsed.module).get(name)
    method = binding.value if binding is not None else None
    if not isinstance(method, cst.Attribute):
        return False
    piece = body.reader.state_name(defs, method.value, called=False)
    if piece is None:
        return False
    access = Access.READ if method.attr.value in PURE_METHODS else Access.WRITE
    reason = f"calls {code(node.func)}, which is {module}.{code(method)}"
    merge(body, piece, StateUse(access, Change(reason, body.defs.parsed.span(node))))
    return True


def _state_method(body: Body, node: cst.Call, method: cst.Attribute) -> bool:
    """`emit(e)` of `emit = EVENTS.append`: a method of module state that no
    project class defines, read as its name says (`append` changes `EVENTS`,
    `get` reads it; one kiln does not know may change it); False where its
    object is no module state."""
    receiver, name = method.value, method.attr.value
    if state_of(body, receiver) is None:
        return False
    reason = f"calls {code(node.func)}, which is {code(method)}"
    if name == "set" and sets_context(body, receiver):
        body.sets_context(f"{reason}, a ContextVar's", node)
    elif body.reader.is_logger(body.defs, receiver):
        body.external(reason, node)
    else:
        access = Access.READ if name in PURE_METHODS else Access.WRITE
        record(body, receiver, access, reason, node)
    return True


def _project_function(
    body: Body, node: cst.Name | cst.Attribute
) -> tuple[str, str] | None:
    """The project function `node` names, where no local or parameter shadows it."""
    root = chain_root(node)
    if not isinstance(root, cst.Name) or identifier(root.value) in (
        body.local_names | body.params.keys()
    ):
        return None
    qualified = body.reader.resolve(body.defs, node)
    return body.reader.project_function(qualified) if qualified else None


def _partial(call: cst.Call) -> bool:
    name = dotted(call.func) or ""
    return name.rpartition(".")[2] == "partial" and bool(call.args)


def _items(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    """What a table of functions holds: a dict's values, a list's or tuple's items."""
    if isinstance(value, cst.Dict):
        return [e.value for e in value.elements if isinstance(e, cst.DictElement)]
    if isinstance(value, cst.List | cst.Tuple | cst.Set):
        return [e.value for e in value.elements if isinstance(e, cst.Element)]
    return []
