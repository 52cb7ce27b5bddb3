"""read_effects: what a function may do to what it is passed, read from its body.

Example input::

    @node
    def fill(state: dict[str, int], memory: Memory, tag: str) -> None:
        state["answer"] = 42
        memory.seen.append(tag)
        log.info("filled %s", tag)

Output: `Effects(params=("state", "memory", "tag"))` with `state` changed
("assigns state['answer']", at its line), `memory` writing the key `seen` (a
value stored under it is mutated), `tag` untouched (a `str` cannot change),
and `external` set by the logging call.

The reading is flow-insensitive and errs one way only: anything it cannot see
into (an installed package handed the object, an unknown method, `setattr`)
counts as a possible change, so the scheduler may keep an order it did not
need, never drop one it did. Calls into the project are followed to their
definitions, to a fixed point over recursion. A parameter whose annotation is
read-only (`str`, `tuple[int, ...]`, `Mapping[str, int]`) is never changed;
what only reads it but changes some objects (an item read of a defaultdict,
a method read as a dict's) is left to the caller, which knows the argument
(`Effects.reads`).

This module reads the project's functions, each once, to a fixed point over
recursion (`EffectReader`); `body.py` knows what one body's names may hold and
records what it does; `visitor.py` walks the body and says what each
statement and call does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Final

import libcst as cst

from kilnc.annotations import Defined, library_name, resolve_name
from kilnc.effect_ir import Effects, Holder
from kilnc.effects.body import FIXED_POINT_ROUNDS, Body
from kilnc.effects.module_state import ModuleState, module_state
from kilnc.effects.visitor import EffectVisitor
from kilnc.facts import is_kiln
from kilnc.front import ModuleDefs
from kilnc.ir import Callee, NodeDef
from kilnc.mutability import DESCRIBED_TYPES
from kilnc.names import BUILTINS, identifier, target_names
from kilnc.project import Project
from kilnc.syntax import code, dotted
from kilnc.walk import walk

# A class without `__init__` (a dataclass, say), or a name with no definition to
# read: it keeps what it is given, so what it returns may hold any argument.
_KEEPS_ARGUMENTS: Final = Effects(params=(), variadic=True)
_BASES_FOLLOWED: Final = 8  # a TypedDict's bases, through the project's classes


def read_effects(project: Project) -> EffectReader:
    return EffectReader(project)


class EffectReader:
    """Effects of the project's functions, each read once and refined to a fixed point."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._done: dict[tuple[str, str], Effects] = {}  # final
        self._known: dict[tuple[str, str], Effects] = {}  # approximations, rising
        self._reading: set[tuple[str, str]] = set()
        self._cyclic = False  # a read met a function still being read
        # Each module's logger names, found once: every logging call asks.
        self._loggers: dict[cst.Module, frozenset[str]] = {}
        self._states: dict[cst.Module, ModuleState] = {}  # and its state, as often
        self._typed_dicts: dict[tuple[str, str], bool] = {}
        self._library: dict[tuple[str, str], str | None] = {}  # every annotation asks

    def of_callee(self, callee: Callee) -> Effects:
        if isinstance(callee, NodeDef) and callee.asks:
            # A question changes nothing it is passed: its payload is shown, not kept.
            return Effects(params=("question", "expected", "payload"))
        if isinstance(callee, NodeDef):
            return self.of_function(callee.module, callee.function)
        return self.of_function(callee.module, callee.identifier)

    def of_function(self, module: str, name: str) -> Effects:
        key = (module, name)
        if key in self._done:
            return self._done[key]
        if key in self._reading:  # recursion: the approximation so far
            self._cyclic = True
            return self._known.get(key, Effects(params=()))
        if self._reading:  # inside another read, which iterates for both
            self._known[key] = self._read(key)
            return self._known[key]
        found = self._read(key)
        for _ in range(FIXED_POINT_ROUNDS):
            if not self._cyclic:
                break
            self._cyclic = False
            before = dict(self._known)
            self._known[key] = found = self._read(key)
            if self._known == before:
                break
        self._known[key] = found
        self._done.update(self._known)
        return found

    def of_statement(
        self, module: str, statement: cst.CSTNode, names: Mapping[str, Holder]
    ) -> Effects:
        """A flow's own statement, its names standing in for parameters."""
        defs = self.project.load(module)
        assert defs is not None, "a flow's own module is read before its flows"
        return _read_body(self, defs, dict(names), (statement,)).effects(
            tuple(names), keep_clones=True
        )

    def _read(self, key: tuple[str, str]) -> Effects:
        found = self._definition(*key)
        if found is None:
            return _KEEPS_ARGUMENTS
        defs, function = found
        if function is None:
            return _KEEPS_ARGUMENTS
        self._reading.add(key)
        try:
            params = _parameters(defs, function)
            body = _read_body(self, defs, params, (function.body,))
            effects = body.effects(tuple(params))
            if any(is_kiln(defs.parsed, d) for d in function.decorators):
                # What a node reads of module state it reads as it runs: the
                # call's place among the steps is for the flow's own reads.
                effects = replace(effects, reads_state=None)
            return _variadic(function, effects)
        finally:
            self._reading.discard(key)

    def _definition(
        self, module: str, name: str
    ) -> tuple[ModuleDefs, cst.FunctionDef | None] | None:
        """The function, or the class (None: it has no `__init__` of its own)."""
        defs = self.project.load(module)
        if defs is None:
            return None
        for statement in defs.parsed.module.body:
            if isinstance(statement, cst.FunctionDef) and identifier(
                statement.name.value
            ) == identifier(name):
                return defs, statement
            if isinstance(statement, cst.ClassDef) and identifier(
                statement.name.value
            ) == identifier(name):
                init = _method(statement, "__init__")
                return (defs, init) if init is not None else (defs, None)
        return None

    def resolve(self, defs: ModuleDefs, func: cst.BaseExpression) -> str | None:
        """The qualified name of a called expression: `json.dumps`, `builtins.len`,
        `app.helpers.rate` (a project function), or None for a local value's method."""
        name = dotted(func)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        head = identifier(head)
        imported = defs.imports.get(head)
        if imported is not None:
            base = (
                imported.module
                if imported.attribute is None
                else f"{imported.module}.{imported.attribute}"
            )
            return f"{base}.{rest}" if rest else base
        if head in defs.parsed.global_names:
            prefix = defs.location.name
            return f"{prefix}.{name}" if prefix else name
        if head in BUILTINS:
            return f"builtins.{name}"
        return None

    def is_state(
        self, defs: ModuleDefs, node: cst.BaseExpression, called: bool
    ) -> bool:
        """Whether a module-level name (or an attribute of one) holds what code may
        change: a project module's changing value, or an attribute of its class."""
        name = dotted(node)
        if name is None:
            return False
        parts = [identifier(part) for part in name.split(".")]
        if parts[0] not in defs.imports:
            return self._holds_state(defs, parts, called)
        qualified = self.resolve(defs, node)
        parts = qualified.split(".") if qualified is not None else []
        for cut in range(len(parts) - 1, 0, -1):
            owner = self.project.load(".".join(parts[:cut]))
            if owner is not None:
                return self._holds_state(owner, parts[cut:], called)
        return False

    def _holds_state(self, defs: ModuleDefs, path: list[str], called: bool) -> bool:
        module = defs.parsed.module
        if module not in self._states:
            self._states[module] = module_state(module)
        state = self._states[module]
        if path[0] in state.values:
            return True
        return path[0] in state.classes and len(path) > 1 and not called

    def library_name(self, module: str, name: str) -> str | None:
        """What a dotted name of `module` means outside the project: `builtins.int`,
        `collections.Counter`; None for a class of the project's own, however named."""
        key = (module, name)
        if key not in self._library:
            defs = self.project.load(module)
            found = library_name(self.project, defs, name) if defs else None
            self._library[key] = found
        return self._library[key]

    def constructs(self, module: str, func: cst.BaseExpression) -> bool:
        """Whether a call of `func` in `module` makes a value of the type it names:
        a class of the project, or a builtin or standard-library type the tables
        know (`defaultdict(list)`, `Path("a")`)."""
        name = dotted(func)
        defs = self.project.load(module)
        if name is None or defs is None:
            return False
        if isinstance(resolve_name(self.project, defs, name), Defined):
            return True
        return self.library_name(module, name) in DESCRIBED_TYPES

    def is_typed_dict(self, defs: ModuleDefs, annotation: str) -> bool:
        """Whether an annotation names a project `TypedDict`: a dict, to its methods."""
        key = (defs.location.name, annotation)
        if key not in self._typed_dicts:
            self._typed_dicts[key] = self._subclasses_typed_dict(defs, annotation, 0)
        return self._typed_dicts[key]

    def _subclasses_typed_dict(self, defs: ModuleDefs, name: str, depth: int) -> bool:
        if depth > _BASES_FOLLOWED:
            return False
        if _last(name) == "TypedDict" and self._qualified(defs, name) is not None:
            return True
        found = self._project_class(defs, name)
        if found is None:
            return False
        owner, cls = found
        return any(
            self._subclasses_typed_dict(owner, code(base.value), depth + 1)
            for base in cls.bases
        )

    def attribute_type(
        self, defs: ModuleDefs, annotation: str, attribute: str, depth: int = 0
    ) -> tuple[ModuleDefs, str] | None:
        """The declared type of an attribute of a project class (a field, a
        property's return), through its bases; None where kiln cannot tell."""
        found = self._project_class(defs, _not_none(annotation))
        if found is None or depth > _BASES_FOLLOWED:
            return None
        owner, cls = found
        for statement in _class_statements(cls):
            if (
                isinstance(statement, cst.AnnAssign)
                and isinstance(statement.target, cst.Name)
                and statement.target.value == attribute
            ):
                return owner, code(statement.annotation.annotation)
            if (
                isinstance(statement, cst.FunctionDef)
                and statement.name.value == attribute
                and statement.returns is not None
                and any(dotted(d.decorator) == "property" for d in statement.decorators)
            ):
                return owner, code(statement.returns.annotation)
        for base in cls.bases:
            inherited = self.attribute_type(
                owner, code(base.value), attribute, depth + 1
            )
            if inherited is not None:
                return inherited
        return None

    def _qualified(self, defs: ModuleDefs, name: str) -> str | None:
        try:
            return self.resolve(defs, cst.parse_expression(name))
        except cst.ParserSyntaxError:
            return None

    def _project_class(
        self, defs: ModuleDefs, name: str
    ) -> tuple[ModuleDefs, cst.ClassDef] | None:
        qualified = self._qualified(defs, name)
        if qualified is None:
            return None
        module, _, cls = qualified.rpartition(".")
        owner = self.project.load(module) if module else None
        if owner is None:
            return None
        for statement in owner.parsed.module.body:
            if isinstance(statement, cst.ClassDef) and statement.name.value == cls:
                return owner, statement
        return None

    def is_logger(self, defs: ModuleDefs, node: cst.BaseExpression) -> bool:
        """`log.info(...)` where `log = logging.getLogger(...)` at module level."""
        while isinstance(node, cst.Attribute):
            node = node.value
        if not isinstance(node, cst.Name):
            return False
        module = defs.parsed.module
        if module not in self._loggers:
            self._loggers[module] = _loggers(module)
        return identifier(node.value) in self._loggers[module]

    def project_function(self, qualified: str) -> tuple[str, str] | None:
        module, _, name = qualified.rpartition(".")
        if not module or self.project.load(module) is None:
            return None
        if self._definition(module, name) is None:
            return None
        return module, name


