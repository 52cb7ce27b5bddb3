"""What making a dataclass and calling a classmethod do, read from their code.

Example input::

    @dataclass
    class Job:
        name: str
        def __post_init__(self) -> None:
            JOBS.append(self)

    class Config:
        mode = "draft"
        @classmethod
        def set(cls, mode: str) -> None:
            cls.mode = mode

Output: `Job("x")` keeps what it is given and stores the object made in
module state (`result_state`); `Config.set("fast")` changes the module state
`app.Config.mode`, and takes no `cls` from its caller.
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
from kilnc.front import ModuleDefs
from kilnc.syntax import code
from kilnc.walk import walk

if TYPE_CHECKING:  # the reader reads what making an object runs with this module
    from kilnc.effects.lookup import Lookup


def factory(reader: Lookup, defs: ModuleDefs, made: cst.BaseExpression) -> Effects:
    """What a field's `default_factory` does when the dataclass is made."""
    if isinstance(made, cst.Lambda):
        return reader.of_lambda(defs, made)
    qualified = reader.resolve(defs, made)
    target = reader.project_function(qualified) if qualified else None
    if target is not None:
        return reader.of_function(*target)
    piece = (
        reader.state_name(defs, made.value, called=False)
        if isinstance(made, cst.Attribute)
        else None
    )  # `_IDS.__next__`: a method of module state, which it may change
    if piece is None:
        return Effects(params=())
    use = StateUse(Access.WRITE, Change(f"calls {code(made)}", defs.parsed.span(made)))
    return Effects(params=(), state=True, state_uses=((piece, use),))


def made_by_dataclass(post_init: Effects | None, factories: list[Effects]) -> Effects:
    """A dataclass's generated `__init__` keeps what it is given as fields; its
    `__post_init__`, given them through `self`, may change any of them; its
    fields' `default_factory` calls do what they do beyond their parameters
    (`next(IDS)`)."""
    post_init = post_init or Effects(params=())
    made = Effects(
        params=(),
        variadic=True,
        changes=post_init.changes,
        external=post_init.external,
        reads_state=post_init.reads_state,
        escapes=post_init.escapes,
        state=post_init.state,
        state_uses=tuple(
            (name, use)
            for name, use in post_init.state_uses
            if not part_of(name, RECEIVER)  # the object made is no one else's yet
        ),
        # `ALL.append(self)` in `__post_init__`: the object made is stored there.
        result_state=bool(post_init.params)
        and post_init.params[0] in post_init.escapes,
    )
    return replace(
        made,
        external=made.external
        or next((f.external for f in factories if f.external), None),
        state=made.state or any(f.state for f in factories),
        state_uses=join_state(made.state_uses, *(f.state_uses for f in factories)),
    )


def of_class_method(
    effects: Effects, defs: ModuleDefs, function: cst.FunctionDef, piece: str | None
) -> Effects:
    """A classmethod's effects on its class are effects on module state: the
    class is a module's (the piece `piece`, with its bases: class_pieces.py).
    Its `cls` is no parameter a caller passes."""
    cls = effects.params[0] if effects.params else None
    if cls is None:
        return effects
    changed = effects.change(cls)
    read = _attribute_of(defs, function, cls)
    uses = [
        (name, use) for name, use in effects.state_uses if not part_of(name, RECEIVER)
    ]
    returned = {name for name in effects.result_pieces if not part_of(name, RECEIVER)}
    if piece is not None:  # what it does to `cls` it does to the class
        uses += [
            (on_object(name, piece), use)
            for name, use in effects.state_uses
            if part_of(name, RECEIVER)
        ]
        # What it hands out of `cls` (`return cls._instance`) is the class's.
        returned |= {
            on_object(name, piece)
            for name in effects.result_pieces
            if part_of(name, RECEIVER)
        }
    return replace(
        effects,
        state_uses=join_state(uses),
        result_pieces=frozenset(returned),
        params=effects.params[1:],
        changes=tuple((p, c) for p, c in effects.changes if p != cls),
        escapes=effects.escapes - {cls},
        external=effects.external or changed,
        reads_state=effects.reads_state or read,
        state=effects.state or changed is not None or read is not None,
    )


def _attribute_of(
    defs: ModuleDefs, function: cst.FunctionDef, name: str
) -> Change | None:
    """`cls.count` read in the function: a read of its class's state."""
    found = _Attributes(name)
    walk(function.body, found)
    if found.first is None:
        return None
    shown = f"reads {code(found.first)}, class state"
    return Change(shown, defs.parsed.span(found.first))


class _Attributes(cst.CSTVisitor):
    def __init__(self, name: str) -> None:
        self.name = name
        self.first: cst.Attribute | None = None

    def visit_Attribute(self, node: cst.Attribute) -> None:
        value = node.value
        named = isinstance(value, cst.Name) and value.value == self.name
        if self.first is None and named:
            self.first = node
