"""Which of a module's names hold state that code may change while a flow runs.

Example input::

    CACHE: dict[str, str] = {}     # a mutable value
    LIMIT = 3                      # a number nothing rebinds: not state
    MODE = "draft"                 # rebound by `set_mode`'s `global MODE`
    class Config:                  # its attributes may be assigned
        mode = "draft"
    class Grade(Enum): ...         # its members never change: not state

Output: `ModuleState(values={"CACHE", "MODE"}, classes={"Config"},
constants={"LIMIT"})`. Another module may still rebind a constant
(`settings.LIMIT = 5`): the nodes that read it are ordered against that
(`state_uses.py`), though a flow's own read of it costs nothing.

A node may change any of these (`CACHE[key] = ...`, `Config.mode = ...`), so
a flow's own statement that reads one keeps its place among the steps, as
the source runs it, where it sees what the nodes before it did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import libcst as cst

from kilnc.names import identifier, name_uses, root_names, target_names
from kilnc.syntax import code, dotted
from kilnc.walk import walk

if TYPE_CHECKING:  # the body asks this module which names are state: a cycle
    from kilnc.effects.body import Body
    from kilnc.front import ModuleDefs

# Bases whose classes hold constants: their attributes are never assigned.
_CONSTANT_BASES = frozenset(
    {"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag", "NamedTuple", "TypedDict"}
)


@dataclass(frozen=True, slots=True)
class ModuleState:
    values: frozenset[str]  # module-level names bound to what may change
    classes: frozenset[str]  # classes whose attributes may be assigned
    constants: frozenset[str]  # names bound to what cannot change
    # By class, the attributes its body assigns (`mode = "slow"`): its own, and
    # its instances' until one sets its own.
    class_attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Each value bound to what may hold another's object (`VIEW = CACHE`, `A =
    # {"items": SHARED}`), and each class with its bases, by the first name of
    # those that may share one: one piece of state, under that name.
    shared: Mapping[str, str] = field(default_factory=dict)


def holds_state(
    body: Body, node: cst.BaseExpression, seen: frozenset[str] = frozenset()
) -> bool:
    """Whether `node` may be module state: rooted at it (`HISTORIES[user]`,
    `CACHE.setdefault(key, [])`), a local bound to such, or one the body
    stored there (`SESSIONS[key] = session`)."""
    if isinstance(node, cst.Call) and id(node) in body.state_calls:
        return True  # a project function's result that is module state's
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        if _imported_module(body, node.func.value):
            # `random.random()`, `np.zeros(3)`: a function of a module the body
            # imports, whose value is its own (a project function's that is
            # module state's is in `state_calls`), not a method of module state.
            return False
        node = node.func.value
    if body.is_module_state(node):
        return True
    local = (root_names(node) & body.local_names) - seen
    if local & body.found.escaped_locals:
        return True
    return any(
        targets & local and holds_state(body, value, seen | local)
        for targets, value in body.bindings.bound
    )


def class_state(defs: ModuleDefs, name: str) -> str | None:
    """`app.cfg.Config`: the piece of module state the class `name` of `defs` is,
    if its attributes may be assigned."""
    state = module_state(defs.parsed.module)
    if name not in state.classes:
        return None
    name = state.shared.get(name, name)
    prefix = defs.location.name
    return f"{prefix}.{name}" if prefix else name


def of_class_body(defs: ModuleDefs, cls: str, attribute: str) -> str | None:
    """`app.Store.mode`: the piece `self.mode` is in a method of `Store`, whose
    body assigns `mode` (a classmethod may set it for every instance)."""
    state = module_state(defs.parsed.module)
    piece = class_state(defs, cls)
    if piece is None or attribute not in state.class_attributes.get(cls, ()):
        return None
    return f"{piece}.{attribute}"


def of_instance_class(body: Body, name: str, attribute: str) -> str | None:
    """`app.Store.mode` of `STORE.mode`, `STORE` a `Store` of the same module."""
    declared = declared_global(body, name)
    return of_class_body(*declared, attribute) if declared is not None else None


def _imported_module(body: Body, node: cst.BaseExpression) -> bool:
    """Whether `node` names a module the body's module imports (`import random`)."""
    if not isinstance(node, cst.Name) or not body.is_module_state(node):
        return False
    imported = body.defs.imports.get(identifier(node.value))
    return imported is not None and imported.attribute is None


@lru_cache(maxsize=256)  # every read of a name of the module asks
def module_state(module: cst.Module) -> ModuleState:
    found = _Bindings()
    walk(module, found)
    constants = frozenset(found.constants - found.values)
    values = frozenset(found.values)
    graph: dict[str, set[str]] = {}  # who may hold whose object, both ways
    classes = frozenset(found.classes)
    for target, read in found.holding:  # values that share, or a class and a base
        if (target != read and {target, read} <= values) or {target, read} <= classes:
            graph.setdefault(target, set()).add(read)
            graph.setdefault(read, set()).add(target)
    shared: dict[str, str] = {}
    for name in found.order:  # each group by its first-bound name
        if name in graph and name not in shared:
            group, todo = {name}, [name]
            while todo:
                for other in graph[todo.pop()] - group:
                    group.add(other)
                    todo.append(other)
            shared |= dict.fromkeys(group, name)
    attributes = {cls: frozenset(names) for cls, names in found.attributes.items()}
    return ModuleState(values, classes, constants, attributes, shared)


