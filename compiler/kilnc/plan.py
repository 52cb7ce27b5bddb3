"""The scheduler's output: what runs in the flow's own coroutine, what runs in tasks.

A `BlockPlan` is a sequence of operations for the block's main coroutine:
spawn a task, await a task (assigning its result to the names it writes), run
a step, or tell the block's scope which step main is at. A `Task` is a chain
of steps that runs as one coroutine; before a step it may wait for other tasks.
`dump_plan` prints it for `--dump plan`.

Steps are numbered by their index in the block, which is source order: the
scope that runs a block's tasks weighs failures by these numbers (the one the
source would have raised wins), so each task starts with its first step's
number and main and the tasks say when they move on to another.

The module plan is what the emitter is told of the whole module: its kept
statements, flows and constants in source order (`ModulePlan`), how it
imports the other modules of its compile (`Links`), and the classes each
node's results may hold (`ClassRef`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, NewType, final

import libcst as cst

from kilnc.graph import STATE
from kilnc.ir import Block, Callee, FlowIR, NodeDef, Step, StepId
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
    step: int = 0  # the index of its first step in the block: where it starts
    # Before these steps (and the waits for them) the task tells its scope it
    # has moved on, by their index in the block: another coroutine's step lies
    # between the last one it told and this one.
    announces: Mapping[StepId, int] = field(default_factory=dict)
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
    # Set when main runs the step before earlier steps of its own: the step's
    # index in the block, where the scope holds its failure until main has run
    # those (one of them may fail first, and the source would raise that).
    ahead: int | None = None


@final
@dataclass(frozen=True, slots=True)
class At:
    """Main tells the block's scope it is at the step of index `step` in the block."""

    step: int


Op = Spawn | Wait | Run | At


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


def dump_plan(plan: BlockPlan, why: Mapping[tuple[StepId, StepId], set[str]]) -> str:
    """The plan as `--dump plan` shows it; each wait says which names cause it.

    `why` holds the block graph's reason for each edge: a name, a Memory key
    (`@g:<root>:<key>`), `(barrier)` or `(external)`.
    """
    lines: list[str] = []
    for task in plan.tasks.values():
        steps = ", ".join(
            f"s{s.id}"
            + (f" (at {task.announces[s.id]})" if s.id in task.announces else "")
            for s in task.steps
        )
        waits = sorted({w.task for ws in task.waits.values() for w in ws})
        shown = [
            f"t{w}{_because(plan.tasks[w].steps, task.steps, why)}"
            for w in waits
            if w in plan.tasks
        ]
        lines.append(
            f"task t{task.id} at {task.step}: {steps}"
            + (f" (waits {', '.join(shown)})" if shown else "")
        )
    for index, op in enumerate(plan.ops):
        if isinstance(op, Spawn):
            lines.append(f"spawn t{op.task}")
        elif isinstance(op, Wait):
            after = [o.step for o in plan.ops[index + 1 :] if isinstance(o, Run)]
            waited = plan.tasks.get(op.task)
            reason = _because(waited.steps, after, why) if waited is not None else ""
            lines.append(f"await t{op.task}{reason}")
        elif isinstance(op, At):
            lines.append(f"at {op.step}")
        else:
            ahead = "" if op.ahead is None else f", held at {op.ahead}"
            lines.append(
                f"run s{op.step.id} ({type(op.step.action).__name__}, "
                f"line {op.step.span.line}{ahead})"
            )
    return "\n".join(lines)


def _because(
    sources: Iterable[Step],
    targets: Iterable[Step],
    why: Mapping[tuple[StepId, StepId], set[str]],
) -> str:
    """`  # for state, memory key 'done'`: the names that order the targets after the sources."""
    found: set[str] = set()
    for source in sources:
        for target in targets:
            found |= why.get((source.id, target.id), set())
    if not found:
        return ""
    return f"  # for {', '.join(sorted(_readable(name) for name in found))}"


def _readable(name: str) -> str:
    if name.startswith(STATE):
        return f"module state {name.removeprefix(STATE)}"
    if name.startswith("@"):
        store, owner, key = name.split(":", 2)
        shown = "every key" if key == "*" else repr(key)
        return {
            "@g": f"Memory key {shown}",
            "@l": f"local key {shown} of {owner}",
            "@c": f"the local store {owner} clones",
        }[store]
    return name


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
    """`_KILN_POLICY_FETCH = _kiln.Policy(...)`: a resilient node's options, built once.

    `retry_on` names its classes as the generated module reads them: an
    imported node's through the imports made for them (`_KILN_CLASS_FLAKY`).
    """

    name: str
    node: NodeDef
    where: str
    retry_on: tuple[str, ...]


@final
@dataclass(frozen=True, slots=True)
class FallbackImport:
    """`from pkg.nodes import on_error as _KILN_FALLBACK_ON_ERROR`: a name from another module.

    An imported node's fallback, or a class a cached node's results may hold
    that the module does not import itself (`_KILN_CLASS_...`).
    """

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
    # Each callee's result classes, as the module names them (`place_classes`).
    classes: Mapping[Callee, tuple[str, ...]] = field(default_factory=dict)
    # Each cached node the module imports from its source: the sha256 of its file
    # as fingerprinted, which a run checks before it caches (`kiln.stale`).
    live: Mapping[NodeDef, str] = field(default_factory=dict)
    # [tool.kiln] ledger, relative to the generated module's directory.
    ledger: str | None = None
    # Every name the source binds at module level, and whether a star import may
    # bind more: generated code must not mean those names.
    module_names: frozenset[str] = frozenset()
    star_import: bool = False
    source_path: str | None = None  # as the header names it (`Links.source_path`)

    def where(self, span: Span) -> str:
        return f"{self.paths.get(span.path, span.path)}:{span.line}"


@final
@dataclass(frozen=True, slots=True)
class Links:
    """How one module's output imports the rest of its compile."""

    # Each source module of the compile that has an output, by its compiled name.
    compiled: Mapping[str, str] = field(default_factory=dict)
    # The names other compiled modules import from this one; None: every name.
    exports: frozenset[str] | None = frozenset()
    # Modules of the compile with an output that cannot be imported compiled
    # (the output directory is no package): importing one of their flows is KLN704.
    unlinked: frozenset[str] = frozenset()
    # Compiled modules whose package binds their name to something else (its
    # `__init__.py` does `from .crawl import crawl`): `from app.flows import
    # crawl` takes that, not the module, so it stays the source's import.
    rebound: frozenset[str] = frozenset()
    # Submodules without output of compiled packages (app/steps/ingest.py, where
    # app/steps/__init__.py has a flow): `from app.steps import ingest` names the
    # submodule, which only the source has, so it stays the source's import.
    stays: frozenset[str] = frozenset()
    # The source file as a path from the directory of its output (``../../app/sub.py``),
    # which the header names: what tells `kiln compile` an output whose source is gone.
    source_path: str | None = None


# A module compiled alone: it imports every other module's source.
STANDALONE: Final = Links()


@final
@dataclass(frozen=True, slots=True)
class ClassRef:
    """A class by where it is defined: `path` (``Outer.Inner``) in module `module`."""

    module: str
    path: str


@final
@dataclass(frozen=True, slots=True)
class Shaken:
    prelude: tuple[cst.CSTNode, ...]  # the docstring and `from __future__` imports
    body: tuple[
        cst.CSTNode | str, ...
    ]  # kept statements; a str is the identifier of a flow
    spans: tuple[Span, ...]  # where each item of `body` is in the source
