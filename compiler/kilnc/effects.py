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
deeply immutable (`str`, `tuple[int, ...]`, `Mapping[str, int]`) is never
changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import libcst as cst

from kilnc.effect_ir import (
    ANONYMOUS_CLONE,
    ANY_KEY,
    EVERY_KEY,
    Change,
    Effects,
    Holder,
    Keys,
    MemoryUse,
)
from kilnc.front import ModuleDefs
from kilnc.ir import Callee, NodeDef
from kilnc.mutability import (
    EXTERNAL_BUILTINS,
    FRESH_BUILTINS,
    FRESH_METHODS,
    ITERATING_BUILTINS,
    LOGGING,
    MUTATING_LIBRARY,
    MUTATING_METHODS,
    PURE_BUILTINS,
    PURE_METHODS,
    is_fresh,
    is_immutable,
    is_pure,
    may_be_iterator,
)
from kilnc.names import BUILTINS, identifier, name_uses, target_names
from kilnc.project import Project
from kilnc.syntax import code, dotted

FIXED_POINT_ROUNDS: Final = 50  # the lattice is finite; this only bounds a runaway

# A class without `__init__` (a dataclass, say), or a name with no definition to
# read: it keeps what it is given, so what it returns may hold any argument.
_KEEPS_ARGUMENTS: Final = Effects(params=(), variadic=True)

# A value a function holds: a parameter's object, or a value stored in a Memory
# parameter under some keys, read through its global or local store. The keys are a
# literal or any (`by_parameter=False`): in `items = memory[key]`, `key` a parameter,
# a change through `items` counts for every key, so it may keep an order the caller's
# argument would show is not needed, but never drops one.
Origin = str | tuple[str, str, Keys]


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
        body = _Body(self, defs, dict(names), (statement,))
        return body.effects(tuple(names), keep_clones=True)

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
            body = _Body(self, defs, params, (function.body,))
            effects = body.effects(tuple(params))
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


def _immutable_holder(holder: Holder) -> bool:
    return holder.annotation is not None and is_immutable(holder.annotation)


def _method(cls: cst.ClassDef, name: str) -> cst.FunctionDef | None:
    body = cls.body
    if not isinstance(body, cst.IndentedBlock):
        return None
    for statement in body.body:
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
    return Effects(
        effects.params,
        effects.changes,
        effects.memory,
        effects.returns,
        effects.external,
        variadic=True,
    )


# --- one body ------------------------------------------------------------------------


@dataclass
class _Found:
    changes: dict[str, Change] = field(default_factory=dict)
    memory: dict[str, MemoryUse] = field(default_factory=dict)
    returns: set[str] = field(default_factory=set)
    external: Change | None = None


