"""A call of a project function, read through its effects on what it is passed.

Example input: `helper(state, memory, "k")` where `helper(d, m, key)` assigns
`d["x"]` and writes `m[key]`. Output, on the `Body`: a change of `state`
("passes it to helper, which assigns d['x']") and a write of the Memory key
`k`, the literal this call passes where the callee names it by `key`.

What the callee only reads may change what this call passes it (`Reads`): its
item reads change a defaultdict, and its dict methods on an unannotated
parameter (`inbox.get(k)`) a value this body knows to be of another class;
where this body cannot tell, the reads are its own parameters' to its caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import libcst as cst

from kilnc.effect_ir import (
    ANONYMOUS_CLONE,
    RECEIVER,
    Access,
    Change,
    Effects,
    MemoryUse,
    Reads,
    global_part,
    part_of,
)
from kilnc.effects.body import Body
from kilnc.effects.found import Origin
from kilnc.effects.methods import Method, Target
from kilnc.effects.receivers import inserts_on_read, value_described
from kilnc.effects.state_uses import merge, on_called, record
from kilnc.syntax import code


def project_call(
    body: Body,
    node: cst.Call,
    effects: Effects,
    shown: str,
    receiver: cst.BaseExpression | None = None,
    where: cst.CSTNode | None = None,
) -> None:
    """A call of a project function (a method, `receiver` its `self`): its effects
    on what this call passes it, said at `where` (the call itself, or the
    statement a call Python makes for it stands for: `with t:`, `box[k] = v`)."""
    at = node if where is None else where
    given = list(effects.bind(node, receiver))
    named = {param: argument for param, argument in given if param}
    # A method that says how it uses its object says it of what it is called on.
    uses_itself = any(part_of(name, RECEIVER) for name, _ in effects.state_uses)
    itself = effects.params[0] if uses_itself else None
    if effects.result_state:  # what it returns is module state's
        body.state_calls.add(id(at))
    if effects.result_pieces:  # handed out, it is read
        record(body, node, Access.READ, f"calls {shown}", at)
    # What a call changes may keep what else it is given: given module state to
    # change, it may store there any of the others.
    into_state = any(
        (param in effects.keeps) if param else effects.keeps
        for param, argument in given
        if body.is_module_state(argument)
    )
    for param, argument in given:  # what it stores into an argument, this body does
        if (param in effects.keeps) if param else effects.keeps:
            body.found.keeps |= {
                o for o in body.origins(argument) if isinstance(o, str)
            }
    for param, argument in given:
        if into_state or (param in effects.escapes if param else effects.escapes):
            body.escape(argument)
        if param is None:
            # Unbound, a literal tuple's elements are each what it passes.
            for passed in _elements_or_itself(argument):
                for _, some_change in effects.changes:
                    reason = through(shown, some_change)
                    body.change(passed, reason, at, some_change.by_iteration)
                # Keys the callee names by a parameter are this call's
                # arguments, or any key where kiln cannot tell which.
                for _, some_use in effects.memory:
                    bound = _bound_keys(body, some_use, named)
                    _memory_argument(body, passed, bound, at)
                for _, some_reads in effects.reads:
                    _typed_reads(body, passed, some_reads, given, at, shown)
            continue
        change = effects.change(param)
        if change is not None:
            reason = through(shown, change)
            by_iteration, opaque = change.by_iteration, change.opaque
            body.change(
                argument,
                reason,
                at,
                by_iteration,
                opaque=opaque,
                as_state=param != itself,
            )
        use = effects.memory_use(param)
        if use is not None:
            _memory_argument(body, argument, _bound_keys(body, use, named), at)
        reads = effects.reads_of(param)
        if reads is not None:
            _typed_reads(body, argument, reads, given, at, shown)
    beyond_parameters(body, at, effects, shown, named.get(itself or ""))


def beyond_parameters(
    body: Body,
    node: cst.CSTNode,
    effects: Effects,
    shown: str,
    receiver: cst.BaseExpression | None,
    verb: str = "calls",
) -> None:
    """What a call of a project function does beyond what it is passed: outside
    effects, a ContextVar it sets, and each piece of module state it uses, where
    the code it runs uses it (its object's, `<self>.x`, on `receiver`)."""
    if effects.external is not None:
        body.external(through(shown, effects.external, verb), node)
    if effects.context is not None:
        body.sets_context(through(shown, effects.context, verb), node)
    if effects.reads_state is not None:
        body.read_state(through(shown, effects.reads_state, verb), node)
    if effects.changes_yielded is not None and body.found.changes_yielded is None:
        body.found.changes_yielded = effects.changes_yielded
    if effects.cleans_up is not None and body.found.cleans_up is None:
        body.found.cleans_up = effects.cleans_up
    body.found.state |= effects.state
    for name, uses in effects.state_uses:
        piece = (
            on_called(body, receiver, name) if part_of(name, RECEIVER) else name
        )  # None on no module state's: the change of its argument says it
        if piece is not None:
            where = through_change(shown, uses.where)
            merge(body, piece, replace(uses, where=where))


def project_method(
    body: Body,
    node: cst.Call,
    func: cst.Attribute,
    target: Target | None,
    overrides: list[Method],
    where: cst.CSTNode | None = None,
) -> None:
    """A project method's call, `target` where kiln can tell which: its object
    may be of a subclass, so what an override in the project does (of an
    abstract method too), the call may do too."""
    methods = [] if target is None else [target]
    bound = func.value if target is None else target[2]
    methods += [
        (o.module, o.qualname, bound if o.kind == "method" else None) for o in overrides
    ]
    for module, name, self_bound in methods:
        effects = body.reader.of_function(module, name)
        project_call(body, node, effects, code(func), self_bound, where)


def _typed_reads(
    body: Body,
    argument: cst.BaseExpression,
    reads: Reads,
    given: list[tuple[str | None, cst.BaseExpression]],
    node: cst.CSTNode,
    shown: str,
) -> None:
    """The callee's reads of what `argument` is, as this body knows its type;
    `given` is each argument of the call with its parameter."""
    span = body.defs.parsed.span(node)
    if reads.items is not None:
        if inserts_on_read(body, argument):
            reason = f"{through(shown, reads.items)} of a defaultdict, storing the key"
            body.change(argument, reason, node, itself=True)
        else:
            read_items(body, argument, Change(through(shown, reads.items), span))
    if reads.as_dict is None:
        return
    passed = [a for p, a in given if p is None or p in reads.passed]
    described = value_described(body, argument)
    if described is not None:  # a dict's method, as far as this body knows
        as_dict = Change(through(shown, reads.as_dict), span)
        assume_dict(body, described.assumed, as_dict, passed)
        return
    # Not ", which ...": `through` keeps the clause after the last one.
    reason = f"{through(shown, reads.as_dict)}, a method kiln cannot see into"
    for value in (argument, *passed):
        body.change(value, reason, node)


def read_items(body: Body, container: cst.BaseExpression, change: Change) -> None:
    """An item read of what `container` may be: a change where it is a defaultdict."""
    _reads(body, body.origins(container), Reads(items=change))


def assume_dict(
    body: Body,
    params: frozenset[str],
    change: Change,
    passed: Iterable[cst.BaseExpression],
) -> None:
    """A method the tables read as a dict's, `params` unannotated; if it is
    another class's, it may change what it was `passed` too."""
    given = {o for v in passed for o in body.within(v) if isinstance(o, str)}
    _reads(body, params, Reads(as_dict=change, passed=frozenset(given)))


def _reads(body: Body, origins: set[Origin] | frozenset[str], reads: Reads) -> None:
    found = body.found.reads
    for origin in origins:
        if isinstance(origin, str) and not body.params[origin].memory:
            found[origin] = found.get(origin, Reads()) | reads


def _bound_keys(
    body: Body, use: MemoryUse, given: dict[str, cst.BaseExpression]
) -> MemoryUse:
    """Keys the callee names by its parameters, named by this call's arguments
    (`given`, by parameter). What its result holds is the result's, not this
    body's: `Body.origins` follows it where the result goes."""
    return MemoryUse(
        body.bound(use.global_reads, given),
        body.bound(use.global_writes, given),
        body.bound(use.local_reads, given),
        body.bound(use.local_writes, given),
        mutates=body.bound(use.mutates, given),
        shares=body.bound(use.shares, given),
    )


def _memory_argument(
    body: Body, argument: cst.BaseExpression, use: MemoryUse, node: cst.CSTNode
) -> None:
    token = body.token(argument)
    if token is not None:
        body.memory(token, use)
    elif isinstance(argument, cst.Call) and isinstance(argument.func, cst.Attribute):
        clone_of = body.token(argument.func.value)
        if clone_of is not None and argument.func.attr.value == "clone":
            # A clone shares the global store; its local store is new, and
            # nothing else reaches it.
            span = body.defs.parsed.span(argument)
            clone = f"{clone_of}{ANONYMOUS_CLONE}{span.line}.{span.column}"
            body.memory(clone, global_part(use))
    elif use.writes:
        # A Memory kiln cannot name (`branches[0]`, a loop's target): what
        # holds it is changed, and so ordered with every other use of it.
        body.change(argument, f"writes keys of the Memory {code(argument)}", node)


def through_change(shown: str, change: Change) -> Change:
    """`calls helper, which assigns SEEN[k]`, where the callee does it."""
    return replace(change, reason=through(shown, change, "calls"))


def through(shown: str, change: Change, verb: str = "passes it to") -> str:
    """`passes it to helper, which calls d.clear`: the callee and the innermost cause.

    Only the innermost cause is kept, so a reason through recursion stays the
    same from one round of the fixed point to the next.
    """
    cause = change.reason.rpartition(", which ")[2]
    return f"{verb} {shown}, which {cause}"


def _elements_or_itself(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    """What a literal passes (`*(memory, key)`, `**{"memory": memory}`), else the value."""
    if isinstance(value, cst.Tuple | cst.List | cst.Dict):
        return [element.value for element in value.elements]
    return [value]
