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
from functools import partial
from typing import Final

import libcst as cst

from kilnc.annotations import Defined, library_name, resolve_name
from kilnc.effect_ir import Effects, Holder
from kilnc.effects.aliases import FIXED_POINT_ROUNDS
from kilnc.effects.bindings import bound_values
from kilnc.effects.body import Body
from kilnc.effects.closures import Passed, any_of, nested_functions
from kilnc.effects.escaped import escaped_effects
from kilnc.effects.handed import decorated_by
from kilnc.effects.kept import hand_back
from kilnc.effects.log_handlers import handler_effects
from kilnc.effects.made_calls import factory, made_by_dataclass, of_class_method
from kilnc.effects.making import made_also
from kilnc.effects.methods import (
    Classes,
    Construction,
    Method,
    Target,
    defined,
    first_name,
    typed_receiver,
)
from kilnc.effects.module_names import loggers
from kilnc.effects.module_state import held_piece, holds_state, refers_to
from kilnc.effects.node_options import of_node_options
from kilnc.effects.program import UNREAD, unread_effects
from kilnc.effects.receivers import called_method, of_immutable_type
from kilnc.effects.signature import (
    changeable,
    kept_defaults,
    of_decorators,
    of_stars,
    parameters,
)
from kilnc.effects.visitor import EffectVisitor
from kilnc.effects.yielded import of_generator
from kilnc.front import ModuleDefs
from kilnc.ir import Callee, NodeDef
from kilnc.mutability import DESCRIBED_TYPES, is_immutable
from kilnc.names import BUILTINS, identifier
from kilnc.project import Project
from kilnc.syntax import code, dotted, returned_values, yields
from kilnc.walk import walk

