"""The project's functions used as values: what a call kiln cannot resolve may run.

Example input::

    TOOLS: dict[str, Callable[[str], str]] = {}

    def tool(fn):                          # a registration decorator
        TOOLS[fn.__name__] = fn
        return fn

    @tool
    def save(text: str) -> str:
        NOTES.append(text)
        ...

    @node
    async def act(name: str, arg: str) -> str:
        return TOOLS[name](arg)            # kiln cannot tell which function

Output: `save` is a value (a project decorator is handed it), so the call in
`act` may run it: `act` adds to `NOTES`, as `save` does. A function can be
called through a value kiln cannot resolve only if code named it without
calling it: a registry filled by a decorator or by a store (`REG[k] = f`), a
callback a node is handed or keeps (`bus.handlers.append(remember)`), a
bound method of a module-level object (`STORE.save`). The module state the
functions named so use, in the modules kiln has read, is what such a call
uses; what they do to their own parameters stays theirs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import libcst as cst

from kilnc.effect_ir import (
    RECEIVER,
    Access,
    Change,
    Effects,
    StateUse,
    StateUses,
    join_state,
    on_object,
    part_of,
)
from kilnc.effects.module_names import declared_types
from kilnc.mutability import MUTATING_METHODS, PURE_METHODS
from kilnc.syntax import dotted
from kilnc.walk import walk

if TYPE_CHECKING:
    from kilnc.effects import EffectReader
    from kilnc.front import ModuleDefs


def escaped_effects(
    reader: EffectReader,
    loaded: Mapping[str, ModuleDefs | None],
    cache: dict[tuple[str, ...], Effects],
) -> Effects:
    """What the functions named as values in the modules read so far (`loaded`)
    do beyond their parameters; kept in `cache` by those modules' names."""
    read = {name: defs for name, defs in loaded.items() if defs is not None}
    key = tuple(sorted(read))
    if key not in cache:
        cache[key] = Effects(params=())  # while reading them: nothing
        cache[key] = _escaped(reader, list(read.values()))
    return cache[key]


def _escaped(reader: EffectReader, modules: list[ModuleDefs]) -> Effects:
    uses: list[StateUses] = []
    external: Change | None = None
    for defs in modules:
        finder = _Values()
        walk(defs.parsed.module, finder)
        for (module, name), receiver in _named_as_values(reader, defs, finder):
            effects = reader.of_function(module, name)
            external = external or effects.external
            uses.append(on_receiver(effects.state_uses, receiver))
        for function in finder.lambdas:  # `subscribe(lambda p: _track(p))`
            effects = reader.of_lambda(defs, function)
            external = external or effects.external
            uses.append(on_receiver(effects.state_uses, None))
        uses.append(_container_methods(reader, defs, finder.found))
    return Effects(
        params=(),
        variadic=True,
        state=any(uses),
        state_uses=join_state(*uses),
        external=external,
    )


def on_receiver(uses: StateUses, receiver: str | None) -> StateUses:
    """A method's uses of its object (`<self>.notes`) as uses of `receiver`, the
    piece its module-level object is; dropped where it is no such object."""
    if receiver is None:
        return tuple(
            (piece, use) for piece, use in uses if not part_of(piece, RECEIVER)
        )
    return tuple(
        (on_object(piece, receiver) if part_of(piece, RECEIVER) else piece, use)
        for piece, use in uses
    )


def _named_as_values(
    reader: EffectReader, defs: ModuleDefs, finder: _Values
) -> Iterator[tuple[tuple[str, str], str | None]]:
    """The project functions and methods `defs` names without calling them, and
    those a decorator of the project is handed; a bound method of a module-level
    object (`STORE.save`) with the piece of state its object is."""
    seen: set[tuple[str, str]] = set()
    made = declared_types(defs.parsed.module)
    for node in finder.found:
        qualified = reader.resolve(defs, node)
        target = reader.project_function(qualified) if qualified else None
        receiver = None
        if target is None and isinstance(node, cst.Attribute):
            owner = node.value
            kind = made.get(owner.value) if isinstance(owner, cst.Name) else None
            method = reader.method(defs, kind, node.attr.value) if kind else None
            if method is not None:
                target = (method.module, method.qualname)
                receiver = reader.state_name(defs, owner, called=False)
        if target is not None and target not in seen:
            seen.add(target)
            yield target, receiver


# The builtin containers' methods: what a name for one of module state calls.
_METHODS = MUTATING_METHODS | PURE_METHODS | {"__setitem__", "__delitem__"}


def _container_methods(
    reader: EffectReader, defs: ModuleDefs, found: list[cst.BaseExpression]
) -> StateUses:
    """A method of module state no project class defines, named as a value
    (`SINKS.append(EVENTS.append)`, `{"events": EVENTS.append}`): whoever calls
    it changes its object, or reads it (`LOOKUP = CACHE.get`)."""
    uses: list[tuple[str, StateUse]] = []
    for node in found:
        if not isinstance(node, cst.Attribute) or node.attr.value not in _METHODS:
            continue  # an attribute read (`STORE.data`), not a method handed on
        piece = reader.state_name(defs, node.value, called=False)
        if piece is None or reader.is_logger(defs, node.value):
            continue
        access = Access.READ if node.attr.value in PURE_METHODS else Access.WRITE
        where = Change(f"{dotted(node)} is handed on", defs.parsed.span(node))
        uses.append((piece, StateUse(access, where)))
    return join_state(uses)


class _Values(cst.CSTVisitor):
    """Names and attributes read as values: not called, not a decorator of
    kiln's; and the lambdas, each a value whoever holds it may call."""

    def __init__(self) -> None:
        self.found: list[cst.BaseExpression] = []
        self.lambdas: list[cst.Lambda] = []
        self._called: set[cst.BaseExpression] = set()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.lambdas.append(node)

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Call(self, node: cst.Call) -> None:
        self._called.add(node.func)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._called.add(node.name)  # a name defined, not read
        # A project decorator is handed the function it decorates (`@tool`).
        if any(_projects(d.decorator) for d in node.decorators):
            self.found.append(node.name)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._called.add(node.name)

    def visit_Param(self, node: cst.Param) -> None:
        self._called.add(node.name)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if node not in self._called and dotted(node) is not None:
            self.found.append(node)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        if node not in self._called:
            self.found.append(node)


def _projects(decorator: cst.BaseExpression) -> bool:
    """Whether a decorator may keep what it decorates: any but kiln's own and the
    builtin descriptors (a project's `@tool`, `@register("x")`)."""
    name = dotted(decorator.func if isinstance(decorator, cst.Call) else decorator)
    last = (name or "").rpartition(".")[2]
    return last not in ("node", "flow", "property", "staticmethod", "classmethod")
