"""Rule 4, order: the main coroutine's steps in source order, starting work sooner.

A step that needs no waiting goes before an earlier one that does when it
starts work sooner (it suspends, or a task needs it); main spawns each task
the moment its inputs exist and awaits it where its value is first read.
"""

from __future__ import annotations

import libcst as cst
import networkx as nx

from kilnc.graph import step_of
from kilnc.ir import (
    Block,
    Branch,
    Inline,
    Loop,
    Match,
    Return,
    Step,
    StepId,
    WhileLoop,
    child_blocks,
)
from kilnc.plan import Op, Run, Spawn, Task, TaskId, Wait
from kilnc.syntax import awaits


def order_main(
    block: Block,
    graph: nx.DiGraph,
    tasks: dict[TaskId, Task],
    task_of: dict[StepId, TaskId],
) -> tuple[Op, ...]:
    main = [step for step in block.steps if step.id not in task_of]
    done: set[StepId] = set()
    spawned: set[TaskId] = set()
    awaited: set[TaskId] = set()
    ops: list[Op] = []

    def needs(step_ids: list[StepId]) -> tuple[set[StepId], set[TaskId]]:
        main_preds: set[StepId] = set()
        task_preds: set[TaskId] = set()
        for step_id in step_ids:
            for pred in graph.predecessors(step_id):
                if pred in task_of:
                    task_preds.add(task_of[pred])
                else:
                    main_preds.add(pred)
        return main_preds, task_preds

    def spawn_ready() -> None:
        # A task may wait for a task numbered after it (chains are numbered by
        # their first step, not by what they wait for): spawning one can make
        # an earlier one ready, so go round until nothing more starts.
        progress = True
        while progress:
            progress = False
            for task in tasks.values():
                if task.id in spawned:
                    continue
                main_preds, task_preds = needs([s.id for s in task.steps])
                if main_preds <= done and task_preds - {task.id} <= spawned:
                    spawned.add(task.id)
                    ops.append(Spawn(task.id))
                    progress = True

    def starts_work(step: Step) -> bool:
        """Whether running `step` now overlaps a wait, or lets a task start sooner."""
        if suspends(step):
            return True
        for successor in graph.successors(step.id):
            if successor in task_of:
                if task_of[successor] not in spawned:
                    return True
            elif successor not in done and starts_work(step_of(graph, successor)):
                return True
        return False

    spawn_ready()
    pending = list(main)
    while pending:
        ready = []
        for step in pending:
            main_preds, task_preds = needs([step.id])
            if main_preds <= done and task_preds <= spawned:
                ready.append((step, task_preds))
        assert ready, "the block graph is acyclic, so some main step is always ready"
        # The earliest step first, unless it waits and a later one that needs no
        # waiting starts work sooner: only then does main leave source order.
        step, task_preds = next(
            (
                (s, t)
                for i, (s, t) in enumerate(ready)
                if t <= awaited and (i == 0 or starts_work(s))
            ),
            ready[0],
        )
        for task_id in sorted(task_preds - awaited):
            ops.append(Wait(task_id))
            awaited.add(task_id)
        ops.append(Run(step))
        done.add(step.id)
        pending.remove(step)
        spawn_ready()
    if block.steps and isinstance(block.steps[-1].action, Return):
        return tuple(ops)  # nothing runs after it; the scope awaits what is left
    for task_id in sorted(tasks):
        if task_id not in awaited:
            ops.append(Wait(task_id))
    return tuple(ops)


def suspends(step: Step) -> bool:
    """Whether running the step may suspend main: it awaits, or something in it does."""
    if step.awaits:
        return True
    action = step.action
    if isinstance(action, Inline):
        return awaits(action.statement)
    if isinstance(action, Loop) and action.is_async:
        return True
    if not isinstance(action, Branch | Match | Loop | WhileLoop):
        return False
    tested: list[cst.CSTNode] = []
    if isinstance(action, Branch):
        tested = [test for test in action.tests if test is not None]
    elif isinstance(action, Match):
        tested = [
            action.subject,
            *(c.guard for c in action.cases if c.guard is not None),
        ]
    elif isinstance(action, Loop):
        tested = [action.iterable]
    elif isinstance(action, WhileLoop):
        tested = [action.test]
    return any(awaits(node) for node in tested) or any(
        suspends(inner) for block in child_blocks(action) for inner in block.steps
    )
