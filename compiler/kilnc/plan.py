"""The scheduler's output: what runs in the flow's own coroutine, what runs in tasks.

A `BlockPlan` is a sequence of operations for the block's main coroutine:
spawn a task, await a task (assigning its result to the names it writes), or
run a step. A `Task` is a chain of steps that runs as one coroutine; before a
step it may wait for other tasks. `dump_plan` prints it for `--dump plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NewType, final

from kilnc.ir import Block, FlowIR, Step, StepId

TaskId = NewType("TaskId", int)


@final
@dataclass(frozen=True, slots=True)
class Wait:
    """Await task `task`; its terminal step's target receives the value."""

    task: TaskId


@final
@dataclass(frozen=True, slots=True)
class Task:
    id: TaskId
    steps: tuple[Step, ...]
    waits: Mapping[StepId, tuple[Wait, ...]]  # before each step, the tasks it needs
    # Names the task reads from the enclosing coroutine and then rebinds itself
    # (`text = await revise(text)` followed by more steps): main copies each
    # into a fresh name when it spawns the task, and the task reads the copy.
    snapshots: tuple[str, ...] = ()

    @property
    def result(self) -> Step:
        return self.steps[-1]


@final
@dataclass(frozen=True, slots=True)
class Spawn:
    task: TaskId


@final
@dataclass(frozen=True, slots=True)
class Run:
    step: Step


Op = Spawn | Wait | Run


@final
@dataclass(frozen=True, slots=True)
class BlockPlan:
    tasks: Mapping[TaskId, Task]
    ops: tuple[Op, ...]


@final
@dataclass(frozen=True, slots=True)
class FlowPlan:
    flow: FlowIR
    blocks: Mapping[Block, BlockPlan] = field(repr=False)

    def plan(self, block: Block) -> BlockPlan:
        return self.blocks[block]


def dump_plan(plan: BlockPlan) -> str:
    lines: list[str] = []
    for task in plan.tasks.values():
        steps = ", ".join(f"s{s.id}" for s in task.steps)
        waits = sorted({f"t{w.task}" for ws in task.waits.values() for w in ws})
        lines.append(
            f"task t{task.id}: {steps}"
            + (f" (waits {', '.join(waits)})" if waits else "")
        )
    for op in plan.ops:
        if isinstance(op, Spawn):
            lines.append(f"spawn t{op.task}")
        elif isinstance(op, Wait):
            lines.append(f"await t{op.task}")
        else:
            lines.append(
                f"run s{op.step.id} ({type(op.step.action).__name__}, line {op.step.span.line})"
            )
    return "\n".join(lines)
