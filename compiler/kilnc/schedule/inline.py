"""Rule 6, inlining: a task spawned and then awaited with nothing between runs in place.

So a straight chain compiles to plain sequential code. A task is not run in
place ahead of an earlier step of main; main left with no task runs its
steps in source order (no scope would hold back the failure of a step it
ran early).
"""

from __future__ import annotations

from kilnc.plan import BlockPlan, Op, Run, Spawn, Task, Wait
from kilnc.schedule.order import suspends


def run_in_place(plan: BlockPlan) -> BlockPlan:
    """Run a task in place when main would only wait between its spawn and its await."""
    tasks = dict(plan.tasks)
    ops = list(plan.ops)
    changed = True
    while changed:
        changed = False
        for index, op in enumerate(ops):
            if not isinstance(op, Spawn):
                continue
            following = ops[index + 1 :]
            if not _nothing_overlaps(following, Wait(op.task)):
                continue
            if _runs_earlier_steps(following, Wait(op.task), tasks[op.task]):
                continue  # in place, the task would run ahead of them
            if any(
                Wait(op.task) in ws for t in tasks.values() for ws in t.waits.values()
            ):
                continue  # another task reads its result through it
            task = tasks.pop(op.task)
            awaited_before = {o.task for o in ops[:index] if isinstance(o, Wait)}
            body: list[Op] = []
            for step in task.steps:
                for wait in task.waits[step.id]:
                    if wait.task not in awaited_before:
                        body.append(wait)
                        awaited_before.add(wait.task)
                body.append(Run(step))
            rest = [o for o in following if o != Wait(op.task) and o not in body]
            ops = ops[:index] + body + rest
            changed = True
            break
    if not tasks:
        # Main alone, with no scope to hold back the failure of a step it ran
        # ahead of an earlier one to start a task sooner: the source's order.
        ops.sort(key=lambda op: op.step.id if isinstance(op, Run) else -1)
    return BlockPlan(tasks, tuple(ops))


def _nothing_overlaps(following: list[Op], wait: Wait) -> bool:
    """Whether main reaches `wait` without starting anything or suspending on its own."""
    for later in following:
        if later == wait:
            return True
        if isinstance(later, Spawn) or (
            isinstance(later, Run) and suspends(later.step)
        ):
            return False
    return False


def _runs_earlier_steps(following: list[Op], wait: Wait, task: Task) -> bool:
    """Whether main runs a step before the task's last one between its spawn and `wait`.

    Run in place, the task would go first, out of source order: a failure of
    that earlier step would never be raised, though the source raises it.
    """
    last = task.steps[-1].id
    for later in following:
        if later == wait:
            return False
        if isinstance(later, Run) and later.step.id < last:
            return True
    return False