class _Body:
    """One function body (or flow statement), its parameters given."""

    def __init__(
        self,
        reader: EffectReader,
        defs: ModuleDefs,
        params: dict[str, Holder],
        roots: tuple[cst.CSTNode, ...],
    ) -> None:
        self.reader = reader
        self.defs = defs
        self.params = params
        self.roots = roots
        self.found = _Found()
        self.aliases: dict[str, set[Origin]] = {}
        self.local_names: set[str] = set()
        for root in roots:
            self.local_names |= name_uses(root).writes

    def effects(self, order: tuple[str, ...], keep_clones: bool = False) -> Effects:
        """The effects on `order`'s names; `keep_clones`: a flow statement's
        clones made in call arguments stay tokens of their own."""
        self._alias()
        for root in self.roots:
            root.visit(_EffectVisitor(self))
        found = self.found
        memory = dict(found.memory)
        clones = sorted(token for token in memory if ANONYMOUS_CLONE in token)
        for clone in clones:
            use = memory[clone] if keep_clones else memory.pop(clone)
            if (
                not keep_clones
            ):  # a function's clone reaches its parameter's global store
                parent = clone.partition(ANONYMOUS_CLONE)[0]
                shared = MemoryUse(use.global_reads, use.global_writes)
                memory[parent] = memory.get(parent, MemoryUse()) | shared
        return Effects(
            params=order,
            changes=tuple((p, found.changes[p]) for p in order if p in found.changes),
            memory=tuple(
                (p, memory[p])
                for p in (*order, *(clones if keep_clones else ()))
                if p in memory
            ),
            returns=frozenset(found.returns),
            external=found.external,
        )

    # --- what a name or an expression may hold --------------------------------------

    def _alias(self) -> None:
        """Which parameters' objects each local name may hold, to a fixed point."""
        assignments: list[tuple[set[str], cst.BaseExpression]] = []
        for root in self.roots:
            collector = _Assignments()
            root.visit(collector)
            assignments += collector.found
        for _ in range(FIXED_POINT_ROUNDS):
            changed = False
            for targets, value in assignments:
                held = self.origins(value)
                for target in targets:
                    if target in self.params:
                        continue  # a parameter rebound still names its own object too
                    before = self.aliases.setdefault(target, set())
                    if not held <= before:
                        before |= held
                        changed = True
            if not changed:
                return

    def origins(self, node: cst.BaseExpression) -> set[Origin]:
        if isinstance(node, cst.Name):
            name = identifier(node.value)
            own: set[Origin] = {name} if name in self.params else set()
            return own | self.aliases.get(name, set())
        if isinstance(node, cst.Attribute | cst.Subscript):
            token = self.token(node.value)
            if token is not None:
                return {(token, "global", self.keys_of(node, by_parameter=False))}
            local = self.local_view(node.value)
            if local is not None:
                return {(local, "local", self.keys_of(node, by_parameter=False))}
            return self.origins(node.value)
        if isinstance(node, cst.Await):
            return self.origins(node.expression)
        if isinstance(node, cst.Call):
            return self._call_origins(node)
        if isinstance(
            node,
            cst.Comparison
            | cst.UnaryOperation
            | cst.BaseNumber
            | cst.BaseString
            | cst.Lambda,
        ):
            return set()
        if isinstance(node, cst.IfExp):
            return self.origins(node.body) | self.origins(node.orelse)
        if isinstance(node, cst.BooleanOperation):
            return self.origins(node.left) | self.origins(node.right)
        held: set[Origin] = set()
        if isinstance(node, cst.List | cst.Tuple | cst.Set):
            for item in node.elements:
                held |= self.origins(item.value)
            return held
        if isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp):
            return self.origins(node.elt)  # its targets hold what they iterate
        if isinstance(node, cst.DictComp):
            return self.origins(node.key) | self.origins(node.value)
        if isinstance(node, cst.BinaryOperation):
            return self.origins(node.left) | self.origins(node.right)
        for name in name_uses(node).read_names:
            held |= self.origins(cst.Name(name))
        return held

    def _call_origins(self, call: cst.Call) -> set[Origin]:
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in FRESH_METHODS:
            return set()
        if isinstance(func, cst.Attribute):
            token = self.token(func.value)
            if token is not None:
                if func.attr.value == "get":
                    key = call.args[0].value if call.args else None
                    return {(token, "global", self.keys_at(key, by_parameter=False))}
                return {token} if func.attr.value == "clone" else set()
        qualified = self.reader.resolve(self.defs, func)
        if qualified is not None:
            last = qualified.split(".")[-1]
            if qualified.startswith("builtins.") and last in FRESH_BUILTINS:
                return set()
            if is_fresh(qualified):
                return set()
            target = self.reader.project_function(qualified)
            if target is not None:
                effects = self.reader.of_function(*target)
                held: set[Origin] = set()
                for param, argument in effects.bind(call):
                    if param is None or param in effects.returns:
                        held |= self.origins(argument)
                return held
        held = self.origins(func) if isinstance(func, cst.Attribute) else set()
        for arg in call.args:
            held |= self.origins(arg.value)
        return held

    def keys_of(
        self, node: cst.Attribute | cst.Subscript, *, by_parameter: bool = True
    ) -> Keys:
        """The key `memory.name` or `memory[key]` names."""
        if isinstance(node, cst.Attribute):
            return Keys(frozenset({node.attr.value}))
        if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            return self.keys_at(node.slice[0].slice.value, by_parameter=by_parameter)
        return ANY_KEY

    def keys_at(
        self, key: cst.BaseExpression | None, *, by_parameter: bool = True
    ) -> Keys:
        """A literal key, a key named by a parameter never rebound (if `by_parameter`),
        or any key."""
        if isinstance(key, cst.SimpleString):
            evaluated = key.evaluated_value
            if isinstance(evaluated, str):
                return Keys(frozenset({evaluated}))
        if by_parameter and isinstance(key, cst.Name):
            name = identifier(key.value)
            if name in self.params and name not in self.local_names:
                return Keys(params=frozenset({name}))
        return ANY_KEY

    def token(self, node: cst.BaseExpression) -> str | None:
        """The Memory parameter an expression is (or is a clone of)."""
        if not isinstance(node, cst.Name):
            return None
        for origin in self.origins(node):
            if isinstance(origin, str) and self.params[origin].memory:
                return origin
        return None

    def local_view(self, node: cst.BaseExpression) -> str | None:
        """The Memory parameter of `memory.local`."""
        if isinstance(node, cst.Attribute) and node.attr.value == "local":
            return self.token(node.value)
        return None

    # --- recording ------------------------------------------------------------------

    def change(
        self,
        node: cst.BaseExpression,
        reason: str,
        where: cst.CSTNode,
        by_iteration: bool = False,
    ) -> None:
        """Everything `node` may hold may change."""
        for origin in self.origins(node):
            if isinstance(origin, str):
                param = self.params[origin]
                if param.memory:
                    self.memory(origin, MemoryUse(ANY_KEY, ANY_KEY, ANY_KEY, ANY_KEY))
                    continue
                if _immutable_holder(param) or (
                    by_iteration and not may_be_iterator(param.annotation)
                ):
                    continue
                if origin not in self.found.changes:
                    self.found.changes[origin] = Change(
                        reason, self.defs.parsed.span(where), by_iteration
                    )
            else:
                token, scope, keys = origin
                if scope == "local":
                    self.memory(token, MemoryUse(local_reads=keys, local_writes=keys))
                else:
                    self.memory(token, MemoryUse(keys, keys, keys, keys))
        if self.is_module_state(node):
            self.external(reason, where)

    def memory(self, token: str, use: MemoryUse) -> None:
        self.found.memory[token] = self.found.memory.get(token, MemoryUse()) | use

    def external(self, reason: str, where: cst.CSTNode) -> None:
        if self.found.external is None:
            self.found.external = Change(reason, self.defs.parsed.span(where))

    def is_module_state(self, node: cst.BaseExpression) -> bool:
        """Whether the expression is rooted at a module-level name (not a local)."""
        while isinstance(node, cst.Attribute | cst.Subscript):
            node = node.value
        if not isinstance(node, cst.Name):
            return False
        name = identifier(node.value)
        return (
            name not in self.params
            and name not in self.local_names
            and name in self.defs.parsed.global_names
        )


