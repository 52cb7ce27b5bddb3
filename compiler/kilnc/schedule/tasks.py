"""Rules 2 and 3, tasks: which chains run as tasks, what each waits for and takes.

A chain that awaits something and ends in a value of known type may run as a
task; it is cut before a step that needs a later step of main. A task that
reads a name from main and then assigns it reads a copy taken at its spawn
(`rebound`); where a copy cannot stand in, the chain stays in main.
"""

from __future__ import annotations

import networkx as nx

from kilnc.graph import step_of
from kilnc.ir import Block, Call, FanOut, Step, StepId
from kilnc.names import binds, target_names
from kilnc.plan import TaskId, Wait


def _terminal_ok(step: Step) -> bool:
    """Whether the step's value can leave a task: the one thing a task hands back.

    A step that binds more than its target (`z = await f(y := x + 1)` binds y)
    would bind the rest in the task's own scope, where no one else sees it.
    """
    action = step.action
    if not isinstance(action, Call | FanOut):
        return False
    target = action.target
    if not step.writes <= (target_names(target) if target is not None else set()):
        return False
    return target is None or step.value_type is not None


def choose_tasks(chains: list[list[Step]], graph: nx.DiGraph) -> list[list[Step]]:
    candidates = [task for chain in chains if (task := _as_task(chain))]
    # Demoting one chain can change what another imports, and which steps main
    # runs: repeat until stable.
    while True:
        producers = {chain[-1].id: chain for chain in candidates}
        kept = [
            chain
            for chain in candidates
            if rebound(chain, graph, producers) is not None
        ]
        kept = _split_at_late_inputs(kept, graph)
        if kept == candidates:
            return kept
        candidates = kept


def _as_task(chain: list[Step]) -> list[Step]:
    """The chain, less the steps at its end whose value cannot leave a task; [] when
    what is left awaits nothing, and main may as well run it. A step that sets a
    ContextVar, and what follows it, stay in main: a task sets it in a copy of
    main's context, which the steps after it would not see."""
    setter = next((i for i, step in enumerate(chain) if step.context), len(chain))
    trimmed = chain[:setter]
    while trimmed and not _terminal_ok(trimmed[-1]):
        trimmed.pop()
    return trimmed if any(step.awaits for step in trimmed) else []


def _split_at_late_inputs(
    chains: list[list[Step]], graph: nx.DiGraph
) -> list[list[Step]]:
    """Each chain cut before a step that needs a step of main after the chain's first.

    A task starts once main has run every step it needs, so such a chain would
    hold its first steps back past a later step of main: if that step failed,
    the earlier ones would never run, though the source runs them first and
    may fail there. Cut, the first part starts in its place.
    """
    tasked = {step.id for chain in chains for step in chain}
    split: list[list[Step]] = []
    for chain in chains:
        head = chain[0].id
        cut = next(
            (
                position
                for position, step in enumerate(chain)
                if position
                and any(
                    pred > head and pred not in tasked
                    for pred in graph.predecessors(step.id)
                )
            ),
            None,
        )
        if cut is None:
            split.append(chain)
            continue
        split += [
            task for part in (chain[:cut], chain[cut:]) if (task := _as_task(part))
        ]
    return split


def rebound(
    chain: list[Step], graph: nx.DiGraph, producers: dict[StepId, list[Step]]
) -> set[str] | None:
    """The names the chain reads from outside and then rebinds; None if it cannot run so.

    Python makes a name the coroutine assigns local to it, so reading the
    outer value first would fail. A call step can read a copy instead (the
    emitter renames the name in its arguments); any other step cannot.
    """
    members = {step.id for step in chain}
    local: set[str] = set()
    outer: dict[str, list[Step]] = {}  # name -> the steps reading its outer value
    for step in chain:
        for pred in graph.predecessors(step.id):
            if pred in producers and pred not in members:
                local |= step_of(graph, pred).writes
        for name in step.reads - local:
            outer.setdefault(name, []).append(step)
        if (
            step is not chain[-1]
        ):  # the last step returns its value: it assigns nothing here
            local |= step.writes
    rebound = set(outer) & local
    for name in rebound:
        if not all(_renameable(step, name) for step in outer[name]):
            return None
    return rebound


def _renameable(step: Step, name: str) -> bool:
    action = step.action
    return isinstance(action, Call) and name not in binds(action.call.call)


def task_waits(
    chain: list[Step], graph: nx.DiGraph, task_of: dict[StepId, TaskId]
) -> dict[StepId, tuple[Wait, ...]]:
    own = task_of[chain[0].id]
    seen: set[TaskId] = set()
    waits: dict[StepId, tuple[Wait, ...]] = {}
    for step in chain:
        needed = sorted(
            {task_of[p] for p in graph.predecessors(step.id) if p in task_of}
            - {own}
            - seen
        )
        seen.update(needed)
        waits[step.id] = tuple(Wait(t) for t in needed)
    return waits


def task_takes(
    chain: list[Step], block: Block, task_of: dict[StepId, TaskId]
) -> dict[TaskId, frozenset[str]]:
    """The names the chain's steps read from the result of each other task.

    A step reads a name from the step that last bound it before it, in
    source order; only those names of an awaited task's target are its own.
    """
    own = task_of[chain[0].id]
    members = {step.id for step in chain}
    binder: dict[str, StepId] = {}
    takes: dict[TaskId, set[str]] = {}
    for step in block.steps:
        if step.id in members:
            for name in step.reads:
                source = binder.get(name)
                if source in task_of and task_of[source] != own:
                    takes.setdefault(task_of[source], set()).add(name)
        for name in step.writes:
            binder[name] = step.id
    return {task: frozenset(names) for task, names in takes.items()}
