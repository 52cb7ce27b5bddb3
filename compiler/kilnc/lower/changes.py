"""What a step may change, read from the effects of the code it runs.

Example input: `await fill(state, memory)`, where `fill` assigns
`state["answer"]` and writes the key `done` of the Memory it is given. Output:
the step's `uses` hold `state` (and every name that may hold the same object,
once `sharing.py` settles the flow), its `key_writes` hold `@g:memory:done`,
and its `why` says "assigns state['answer']" and "writes the Memory key
'done'" for `--dump plan`. A call's result is linked to the arguments it may
return, so changing one later orders it after the other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Final, Protocol, final

import libcst as cst

from kilnc.effect_ir import (
    Change,
    Effects,
    Holder,
    Keys,
    MemoryUse,
    join_state,
    part_of,
)
from kilnc.ir import (
    RESERVED_PREFIX,
    Call,
    Callee,
    FanOut,
    FlowDef,
    NodeCall,
    NodeDef,
    Step,
)
from kilnc.lower.drawn import Definitions
from kilnc.lower.scope import Scope
from kilnc.lower.sharing import Sharing
from kilnc.lower.unshared import fresh, item, item_sources, item_type, shares_nothing
from kilnc.mutability import MUTATING_LIBRARY, is_immutable
from kilnc.names import identifier, name_uses, root_names, target_names
from kilnc.syntax import dotted
from kilnc.walk import walk


class EffectSource(Definitions, Protocol):
    """Effects of the project's functions, and of a flow's own statements."""

    def of_callee(self, callee: Callee) -> Effects: ...

    def of_statement(
        self, module: str, statement: cst.CSTNode, names: Mapping[str, Holder]
    ) -> Effects: ...


# Answers what a flow's own statements do outside it that keeps their place in a
# flow (read or change module state, print, code kiln cannot see into): the
# first such effect, where the flow's source has it; None when there is none.
# A call of the flow carries it into its caller (`Lowering.outside`).
OutsideOf = Callable[[FlowDef], Change | None]

# A temporary of kiln's in a reason for a change (`_kiln_operand_2`).
_TEMPORARY: Final = re.compile(rf"\b{RESERVED_PREFIX}_\w+")


@final
@dataclass(frozen=True, slots=True)
class Changes:
    """Effects read against one flow's names, and the links they make between names."""

    module: str  # the flow's
    effects: EffectSource
    outside: OutsideOf  # what a subflow's own statements do outside it
    scope: Scope
    shared: Sharing

    def effects_of(
        self, node: cst.CSTNode, also: frozenset[str] = frozenset()
    ) -> Effects:
        """What the code may do to the flow's names (and `also`, comprehension targets)."""
        scope = self.scope
        names = (name_uses(node).read_names & scope.own) | also
        holders = {  # sorted: the order of the reasons, and so the output, is stable
            name: Holder(scope.types.get(name), name in scope.memory)
            for name in sorted(names)
        }
        return self.effects.of_statement(self.module, node, holders)

    def acts(self, node: cst.CSTNode) -> bool:
        """Whether evaluating `node` does more than read: it changes a value of the
        flow's (`next(it)`, `xs.pop()`) or acts outside them (I/O, a clock,
        `random`'s state, module state)."""
        effects = self.effects_of(node)
        return effects.external is not None or bool(effects.changes)

    def with_effects(self, effects: Effects, step: Step) -> Step:
        """The step, also ordered by the names it may change and the keys it touches."""
        why = [
            (name, self._in_source_terms(change.reason))
            for name, change in effects.changes
        ]
        key_reads: set[str] = set()
        key_writes: set[str] = set()
        for token, use in effects.memory:
            key_reads |= _key_names("g", token, use.global_reads)
            key_reads |= _key_names("l", token, use.local_reads)
            key_writes |= _key_names("g", token, use.global_writes)
            key_writes |= _key_names("l", token, use.local_writes)
            if use.copies:
                key_reads.add(f"@c:{token}:*")
        for key in sorted(key_writes):
            why.append((key, f"writes the Memory key {key.split(':', 2)[2]!r}"))
        # `memory.best = memory.ranked[0]`, `await keep(memory, items)`: the keys
        # it stores into or from, and what it is given, may hold one object.
        self.shared.mutate(step.id, _memory_keys(effects, lambda use: use.mutates))
        shares = _memory_keys(effects, lambda use: use.shares)
        if shares:
            changed = frozenset(name for name, _ in effects.changes)
            self.shared.hold(shares | self.scope.mutable(step.reads | changed))
        escaped = self.scope.mutable(effects.escapes)
        if effects.result_state and not isinstance(step.action, Call | FanOut):
            # `agent = Agent(...)`; `workers.append(Worker(x))`, which changes workers
            stored = frozenset(name for name, _ in effects.changes)
            escaped |= self.scope.mutable(step.writes | stored)
        self.shared.escape(escaped, step.span.line)
        if effects.state and isinstance(step.action, Call | FanOut):
            self.shared.reaches_state(step.id)
        return replace(
            step,
            uses=step.uses | {name for name, _ in effects.changes},
            key_reads=step.key_reads | key_reads,
            key_writes=step.key_writes | key_writes,
            # A read of module state a node may change keeps its place too.
            external=step.external or effects.external or effects.reads_state,
            why=step.why + tuple(why),
            state=join_state(step.state, effects.state_uses),
            context=step.context or effects.context is not None,
        )

    def kept_place(self, call: NodeCall) -> Change | None:
        """What a call keeps its place for: a subflow's own statement that does,
        as it would written here, or a `ContextVar` the node sets for the code
        after it, which only a call run in the flow's own context sets there.
        A node's other outside effects are its own: nodes overlap whatever
        module state they share."""
        callee = call.callee
        if isinstance(callee, NodeDef):
            context = self.effects.of_callee(callee).context
            if context is None:
                return None
            return Change(
                f"calls '{callee.name}', which {context.reason} (a node run as a "
                "task sets it in a copy of the flow's context)",
                call.span,
            )
        found = self.outside(callee)
        if found is None:
            return None
        where = found.span
        at = f"line {where.line}" if where.path == call.span.path else where.location()
        reason = (
            f"calls the flow '{callee.name}', whose statement at {at} {found.reason}"
        )
        return Change(reason, call.span)

    def share_held(self, effects: Effects, targets: frozenset[str]) -> None:
        """Names bound to what a Memory holds (`held = memory["items"]`, a node
        returning `memory.items`, `pick = memory if a else b`) hold its objects."""
        keys, names = _memory_keys(
            effects, lambda use: use.returned
        ), self.scope.mutable(targets)
        if keys and names:
            self.shared.hold(keys | names)

    def type_target(
        self, target: cst.BaseExpression, iterable: cst.BaseExpression
    ) -> None:
        """`x` of `for x in xs`, `xs: list[int]`, is an `int`: an item no code
        changes holds nothing a change of another name reaches."""
        if not isinstance(target, cst.Name) or not isinstance(iterable, cst.Name):
            return
        item = item_type(self.scope.types.get(identifier(iterable.value)))
        if item is not None:
            self.scope.types[identifier(target.value)] = item
        else:
            self.scope.types.pop(identifier(target.value), None)

    def share_iteration(
        self, targets: set[str], iterable: cst.BaseExpression, step: Step
    ) -> Step:
        """A loop's targets hold its iterable's items: the step, with its effects."""
        self.shared.link(
            self.scope.mutable(frozenset(targets)),
            name_uses(iterable).read_names & self.scope.own,
        )
        # `for _ in iterable: pass`: what a loop does to its iterable.
        body = cst.IndentedBlock([cst.SimpleStatementLine([cst.Pass()])])
        effects = self.effects_of(cst.For(cst.Name("_"), iterable, body))
        self.share_held(effects, frozenset(targets))
        if effects.result_state:  # `for rows in OPEN.values()`: its targets only
            escaped = self.scope.mutable(frozenset(targets))
            self.shared.escape(escaped, step.span.line)
            effects = replace(effects, result_state=False)
        return self.with_effects(effects, step)

    def _in_source_terms(self, reason: str) -> str:
        """`calls _kiln_operand.append` as `calls state["messages"].append`."""
        return _TEMPORARY.sub(
            lambda found: self.scope.stands_for.get(found[0], found[0]), reason
        )

    def share_result(
        self, call: NodeCall, targets: frozenset[str], value_type: str | None
    ) -> None:
        """The names a call's value is bound to may share the objects of its arguments."""
        effects = self.effects.of_callee(call.callee)
        shared: set[str] = set()
        changed: set[str] = set()
        passed: set[str] = set()
        for param, argument in effects.bind(call.call):
            if shares_nothing(self.scope, effects, param, argument):
                continue  # `think(pad, tasks[0])` of a `list[str]`: pad keeps a str
            names = name_uses(argument).read_names & self.scope.own
            passed |= names
            if param is None or param in effects.returns:
                shared |= names
            # Unbound (`*args`), an argument may be any parameter the call changes.
            if effects.change(param) if param else effects.changes:
                changed |= names
        if value_type is None or not is_immutable(value_type, self.scope.qualify):
            self.shared.link(targets, self.scope.mutable(frozenset(shared)))
            # `a, b = await pair()`: the parts of one value may be one object.
            self.shared.link(self.scope.mutable(targets), self.scope.mutable(targets))
            if _read_from_state(effects):  # it hands out module state it reads
                self.shared.bound_from_state(
                    self.scope.mutable(targets), call.span.line, call.site
                )
            elif effects.result_state:  # module state's, or kept there
                self.shared.escape(self.scope.mutable(targets), call.span.line)
        # What a call changes may keep what else it was given (`box["xs"] = xs`):
        # changing either later changes both.
        mutable = self.scope.mutable
        self.shared.link(mutable(frozenset(changed)), mutable(frozenset(passed)))
        callee = call.callee
        if isinstance(callee, NodeDef) and callee.returns_memory:
            tokens = {
                name
                for name in name_uses(call.call).read_names
                if name in self.scope.memory
            }
            self.shared.returned_memory(targets, tokens)

    def share_assignment(self, statement: cst.CSTNode) -> None:
        """The names a statement makes share objects: what it binds and what the
        value reads; a container stored into (`state["messages"] = history`,
        `tools.add(nb.remember)`, `out += [row]`) and what it is given."""
        held: cst.BaseExpression | None = None
        targets: set[str] = set()
        if isinstance(statement, cst.Assign | cst.AnnAssign) and statement.value:
            held = statement.value
            targets = set(name_uses(statement).writes)
            for target in _assigned(statement):
                targets |= _stored_through(target)
        elif isinstance(statement, cst.AugAssign):
            # `state |= {"agent": a}`, `out += [a]`: the name's object, in place.
            held, targets = statement.value, root_names(statement.target)
        elif isinstance(statement, cst.Expr) and isinstance(statement.value, cst.Call):
            call = statement.value
            values = [arg.value for arg in call.args]
            if isinstance(call.func, cst.Attribute) and values:
                receiver = call.func.value
                targets = root_names(receiver) or set(name_uses(receiver).read_names)
                # `heapq.heappush(q, item)`, `setattr(h, "a", v)`, `list.append(xs,
                # v)`: a function of a module or a type keeps in its first
                # argument what it is given after it, as a method does.
                targets |= _stored_through(values[0]) | root_names(values[0])
            elif values and dotted(call.func) in _KEEPING_FUNCTIONS:
                targets = root_names(values[0])  # `setattr(h, "a", v)`, `heappush`
            held = cst.Tuple([cst.Element(value) for value in values])
        if (
            held is None
            or not targets
            or fresh(self.scope, held)
            or item(self.scope, held)
        ):
            return
        mutable = self.scope.mutable
        self.shared.link(
            mutable(frozenset(targets)), mutable(name_uses(held).read_names)
        )

    def share_bound(self, targets: set[str], value: cst.BaseExpression) -> None:
        """Names bound to the objects of a value read inside an expression: a
        walrus's (`agent := state.get("agent")`), a case's captures of its
        subject (`case {"agent": agent}`)."""
        if not targets or fresh(self.scope, value) or item(self.scope, value):
            return
        mutable = self.scope.mutable
        self.shared.link(
            mutable(frozenset(targets)), mutable(name_uses(value).read_names)
        )

    def share_walruses(self, node: cst.CSTNode) -> None:
        """Each `:=` inside a statement, a test or a call: what it binds shares
        the objects of what its value reads."""
        found = _Walruses()
        walk(node, found)
        for named in found.found:
            self.share_bound(target_names(named.target), named.value)

    def share_elements(
        self, result: NodeCall, clauses: cst.CompFor, targets: frozenset[str]
    ) -> None:
        """A fan-out's elements may share the objects of what each call was given:
        a loop target's item (when the items can change), or a name of the flow."""
        returns = result.callee.returns
        module = result.callee.module  # whose names the annotation uses
        if returns is not None and is_immutable(
            returns, partial(self.effects.library_name, module)
        ):
            return
        effects = self.effects.of_callee(result.callee)
        if effects.result_state:  # each element is module state's, or kept there
            self.shared.escape(self.scope.mutable(targets), result.span.line)
        given: set[str] = set()
        for param, argument in effects.bind(result.call):
            if shares_nothing(self.scope, effects, param, argument):
                continue
            if param is None or param in effects.returns:
                given |= name_uses(argument).read_names
        mutable = self.scope.mutable
        scope = self.scope
        items = mutable(item_sources(clauses, given, scope.types, scope.qualify))
        self.shared.link(mutable(targets), items | mutable(frozenset(given)))


