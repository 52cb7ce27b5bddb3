"""The checks a flow made of a value before a task awaits it again, repeated for mypy.

Example input: `y = await maybe(x)` (an `int | None`), `assert y is not None`,
then `a = await need(y)` in a task. The task awaits `y`'s task into a name of
its own, which mypy types `int | None` again: the flow's narrowing does not
reach into another function, and `need(y)` would not type-check. So the task
repeats the checks that narrow a name it binds by identity or type: `assert
y is not None`, `if y is None: raise ...`, `isinstance(y, T)`. Each gives
what it gave in the flow, which ran it before it started the task: neither an
object's identity nor its type can change. Checks of anything else (`assert
len(y) > 0`) are not repeated: the value may have changed between the two.
"""

from __future__ import annotations

import libcst as cst

from kilnc.ir import Branch, Inline, Step, StepId
from kilnc.names import identifier
from kilnc.plan import BlockPlan, Run, Spawn, TaskId
from kilnc.source import Span
from kilnc.syntax import code

REPEATED = "# the flow's check, repeated: it narrows the type here too"


def repeated_checks(
    plan: BlockPlan, task: TaskId, names: set[str], after: StepId, done: set[StepId]
) -> list[tuple[Span, list[str]]]:
    """Where each check narrowing `names` is, and its lines: those the block ran after
    step `after` and before it spawned `task`, in order, and not in `done` (which
    gains them)."""
    found = []
    for op in plan.ops:
        if isinstance(op, Spawn) and op.task == task:
            break
        if isinstance(op, Run) and op.step.id > after and op.step.id not in done:
            lines = guard_lines(op.step, names)
            if lines is not None:
                done.add(op.step.id)
                found.append((op.step.span, [REPEATED, *lines]))
    return found


def guard_lines(step: Step, names: set[str]) -> list[str] | None:
    """The step as a check a task repeats: its lines; None if it is no such check."""
    action = step.action
    if isinstance(action, Inline) and isinstance(action.statement, cst.Assert):
        test = action.statement.test
        return [f"assert {code(test)}"] if _narrows(test, names) else None
    if (
        isinstance(action, Branch)
        and len(action.tests) == 1
        and action.tests[0] is not None
        and _narrows(action.tests[0], names)
    ):
        arm = action.arms[0].steps
        raises = [
            s.action.statement
            for s in arm
            if isinstance(s.action, Inline)
            and isinstance(s.action.statement, cst.Raise)
        ]
        if raises and len(raises) == len(arm):
            return [f"if {code(action.tests[0])}:", *(f"    {code(r)}" for r in raises)]
    return None


def _narrows(test: cst.BaseExpression, names: set[str]) -> bool:
    """Whether the test only asks the identity or the type of `names`' values."""
    if isinstance(test, cst.BooleanOperation):
        return _narrows(test.left, names) and _narrows(test.right, names)
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _narrows(test.expression, names)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        compared = test.comparisons[0]
        return (
            _named(test.left, names)
            and isinstance(compared.operator, cst.Is | cst.IsNot)
            and isinstance(compared.comparator, cst.Name)
            and compared.comparator.value == "None"
        )
    return (
        isinstance(test, cst.Call)
        and isinstance(test.func, cst.Name)
        and test.func.value == "isinstance"
        and len(test.args) == 2
        and _named(test.args[0].value, names)
    )


def _named(node: cst.BaseExpression, names: set[str]) -> bool:
    return isinstance(node, cst.Name) and identifier(node.value) in names