class _Bindings(cst.CSTVisitor):
    """The module's own bindings (its `if` and `try` blocks' too), and every name
    a function declares `global`: it may bind them again."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.classes: set[str] = set()
        self.constants: set[str] = set()
        self.holding: list[tuple[str, str]] = []  # a name, and one its value reads
        self.order: list[str] = []  # the module-level names as they are bound
        self.attributes: dict[str, set[str]] = {}  # what each class's body assigns
        # The functions and classes open around the statement: a module-level
        # class by its name, anything else None.
        self._open: list[str | None] = []
        # Classes whose annotated attributes are their instances' fields (a
        # dataclass's, a pydantic model's): no attribute of the class.
        self._fields: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._open.append(None)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._open.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not self._open and not _constant_class(node):
            name = identifier(node.name.value)
            self.classes.add(name)
            self.order.append(name)
            # `Child.mode` is `Base.mode` until a class sets its own: one piece.
            for base in node.bases:
                self._holds({name}, base.value)
        # Its methods may still declare globals.
        self._open.append(None if self._open else identifier(node.name.value))
        if _declares_fields(node):
            self._fields.add(identifier(node.name.value))

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._open.pop()

    def visit_Global(self, node: cst.Global) -> None:
        self.values.update(identifier(item.name.value) for item in node.names)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._in_class([target.target for target in node.targets])
        if self._module_level():
            held = self.constants if _immutable_literal(node.value) else self.values
            for target in node.targets:
                held |= target_names(target.target)
                self._holds(target_names(target.target), node.value)

    def _holds(self, targets: set[str], value: cst.BaseExpression) -> None:
        read = name_uses(value).read_names
        self.order += sorted(targets)
        self.holding += [(target, name) for target in targets for name in read]
        # `put, get = make_store()`: what one value unpacks to may share objects.
        self.holding += [(a, b) for a in targets for b in targets if a < b]

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        value = node.value
        cls = self._open[-1] if self._open else None
        # `messages: list[str] = field(default_factory=list)`, `user: str`: fields.
        if value is not None and cls not in self._fields and not _field(value):
            self._in_class([node.target])
        if self._module_level() and (value is None or not _immutable_literal(value)):
            self.values |= target_names(node.target)
            if value is not None:
                self._holds(target_names(node.target), value)
        elif self._module_level():
            self.constants |= target_names(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self._module_level():
            self.values |= target_names(node.target)

    def _in_class(self, targets: list[cst.BaseExpression]) -> None:
        """An assignment in a module-level class's own body: its attribute."""
        cls = self._open[-1] if self._open else None
        if cls is not None:
            found = self.attributes.setdefault(cls, set())
            for target in targets:
                found |= target_names(target)

    def _module_level(self) -> bool:
        return not self._open


def _declares_fields(statement: cst.ClassDef) -> bool:
    """A dataclass, an attrs class, a pydantic model, a msgspec struct: what its
    body annotates, each instance holds for itself."""
    for decorator in statement.decorators:
        found = decorator.decorator
        name = dotted(found.func if isinstance(found, cst.Call) else found) or ""
        if name.rpartition(".")[2] in _FIELD_DECORATORS:
            return True
    for base in statement.bases:
        name = dotted(base.value) or ""
        if name.rpartition(".")[2] in _FIELD_BASES:
            return True
    return False


def _field(value: cst.BaseExpression) -> bool:
    """`field(default_factory=list)`, `Field(...)`, `attr.ib()`: a field's declaration."""
    if not isinstance(value, cst.Call):
        return False
    name = dotted(value.func) or ""
    return name.rpartition(".")[2] in ("field", "Field", "ib", "attrib")


_FIELD_DECORATORS = frozenset({"dataclass", "define", "frozen", "mutable", "attrs"})
_FIELD_BASES = frozenset({"BaseModel", "Struct"})


def _constant_class(statement: cst.ClassDef) -> bool:
    for base in statement.bases:
        name = dotted(base.value)
        if name is not None and name.split(".")[-1] in _CONSTANT_BASES:
            return True
    return False