# A class without `__init__` (a dataclass, say), or a name with no definition to
# read: it keeps what it is given, so what it returns may hold any argument.
_KEEPS_ARGUMENTS: Final = Effects(params=(), variadic=True)


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
        self._typed_dicts: dict[tuple[str, str], bool] = {}
        self._library: dict[tuple[str, str], str | None] = {}  # every annotation asks
        self._closures: dict[tuple[str, str, str, Passed, str], Effects | None] = {}
        # What a call of a value kiln cannot resolve may run, by the modules read.
        self._escaped: dict[tuple[str, ...], Effects] = {}
        self.classes = Classes(project, self.resolve)

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

    def escaped(self) -> Effects:
        """What the project's functions named as values may do beyond their
        parameters: a call kiln cannot resolve may run any of them (escaped.py)."""
        return escaped_effects(self, self.project.modules, self._escaped)

    def log_handlers(self) -> Effects:
        """What a logging call may run of the project's (log_handlers.py)."""
        return handler_effects(self, self.project.modules, self._escaped)

    def of_lambda(
        self, defs: ModuleDefs, function: cst.Lambda | cst.FunctionDef
    ) -> Effects:
        """A module-level lambda's effects on its parameters, read as a def's
        (a def's too, plainly, whatever wraps it: class_code.py)."""
        params = parameters(defs, function)
        return _read_body(self, defs, params, (function.body,)).effects(tuple(params))

    def closures(
        self, module: str, name: str, made: str, passed: Passed = (), of: str = ""
    ) -> Effects | None:
        """What a call of a function the project function `name` made may do: any
        function nested in it, the cells of the call that made it read as the
        pieces of state under `made`, or the module state it was `passed`
        (closures.py); None where it defines none. `of`: the function a
        decorator made by one call wraps, read apart from the others it wraps
        (each may reach the others' through a call kiln cannot resolve)."""
        key = (module, name, made, passed, of)
        if key not in self._closures:
            self._closures[key] = None  # a closure that calls its factory again
            found = self.classes.definition(module, name)
            if isinstance(found, tuple) and found[3] != "init":  # a method's too
                defs, read = found[0], []
                for inner, cells in nested_functions(found[1], made, passed):
                    params = parameters(defs, inner)
                    body = _read_body(self, defs, params, (inner.body,), defaults=cells)
                    read.append(body.effects(tuple(params)))
                self._closures[key] = any_of(read, name) if read else None
        return self._closures[key]

    def of_statement(
        self, module: str, statement: cst.CSTNode, names: Mapping[str, Holder]
    ) -> Effects:
        """A flow's own statement, its names standing in for parameters."""
        defs = self.project.load(module)
        assert defs is not None, "a flow's own module is read before its flows"
        body = _read_body(self, defs, dict(names), (statement,))
        bound = [
            value
            for value in bound_values(statement)
            if not of_immutable_type(body, value)
        ]
        for value in bound:  # `held = memory["items"]`: the keys it holds
            hand_back(body, value, params=False)
        effects = body.effects(tuple(names), keep_clones=True)
        # `hit = CACHE[key]`, or `agent = Agent("x")` whose `__init__` keeps
        # `self` in module state: the names it binds hold module state's, as a
        # node's result may, and a node that reaches module state may change them;
        # so do a loop's targets (`for rows in OPEN.values()`) and the names it
        # stores such a value into (`workers.append(Worker(x))`, which it changes).
        stored = [v for _, v in body.bindings.stored if not of_immutable_type(body, v)]
        if not isinstance(statement, cst.BaseExpression) and any(
            holds_state(body, value) for value in (*bound, *stored)
        ):
            return replace(effects, result_state=True)
        return effects

    def _read(self, key: tuple[str, str]) -> Effects:
        # Making an object runs its metaclass's `__call__` too (making.py).
        return made_also(self, *key, self._read_code(key))

    def _read_code(self, key: tuple[str, str]) -> Effects:
        if key[0] == UNREAD:  # a method of a module kiln cannot tell (program.py)
            return unread_effects(self.classes.program, key[1])
        found = self.classes.definition(*key)
        if found is None:
            return _KEEPS_ARGUMENTS
        if isinstance(found, Construction):  # a dataclass's generated `__init__`
            post = found.post_init
            return made_by_dataclass(
                self.of_function(post.module, post.qualname) if post else None,
                [factory(self, defs, made) for defs, made in found.factories],
            )
        self._reading.add(key)
        try:
            defs, function, owner, kind = found
            params = parameters(defs, function)
            made = receiver = None
            if kind == "init":  # `self` is the object being made, no parameter
                made = first_name(function)
                params.pop(made or "", None)
            elif kind != "function" and owner is not None:
                params = typed_receiver(params, owner, kind)
                receiver = first_name(function) if kind != "static" else None
            roots = (function.body,)
            named = partial(self.state_name, defs, called=False)
            defaults = kept_defaults(function, ".".join(key), named)
            body = _read_body(
                self, defs, params, roots, owner, made, receiver, defaults
            )
            decorated_by(body, function, ".".join(key))
            effects = body.effects(tuple(params))
            effects = of_decorators(effects, defs, function, ".".join(key))
            effects = of_node_options(effects, defs, function, self.of_function)
            if kind == "init":  # what is made keeps what it is given
                effects = replace(effects, returns=frozenset(params))
            elif yields(function.body):  # a generator reads it as it is drawn from
                returns = changeable(params, body.qualify)
                effects = of_generator(effects, defs, function, returns)
            returned = function.returns if kind != "init" else None  # `-> None`
            if returned is not None and is_immutable(
                code(returned.annotation), body.qualify
            ):  # module state's, but no code can change it
                effects = replace(
                    effects, result_state=False, result_pieces=frozenset()
                )
            if kind == "class" and owner is not None:
                piece = self.classes.pieces.of_class(defs, owner)
                effects = of_class_method(effects, defs, function, piece)
            # An argument of a deeply immutable parameter shares nothing that can change.
            fixed = frozenset(params) - changeable(params, body.qualify)
            return of_stars(function, replace(effects, fixed=fixed))
        finally:
            self._reading.discard(key)

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
            # Where the name is defined, through the packages that re-export it.
            found = self.project.follow(imported, rest.split(".") if rest else [])
            if found is None:  # bound where kiln cannot tell: the name as imported
                parts = (imported.module, imported.attribute, rest)
                return ".".join(part for part in parts if part)
            if found.attribute is None:
                return found.module
            return f"{found.module}.{found.attribute}"
        if head in defs.parsed.global_names:
            prefix = defs.location.name
            return f"{prefix}.{name}" if prefix else name
        if head in BUILTINS:
            return f"builtins.{name}"
        return None

    def state_name(
        self,
        defs: ModuleDefs,
        node: cst.BaseExpression,
        called: bool,
        constants: bool = False,
    ) -> str | None:
        """The piece of module state a module-level name (or an attribute of one)
        is, by the name of the module defining it (`app.cache.SEEN`, a class's
        `app.cfg.Config`): a project module's changing value or class, or
        (`constants`) any name it binds; None when it is no state."""
        name = dotted(node)
        if name is None:
            return None
        parts = [identifier(part) for part in name.split(".")]
        if parts[0] not in defs.imports:
            return self._holds_state(defs, parts, called, constants)
        qualified = self.resolve(defs, node)
        parts = qualified.split(".") if qualified is not None else []
        for cut in range(len(parts) - 1, 0, -1):
            owner = self.project.load(".".join(parts[:cut]))
            if owner is not None:
                return self._holds_state(owner, parts[cut:], called, constants)
        return None

    def _holds_state(
        self, defs: ModuleDefs, path: list[str], called: bool, constants: bool
    ) -> str | None:
        referred = refers_to(defs, path)  # `CURRENT = db.STATE`: another module's
        if referred is not None:
            return self.state_name(defs, referred, called, constants)
        piece = held_piece(defs, path, called, constants)
        return self.classes.pieces.canonical(piece) if piece is not None else None

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
            self._typed_dicts[key] = self.classes.is_typed_dict(defs, annotation)
        return self._typed_dicts[key]

    def attribute_type(
        self, defs: ModuleDefs, annotation: str, attribute: str
    ) -> tuple[ModuleDefs, str] | None:
        return self.classes.attribute_type(defs, annotation, attribute)

    def is_logger(self, defs: ModuleDefs, node: cst.BaseExpression) -> bool:
        """`log.info(...)` where `log = logging.getLogger(...)` at module level."""
        while isinstance(node, cst.Attribute):
            node = node.value
        if not isinstance(node, cst.Name):
            return False
        module = defs.parsed.module
        if module not in self._loggers:
            self._loggers[module] = loggers(module)
        return identifier(node.value) in self._loggers[module]

    def project_function(self, qualified: str) -> tuple[str, str] | None:
        """A project function or class (what making it runs), or a method called
        through its class (`Agent.helper`): where its code is."""
        module, _, name = qualified.rpartition(".")
        defs = self.project.load(module) if module else None
        if defs is not None:
            return (module, name) if defined(defs, name) is not None else None
        owner, _, cls = module.rpartition(".")
        found = self.classes.find_in(owner, cls) if owner else None
        method = self.classes.method(found, name) if found is not None else None
        return (method.module, method.qualname) if method is not None else None

    def is_class(self, defs: ModuleDefs, name: str) -> bool:
        return self.classes.find(defs, name) is not None

    def class_of(self, defs: ModuleDefs, name: str) -> tuple[ModuleDefs, str] | None:
        """The module defining the project class an annotation names, and its name."""
        found = self.classes.find(defs, name)
        return (found[0], found[1].name.value) if found is not None else None

    def module_defs(self, module: str) -> ModuleDefs | None:
        """A project module's definitions; None for a module not the project's."""
        return self.project.load(module)

    def returns(self, module: str, name: str) -> tuple[ModuleDefs, str] | None:
        """The return annotation of a project function or method, unquoted; of
        one without, the project class every `return` makes (`return Store()`)."""
        found = self.classes.definition(module, name)
        if not isinstance(found, tuple) or found[3] == "init":
            return None
        annotation = found[1].returns
        if annotation is None:
            made = {
                code(value.func) if isinstance(value, cst.Call) else ""
                for value in returned_values(found[1])
            }
            if len(made) == 1 and self.is_class(found[0], made_class := made.pop()):
                return found[0], made_class
            return None
        value = annotation.annotation
        if isinstance(value, cst.SimpleString):  # `-> "Agent"`
            text = value.evaluated_value
            return (found[0], text) if isinstance(text, str) else None
        return found[0], code(value)

    def called(self, body: Body, func: cst.Attribute) -> Target | None:
        return called_method(body, func)

    def overrides(
        self, defs: ModuleDefs, annotation: str | None, name: str
    ) -> list[Method]:
        if annotation is None:  # of no type kiln can tell: any class's
            return self.classes.named(name)
        found = self.classes.find(defs, annotation)
        return self.classes.overrides(found, name) if found is not None else []

    def method(
        self, defs: ModuleDefs, annotation: str, name: str, skip: int = 0
    ) -> Method | None:
        """The method `name` of a value of this type, where it is a project class's."""
        found = self.classes.find(defs, annotation)
        return self.classes.method(found, name, skip) if found is not None else None


def _read_body(
    reader: EffectReader,
    defs: ModuleDefs,
    params: dict[str, Holder],
    roots: tuple[cst.CSTNode, ...],
    owner: str | None = None,
    made: str | None = None,
    receiver: str | None = None,
    defaults: Mapping[str, str] | None = None,
) -> Body:
    """One body (or flow statement) read: every change, Memory key and outside effect."""
    body = Body(reader, defs, params, roots, owner, made, receiver, defaults or {})
    for root in roots:
        walk(root, EffectVisitor(body))
    return body