def _read_from_state(effects: Effects) -> bool:
    """Whether what the call returns is module state's, one of the pieces it
    uses (`return COUNTERS`), and kept there by no code of the call's: the
    call is ordered after what changes those pieces before it."""
    pieces = effects.result_pieces
    return bool(pieces) and all(
        any(
            part_of(piece, used) or part_of(used, piece)
            for used, _ in effects.state_uses
        )
        for piece in pieces
    )


def _assigned(statement: cst.Assign | cst.AnnAssign) -> list[cst.BaseExpression]:
    if isinstance(statement, cst.AnnAssign):
        return [statement.target]
    return [target.target for target in statement.targets]


# Functions, called by their bare name, that keep in their first argument what
# they are given after it: `setattr(h, "a", v)`, `heappush(q, item)`.
_KEEPING_FUNCTIONS = frozenset(
    {"setattr", *(name.rpartition(".")[2] for name in MUTATING_LIBRARY)}
)


def _stored_through(target: cst.BaseExpression) -> set[str]:
    """The names a store into an item or attribute goes through (`state` of
    `state["messages"]`, `h` of `vars(h)[k]`, each of a tuple's targets); none
    for a plain name, which the statement binds."""
    if isinstance(target, cst.Tuple | cst.List):
        return set().union(*(_stored_through(e.value) for e in target.elements))
    if isinstance(target, cst.StarredElement):
        return _stored_through(target.value)
    if not isinstance(target, cst.Attribute | cst.Subscript):
        return set()
    return root_names(target) or set(name_uses(target.value).read_names)


def _key_names(store: str, token: str, keys: Keys) -> set[str]:
    """Memory keys as names the graph orders: `@g:memory:done`; `*` for every key."""
    found = {f"@{store}:{token}:{key}" for key in keys.names}
    if keys.any or keys.params:  # a key the flow's own variable names: any key
        found.add(f"@{store}:{token}:*")
    return found


def _memory_keys(
    effects: Effects, which: Callable[[MemoryUse], Keys]
) -> frozenset[str]:
    """Keys `which` names (what a step returns, or shares), in both stores of each token."""
    found: set[str] = set()
    for token, use in effects.memory:
        keys = which(use)
        found |= _key_names("g", token, keys) | _key_names("l", token, keys)
    return frozenset(found)


class _Walruses(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.NamedExpr] = []

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.found.append(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False  # a lambda's `:=` binds in the lambda
