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

A task whose first step waits for tasks main is about to await is spawned
after main has them, the same: in ::

    documents = [await read(n) for n in names]     s0, a task
    corpus = await overview(documents)             s1, a task waiting for s0
    split = [parts(d) for d in documents]          s2, main awaits s0 first

s1 could not start before s0 ends, and main, which awaits s0 next, resumes
when it does; spawned there, s1 starts as soon, and reads `documents` from
main. Only past what does not suspend main (spawning other tasks, or code
that runs through), so nothing s1 could have overlapped comes first, and
only past steps before s1's own: spawned after a later step, s1's failure
could no longer win over that step's, as the source's does.
"""

from __future__ import annotations

from dataclasses import replace

from kilnc.plan import BlockPlan, Op, Run, Spawn, Task, TaskId, Wait
from kilnc.schedule.order import suspends

__all__ = ["read_settled"]


def read_settled(plan: BlockPlan) -> BlockPlan:
    """The plan with each task's waits for tasks main awaited before spawning it dropped."""
    return _drop_settled_waits(BlockPlan(plan.tasks, _deferred_spawns(plan)))


def _deferred_spawns(plan: BlockPlan) -> tuple[Op, ...]:
    """Main's ops with each spawn moved after main's awaits of what the task needs first."""
    ops = list(plan.ops)
    moved = True
    while moved:
        moved = False
        awaited: set[TaskId] = set()
        for index, op in enumerate(ops):
            if isinstance(op, Wait):
                awaited.add(op.task)
            if not isinstance(op, Spawn):
                continue
            task = plan.tasks[op.task]
            first = {wait.task for wait in task.waits[task.steps[0].id]} - awaited
            end = _awaited_next(ops, index, first, plan) if first else None
            if end is not None:
                ops = [*ops[:index], *ops[index + 1 : end + 1], op, *ops[end + 1 :]]
                moved = True
                break
    return tuple(ops)


def _awaited_next(
    ops: list[Op], spawn: int, needed: set[TaskId], plan: BlockPlan
) -> int | None:
    """Where main has awaited every task of `needed`, if nothing between suspends main,
    no task spawned between waits for the one spawned at `spawn`, and main runs no
    step between that comes after the task's first in the source: spawned after
    it, the task's earlier steps would not hold that step's failure back."""
    spawned = ops[spawn]
    assert isinstance(spawned, Spawn)
    first = plan.tasks[spawned.task].steps[0].id
    left = set(needed)
    for index in range(spawn + 1, len(ops)):
        op = ops[index]
        if isinstance(op, Wait) and op.task in left:
            left.discard(op.task)
            if not left:
                return index
        elif isinstance(op, Spawn):
            waits = plan.tasks[op.task].waits.values()
            if any(wait.task == spawned.task for ws in waits for wait in ws):
                return None  # it takes the task's handle, which must exist
        elif not isinstance(op, Run) or suspends(op.step) or op.step.id > first:
            return None
    return None


def _drop_settled_waits(plan: BlockPlan) -> BlockPlan:
    tasks = dict(plan.tasks)
    bound_since: dict[TaskId, set[str]] = {}  # by awaited task, what main bound after
    for op in plan.ops:
        if isinstance(op, Spawn):
            tasks[op.task] = _settled(tasks[op.task], bound_since)
            continue
        # A wait binds the task's target in main: its result step's writes.
        bound = (
            tasks[op.task].result.writes
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
