"""What the code of a project class does to one object of it, where that object
is a piece of module state: a decorator's object, a descriptor, a class made.

Example input (the module `app`)::

    class RateLimiter:
        def __init__(self, n: int) -> None:
            self.n = n
            self.used = 0

        def take(self) -> None:
            self.used += 1
            LOG.append("took")

    limiter = RateLimiter(1)

Output: `on_instance` of `take`'s effects and `app.limiter` says a call of
`limiter.take()` changes `app.limiter` (its `used`) and adds to `app.LOG`.
Where Python runs code of the class that kiln cannot read (a `__call__` a
decorator wraps, one of a base kiln cannot read), `any_code` says what the
call may do: what any method of the class may do to the object and beyond
it, or any function the project names as a value (escaped.py), and it may
change the object. That keeps the source's order where kiln cannot tell.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import libcst as cst

from kilnc.effect_ir import (
    RECEIVER,
    Access,
    Change,
    Effects,
    StateUse,
    join_state,
    on_object,
    part_of,
)
from kilnc.effects.closures import any_of
from kilnc.effects.method_defs import class_statements, method_def, method_kind

if TYPE_CHECKING:  # the reader reads the class's methods with this module
    from kilnc.effects.lookup import Lookup
    from kilnc.effects.methods import ClassFound


def on_instance(effects: Effects, piece: str) -> Effects:
    """A method's `effects`, its uses of its object (`<self>.used`) uses of
    `piece`, the object it runs on."""
    uses = [
        (on_object(name, piece) if part_of(name, RECEIVER) else name, use)
        for name, use in effects.state_uses
    ]
    returned = frozenset(
        on_object(name, piece) if part_of(name, RECEIVER) else name
        for name in effects.result_pieces
    )
    return replace(effects, state_uses=join_state(uses), result_pieces=returned)


def defines(reader: Lookup, found: ClassFound, name: str) -> bool:
    """Whether a project class in `found`'s method resolution order defines
    `name`, readable by kiln or not."""
    order, _ = reader.classes.linearize(found)
    return any(method_def(cls, name) is not None for _, cls in order)


def any_code(reader: Lookup, found: ClassFound, piece: str, why: Change) -> Effects:
    """What code of the class `found` that kiln cannot read, run on its object
    `piece`, may do (`why`: what runs it, and where)."""
    read: list[Effects] = []
    order, _ = reader.classes.linearize(found)
    for defs, cls in order:
        module = defs.location.name
        for statement in class_statements(cls):
            if not isinstance(statement, cst.FunctionDef):
                continue
            name = f"{cls.name.value}.{statement.name.value}"
            if method_kind(statement) is None:  # wrapped: its body, read plainly
                read.append(reader.of_lambda(defs, statement))
                continue
            read.append(on_instance(reader.of_function(module, name), piece))
            made = reader.closures(module, name, piece, ((0, piece),))
            if made is not None:  # a function it makes, over the object
                read.append(made)
    changed = StateUse(Access.WRITE, why)
    read.append(Effects(params=(), state=True, state_uses=((piece, changed),)))
    read.append(reader.escaped())
    return any_of(read, cls_name(found))


def cls_name(found: ClassFound) -> str:
    """`app.RateLimiter`: the class as a reason names it."""
    module = found[0].location.name
    name = found[1].name.value
    return f"{module}.{name}" if module else name