def _immutable_literal(value: cst.BaseExpression) -> bool:
    """A number, string, bool or None, or a tuple or frozen set made of them."""
    if isinstance(
        value,
        cst.BaseNumber | cst.SimpleString | cst.ConcatenatedString | cst.Ellipsis,
    ):
        return True
    if isinstance(value, cst.Name):
        return value.value in ("True", "False", "None")
    if isinstance(value, cst.UnaryOperation):
        return _immutable_literal(value.expression)
    if isinstance(value, cst.BinaryOperation):
        return _immutable_literal(value.left) and _immutable_literal(value.right)
    if isinstance(value, cst.Tuple):
        return all(
            isinstance(element, cst.Element) and _immutable_literal(element.value)
            for element in value.elements
        )
    if isinstance(value, cst.Call) and dotted(value.func) == "frozenset":
        return not value.args or _immutable_literal(value.args[0].value)
    return False


@lru_cache(maxsize=256)
def declared_types(module: cst.Module) -> Mapping[str, str]:
    """By name, the type a module-level name is declared (`STORE: Store = ...`) or
    made (`STORE = Store()`, the call's callee, which may be no class) as, where
    the module binds it once: a method called on it is found through that."""
    found: dict[str, str] = {}
    for name, binding in bound_once(module).items():
        if isinstance(binding, cst.AnnAssign):
            annotation = binding.annotation.annotation
            written = code(annotation)
            if isinstance(annotation, cst.SimpleString):  # `STORE: "Store"`
                written = written.strip("'\"")
            found[name] = written
        elif isinstance(binding.value, cst.Call):
            found[name] = code(binding.value.func)
    return {name: kind for name, kind in found.items() if kind}


@lru_cache(maxsize=256)
def bound_once(module: cst.Module) -> Mapping[str, cst.Assign | cst.AnnAssign]:
    """By name, the one statement that binds a module-level name to a value,
    where the module binds it once (`HOOK = on_start`, `STORE: Store = ...`)."""
    return {
        name: binding for name, (binding, whole) in _bound_once(module).items() if whole
    }


@lru_cache(maxsize=256)
def made_by_calls(module: cst.Module) -> Mapping[str, cst.Call]:
    """By name, the call whose value, or an item of it, a module-level name is
    bound to, where the module binds it once (`put, get = make_store()`)."""
    return {
        name: binding.value
        for name, (binding, _) in _bound_once(module).items()
        if isinstance(binding.value, cst.Call)
    }


def _bound_once(
    module: cst.Module,
) -> dict[str, tuple[cst.Assign | cst.AnnAssign, bool]]:
    """By name, the one statement binding a module-level name, where the module
    binds it once, and whether to the whole value (`x = v`, not `x, y = v`)."""
    found: dict[str, tuple[cst.Assign | cst.AnnAssign, bool]] = {}
    bound: Counter[str] = Counter()
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            for name in _defined(statement):
                bound[name] += 2  # a def, a class, or bound in a block: not one value
            continue
        for small in statement.body:
            if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                name = identifier(small.target.value)
                found[name] = (small, True)
                bound[name] += 1
            elif isinstance(small, cst.Assign):
                for target in small.targets:
                    whole = isinstance(target.target, cst.Name)
                    for name in target_names(target.target):
                        bound[name] += 1
                        found.setdefault(name, (small, whole))
    return {name: binding for name, binding in found.items() if bound[name] == 1}


def _defined(statement: cst.BaseStatement) -> set[str]:
    """The names a compound statement at module level binds."""
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return {identifier(statement.name.value)}
    return set(name_uses(statement).writes)


def loggers(module: cst.Module) -> frozenset[str]:
    """The names a module assigns a logger to: `log = logging.getLogger(...)`."""
    found: set[str] = set()
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                made_by = dotted(small.value.func) or ""
                last = made_by.split(".")[-1]
                if last in ("getLogger", "get_logger", "getChild"):
                    for target in small.targets:
                        found |= target_names(target.target)
    return frozenset(found)


def declared_global(body: Body, name: str) -> tuple[ModuleDefs, str] | None:
    """What a module-level name of the body's module, or one it imports from a
    project module (`from app.clients import CLIENT`), is declared or made as,
    with the definitions of the module that says so."""
    defining = defining_module(body, name)
    if defining is None:
        return None
    defs, name = defining
    kind = declared_types(defs.parsed.module).get(name)
    return (defs, kind) if kind is not None else None


def annotated_global(body: Body, name: str) -> tuple[ModuleDefs, str] | None:
    """The annotation a module-level name is declared with (`AGENTS: dict[str,
    Agent] = ...`), in this module or one it imports it from."""
    defining = defining_module(body, name)
    if defining is None:
        return None
    defs, name = defining
    binding = bound_once(defs.parsed.module).get(name)
    if not isinstance(binding, cst.AnnAssign):
        return None
    return defs, declared_types(defs.parsed.module)[name]


def defining_module(body: Body, name: str) -> tuple[ModuleDefs, str] | None:
    """The module that binds a name the body reads as module-level, and its name there."""
    imported = body.defs.imports.get(name)
    if imported is None or imported.attribute is None:
        return body.defs, name
    defs = body.reader.module_defs(imported.module)
    return (defs, imported.attribute) if defs is not None else None
