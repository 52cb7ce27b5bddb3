"""One body read for effects: what each of its names may hold, and what it does.

Example input: the body of `def fill(state: dict, memory: Memory, tag: str)`
with `rows = state["rows"]` and `rows.append(tag)`. `Body` knows that `rows`
may hold part of `state`'s object (`origins`), so the append is recorded as a
change of `state`; a store into `memory.seen` is a write of its key `seen`.
`visitor.py` walks the statements and calls the recording methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Final

import libcst as cst

from kilnc.effect_ir import (
    ANONYMOUS_CLONE,
    ANY_KEY,
    NO_KEYS,
    UNSEEN,
    Access,
    Change,
    Effects,
    Holder,
    Keys,
    MemoryUse,
    global_part,
    spread,
)
from kilnc.effects.aliases import bind_aliases
from kilnc.effects.bindings import NEW_VALUES, Bindings
from kilnc.effects.closures import nonlocal_names
from kilnc.effects.found import Found, Origin
from kilnc.effects.idioms import Idioms
from kilnc.effects.lookup import Lookup
from kilnc.effects.narrowed import read_only
from kilnc.effects.receivers import (
    copy_shares,
    describe,
    of_immutable_items,
    of_immutable_type,
)
from kilnc.effects.state_uses import record
from kilnc.final_bindings import global_names
from kilnc.front import ModuleDefs
from kilnc.import_names import with_body_imports
from kilnc.mutability import (
    FRESH_METHODS,
    Qualify,
    fresh_builtin,
    is_fresh,
    is_immutable,
    may_be_iterator,
)
from kilnc.names import identifier, name_uses, root_names
from kilnc.syntax import chain_root, code

_OPAQUE: Final = ", a method kiln cannot see into"  # said of a use of module state
# A change of a whole Memory: any key read, bound anew, or changed in place.
_EVERY_VALUE: Final = MemoryUse(ANY_KEY, ANY_KEY, ANY_KEY, ANY_KEY, mutates=ANY_KEY)


class Body:
    """One function body (or flow statement), its parameters given."""

    def __init__(
        self,
        reader: Lookup,
        defs: ModuleDefs,
        params: dict[str, Holder],
        roots: tuple[cst.CSTNode, ...],
        owner: str | None = None,
        made: str | None = None,
        receiver: str | None = None,
        defaults: Mapping[str, str] | None = None,
    ) -> None:
        self.reader = reader
        self.defs, self.local_imports = with_body_imports(defs, roots)
        self.params = params
        self.roots = roots
        # The class whose method this is (for `super()`); in an `__init__`, the
        # name of the object it makes (no parameter: it holds what is stored).
        self.owner = owner
        self.made = made
        # A method's `self`: what it does to it is done to the object it is
        # called on (`RECEIVER`), which may be module state.
        self.receiver = receiver
        # The parameters whose default may change, each the piece of module
        # state it is (`app.remember._seen`): calls that take it share it.
        self.defaults = defaults or {}
        self.state_calls: set[int] = set()  # ids of calls returning module state's
        self.bindings = Bindings()
        self.found = Found()
        self.aliases: dict[str, set[Origin]] = {}
        self.contents: dict[str, set[Origin]] = {}
        self.local_names: set[str] = set()
        self.written: set[str] | None = None  # of read-only parameters (narrowed.py)
        # What the annotations of this module name, when it is no class of the project.
        self.qualify: Qualify = partial(reader.library_name, defs.location.name)
        for root in roots:
            self.local_names |= name_uses(root).writes - self.local_imports
            if self.defaults and isinstance(root, cst.BaseSuite):
                self.local_names -= nonlocal_names(root)  # `nonlocal n`: a cell
        # `global BOX; BOX += x`: bound here, but the module's object all the same.
        self.global_names = frozenset().union(*map(global_names, roots))
        self.bindings = bind_aliases(self)
        self.idioms = Idioms(self)

    def effects(self, order: tuple[str, ...], keep_clones: bool = False) -> Effects:
        """The effects on `order`'s names (`keep_clones`: a statement's own clones)."""
        found = self.found
        memory = dict(found.memory)
        clones = sorted(token for token in memory if ANONYMOUS_CLONE in token)
        for clone in clones:
            use = memory[clone] if keep_clones else memory.pop(clone)
            if (
                not keep_clones
            ):  # a function's clone reaches its parameter's global store
                parent = clone.partition(ANONYMOUS_CLONE)[0]
                memory[parent] = memory.get(parent, MemoryUse()) | global_part(use)
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
            reads_state=found.reads_state,
            reads=tuple((p, found.reads[p]) for p in order if p in found.reads),
            escapes=frozenset(found.escapes & set(order)),
            keeps=frozenset(found.keeps & set(order)),
            state=bool(found.state or found.external or found.reads_state),
            result_state=found.result_state,
            result_pieces=frozenset(found.result_pieces),
            state_uses=spread(found.state_uses),
            context=found.context,
            changes_yielded=found.changes_yielded,
            cleans_up=found.cleans_up,
        )

    # --- what a name or an expression may hold --------------------------------------

    def within(self, node: cst.BaseExpression) -> set[Origin]:
        """What `node` may be or hold anywhere inside it."""
        return self.origins(node) | self.inner(node)

    def inner(self, node: cst.BaseExpression) -> set[Origin]:
        """What the items of the container `node` names may be: `out` after
        `out.append(w)`, `w` an item of `words`, holds parts of `words`, but is
        no part of it: appending to `out` changes `out` alone."""
        held: set[Origin] = set()
        if isinstance(node, cst.List | cst.Tuple | cst.Set | cst.Dict):
            for element in node.elements:
                if isinstance(element, cst.DictElement):
                    held |= self.within(element.key)
                held |= self.within(element.value)
        elif isinstance(node, cst.ListComp | cst.SetComp | cst.GeneratorExp):
            held = self.within(node.elt)  # its targets hold what they iterate
        elif isinstance(node, cst.DictComp):
            held = self.within(node.key) | self.within(node.value)
        elif isinstance(node, cst.BinaryOperation) and not _arithmetic(node):
            held = self.within(node.left) | self.within(node.right)
        for name in root_names(node):
            held |= self.contents.get(name, set())
        return held

    def origins(self, node: cst.BaseExpression) -> set[Origin]:
        if isinstance(node, cst.Name):
            name = identifier(node.value)
            own: set[Origin] = {name} if name in self.params else set()
            return own | self.aliases.get(name, set())
        if isinstance(node, cst.Attribute | cst.Subscript):
            whole = self.local_view(node)  # `memory.local`: every key of its store
            if whole is not None:
                return {(whole, "local", ANY_KEY)}
            token = self.token(node.value)
            if token is not None:
                return {(token, "global", self.keys_of(node, by_parameter=False))}
            local = self.local_view(node.value)
            if local is not None:
                return {(local, "local", self.keys_of(node, by_parameter=False))}
            return self.within(node.value)
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
        if isinstance(node, NEW_VALUES):
            # A new value, which holds its items (`inner`): `rows + more` too.
            return set()
        held: set[Origin] = set()
        for name in name_uses(node).read_names:
            held |= self.origins(cst.Name(name))
        return held

    def _call_origins(self, call: cst.Call) -> set[Origin]:
        func = call.func
        if isinstance(func, cst.Name) and func.value == "super" and not call.args:
            # `super().__setattr__("x", v)`: the method's own object, changed
            own = self.made or next(iter(self.params), None)
            return self.origins(cst.Name(own)) if own is not None else set()
        target = (
            self.reader.called(self, func) if isinstance(func, cst.Attribute) else None
        )
        if target is not None:  # a project method: what it returns of what it is given
            module, name, receiver = target
            return self._returned(call, self.reader.of_function(module, name), receiver)
        if isinstance(func, cst.Attribute) and func.attr.value in FRESH_METHODS:
            # A str's `format` makes a new value; a project class's may return
            # what its object holds, and an unannotated value may be either.
            described = describe(self, func, call)
            if described is not None and not described.assumed:
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
            if qualified.startswith("builtins.") and fresh_builtin(last, call):
                return set()
            if is_fresh(qualified) and not copy_shares(self, call, qualified):
                return set()  # no copy a class of the project makes its own way
            found = self.reader.project_function(qualified)
            if found is not None:
                return self._returned(call, self.reader.of_function(*found))
        held = self.origins(func) if isinstance(func, cst.Attribute) else set()
        for arg in call.args:
            held |= self.within(arg.value)  # `max(out)`: one of its items
        return held

    def _returned(
        self,
        call: cst.Call,
        effects: Effects,
        receiver: cst.BaseExpression | None = None,
    ) -> set[Origin]:
        held: set[Origin] = set()
        given = list(effects.bind(call, receiver))
        named = {param: argument for param, argument in given if param}
        for param, argument in given:
            kept = param is None or param in effects.returns
            if not kept or of_immutable_type(self, argument):  # `Batch(page.url)`
                continue
            use = effects.memory_use(param) if param else None  # a Memory's keys
            returned = use.returned if use is not None else NO_KEYS
            token = self.token(argument)
            if token is not None and returned and not returned.any:
                keys = self.bound(returned, named)
                held |= {(token, "global", keys), (token, "local", keys)}
            else:
                held |= self.within(argument)
        return held

    def bound(self, keys: Keys, given: dict[str, cst.BaseExpression]) -> Keys:
        """Keys a callee names by its parameters, named by a call's arguments
        (`given`, by parameter)."""
        found = Keys(keys.names, keys.any)
        for param in keys.params:
            found = found | self.keys_at(given.get(param))
        return found

    def keys_of(
        self, node: cst.Attribute | cst.Subscript, *, by_parameter: bool = True
    ) -> Keys:
        """The key `memory.name` or `memory[key]` names."""
        if isinstance(node, cst.Attribute):  # `memory._global`: its whole store
            attribute = node.attr.value
            return ANY_KEY if attribute == "_global" else Keys(frozenset({attribute}))
        if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            return self.keys_at(node.slice[0].slice.value, by_parameter=by_parameter)
        return ANY_KEY

    def keys_at(
        self, key: cst.BaseExpression | None, *, by_parameter: bool = True
    ) -> Keys:
        """A literal key, one a parameter never rebound names (`by_parameter`), or any."""
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
        """The Memory parameter of `memory.local` (and of its slot, `memory._local`)."""
        if isinstance(node, cst.Attribute) and node.attr.value in ("local", "_local"):
            return self.token(node.value)
        return None

    # --- recording ------------------------------------------------------------------

    def change(
        self,
        node: cst.BaseExpression,
        reason: str,
        where: cst.CSTNode,
        by_iteration: bool = False,
        *,
        itself: bool = False,
        opaque: bool = False,
        as_state: bool = True,
        stored: cst.BaseExpression | None = None,
    ) -> None:
        """Everything `node` may hold may change; only what it may be, `itself`
        (`out.append(w)` changes `out`, not `w`). A use of module state too (of
        the part `stored` into), unless a method says how it uses its object."""
        changed = self.origins(node) if itself or by_iteration else self.within(node)
        for origin in changed:
            if isinstance(origin, str):
                param = self.params[origin]
                if param.memory:
                    self.memory(origin, _EVERY_VALUE)
                    continue
                if read_only(self, origin) or (
                    by_iteration and not may_be_iterator(param.annotation, self.qualify)
                ):
                    continue
                before = self.found.changes.get(origin)
                # Its items changed outweighs its iteration, which a container forgets.
                weaker = before is not None and before.by_iteration > by_iteration
                if before is None or weaker or (before.opaque and not opaque):
                    span = self.defs.parsed.span(where)
                    change = Change(reason, span, by_iteration, opaque)
                    self.found.changes[origin] = change
            else:
                token, scope, keys = origin
                # The value at the key changes in place: what else holds it too.
                if scope == "local":
                    use = MemoryUse(local_reads=keys, local_writes=keys, mutates=keys)
                else:
                    use = MemoryUse(keys, keys, keys, keys, mutates=keys)
                self.memory(token, use)
        if self.is_module_state(node):
            self.external(reason, where)
        # A method of module state kiln cannot see into (`opaque`: `client.post`)
        # reads it: a client, a session, a logger is shared by design.
        access = Access.READ if by_iteration or opaque else Access.WRITE
        # Else what a method kiln cannot see into, or code handed it, does: a guess.
        guessed = reason.endswith((_OPAQUE, UNSEEN))
        if as_state and not self.idioms.is_copy(node):  # `vals.append(x)` of a copy
            said = reason.removesuffix(_OPAQUE)
            record(self, stored or node, access, said, where, guessed=guessed)

    def holds_immutable(self, node: cst.BaseExpression) -> bool:
        """Whether no item of `node` can change (`COUNTS` of a `dict[str, int]`)."""
        return of_immutable_items(self, node)

    def _annotated(self, holder: Holder, test: Callable[[str, Qualify], bool]) -> bool:
        return holder.annotation is not None and test(holder.annotation, self.qualify)

    def escape(self, node: cst.BaseExpression) -> None:
        """`node` is stored in module state: code that reaches it may change it."""
        roots = root_names(node)
        self.found.escaped_locals |= roots & self.local_names
        self.found.result_state |= self.made in roots  # a constructor's object
        for origin in self.within(node):
            if isinstance(origin, str) and not (
                self.params[origin].memory
                or self._annotated(self.params[origin], is_immutable)
            ):
                self.found.escapes.add(origin)

    def memory(self, token: str, use: MemoryUse) -> None:
        self.found.memory[token] = self.found.memory.get(token, MemoryUse()) | use

    def external(self, reason: str, where: cst.CSTNode) -> None:
        if self.found.external is None:
            self.found.external = Change(reason, self.defs.parsed.span(where))

    def sets_context(self, reason: str, where: cst.CSTNode) -> None:
        if self.found.context is None:
            self.found.context = Change(reason, self.defs.parsed.span(where))

    def read(
        self, node: cst.Name | cst.Attribute, called: bool = False, method: bool = False
    ) -> None:
        """A read of a name or an attribute: of module state, if it is one (a
        project `method` called uses what its body uses)."""
        if not method:
            # `calls LOG.append`: what the call is part of (an accumulation) says so.
            verb = "calls" if called else "reads"
            record(self, node, Access.READ, f"{verb} {code(node)}", node, called=called)
        if self.is_module_state(node) and self.reader.state_name(
            self.defs, node, called
        ):
            self.read_state(f"reads {code(node)}, module state", node)

    def read_state(self, reason: str, where: cst.CSTNode) -> None:
        if self.found.reads_state is None:
            self.found.reads_state = Change(reason, self.defs.parsed.span(where))

    def is_module_state(self, node: cst.BaseExpression) -> bool:
        """Whether the expression is rooted at a module-level name (not a local)."""
        node = chain_root(node)
        if not isinstance(node, cst.Name):
            return False
        name = identifier(node.value)
        if name in self.params or name in self.local_names:
            return False
        return name in self.defs.parsed.global_names or name in self.local_imports


def _arithmetic(node: cst.BinaryOperation) -> bool:
    """`i + 2`, `n - 1`: a number, which holds nothing (not `[x] * 2`, whose
    items are `x` twice)."""
    numbers = (cst.Integer, cst.Float, cst.Imaginary)
    sides = (node.left, node.right)
    return not isinstance(node.operator, cst.Multiply) and any(
        isinstance(side, numbers) for side in sides
    )
