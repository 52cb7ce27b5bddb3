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

from kilnc.effects.module_names import declared_global
from kilnc.mutability import COPYING_BUILTINS, fresh_builtin, immutable_literal
from kilnc.names import identifier, name_uses, root_names, target_names
from kilnc.syntax import chain_root, dotted
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
    # Names bound once to another's name that the module imports (`CURRENT =
    # db.STATE`): that object, under the name of the module that made it.
    refers: Mapping[str, str] = field(default_factory=dict)
    # Functions `functools.cache` or `lru_cache` wraps: the cache that
    # `load.cache_clear()` empties and `load.cache_info()` reads.
    cached: frozenset[str] = frozenset()


def holds_state(
    body: Body, node: cst.BaseExpression, seen: frozenset[str] = frozenset()
) -> bool:
    """Whether `node` may be module state: rooted at it (`HISTORIES[user]`,
    `CACHE.setdefault(key, [])`), a local bound to such, or one the body
    stored there (`SESSIONS[key] = session`)."""
    if isinstance(node, cst.Call) and id(node) in body.state_calls:
        return True  # a project function's result that is module state's
    parts = _parts(body, node)
    if parts is not None:  # `(name, rows)`, `list(OPEN.values())`, `Res(rows)`
        return any(holds_state(body, part, seen) for part in parts)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        if body.reader.called(body, node.func) is not None:
            return False  # a project method's, which says what it returns above
        if _imported_module(body, node.func.value):
            # `random.random()`, `np.zeros(3)`: a function of a module the body
            # imports, whose value is its own (a project function's that is
            # module state's is in `state_calls`), not a method of module state.
            return False
        node = node.func.value
    if body.is_module_state(node):
        # Not a constant's (`salt = 0`): `i + salt` is a new number.
        root = chain_root(node)
        return body.reader.state_name(body.defs, root, called=False) is not None
    names = root_names(node) - seen
    if names & body.local_names & body.found.escaped_locals:
        return True
    # A name bound to such a value, or to an item of one (`for rows in
    # OPEN.values()`, `name, rows = pair`, a comprehension's target): an item
    # a container hands out is part of it; a container such a value is stored
    # into (`out.append(rows)`) holds it.
    bindings = body.bindings
    return any(
        targets & names and holds_state(body, value, seen | names)
        for targets, value in (*bindings.bound, *bindings.items, *bindings.stored)
    )


def _parts(body: Body, node: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    """What a value made of others may hold of them: a display's elements, a
    comprehension's, either side of an operator or a choice, the arguments a
    call hands back (`list(OPEN.values())`, `Res(name, rows)`, a project
    function returning what it is given); None for any other expression."""
    if isinstance(node, cst.List | cst.Tuple | cst.Set):
        return [element.value for element in node.elements]
    if isinstance(node, cst.Dict):
        return [
            part
            for element in node.elements
            for part in (
                (element.key, element.value)
                if isinstance(element, cst.DictElement)
                else (element.value,)
            )
        ]
    if isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp):
        return [node.elt]  # its targets are items of what they iterate
    if isinstance(node, cst.DictComp):
        return [node.key, node.value]
    if isinstance(node, cst.BinaryOperation | cst.BooleanOperation):
        return [node.left, node.right]  # `rows + more`, `cached or OPEN[k]`
    if isinstance(node, cst.IfExp):
        return [node.body, node.orelse]
    if isinstance(node, cst.Await):
        return [node.expression]
    if isinstance(node, cst.Attribute | cst.Subscript):
        root = chain_root(node)  # `sorted(OPEN.values())[0]`: an item of a value
        return None if isinstance(root, cst.Name) else [root]
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
        return _handed_back(body, node, node.func)
    return None


def _handed_back(
    body: Body, call: cst.Call, func: cst.Name
) -> list[cst.BaseExpression] | None:
    """The arguments a call of a builtin or of a project function (a class) may
    return or keep in what it returns; None for a call kiln cannot tell."""
    if identifier(func.value) in body.local_names or func.value in body.params:
        return None
    qualified = body.reader.resolve(body.defs, func)
    if qualified is None:
        return None
    if qualified.startswith("builtins."):
        name = qualified.removeprefix("builtins.")
        if fresh_builtin(name, call):
            return []
        return [arg.value for arg in call.args if not _copied_whole(body, name, arg)]
    found = body.reader.project_function(qualified)
    if found is None:
        return None
    effects = body.reader.of_function(*found)
    return [
        argument
        for param, argument in effects.bind(call)
        if param is None or param in effects.returns
    ]


def _copied_whole(body: Body, name: str, arg: cst.Arg) -> bool:
    """Whether the builtin `name` copies what `arg` holds, none of which can
    change: `dict(COUNTS)` of a `dict[str, int]` shares nothing with it. A
    keyword's value (`dict(k=rows)`) is held itself."""
    if name not in COPYING_BUILTINS or arg.star or arg.keyword is not None:
        return False
    return body.holds_immutable(arg.value)


