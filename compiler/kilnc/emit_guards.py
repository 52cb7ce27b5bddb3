"""The checks a flow made of its values, repeated for mypy in the functions it runs them in.

Example input::

    d = await find(i)              # str | None
    if d is None:
        return "none"
    t = await shout(d)             # in a task
    u = await other()

The task awaits `d`'s task into a name of its own, which mypy types
`str | None` again: the flow's narrowing does not reach into another
function (nor into one that reads the flow's `d` itself, when `d` is bound
again later), and `shout(d)` would not type-check. So a task, or a fan-out's
element function, starts with the checks the flow had made of the values it
reads, for the type checker only::

    async def compute_t(d_task: _kiln.Child[str | None]) -> str:
        d = await d_task
        if _kiln.TYPE_CHECKING:
            assert d is not None
        return await shout(d)

A check (`Fact`) asks the identity or the type of the flow's names, or of an
attribute or a literal item of one (`box.doc`, `state["doc"]`, `pair[0]`):
`is None`, `is not None`, `isinstance`, a `case None:` or `case str():`, or
a name's truth, which makes it not None; a name assigned a literal, or the
value of a call of a builtin type, is not None either; any other test mypy
narrows by (a `TypeGuard` function's call, `type(r) is C`, `len(t) == 2`)
is repeated as written. It holds after an
`assert`, after an `if` (a `match`) whose every arm where it fails leaves
the block (`return`, `raise`, `continue`, `break`), and in the arm its test
chose, until one of its names is bound again, or the attribute or item it
asks about is assigned: as long as mypy keeps the narrowing in the source.
Main tracks them as it runs its steps (`after`); a function repeats those
of the values it reads: the flow's names it never binds, and a task's value
it awaits when main checked that same value. The repeated checks never run
(`TYPE_CHECKING` is false): they tell mypy what it knew in the source, and
run no code of the user's a second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.emit_names import RUNTIME
from kilnc.emit_narrowing import (
    Fact,
    FlowNames,
    assigned_facts,
    called_facts,
    facts,
    stores,
)
from kilnc.emit_parts import awaited_tasks, call_target
from kilnc.ir import (
    Block,
    Branch,
    Call,
    FanOut,
    Inline,
    Match,
    Return,
    Step,
    StepId,
    WhileLoop,
)
from kilnc.names import name_uses, target_names, walrus_targets
from kilnc.plan import BlockPlan, Run, Spawn, Task, TaskId, Wait
from kilnc.source import Span
from kilnc.syntax import code, comprehension_targets

Known = tuple[Fact, ...]  # the checks that hold at a point of a coroutine, in order


@final
@dataclass(frozen=True, slots=True)
class Spawned:
    """What main knew when it spawned a task, and the step whose value each name held."""

    known: Known
    bound: Mapping[str, StepId]


def forget(known: Known, names: Iterable[str], assigned: Iterable[str] = ()) -> Known:
    """The checks that still hold once `names` are bound again and the attributes
    and items `assigned` (`box.doc`) are assigned."""
    gone = frozenset(names)
    stores = tuple(assigned)
    return tuple(
        fact
        for fact in known
        if not fact.names & gone
        and not any(
            _within(subject, store) for subject in fact.subjects for store in stores
        )
    )


def _within(subject: str, store: str) -> bool:
    """Whether assigning `store` may change `subject`: `box` or `box.inner` for
    `box.inner.val`."""
    return subject == store or subject.startswith((f"{store}.", f"{store}["))


def repeated(known: Known, readable: Iterable[str], done: set[Fact]) -> list[Fact]:
    """The checks a function repeats once it can read these names, and not in `done`
    (which gains them)."""
    names = frozenset(readable)
    found = [f for f in known if f.names <= names and f not in done]
    done.update(found)
    return found


def lines(facts: list[Fact]) -> list[tuple[Span, str]]:
    """The checks repeated for the type checker, each at its check, under one `if`
    that says so (and is false when the code runs)."""
    if not facts:
        return []
    asserts = ((f.span, f"    assert {f.test}") for f in facts)
    return [(facts[0].span, f"if {RUNTIME}.TYPE_CHECKING:"), *asserts]


def after(known: Known, step: Step, flow: FlowNames) -> Known:
    """What holds once the step has run: what it binds forgotten, what it checks added."""
    action = step.action
    if isinstance(action, Inline) and isinstance(action.statement, cst.Assert):
        return forget(known, step.writes) + facts(
            action.statement.test, True, step.span, flow
        )
    if isinstance(action, Inline):
        left = forget(known, step.writes, stores(action.statement))
        return left + assigned_facts(action.statement, step, flow)
    if isinstance(action, Call):
        return forget(known, step.writes) + called_facts(action, step, flow)
    if not isinstance(action, Branch | Match):
        return forget(known, step.writes)
    # Past an `if` (a `match`), what holds on every way through it that does not leave.
    tests, arms = _choices(action)
    ways = [
        _run(in_arm(known, step, index, flow), arm, flow)
        for index, arm in enumerate(arms)
        if not _leaves(arm)
    ]
    if tests[-1] is not None:  # no `else`: every test failed
        ways.append(in_arm(known, step, len(tests), flow))
    if not ways:
        return forget(known, step.writes)
    # The same check, made at different places on different ways: `extra is not None`
    # past `if extra is None: extra = "x"`.
    held = [{fact.test for fact in way} for way in ways[1:]]
    return tuple(fact for fact in ways[0] if all(fact.test in tests for tests in held))


def in_arm(known: Known, step: Step, index: int, flow: FlowNames) -> Known:
    """What holds in arm `index` of a branch or case of a match (past the last: when
    none was taken)."""
    action = step.action
    assert isinstance(action, Branch | Match)
    tests = _choices(action)[0][: index + 1]
    # A `:=` in a test binds before the arm, a pattern's capture anywhere in a match.
    bound = set().union(*(walrus_targets(t) for t in tests if t))
    found = forget(known, step.writes if isinstance(action, Match) else bound)
    for number, test in enumerate(tests):
        if test is not None:
            found += facts(test, number == index, step.span, flow)
    return found


def in_loop(known: Known, step: Step) -> Known:
    """What holds in a block of a loop: nothing of what the loop binds, which an
    earlier iteration may have bound again."""
    return forget(known, step.writes)


def in_while_body(known: Known, step: Step, flow: FlowNames) -> Known:
    """What holds in a `while` loop's body: its test too, just passed."""
    assert isinstance(step.action, WhileLoop)
    return in_loop(known, step) + facts(step.action.test, True, step.span, flow)


