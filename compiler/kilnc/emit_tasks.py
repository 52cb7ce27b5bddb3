"""emit_tasks: the coroutine a task of a block runs, beside main.

Example output, for a task whose call needs what another task returns::

    async def compute_posts(blog_task: _kiln.Child[Page]) -> list[Page]:
        blog = await blog_task
        return await _kiln.fan_out(fetch_page_4, blog.links)

The tasks it awaits come in as parameters, spawned before it; it repeats
for mypy the flow's checks of the values it reads (`emit_guards`), and
binds, `nonlocal`, the flow's names a lambda or generator of the flow
reads when it runs.
"""

from __future__ import annotations

from kilnc.emit_blocks import BlockEmitter
from kilnc.emit_guards import Spawned, repeated, task_reads
from kilnc.emit_names import RUNTIME
from kilnc.emit_narrowing import Fact
from kilnc.emit_parts import awaited_tasks, call_target, reading_copies
from kilnc.emit_spawns import Spawns
from kilnc.names import target_names
from kilnc.plan import BlockPlan, Task


class TaskEmitter(BlockEmitter):
    """The coroutines of a block's tasks that are more than one call."""

    def task(
        self,
        task: Task,
        name: str,
        plan: BlockPlan,
        spawns: Spawns,
        scope: str,
        spawned: Spawned,
    ) -> None:
        """`async def compute_pages(home_task: ...) -> list[Page]:`, the coroutine a
        task runs: its steps, the waits for the tasks it takes, the flow's checks
        it repeats for mypy."""
        handles = spawns.handles
        result = task.result
        returns = self.value_of(task)
        # The tasks it awaits come in as parameters: each is spawned before it.
        params = ", ".join(
            f"{handles[t]}: {RUNTIME}.Child[{self.value_of(plan.tasks[t])}]"
            for t in awaited_tasks(task)
        )
        with self.w.at(result.span):
            self.w.line(f"async def {name}({params}) -> {returns}:")
        self.counting = False  # counted at the spawn
        outer = dict(
            spawns.copies[task.id]
        )  # names still meaning the value from before the task
        bound, self.bound = self.bound, {}
        known, self.known = self.known, ()
        # The flow's checks of the values it reads: of its names at once, of the
        # tasks' values once it has them, if they are the values main checked.
        readable, done = task_reads(task, plan), set[Fact]()
        with self.w.indent(), self.nesting.function():
            # A lambda or generator of the flow's reads these when it runs: what
            # the task binds of them, it binds for the flow, as the source does.
            shared = sorted(_binds(task, plan) & self.plan.flow.late)
            if shared:
                self.w.line(f"nonlocal {', '.join(shared)}")
            self.repeat(repeated(spawned.known, readable, done))
            for step in task.steps:
                if step.id in task.announces:
                    self.w.line(f"{scope}.at_step({task.announces[step.id]})")
                for wait in task.waits[step.id]:
                    taken = task.takes.get(wait.task, frozenset())
                    awaited = plan.tasks[wait.task].result.id
                    self.wait(plan.tasks[wait.task], handles[wait.task], taken)
                    readable |= {
                        n
                        for n, at in self.bound.items()
                        if at == awaited == spawned.bound.get(n)
                    }
                    self.repeat(repeated(spawned.known, readable, done))
                self.step(
                    reading_copies(step, outer),
                    returning=step is result and call_target(result) is not None,
                )
                for written in step.writes:
                    outer.pop(written, None)
                readable -= step.writes
        self.counting = True
        self.bound, self.known = bound, known
        self.w.line()


def _binds(task: Task, plan: BlockPlan) -> frozenset[str]:
    """The names a task's coroutine binds: its steps', and those of the tasks it awaits."""
    bound = {name for step in task.steps for name in step.writes}
    for waits in task.waits.values():
        for wait in waits:
            target = call_target(plan.tasks[wait.task].result)
            bound |= target_names(target) if target is not None else set()
    return frozenset(bound)