def held_piece(
    defs: ModuleDefs, path: list[str], called: bool, constants: bool
) -> str | None:
    """The piece of state `path` (`["CACHE", "get"]`) is in `defs`' module: a
    changing value, an attribute of a class (not the class called), or with
    `constants` any name; by the first name of those that may share one object."""
    state = module_state(defs.parsed.module)
    alias = defs.aliases.get(path[0])
    if alias is not None and alias.partition(".")[0] not in state.values:
        return None  # another name of a function or a node: `again = fetch`
    held = path[0] in state.values or (constants and path[0] in state.constants)
    held |= path[0] in state.classes and len(path) > 1 and not called
    held |= path[0] in state.cached and not called  # not `load()`, `load.cache_clear`
    name = state.shared.get(path[0], path[0])
    prefix = defs.location.name
    return (f"{prefix}.{name}" if prefix else name) if held else None


def refers_to(defs: ModuleDefs, path: list[str]) -> cst.BaseExpression | None:
    """What `path` names where its first name is bound to a name the module
    imports (`CURRENT = db.STATE`, `ALIAS = STATE`): that name, and the rest."""
    referred = module_state(defs.parsed.module).refers.get(path[0])
    if referred is None:
        return None
    return cst.parse_expression(".".join([referred, *path[1:]]))


def class_state(defs: ModuleDefs, name: str) -> str | None:
    """`app.cfg.Config`: the piece of module state the class `name` of `defs` is,
    if its attributes may be assigned; in this module (one with the bases it
    defines): across modules, `ClassPieces` says which."""
    state = module_state(defs.parsed.module)
    if name not in state.classes:
        return None
    name = state.shared.get(name, name)
    prefix = defs.location.name
    return f"{prefix}.{name}" if prefix else name


def of_class_body(defs: ModuleDefs, cls: str, attribute: str) -> str | None:
    """`app.Store.mode`: the piece `self.mode` is in a method of `Store`, whose
    body assigns `mode`, in this module (`ClassPieces.of_attribute` follows the
    class's bases, in every module)."""
    state = module_state(defs.parsed.module)
    piece = class_state(defs, cls)
    if piece is None or attribute not in state.class_attributes.get(cls, ()):
        return None
    return f"{piece}.{attribute}"


def of_instance_class(body: Body, name: str, attribute: str) -> str | None:
    """`app.Store.mode` of `STORE.mode`, `STORE` a `Store` whose body (or a
    base's) assigns `mode` (class_pieces.py)."""
    declared = declared_global(body, name)
    if declared is None:
        return None
    return body.reader.classes.pieces.of_attribute(*declared, attribute)


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
        if (
            (target != read and {target, read} <= values)
            or {target, read} <= classes
            or (target in classes and read in values)  # `class Svc: store = BOX`
        ):
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
    own = values | classes | constants
    bound = Counter(found.order)
    refers = {
        name: text
        for name, text in found.refers.items()
        if bound[name] == 1 and text.partition(".")[0] not in own
    }
    cached = frozenset(found.cached)
    return ModuleState(values, classes, constants, attributes, shared, refers, cached)


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
        self.refers: dict[str, str] = {}  # a name bound to a dotted name: that name
        self.cached: set[str] = set()
        # The functions and classes open around the statement: a module-level
        # class by its name, anything else None.
        self._open: list[str | None] = []
        # Classes whose annotated attributes are their instances' fields (a
        # dataclass's, a pydantic model's): no attribute of the class.
        self._fields: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not self._open and any(_caches(d.decorator) for d in node.decorators):
            self.cached.add(identifier(node.name.value))
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
        self._in_class([target.target for target in node.targets], node.value)
        if self._module_level():
            held = self.constants if immutable_literal(node.value) else self.values
            for target in node.targets:
                held |= target_names(target.target)
                self._holds(target_names(target.target), node.value)
                referred = dotted(node.value)
                if isinstance(target.target, cst.Name) and referred is not None:
                    self.refers[identifier(target.target.value)] = referred

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
            self._in_class([node.target], value)
        if self._module_level() and (value is None or not immutable_literal(value)):
            self.values |= target_names(node.target)
            if value is not None:
                self._holds(target_names(node.target), value)
        elif self._module_level():
            self.constants |= target_names(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self._module_level():
            self.values |= target_names(node.target)

    def _in_class(
        self, targets: list[cst.BaseExpression], value: cst.BaseExpression | None
    ) -> None:
        """An assignment in a module-level class's own body: its attribute, which
        may hold a module-level value's object (`store = BOX`)."""
        cls = self._open[-1] if self._open else None
        if cls is not None:
            found = self.attributes.setdefault(cls, set())
            for target in targets:
                found |= target_names(target)
            if value is not None:
                self.holding += [(cls, name) for name in name_uses(value).read_names]

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


def _caches(decorator: cst.BaseExpression) -> bool:
    """`@cache`, `@functools.lru_cache(maxsize=8)`: a decorator named as a cache."""
    named = dotted(decorator.func if isinstance(decorator, cst.Call) else decorator)
    return named is not None and named.rpartition(".")[2] in ("cache", "lru_cache")