def at_spawns(
    plan: BlockPlan, known: Known, bound: Mapping[str, StepId], flow: FlowNames
) -> dict[TaskId, Spawned]:
    """What main knows where it spawns each task of the block, as main runs its ops."""
    names = dict(bound)
    found = {}
    for op in plan.ops:
        if isinstance(op, Spawn):
            found[op.task] = Spawned(known, dict(names))
        elif isinstance(op, Run):
            known = after(known, op.step, flow)
            names.update(dict.fromkeys(op.step.writes, op.step.id))
        elif isinstance(op, Wait):
            result = plan.tasks[op.task].result
            target = call_target(result)
            # As `wait` binds: not a name a later step bound already.
            taken = {
                name
                for name in (target_names(target) if target is not None else ())
                if names.get(name, result.id) <= result.id
            }
            known = forget(known, taken)
            names.update(dict.fromkeys(taken, result.id))
    return found


def _choices(
    action: Branch | Match,
) -> tuple[tuple[cst.BaseExpression | None, ...], tuple[Block, ...]]:
    """A branch's tests and arms; a match's cases as the tests they make of its
    subject, a case that always matches as `else`."""
    if isinstance(action, Branch):
        return action.tests, action.arms
    tests: list[cst.BaseExpression | None] = []
    for case in action.cases:
        test = _pattern_test(action.subject, case.pattern)
        if case.guard is not None:
            test = (
                case.guard
                if test is None
                else cst.BooleanOperation(test, cst.And(), case.guard)
            )
        tests.append(test)
    return tuple(tests), tuple(case.body for case in action.cases)


def _pattern_test(
    subject: cst.BaseExpression, pattern: cst.MatchPattern
) -> cst.BaseExpression | None:
    """The test a pattern makes of the subject, as far as it asks identity or type
    (`case None:`, `case str():`); None if it always matches, `...` if it asks more."""
    if isinstance(pattern, cst.MatchAs):
        return (
            None if pattern.pattern is None else _pattern_test(subject, pattern.pattern)
        )
    if isinstance(pattern, cst.MatchOr):
        found: cst.BaseExpression | None = None
        for element in pattern.patterns:
            test = _pattern_test(subject, element.pattern)
            if test is None:
                return None
            found = (
                test if found is None else cst.BooleanOperation(found, cst.Or(), test)
            )
        return found
    if isinstance(pattern, cst.MatchSingleton) and code(pattern.value) == "None":
        return cst.Comparison(
            subject, [cst.ComparisonTarget(cst.Is(), cst.Name("None"))]
        )
    if isinstance(pattern, cst.MatchClass):
        checked = cst.Call(
            cst.Name("isinstance"), [cst.Arg(subject), cst.Arg(pattern.cls)]
        )
        if pattern.patterns or pattern.kwds:  # failed, it may be an instance still
            return cst.BooleanOperation(checked, cst.And(), cst.Ellipsis())
        return checked
    return cst.Ellipsis()


def _run(known: Known, block: Block, flow: FlowNames) -> Known:
    for step in block.steps:
        known = after(known, step, flow)
    return known


def _leaves(block: Block) -> bool:
    """Whether every way through the block leaves it: by return, raise, continue, break."""
    if not block.steps:
        return False
    action = block.steps[-1].action
    if isinstance(action, Return):
        return True
    if isinstance(action, Inline):
        return isinstance(action.statement, cst.Raise | cst.Continue | cst.Break)
    if isinstance(action, Branch | Match):
        tests, arms = _choices(action)
        return tests[-1] is None and all(_leaves(arm) for arm in arms)
    return False


def task_reads(task: Task, plan: BlockPlan) -> set[str]:
    """The names a task's coroutine reads from the flow's: those it never binds itself
    (main binds its result's target, from the value the coroutine returns)."""
    result = task.result
    own = set().union(*(s.writes for s in task.steps if s is not result))
    own |= result.writes - _target_names(result)
    for awaited in awaited_tasks(task):
        own |= _target_names(plan.tasks[awaited].result)
    return set().union(*(step.reads for step in task.steps)) - own


def _target_names(step: Step) -> set[str]:
    target = call_target(step)
    return target_names(target) if target is not None else set()


def element_reads(action: FanOut) -> set[str]:
    """The names a fan-out's element function reads from the code around it."""
    steps = action.element.steps
    own = set().union(
        *(target_names(target) for target in comprehension_targets(action.clauses)),
        *(step.writes for step in steps),
    )
    reads = name_uses(action.result.call).read_names.union(*(s.reads for s in steps))
    return set(reads - own)