class _Assignments(cst.CSTVisitor):
    """Every binding of a name and the expression whose objects it may then hold."""

    def __init__(self) -> None:
        self.found: list[tuple[set[str], cst.BaseExpression]] = []

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self.found.append((target_names(target.target), node.value))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self.found.append((target_names(node.target), node.value))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.found.append((target_names(node.target), node.value))

    def visit_For(self, node: cst.For) -> None:
        self.found.append((target_names(node.target), node.iter))

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.found.append((target_names(node.target), node.iter))

    def visit_Call(self, node: cst.Call) -> None:
        # `parts.append(state)`: parts now holds state's object.
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
            and func.attr.value in MUTATING_METHODS
        ):
            for arg in node.args:
                self.found.append(({identifier(func.value.value)}, arg.value))

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self.found.append((target_names(node.asname.name), node.item))


class _EffectVisitor(cst.CSTVisitor):
    """Records, for one body, every change, Memory key and outside effect."""

    def __init__(self, body: _Body) -> None:
        self.body = body

    # --- stores -------------------------------------------------------------------

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._store(target.target, "assigns")

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._store(node.target, "assigns")

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        target = node.target
        if isinstance(target, cst.Name):
            # `x += y` changes a list in place; a number it only rebinds.
            self.body.change(target, f"changes {code(target)} in place (+=)", node)
            if self.body.is_module_state(target):
                self.body.external(f"changes the module's {code(target)}", node)
        else:
            self._store(target, "changes")

    def visit_Del(self, node: cst.Del) -> None:
        self._store(node.target, "deletes")

    def _store(self, target: cst.BaseExpression, verb: str) -> None:
        if isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._store(element.value, verb)
            return
        if isinstance(target, cst.StarredElement):
            self._store(target.value, verb)
            return
        if not isinstance(target, cst.Attribute | cst.Subscript):
            return
        body = self.body
        token = body.token(target.value)
        if token is not None:
            keys = body.keys_of(target)
            body.memory(token, MemoryUse(global_writes=keys, local_writes=keys))
            return
        local = body.local_view(target.value)
        if local is not None:
            body.memory(local, MemoryUse(local_writes=body.keys_of(target)))
            return
        body.change(target.value, f"{verb} {code(target)}", target)
        if body.is_module_state(target):
            body.external(f"{verb} {code(target)}, module state", target)

    # --- reads of Memory keys ---------------------------------------------------------

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        body = self.body
        local = body.local_view(node.value)
        if local is not None:
            body.memory(local, MemoryUse(local_reads=body.keys_of(node)))
            return False
        token = body.token(node.value)
        if token is None:
            return True
        attribute = node.attr.value
        if attribute == "local":
            body.memory(token, MemoryUse(local_reads=ANY_KEY))
        elif attribute not in ("get", "clone"):
            keys = body.keys_of(node)
            body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))
        return True

    def visit_Subscript(self, node: cst.Subscript) -> None:
        body = self.body
        local = body.local_view(node.value)
        token = body.token(node.value)
        if local is not None:
            body.memory(local, MemoryUse(local_reads=body.keys_of(node)))
        elif token is not None:
            keys = body.keys_of(node)
            body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))

    def visit_Comparison(self, node: cst.Comparison) -> None:
        # `"key" in memory`: a read of that key.
        body = self.body
        for target in node.comparisons:
            token = body.token(target.comparator)
            if token is None or not isinstance(target.operator, cst.In | cst.NotIn):
                continue
            keys = body.keys_at(node.left)
            body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))

    # --- iteration --------------------------------------------------------------------

    def visit_For(self, node: cst.For) -> None:
        self._iterate(node.iter, node)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._iterate(node.iter, node)

    def _iterate(self, iterable: cst.BaseExpression, where: cst.CSTNode) -> None:
        if isinstance(iterable, cst.Name):
            self.body.change(
                iterable, f"iterates {code(iterable)}", iterable, by_iteration=True
            )

    # --- calls --------------------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        body = self.body
        func = node.func
        if isinstance(func, cst.Attribute) and self._method(node, func):
            return
        qualified = body.reader.resolve(body.defs, func)
        if qualified is None:
            self._unknown(node, code(func))
            return
        if qualified.startswith("builtins."):
            self._builtin(node, qualified.removeprefix("builtins."))
            return
        target = body.reader.project_function(qualified)
        if target is not None:
            self._project(node, body.reader.of_function(*target), code(func))
            return
        if qualified in MUTATING_LIBRARY and node.args:
            body.change(node.args[0].value, f"passes it to {qualified}", node)
            return
        if is_pure(qualified):
            return
        if qualified.startswith(LOGGING) or body.reader.is_logger(body.defs, func):
            body.external(f"calls {code(func)}", node)
            return
        self._unknown(node, code(func))

    def _method(self, node: cst.Call, func: cst.Attribute) -> bool:
        """A method of a local value or a parameter; False for a module's function."""
        body = self.body
        receiver = func.value
        method = func.attr.value
        token = body.token(receiver)
        if token is not None:
            if method == "get":
                keys = body.keys_at(node.args[0].value if node.args else None)
                body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))
            elif method == "clone":
                body.memory(token, MemoryUse(copies=True))
            else:
                body.memory(token, EVERY_KEY)
            return True
        local = body.local_view(receiver)
        if local is not None:
            use = MemoryUse(local_reads=ANY_KEY)
            if method not in PURE_METHODS:
                use = MemoryUse(local_reads=ANY_KEY, local_writes=ANY_KEY)
            body.memory(local, use)
            return True
        if isinstance(receiver, cst.BaseString):
            return True  # ", ".join(parts)
        if _is_module(body.defs, receiver):
            return False  # json.dumps(...): a module's function, resolved by name
        if method in PURE_METHODS:
            if method == "join":
                for arg in node.args:
                    self._iterate(arg.value, node)
            return True
        if method in MUTATING_METHODS:
            body.change(receiver, f"calls {code(func)}", node)
            return True
        if body.is_module_state(receiver) and body.reader.is_logger(
            body.defs, receiver
        ):
            body.external(f"calls {code(func)}", node)
            return True
        # A method kiln cannot see into may change its object and its arguments.
        body.change(receiver, f"calls {code(func)}, which kiln cannot see into", node)
        self._unknown(node, code(func))
        return True

    def _builtin(self, node: cst.Call, name: str) -> None:
        body = self.body
        if name in PURE_BUILTINS:
            return
        if name in ITERATING_BUILTINS:
            for arg in node.args:
                self._iterate(arg.value, node)
            return
        if name == "next" and node.args:
            body.change(
                node.args[0].value, "calls next() on it", node, by_iteration=True
            )
            return
        if name in ("setattr", "delattr") and node.args:
            token = body.token(node.args[0].value)
            if token is not None:
                keys = body.keys_at(node.args[1].value if len(node.args) > 1 else None)
                body.memory(token, MemoryUse(global_writes=keys, local_writes=keys))
            else:
                body.change(node.args[0].value, f"calls {name}() on it", node)
            return
        if name in EXTERNAL_BUILTINS:
            body.external(f"calls {name}()", node)
            return
        self._unknown(node, name)

    def _project(self, node: cst.Call, effects: Effects, shown: str) -> None:
        body = self.body
        for param, argument in effects.bind(node):
            if param is None:
                # Unbound, a literal tuple's elements are each what it passes.
                for passed in _elements_or_itself(argument):
                    for _, some_change in effects.changes:
                        reason = _through(shown, some_change)
                        body.change(passed, reason, node, some_change.by_iteration)
                    # Keys the callee names by a parameter are this call's
                    # arguments, or any key where kiln cannot tell which.
                    for _, some_use in effects.memory:
                        bound = self._bound_keys(some_use, effects, node)
                        self._memory_argument(passed, bound)
                continue
            change = effects.change(param)
            if change is not None:
                body.change(
                    argument, _through(shown, change), node, change.by_iteration
                )
            use = effects.memory_use(param)
            if use is not None:
                self._memory_argument(argument, self._bound_keys(use, effects, node))
        if effects.external is not None:
            body.external(_through(shown, effects.external, "calls"), node)

    def _bound_keys(
        self, use: MemoryUse, effects: Effects, call: cst.Call
    ) -> MemoryUse:
        """Keys the callee names by its parameters, named by this call's arguments."""
        given = {param: argument for param, argument in effects.bind(call) if param}

        def bound(keys: Keys) -> Keys:
            found = Keys(keys.names, keys.any)
            for param in keys.params:
                found = found | self.body.keys_at(given.get(param))
            return found

        return MemoryUse(
            bound(use.global_reads),
            bound(use.global_writes),
            bound(use.local_reads),
            bound(use.local_writes),
        )

    def _memory_argument(self, argument: cst.BaseExpression, use: MemoryUse) -> None:
        body = self.body
        token = body.token(argument)
        if token is not None:
            body.memory(token, use)
        elif isinstance(argument, cst.Call) and isinstance(
            argument.func, cst.Attribute
        ):
            clone_of = body.token(argument.func.value)
            if clone_of is not None and argument.func.attr.value == "clone":
                # A clone shares the global store; its local store is new, and
                # nothing else reaches it.
                span = body.defs.parsed.span(argument)
                clone = f"{clone_of}{ANONYMOUS_CLONE}{span.line}.{span.column}"
                body.memory(clone, MemoryUse(use.global_reads, use.global_writes))

    def _unknown(self, node: cst.Call, shown: str) -> None:
        body = self.body
        for arg in node.args:
            body.change(
                arg.value, f"passes it to {shown}, which kiln cannot see into", node
            )
        if not self._local_callable(node.func):
            body.external(f"calls {shown}", node)

    def _local_callable(self, func: cst.BaseExpression) -> bool:
        """A function value the body holds itself (a parameter or a local)."""
        while isinstance(func, cst.Attribute):
            func = func.value
        if not isinstance(func, cst.Name):
            return False
        name = identifier(func.value)
        return name in self.body.params or name in self.body.local_names

    # --- the rest -----------------------------------------------------------------------

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self._returned(node.value)

    def visit_Yield(self, node: cst.Yield) -> None:
        if isinstance(node.value, cst.BaseExpression):
            self._returned(node.value)

    def _returned(self, value: cst.BaseExpression) -> None:
        for origin in self.body.origins(value):
            self.body.found.returns.add(
                origin if isinstance(origin, str) else origin[0]
            )

    def visit_Global(self, node: cst.Global) -> None:
        self.body.external("declares a global", node)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.body.external("declares a nonlocal", node)


def _through(shown: str, change: Change, verb: str = "passes it to") -> str:
    """`passes it to helper, which calls d.clear`: the callee and the innermost cause.

    Only the innermost cause is kept, so a reason through recursion stays the
    same from one round of the fixed point to the next.
    """
    cause = change.reason.rpartition(", which ")[2]
    return f"{verb} {shown}, which {cause}"


def _is_module(defs: ModuleDefs, node: cst.BaseExpression) -> bool:
    """Whether a dotted expression starts at an imported module or name."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return isinstance(node, cst.Name) and identifier(node.value) in defs.imports


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


def _elements_or_itself(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    """What a literal passes (`*(memory, key)`, `**{"memory": memory}`), else the value."""
    if isinstance(value, cst.Tuple | cst.List | cst.Dict):
        return [element.value for element in value.elements]
    return [value]