def _read_body(
    reader: EffectReader,
    defs: ModuleDefs,
    params: dict[str, Holder],
    roots: tuple[cst.CSTNode, ...],
) -> Body:
    """One body (or flow statement) read: every change, Memory key and outside effect."""
    body = Body(reader, defs, params, roots)
    for root in roots:
        walk(root, EffectVisitor(body))
    return body


def _method(cls: cst.ClassDef, name: str) -> cst.FunctionDef | None:
    for statement in _class_statements(cls):
        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
            return statement
    return None


def _parameters(defs: ModuleDefs, function: cst.FunctionDef) -> dict[str, Holder]:
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
    if function.name.value == "__init__" and found:
        found.pop(next(iter(found)))  # self: the object being made
    return found


def _variadic(function: cst.FunctionDef, effects: Effects) -> Effects:
    params = function.params
    stars = (params.star_arg, params.star_kwarg)
    if not any(isinstance(star, cst.Param) for star in stars):
        return effects
    return replace(effects, variadic=True)


def _last(name: str) -> str:
    return name.rpartition(".")[2]


def _not_none(annotation: str) -> str:
    """`Paragraph` of `Paragraph | None` and `Optional[Paragraph]`."""
    try:
        expression = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return annotation
    if isinstance(expression, cst.BinaryOperation) and isinstance(
        expression.operator, cst.BitOr
    ):
        sides = [expression.left, expression.right]
        kept = [s for s in sides if not (isinstance(s, cst.Name) and s.value == "None")]
        return code(kept[0]) if len(kept) == 1 else annotation
    if (
        isinstance(expression, cst.Subscript)
        and _last(dotted(expression.value) or "") == "Optional"
        and isinstance(expression.slice[0].slice, cst.Index)
    ):
        return code(expression.slice[0].slice.value)
    return annotation


def _class_statements(cls: cst.ClassDef) -> list[cst.CSTNode]:
    body = cls.body
    if not isinstance(body, cst.IndentedBlock):
        return []
    found: list[cst.CSTNode] = []
    for statement in body.body:
        if isinstance(statement, cst.SimpleStatementLine):
            found += statement.body
        else:
            found.append(statement)
    return found


def _loggers(module: cst.Module) -> frozenset[str]:
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
