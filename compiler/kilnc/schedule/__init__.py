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
5. Settled values. A task does not await a task main awaited before
   spawning it: it reads main's names, which hold that value. Its spawn is
   put off to there only past steps of main before its own.
6. Inlining. A task spawned and then awaited with nothing else started in
   between runs in place: a straight chain compiles to plain sequential code.
   A task is not run in place ahead of an earlier step of main; main left
   with no task runs its steps in source order (no scope would hold back the
   failure of one it ran early).
7. Steps. Each task starts at its first step's index in the block, and main
   and the tasks tell the block's scope when they move on to a step with
   another coroutine's step before it, so that the scope raises the failure
   the source would have raised (`at 3` in the dump, `at_step(3)` in code).
   Main is at the earliest step it has yet to run: a step it runs ahead of
   earlier ones has its failure held by the scope (`held at 5`,
   `with scope.ahead(5):`) until main moves past it, so an earlier step that
   fails still wins.

Each rule is a module of this package: chains.py (1), tasks.py (2 and 3),
order.py (4), settled.py (5), inline.py (6), announce.py (7).
"""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx

from kilnc.graph import build_graph
from kilnc.ir import Block, FanOut, FlowIR, child_blocks
from kilnc.plan import BlockPlan, FlowPlan, Task, TaskId
from kilnc.schedule.announce import announce_steps
from kilnc.schedule.chains import find_chains
from kilnc.schedule.inline import run_in_place
from kilnc.schedule.order import order_main
from kilnc.schedule.settled import read_settled
from kilnc.schedule.tasks import choose_tasks, rebound, task_takes, task_waits


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
    chains = find_chains(block, graph, nested)
    chains = choose_tasks(chains, graph)
    task_of = {step.id: TaskId(i) for i, chain in enumerate(chains) for step in chain}
    producers = {chain[-1].id: chain for chain in chains}
    tasks = {
        TaskId(i): Task(
            TaskId(i),
            tuple(chain),
            task_waits(chain, graph, task_of),
            tuple(sorted(rebound(chain, graph, producers) or ())),
            takes=task_takes(chain, block, task_of),
        )
        for i, chain in enumerate(chains)
    }
    ops = order_main(block, graph, tasks, task_of)
    return announce_steps(block, run_in_place(read_settled(BlockPlan(tasks, ops))))


def _blocks(block: Block) -> Iterator[Block]:
    yield block
    for step in block.steps:
        if not isinstance(
            step.action, FanOut
        ):  # an element's steps run in order, unplanned
            for child in child_blocks(step.action):
                yield from _blocks(child)
