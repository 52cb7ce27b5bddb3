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

import libcst as cst

from kilnc.ir import Block, FlowIR, NodeDef, Step, StepId
from kilnc.source import SourceFile, Span

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
    # The names of each awaited task's target this task reads from it. The rest
    # of that target it must not bind: another step wrote those names later
    # (`a, b = ...` then `a = ...`), and binding one would hide that value.
    takes: Mapping[TaskId, frozenset[str]] = field(default_factory=dict)

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


# --- the module -------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Kept:
    """A module-level statement copied into the output (already rewritten by `shake`)."""

    statement: cst.CSTNode = field(repr=False)
    span: Span  # the statement as written in the source, decorators and all


@final
@dataclass(frozen=True, slots=True)
class PolicyConstant:
    """`_KILN_POLICY_FETCH = _kiln.Policy(...)`: a resilient node's options, built once."""

    name: str
    node: NodeDef
    where: str


@final
@dataclass(frozen=True, slots=True)
class FallbackImport:
    """`from pkg.nodes import on_error as _KILN_FALLBACK_ON_ERROR`, for an imported node."""

    alias: str
    module: str
    function: str


@final
@dataclass(frozen=True, slots=True)
class Compiled:
    """A flow, emitted where its definition stood, as a class and its instance."""

    plan: FlowPlan
    class_name: str


@final
@dataclass(frozen=True, slots=True)
class ModulePlan:
    source: SourceFile
    display: str  # the source path relative to the project root, for the header
    sources: tuple[SourceFile, ...]  # every file read, for the header's hash
    prelude: tuple[cst.CSTNode, ...] = field(
        repr=False
    )  # docstring and __future__ imports
    body: tuple[Kept | PolicyConstant | FallbackImport | Compiled, ...]
    # Each source's path relative to the project root, by the path diagnostics show:
    # generated code names the project's files the same way from any working directory.
    paths: Mapping[str, str]
    policies: Mapping[NodeDef, str]  # the constant holding each resilient node's Policy
    fallbacks: Mapping[NodeDef, str]  # how generated code names each node's fallback
    fingerprints: Mapping[
        NodeDef, str
    ]  # each cached node's source hash, for ledger keys
    # [tool.kiln] ledger, relative to the generated module's directory.
    ledger: str | None = None

    def where(self, span: Span) -> str:
        return f"{self.paths.get(span.path, span.path)}:{span.line}"
