"""What a call of a decorated function runs besides its own body: the code its
project decorators put in its place.

Example input (the module `app`)::

    class RateLimiter:
        def __init__(self, n: int) -> None:
            self.n = n

        def __call__(self, fn):
            async def wrapper(*args):
                USED.append(fn.__name__)
                if len(USED) > self.n: raise Exhausted()
                return await fn(*args)
            return wrapper

    class Counted:
        def __init__(self, fn) -> None:
            self.fn, self.calls = fn, 0

        def __call__(self, *args):
            self.calls += 1
            return self.fn(*args)

    limiter = RateLimiter(1)

    def limited(fn):
        return budget(1)(fn)       # `budget`, a decorator factory

    @limiter                       # what `limiter.__call__` made
    async def plan(task): ...
    @RateLimiter(1)                # the same, on an object of its own
    async def fetch(q): ...
    @Counted                       # `Counted.__call__`, on the object `count` is
    async def count(q): ...
    @limited                       # what `budget(1)` made, as `@budget(1)` would
    async def critique(task): ...

Output: for each decorator, what a call of the function may do beyond its
arguments. The functions a factory makes use the cells of its call
(closures.py); a class's object handed the function (`@RateLimiter(1)`,
`@limiter`) makes what runs with its `__call__`, whose cells are the call's
and whose `self` is the object: `app.limiter`, which every function it
decorates shares, or one of the function's own (`app.fetch.self`). A class
named as the decorator (`@Counted`) makes the function's name its object,
and a call runs its `__call__` on it (`app.count`). A decorator that hands
the function on to another (`return budget(1)(fn)`), or a factory that
returns one (`def limit(n): return budget(n)`), is read as that one.
Where kiln cannot read what the class runs (a `__call__` it cannot read, or
one that returns something other than a function it defines or the function
it was given), the call may do what any code of the class may
(class_code.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Final

import libcst as cst

from kilnc.effect_ir import Change, Effects
from kilnc.effects.body import Body
from kilnc.effects.class_code import any_code, defines, on_instance
from kilnc.effects.closures import passed_state, project_function_in, wrapper
from kilnc.effects.methods import ClassFound
from kilnc.effects.module_names import made_by_calls
from kilnc.front import ModuleDefs
from kilnc.names import identifier
from kilnc.syntax import code, returned_values

# How many decorators handing the function on to another kiln follows.
_HANDED_ON: Final = 4

Made = tuple[cst.BaseExpression, Effects]  # what made the code, and its effects


def decorations(
    body: Body, function: cst.FunctionDef, qualified: str
) -> Iterator[tuple[cst.BaseExpression, cst.BaseExpression, Effects]]:
    """Each project decorator of `function` (the function `qualified`, of the
    body's module) that puts code in its place: the decorator, what made the
    code, and what a call of it may do beyond its arguments."""
    for decorator in function.decorators:
        found = decorator.decorator
        for made_by, effects in _applied(body, body.defs, found, qualified, 0):
            yield found, made_by, effects


def _applied(
    body: Body,
    defs: ModuleDefs,
    decorator: cst.BaseExpression,
    qualified: str,
    depth: int,
) -> Iterator[Made]:
    """What the decorator expression `decorator`, written in `defs`' module,
    makes a call of the function run."""
    made = wrapper(body, defs, decorator, qualified)  # a factory's functions
    if made is not None:
        yield made
    made = _of_class(body, defs, decorator, qualified)
    if made is not None:
        yield made
    if depth < _HANDED_ON:
        for owner, other in _handed_on(body, defs, decorator):
            yield from _applied(body, owner, other, qualified, depth + 1)


def _of_class(
    body: Body, defs: ModuleDefs, decorator: cst.BaseExpression, qualified: str
) -> Made | None:
    """A class's object as the decorator (`@RateLimiter(1)`, `@limiter` of
    `limiter = RateLimiter(1)`), or the class itself (`@Counted`)."""
    made, instance = decorator, None
    if isinstance(decorator, cst.Name):
        call = made_by_calls(defs.parsed.module).get(identifier(decorator.value))
        if call is not None:  # one object, which every function it decorates shares
            made = call
            instance = body.reader.state_name(defs, decorator, called=False)
            instance = instance or f"{defs.location.name}.{decorator.value}"
    why = Change(
        f"is decorated by {code(decorator)}, whose code kiln cannot follow",
        defs.parsed.span(decorator),
    )
    if isinstance(made, cst.Call):
        found = _project_class(body, defs, made.func)
        if found is None:
            return None
        # What it keeps of module state it is given (`RateLimiter(AUDIT)`).
        piece_of = partial(body.reader.state_name, defs, called=False)
        given = [piece for _, piece in passed_state(made, piece_of)]
        piece = instance or (given[0] if given else f"{qualified}.self")
        return made.func, _made_by_call(body, found, piece, qualified, why)
    found = _project_class(body, defs, decorator)
    if found is None:
        return None
    # The function's name holds `Counted(fn)`: a call runs its `__call__`.
    return decorator, _runs(body, found, "__call__", qualified, why)


def _made_by_call(
    body: Body, found: ClassFound, piece: str, qualified: str, why: Change
) -> Effects:
    """What a call of what the object `piece` of the class `found` made of a
    function (`self.__call__(fn)`) may do."""
    reader = body.reader
    method = reader.classes.method(found, "__call__")
    definition = (
        reader.classes.definition(method.module, method.qualname) if method else None
    )
    if method is None or not isinstance(definition, tuple):  # none kiln can read
        return _unread(body, found, "__call__", piece, why)
    function = definition[1]
    handed = _parameters(function)[1:2]  # `fn` of `__call__(self, fn)`
    returned = returned_values(function)
    made = reader.closures(
        method.module, method.qualname, qualified, ((0, piece),), qualified
    )
    if made is not None:  # `return wrapper`, a function it defines
        return made
    if returned and all(
        isinstance(value, cst.Name) and value.value in handed for value in returned
    ):  # `return fn`: it registers the function, which runs as it is
        return Effects(params=())
    return any_code(reader, found, piece, why)


def _runs(body: Body, found: ClassFound, name: str, piece: str, why: Change) -> Effects:
    """What the method `name` of the class `found` does, run on its object `piece`."""
    reader = body.reader
    method = reader.classes.method(found, name)
    if method is None:
        return _unread(body, found, name, piece, why)
    return on_instance(reader.of_function(method.module, method.qualname), piece)


def _unread(
    body: Body, found: ClassFound, name: str, piece: str, why: Change
) -> Effects:
    """A method `name` kiln cannot read (or a class that defines none: calling
    its object fails, in the source too)."""
    if not defines(body.reader, found, name):
        return Effects(params=())
    return any_code(body.reader, found, piece, why)


def _handed_on(
    body: Body, defs: ModuleDefs, decorator: cst.BaseExpression
) -> Iterator[tuple[ModuleDefs, cst.BaseExpression]]:
    """The decorators a project function hands the function it decorates on to
    (`return budget(1)(fn)` of `@limited`), or that a factory returns (`return
    budget(n)` of `@limit(2)`), each with the module it is written in."""
    call = isinstance(decorator, cst.Call)
    named = decorator.func if isinstance(decorator, cst.Call) else decorator
    target = project_function_in(body, defs, named)
    found = body.reader.classes.definition(*target) if target else None
    if not isinstance(found, tuple) or found[3] != "function":
        return
    owner, function = found[0], found[1]
    handed = _parameters(function)[:1]
    for value in returned_values(function):
        if call and isinstance(value, cst.Call | cst.Name | cst.Attribute):
            yield owner, value  # a factory's decorator
        elif (
            not call
            and isinstance(value, cst.Call)
            and [code(arg.value) for arg in value.args] == handed
            and code(value.func) not in handed
        ):
            yield owner, value.func  # `budget(1)` of `budget(1)(fn)`


def _project_class(
    body: Body, defs: ModuleDefs, named: cst.BaseExpression
) -> ClassFound | None:
    """The project class `named` names in `defs`' module."""
    target = project_function_in(body, defs, named)
    return body.reader.classes.find_in(*target) if target else None


def _parameters(function: cst.FunctionDef) -> list[str]:
    params = function.params
    return [
        identifier(param.name.value)
        for param in (*params.posonly_params, *params.params)
    ]
