"""Rule 5, settled values: a task reads from main what main has already awaited.

Example: in ::

    d = await find(i)           s0, a task
    if d is None:               s1, main awaits s0 to test it
        return "none"
    t = await shout(d)          s2, a task spawned after the test

the task of s2 need not await the task of s0: main has it, as `d`, before it
spawns s2. Without the wait s2's task is the call alone (`scope.spawn(shout(d))`,
reading `d` as main checked it), and s0's task, which main now awaits as soon
as it spawns it, runs in place. The task reads main's name only while it still
holds the awaited value: not once main has bound it again, and not where the
task binds it itself (Python would make the name the task's own).
"""

from __future__ import annotations

from dataclasses import replace

from kilnc.ir import Call, FanOut, Step
from kilnc.names import target_names
from kilnc.plan import BlockPlan, Run, Spawn, Task, TaskId, Wait

__all__ = ["read_settled"]


def read_settled(plan: BlockPlan) -> BlockPlan:
    """The plan with each task's waits for tasks main awaited before spawning it dropped."""
    tasks = dict(plan.tasks)
    bound_since: dict[TaskId, set[str]] = {}  # by awaited task, what main bound after
    for op in plan.ops:
        if isinstance(op, Spawn):
            tasks[op.task] = _settled(tasks[op.task], bound_since)
            continue
        bound = (
            _bound_by(tasks[op.task].result)
            if isinstance(op, Wait)
            else op.step.writes if isinstance(op, Run) else frozenset()
        )
        for names in bound_since.values():
            names.update(bound)
        if isinstance(op, Wait):
            bound_since[op.task] = set()
    return BlockPlan(tasks, plan.ops)


def _settled(task: Task, bound_since: dict[TaskId, set[str]]) -> Task:
    own = frozenset().union(*(step.writes for step in task.steps[:-1]))
    settled = {
        wait.task
        for waits in task.waits.values()
        for wait in waits
        if wait.task in bound_since
        and not task.takes.get(wait.task, frozenset()) & (bound_since[wait.task] | own)
    }
    if not settled:
        return task
    return replace(
        task,
        waits={
            step: tuple(wait for wait in waits if wait.task not in settled)
            for step, waits in task.waits.items()
        },
        takes={t: names for t, names in task.takes.items() if t not in settled},
    )


def _bound_by(result: Step) -> frozenset[str]:
    """What main binds as it awaits the task whose last step is `result`."""
    action = result.action
    if isinstance(action, Call | FanOut) and action.target is not None:
        return frozenset(target_names(action.target))
    return frozenset()
