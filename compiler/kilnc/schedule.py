"""schedule_flow: each block's graph to a plan that starts every step as soon as possible.

Example input: the graph of::

    a = await fetch(x)        s0
    b = await fetch(y)        s1
    return merge(a, b)        s2 (a sync node), s3 (return)

Output (`kiln compile --dump plan`)::

    task t0 at 0: s0            # a task, starting at the block's step 0
    spawn t0
    run s1 (Call, line 2)       # the last independent call runs in place
    await t0
    run s2 (Call, line 3)
    run s3 (Return, line 3)

The rules, in order:

1. Chains. A step whose only consumer is the next step joins that step's
   coroutine, so a chain of 200 dependent calls is one coroutine, not 200 tasks.
2. Tasks. A chain that awaits something and ends in a value of known type
   (the node's return annotation) may run as a task; its result reaches other
   coroutines through the task. Everything else runs in the main coroutine.
   A chain is cut before a step that needs a step of main after the chain's
   first: a task starts once main has run what it needs, and would hold its
   first steps back past that step.
3. Scoping. A task that reads a name from the enclosing coroutine and then
   assigns it (Python would make it local, and the read would fail) reads a
   copy main takes when it spawns the task; where a copy cannot stand in (the
   read is not in a call's arguments), the chain stays in main.
4. Order. Main runs its steps in source order, except that a step that needs
   no waiting goes before an earlier one that does when it starts work sooner
   (it suspends, or a task needs it); main spawns each task the moment its
   inputs exist.
5. Inlining. A task spawned and then awaited with nothing else started in
   between runs in place: a straight chain compiles to plain sequential code.
   A task is not run in place ahead of an earlier step of main.
6. Steps. Each task starts at its first step's index in the block, and main
   and the tasks tell the block's scope when they move on to a step with
   another coroutine's step before it, so that the scope raises the failure
   the source would have raised (`at 3` in the dump, `at_step(3)` in code).
   Main is at the earliest step it has yet to run: a step it runs ahead of
   earlier ones has its failure held by the scope (`held at 5`,
   `with scope.ahead(5):`) until main moves past it, so an earlier step that
   fails still wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import libcst as cst
import networkx as nx

from kilnc.graph import build_graph, step_of
from kilnc.ir import (
    RESERVED_PREFIX,
    Block,
    Branch,
    Call,
    FanOut,
    FlowIR,
    Inline,
    Loop,
    Match,
    Return,
    Step,
    StepId,
    WhileLoop,
    child_blocks,
)
from kilnc.names import binds, target_names
from kilnc.plan import At, BlockPlan, FlowPlan, Op, Run, Spawn, Task, TaskId, Wait
from kilnc.syntax import awaits


def schedule_flow(flow: FlowIR) -> FlowPlan:
    blocks: dict[Block, BlockPlan] = {}
    for block in _blocks(flow.body):
        nested = block is not flow.body
        blocks[block] = schedule_block(block, build_graph(block), nested=nested)
    return FlowPlan(flow, blocks)


def schedule_block(
    block: Block, graph: nx.DiGraph, *, nested: bool = False
) -> BlockPlan:
    """`nested`: the block is an arm or a loop's body, whose names live on after it."""
    chains = _chains(block, graph, nested)
    chains = _tasks(chains, graph)
    task_of = {step.id: TaskId(i) for i, chain in enumerate(chains) for step in chain}
    producers = {chain[-1].id: chain for chain in chains}
    tasks = {
        TaskId(i): Task(
            TaskId(i),
            tuple(chain),
            _waits(chain, graph, task_of),
            tuple(sorted(_rebound(chain, graph, producers) or ())),
            takes=_takes(chain, block, task_of),
        )
        for i, chain in enumerate(chains)
    }
    ops = _order(block, graph, tasks, task_of)
    return _announce(block, _inline(BlockPlan(tasks, ops)))


def _blocks(block: Block) -> Iterator[Block]:
    yield block
    for step in block.steps:
        if not isinstance(
            step.action, FanOut
        ):  # an element's steps run in order, unplanned
            for child in child_blocks(step.action):
                yield from _blocks(child)


# --- 1. chains ----------------------------------------------------------------------


def _chainable(step: Step) -> bool:
    action = step.action
    if isinstance(action, Call | FanOut):
        target = action.target
        return target is None or isinstance(target, cst.Name | cst.Tuple | cst.List)
    return isinstance(action, Inline) and not step.uses and not step.barrier


def _chains(block: Block, graph: nx.DiGraph, nested: bool) -> list[list[Step]]:
    chain_of: dict[StepId, list[Step]] = {}
    chains: list[list[Step]] = []
    for step in block.steps:
        if not _chainable(step):
            continue
        joinable = [
            p
            for p in graph.predecessors(step.id)
            if p in chain_of
            and graph.out_degree(p) == 1
            and chain_of[p][-1].id == p
            and not (nested and _outlives(step_of(graph, p)))
        ]
        if joinable:
            chain = chain_of[max(joinable)]
        else:
            chain = []
            chains.append(chain)
        chain.append(step)
        chain_of[step.id] = chain
    return chains


def _outlives(step: Step) -> bool:
    """Whether a step of a nested block writes a name code after the block may read.

    Only a chain's last value leaves its coroutine, so such a step ends its
    chain. A user's name may be read after an arm or in a loop's next
    iteration; a lifted temporary never is.
    """
    return any(not name.startswith(RESERVED_PREFIX) for name in step.writes)


# --- 2. and 3. which chains become tasks ---------------------------------------------


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


def _tasks(chains: list[list[Step]], graph: nx.DiGraph) -> list[list[Step]]:
    candidates = [task for chain in chains if (task := _as_task(chain))]
    # Demoting one chain can change what another imports, and which steps main
    # runs: repeat until stable.
    while True:
        producers = {chain[-1].id: chain for chain in candidates}
        kept = [
            chain
            for chain in candidates
            if _rebound(chain, graph, producers) is not None
        ]
        kept = _split_at_late_inputs(kept, graph)
        if kept == candidates:
            return kept
        candidates = kept


def _as_task(chain: list[Step]) -> list[Step]:
    """The chain, less the steps at its end whose value cannot leave a task; [] when
    what is left awaits nothing, and main may as well run it."""
    trimmed = list(chain)
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


def _rebound(
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


def _waits(
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


def _takes(
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


# --- 4. the main coroutine's order ---------------------------------------------------


def _order(
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
        if _suspends(step):
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


# --- 5. inlining ---------------------------------------------------------------------


def _inline(plan: BlockPlan) -> BlockPlan:
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
    return BlockPlan(tasks, tuple(ops))


def _nothing_overlaps(following: list[Op], wait: Wait) -> bool:
    """Whether main reaches `wait` without starting anything or suspending on its own."""
    for later in following:
        if later == wait:
            return True
        if isinstance(later, Spawn) or (
            isinstance(later, Run) and _suspends(later.step)
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


def _suspends(step: Step) -> bool:
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
        _suspends(inner) for block in child_blocks(action) for inner in block.steps
    )


# --- 6. steps --------------------------------------------------------------------------


def _announce(block: Block, plan: BlockPlan) -> BlockPlan:
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
