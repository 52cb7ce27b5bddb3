"""What a logging call runs of the project's own code: its handlers', filters'
and formatters' methods.

Example input::

    RECORDS: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            RECORDS.append(record.getMessage())

    logging.getLogger().addHandler(ListHandler())

    @node
    async def step() -> None:
        log.info("step")                 # runs ListHandler.emit

Output: `step` adds to `RECORDS`, as `emit` does. A record climbs the tree of
loggers to whatever handlers any module added, so any logging call may run
any method of any project class with one of `logging`'s classes among its
bases. What such a method does to its object is a use of each module-level
object of such a class (`CAPTURED = ListHandler()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import libcst as cst

from kilnc.effect_ir import Change, Effects, StateUses, join_state
from kilnc.effects.escaped import on_receiver
from kilnc.effects.module_names import declared_types
from kilnc.effects.project_calls import beyond_parameters

if TYPE_CHECKING:
    from kilnc.effects import EffectReader
    from kilnc.effects.body import Body
    from kilnc.effects.methods import ClassFound
    from kilnc.front import ModuleDefs


def logging_call(body: Body, node: cst.Call, shown: str) -> None:
    """A call of a logger's (`log.info(...)`, `logging.warning(...)`): its
    effect is outside the program, but for the project's handlers it runs."""
    body.external(f"calls {shown}", node)
    beyond_parameters(body, node, body.reader.log_handlers(), shown, None)


def handler_effects(
    reader: EffectReader,
    loaded: Mapping[str, ModuleDefs | None],
    cache: dict[tuple[str, ...], Effects],
) -> Effects:
    """What the project's logging classes' methods do, in the modules read so
    far (`loaded`); kept in `cache` by those modules' names."""
    read = [defs for defs in loaded.values() if defs is not None]
    key = ("logging", *sorted(defs.location.name for defs in read))
    if key not in cache:
        cache[key] = Effects(params=())  # while reading them: nothing
        cache[key] = _handlers(reader, read)
    return cache[key]


def _handlers(reader: EffectReader, modules: list[ModuleDefs]) -> Effects:
    classes = [
        (defs, statement)
        for defs in modules
        for statement in defs.parsed.module.body
        if isinstance(statement, cst.ClassDef) and _logs(reader, (defs, statement))
    ]
    if not classes:
        return Effects(params=())
    objects: list[str | None] = [*_objects_of(reader, modules, [c for _, c in classes])]
    uses: list[StateUses] = []
    external: Change | None = None
    for defs, cls in classes:
        for statement in cls.body.body:
            if not isinstance(statement, cst.FunctionDef):
                continue
            qualname = f"{cls.name.value}.{statement.name.value}"
            effects = reader.of_function(defs.location.name, qualname)
            external = external or effects.external
            for receiver in objects or [None]:  # none made: its own uses only
                uses.append(on_receiver(effects.state_uses, receiver))
    return Effects(
        params=(),
        variadic=True,
        state=any(uses),
        state_uses=join_state(*uses),
        external=external,
    )


def _logs(reader: EffectReader, found: ClassFound) -> bool:
    """Whether a class or one of its project bases derives from a class of
    `logging`'s (`logging.Handler`, `logging.Filter`, `StreamHandler`)."""
    order, _ = reader.classes.linearize(found)
    return any(
        (reader.resolve(defs, base.value) or "").startswith("logging.")
        for defs, cls in order
        for base in cls.bases
    )


def _objects_of(
    reader: EffectReader, modules: list[ModuleDefs], classes: list[cst.ClassDef]
) -> list[str]:
    """The pieces of module state that are objects of the classes, made at
    module level in any module read (`CAPTURED = ListHandler()`)."""
    found: list[str] = []
    for defs in modules:
        for name, kind in declared_types(defs.parsed.module).items():
            made = reader.classes.find(defs, kind)
            piece = reader.state_name(defs, cst.Name(name), called=False)
            if made is not None and made[1] in classes and piece is not None:
                found.append(piece)
    return found
