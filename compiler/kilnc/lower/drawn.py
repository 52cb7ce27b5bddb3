"""What drawing from a generator one of a flow's names holds does, where it is drawn.

Example input::

    @node
    def read_lines(n: int) -> Iterator[str]:
        for i in range(n):
            AUDIT.append(f"read{i}")   # runs as the generator is drawn from
            yield f"l{i}"

    c = consume(read_lines(n))         # consume draws every line: AUDIT grows here
    k = audit_size("x")                # reads AUDIT

Output: the step of `consume`, which reads the generator, adds to `AUDIT` as
`read_lines`'s body does, so `audit_size` waits for it. A generator's body
runs where it is drawn from, not where it is made: a stream node's call (or
a node's that returns an iterator, `-> Iterator[str]`) makes one and runs
none of it, so each step that reads its value uses module state as its body
does. The call's own step keeps those uses too: a node returning an iterator
may use module state before it returns.

The same for `it = chunks(rows, 3)` of a generator that changes what it has
yielded (the batching idiom that clears one buffer): a fan-out over `it`
runs its elements one after another (`fan_out.py`), as over `chunks(...)`.

Flow-insensitive, as links are (`sharing.py`): a name once bound to such a
generator keeps it, and so does a name a statement of the flow binds from
one (`g = (b for b in it)`, `pairs = zip(it, xs)`) or a generator node given
one (`wrap(it)`), which hands on its items.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Final, Protocol, final

import libcst as cst

from kilnc.effect_ir import Change, Effects, StateUses, join_state
from kilnc.final_bindings import final_binding
from kilnc.front import ModuleDefs
from kilnc.ir import Call, Callee, NodeDef, NodeKind, Step
from kilnc.lower.scope import TypeNames
from kilnc.mutability import names_in, type_name
from kilnc.syntax import yields

# The return annotations of a node whose result may be a generator.
_LAZY: Final = names_in(
    "typing typing_extensions collections.abc",
    "Iterator Iterable Generator AsyncIterator AsyncIterable AsyncGenerator",
)


@final
@dataclass(slots=True)
class Drawn:
    """The flow's names that hold a generator, and what drawing from it does."""

    # Each name's generator's body's uses of module state, where it is drawn.
    state: dict[str, StateUses] = field(default_factory=dict)
    # Each name's generator's first change of what it has yielded.
    yielded: dict[str, Change] = field(default_factory=dict)

    def drawing(self, step: Step) -> Step:
        """The step, using module state as the generators it reads do when drawn."""
        drawn = [self.state[name] for name in sorted(step.reads & self.state.keys())]
        if not drawn:
            return step
        return replace(step, state=join_state(step.state, *drawn))

    def bound(self, step: Step, effects: Effects, lazy: bool, state: StateUses) -> None:
        """What the step binds holds a generator: made by a lazy call (`lazy`,
        whose body uses `state` as it is drawn), bound from a name that holds
        one by a statement of the flow or a lazy call, or one that changes what
        it yielded (`effects.changes_yielded`)."""
        passes = lazy or not isinstance(step.action, Call)
        given = sorted(step.reads) if passes else []
        yielded = effects.changes_yielded or next(
            (self.yielded[name] for name in given if name in self.yielded), None
        )
        uses = join_state(
            state if lazy else (), *(self.state[n] for n in given if n in self.state)
        )
        for name in step.writes:
            if yielded is not None:
                self.yielded.setdefault(name, yielded)
            if uses:
                self.state[name] = join_state(self.state.get(name, ()), uses)

    @staticmethod
    def as_drawn(uses: StateUses, source: str | None = None) -> StateUses:
        """The uses, said of a step that draws from the generator: "draws from
        read_lines, which calls AUDIT.append" (`source`, the callee), or of a
        statement's "calls plain_lines, which ..."."""
        said = []
        for name, use in uses:
            reason = use.where.reason
            if source is not None:
                reason = f"draws from {source}, which {reason}"
            elif reason.startswith("calls "):
                reason = "draws from " + reason.removeprefix("calls ")
            said.append((name, replace(use, where=replace(use.where, reason=reason))))
        return tuple(said)

    def changes_yielded(self, names: frozenset[str]) -> Change | None:
        """The first change of what it yielded of a generator one of `names` holds."""
        return next((self.yielded[n] for n in sorted(names) if n in self.yielded), None)


class Definitions(TypeNames, Protocol):
    """Where the project defines what a flow's statement calls (the effects reader)."""

    def module_defs(self, module: str) -> ModuleDefs | None: ...

    def resolve(self, defs: ModuleDefs, func: cst.BaseExpression) -> str | None: ...

    def project_function(self, qualified: str) -> tuple[str, str] | None: ...

    def returns(self, module: str, name: str) -> tuple[ModuleDefs, str] | None: ...


def lazy_value(statement: cst.CSTNode, module: str, found: Definitions) -> bool:
    """Whether a statement of the flow binds a generator whose code runs when
    drawn from: a generator expression (`g = (tidy(x) for x in xs)`), or a
    call of a project function that yields or is annotated to return an
    iterator (`lines = plain_lines(n)`, a nested call's lifted value too)."""
    value = (
        statement.value if isinstance(statement, cst.Assign | cst.AnnAssign) else None
    )
    if isinstance(value, cst.GeneratorExp):
        return True
    defs = found.module_defs(module)
    if not isinstance(value, cst.Call) or defs is None:
        return False
    qualified = found.resolve(defs, value.func)
    where = found.project_function(qualified) if qualified is not None else None
    if where is None:
        return False
    owner = found.module_defs(where[0])
    function = final_binding(owner.parsed, where[1]) if owner is not None else None
    if isinstance(function, cst.FunctionDef) and yields(function.body):
        return True
    returned = found.returns(*where)
    if returned is None:
        return False
    qualify = partial(found.library_name, returned[0].location.name)
    return type_name(returned[1], qualify) in _LAZY


def lazy(callee: Callee, type_names: TypeNames) -> bool:
    """Whether a call's value may be a generator whose body runs when drawn from:
    a stream node's, or a node's annotated to return an iterator."""
    if not isinstance(callee, NodeDef):
        return False  # a subflow's stream keeps its statements' place (steps.py)
    if callee.kind in (NodeKind.STREAM, NodeKind.ASYNC_STREAM):
        return True
    returns = callee.returns
    qualify = partial(type_names.library_name, callee.module)  # as its module names
    return returns is not None and type_name(returns, qualify) in _LAZY
