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
reads, as asserts::

    async def compute_t(d_task: _kiln.Child[str | None]) -> str:
        d = await d_task
        # the flow's check, repeated: it narrows the type here too
        assert d is not None
        return await shout(d)

A check (`Fact`) asks only the identity or the type of the flow's names: `is
None`, `is not None`, `isinstance`, a `case None:` or `case str():`, or a
name's truth, which makes it not None. It holds after an `assert`, after an
`if` (a `match`) whose every arm where it fails leaves the block (`return`,
`raise`, `continue`, `break`), and in the arm its test chose, until one of
its names is bound again. Main tracks them as it runs its steps (`after`);
a function repeats those of the values it reads: the flow's names it never
binds, and a task's value it awaits when main checked that same value.
Neither an object's identity nor its type can change, and the flow made the
check before it started the function, so each assert holds where it is
repeated. Checks of anything else (`len(y) > 0`) are not repeated: the
value may have changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.emit_parts import awaited_tasks, call_target
from kilnc.ir import (
    Block,
    Branch,
    FanOut,
    Inline,
    Match,
    Return,
    Step,
    StepId,
    WhileLoop,
)
from kilnc.names import identifier, name_uses, target_names, walrus_targets
from kilnc.plan import BlockPlan, Run, Spawn, Task, TaskId, Wait
from kilnc.source import Span
from kilnc.syntax import code, comprehension_targets

REPEATED = "# the flow's check, repeated: it narrows the type here too"
REPEATED_MANY = "# the flow's checks, repeated: they narrow the types here too"


@final
@dataclass(frozen=True, slots=True)
class Fact:
    """A check of the flow's values, as an assert's test: `d is not None`."""

    test: str
    names: frozenset[str]  # the flow's names it reads
    span: Span  # the check's, where a type error in the assert is reported


Known = tuple[Fact, ...]  # the checks that hold at a point of a coroutine, in order


@final
@dataclass(frozen=True, slots=True)
class Spawned:
    """What main knew when it spawned a task, and the step whose value each name held."""

    known: Known
    bound: Mapping[str, StepId]


def forget(known: Known, names: Iterable[str]) -> Known:
    """The checks that still hold once `names` are bound again."""
    gone = frozenset(names)
    return tuple(fact for fact in known if not fact.names & gone)


def repeated(known: Known, readable: Iterable[str], done: set[Fact]) -> list[Fact]:
    """The checks a function repeats once it can read these names, and not in `done`
    (which gains them)."""
    names = frozenset(readable)
    found = [f for f in known if f.names <= names and f not in done]
    done.update(found)
    return found


def lines(facts: list[Fact]) -> list[tuple[Span, str]]:
    """The asserts that repeat the checks, each at its check, under one comment."""
    if not facts:
        return []
    comment = REPEATED if len(facts) == 1 else REPEATED_MANY
    return [(facts[0].span, comment), *((f.span, f"assert {f.test}") for f in facts)]


def after(known: Known, step: Step, flow: frozenset[str]) -> Known:
    """What holds once the step has run: what it binds forgotten, what it checks added."""
    action = step.action
    if isinstance(action, Inline) and isinstance(action.statement, cst.Assert):
        return forget(known, step.writes) + _facts(
            action.statement.test, True, step.span, flow
        )
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
    return tuple(fact for fact in ways[0] if all(fact in way for way in ways[1:]))


def in_arm(known: Known, step: Step, index: int, flow: frozenset[str]) -> Known:
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
            found += _facts(test, number == index, step.span, flow)
    return found


def in_loop(known: Known, step: Step) -> Known:
    """What holds in a block of a loop: nothing of what the loop binds, which an
    earlier iteration may have bound again."""
    return forget(known, step.writes)


def in_while_body(known: Known, step: Step, flow: frozenset[str]) -> Known:
    """What holds in a `while` loop's body: its test too, just passed."""
    assert isinstance(step.action, WhileLoop)
    return in_loop(known, step) + _facts(step.action.test, True, step.span, flow)


def at_spawns(
    plan: BlockPlan, known: Known, bound: Mapping[str, StepId], flow: frozenset[str]
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


def _run(known: Known, block: Block, flow: frozenset[str]) -> Known:
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


def _facts(
    test: cst.BaseExpression, holds: bool, span: Span, flow: frozenset[str]
) -> Known:
    """The checks that hold when `test` is `holds`: one per part of a conjunction."""
    if isinstance(test, cst.BooleanOperation) and (
        isinstance(test.operator, cst.And) == holds
    ):
        return _facts(test.left, holds, span, flow) + _facts(
            test.right, holds, span, flow
        )
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _facts(test.expression, not holds, span, flow)
    subject = _subject(test, flow)
    if subject is not None:  # a true value is not None; a false one may be anything
        names = frozenset({identifier(subject)})
        return (Fact(f"{subject} is not None", names, span),) if holds else ()
    rendered = _rendered(test, holds, flow)
    return () if rendered is None else (Fact(rendered.text, rendered.names, span),)


@final
@dataclass(frozen=True, slots=True)
class _Rendered:
    text: str
    names: frozenset[str]  # the flow's names it reads
    operator: str | None = None  # its outermost `and` or `or`


def _rendered(
    test: cst.BaseExpression, holds: bool, flow: frozenset[str]
) -> _Rendered | None:
    """`test` (or its negation) as an assert's test; None if it asks anything but
    the identity or the type of the flow's names."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _rendered(test.expression, not holds, flow)
    if isinstance(test, cst.BooleanOperation):
        # Negated, `a and b` is `not a or not b`: the operator turns.
        operator = "and" if isinstance(test.operator, cst.And) == holds else "or"
        sides = [_rendered(side, holds, flow) for side in (test.left, test.right)]
        if None in sides:
            return None
        texts = [
            f"({side.text})" if side.operator not in (None, operator) else side.text
            for side in sides
            if side is not None
        ]
        names = frozenset().union(*(side.names for side in sides if side is not None))
        return _Rendered(f"{texts[0]} {operator} {texts[1]}", names, operator)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        compared = test.comparisons[0]
        subject = _subject(test.left, flow)
        if (
            subject is None
            or not isinstance(compared.operator, cst.Is | cst.IsNot)
            or not isinstance(compared.comparator, cst.Name)
            or compared.comparator.value != "None"
        ):
            return None
        positive = isinstance(compared.operator, cst.Is) == holds
        text = f"{subject} is {'' if positive else 'not '}None"
        return _Rendered(text, frozenset({identifier(subject)}))
    if (
        isinstance(test, cst.Call)
        and isinstance(test.func, cst.Name)
        and test.func.value == "isinstance"
        and len(test.args) == 2
        and all(arg.keyword is None and not arg.star for arg in test.args)
        and _plain_class(test.args[1].value)
    ):
        subject = _subject(test.args[0].value, flow)
        if subject is None:
            return None
        classes = test.args[1].value
        checked = f"isinstance({subject}, {code(classes)})"
        read = frozenset({identifier(subject)}) | (name_uses(classes).read_names & flow)
        return _Rendered(checked if holds else f"not {checked}", read)
    return None


def _subject(node: cst.BaseExpression, flow: frozenset[str]) -> str | None:
    """The flow's name a test asks about: `d`, or `d` of `(d := value)`."""
    if isinstance(node, cst.NamedExpr):
        node = node.target
    if isinstance(node, cst.Name) and identifier(node.value) in flow:
        return node.value
    return None


def _plain_class(node: cst.BaseExpression) -> bool:
    """A class or classes named without running code: `str`, `m.Row`, `(int, str)`,
    `int | None`; repeated, it computes nothing of the user's."""
    if isinstance(node, cst.Name):
        return True
    if isinstance(node, cst.Attribute):
        return _plain_class(node.value)
    if isinstance(node, cst.Tuple):
        return all(_plain_class(element.value) for element in node.elements)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        return _plain_class(node.left) and _plain_class(node.right)
    return False


def task_reads(task: Task, plan: BlockPlan) -> set[str]:
    """The names a task's coroutine reads from the flow's: those it never binds itself."""
    own = set().union(*(step.writes for step in task.steps))
    for awaited in awaited_tasks(task):
        target = call_target(plan.tasks[awaited].result)
        own |= target_names(target) if target is not None else set()
    return set().union(*(step.reads for step in task.steps)) - own


def element_reads(action: FanOut) -> set[str]:
    """The names a fan-out's element function reads from the code around it."""
    steps = action.element.steps
    own = set().union(
        *(target_names(target) for target in comprehension_targets(action.clauses)),
        *(step.writes for step in steps),
    )
    reads = name_uses(action.result.call).read_names.union(*(s.reads for s in steps))
    return set(reads - own)
