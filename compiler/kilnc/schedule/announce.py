"""Rule 7, steps: each coroutine tells the block's scope which step it is at.

A task starts at its first step's index in the block; main and the tasks
announce a step when another coroutine's step lies between it and the one
they announced last (`at 3` in `--dump plan`), and a step main runs ahead of
earlier ones has its failure held (`held at 5`) until main moves past it, so
the scope raises the failure the source would have raised.
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from kilnc.ir import Block, Call, FanOut, Inline, Step, StepId
from kilnc.plan import At, BlockPlan, Op, Run, Spawn, Task, TaskId, Wait


def announce_steps(block: Block, plan: BlockPlan) -> BlockPlan:
    """Number where each coroutine is, for the block's scope to weigh failures by.

    A coroutine's last told step stands for the one it runs as long as no step
    of another coroutine lies between the two: only then does it tell again.
    Main starts after every step (the scope's default), the block's end.
    """
    index = {step.id: i for i, step in enumerate(block.steps)}
    tasks = {t: _announced(task, index) for t, task in plan.tasks.items()}
    if not tasks:
        return plan
    end = len(block.steps)
    ops: list[Op] = []
    live: dict[TaskId, set[int]] = {}  # spawned, not yet awaited by main
    held: set[int] = set()  # steps main ran ahead, whose failure the scope holds
    told = end

    def moves_to(step: int) -> None:
        nonlocal told, held
        low, high = sorted((told, step))
        if any(low < i < high for steps in [*live.values(), held] for i in steps):
            ops.append(At(step))
            told = step
            held = {i for i in held if i > step}  # past it, the scope raised it

    earliest_from = _earliest_runs(plan.ops, index, end)
    for position, op in enumerate(plan.ops):
        if isinstance(op, Spawn):
            counted = _first_counted(tasks[op.task], index)
            if counted is not None:  # main counts the task's visits as it spawns it
                moves_to(counted)
            live[op.task] = {index[step.id] for step in tasks[op.task].steps}
        elif isinstance(op, Wait):
            moves_to(earliest_from[position])
            live.pop(op.task, None)
        elif isinstance(op, Run) and not _inert(op.step):
            at = index[op.step.id]
            earliest = earliest_from[position]
            if earliest < at:  # ahead of an earlier step of main
                held.add(at)  # first: main must tell the scope it is not there yet
                moves_to(earliest)
                ops.append(replace(op, ahead=at))
                continue
            moves_to(at)
        ops.append(op)
    return BlockPlan(tasks, tuple(ops))


def _inert(step: Step) -> bool:
    """Whether a step can neither raise nor suspend (``out: list[str] = []``): where
    main is while it runs does not matter."""
    action = step.action
    if not isinstance(action, Inline):
        return False
    statement = action.statement
    if isinstance(statement, cst.Assign):
        targets = [target.target for target in statement.targets]
    elif isinstance(statement, cst.AnnAssign):
        targets = [statement.target]
    else:
        return False
    value = statement.value
    return (
        value is not None
        and all(isinstance(target, cst.Name) for target in targets)
        and _literal(value)
    )


def _literal(value: cst.BaseExpression) -> bool:
    if isinstance(value, cst.Integer | cst.Float | cst.Imaginary | cst.SimpleString):
        return True
    if isinstance(value, cst.Name):
        return value.value in ("None", "True", "False")
    if isinstance(value, cst.List | cst.Tuple | cst.Set | cst.Dict):
        return not value.elements
    return False


def _announced(task: Task, index: dict[StepId, int]) -> Task:
    own = {step.id for step in task.steps}
    others = [i for step_id, i in index.items() if step_id not in own]
    told = index[task.steps[0].id]
    announces: dict[StepId, int] = {}
    for step in task.steps[1:]:
        if any(told < i < index[step.id] for i in others):
            told = announces[step.id] = index[step.id]
    return replace(task, step=index[task.steps[0].id], announces=announces)


def _earliest_runs(
    ops: tuple[Op, ...], index: dict[StepId, int], end: int
) -> list[int]:
    """Where main is at each op: the earliest step it has yet to run from there on,
    else the block's end."""
    earliest = [end] * len(ops)
    lowest = end
    for position in reversed(range(len(ops))):
        op = ops[position]
        if isinstance(op, Run):
            lowest = min(lowest, index[op.step.id])
        earliest[position] = lowest
    return earliest


def _first_counted(task: Task, index: dict[StepId, int]) -> int | None:
    """The first step of `task` whose call counts visits (inside a `while` loop)."""
    for step in task.steps:
        action = step.action
        call = action.call if isinstance(action, Call) else None
        if isinstance(action, FanOut):
            call = action.result
        if call is not None and call.visits is not None:
            return index[step.id]
    return None
