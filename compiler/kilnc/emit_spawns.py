"""Which tasks a block's scope spawns as their own step's coroutine, without a function.

Example: in ``a = await fetch(url)`` beside other work, the task is the call
itself, ``a_task = scope.spawn(fetch(url), step=0)``, rather than a
``compute_a`` function around it; so is a list fan-out over a name,
``pages_task = scope.spawn(_kiln.fan_out(fetch, urls), step=1)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, final

import libcst as cst

from kilnc.emit_parts import all_writes
from kilnc.ir import Call, FanOut, FanOutKind, NodeCall, child_blocks
from kilnc.plan import BlockPlan, Run, Task, TaskId
from kilnc.syntax import awaits

__all__ = ["Spawns", "direct_call", "held_names"]


@final
@dataclass(frozen=True, slots=True)
class Spawns:
    """How a block's tasks are written: each one's call (`direct`; None for a
    coroutine of its own, named in `defs`), the copies it takes of names main
    binds later, its handle; and the names a step run ahead binds (`held`)."""

    direct: Mapping[TaskId, NodeCall | FanOut | None]
    copies: Mapping[TaskId, Mapping[str, str]]
    defs: Mapping[TaskId, str]
    handles: Mapping[TaskId, str]
    held: frozenset[str]


def held_names(plan: BlockPlan) -> frozenset[str]:
    """The names a block's steps run ahead bind: such a step's failure is held, and
    the names it would have bound then stay unbound until the failure is raised."""
    found: set[str] = set()
    for op in plan.ops:
        if isinstance(op, Run) and op.ahead is not None:
            found |= op.step.writes
            for block in child_blocks(op.step.action):
                found |= all_writes(block)
    return frozenset(found)


def direct_call(task: Task, held: frozenset[str]) -> NodeCall | FanOut | None:
    """What a task is made of alone, when the scope can spawn its coroutine itself.

    That is a task of one step, after no other task: a call whose arguments
    are names and literals, or a list fan-out of such calls over a name
    (`fan_out(f, xs)`, `gather((f(x, y) for x in xs), of=f)`). What the spawn
    evaluates, rather than the task as it starts, has the same value and runs
    no code of the user's; a fan-out's elements are made as the task runs, as
    in a function of their own. The step is assigned, or a call returning
    None: the task's handle is typed as its value. Not a step that reads a
    `held` name: the task's own coroutine reads it at the task's step, after
    the held failure that left it unbound is raised.
    """
    [step, *rest] = task.steps
    action = step.action
    if rest or task.snapshots or task.announces or any(task.waits.values()):
        return None
    if step.reads & held:
        return None
    if isinstance(action, FanOut):
        return action if _gathered_alone(action) else None
    if not isinstance(action, Call):
        return None
    if action.target is None and action.call.callee.returns != "None":
        return None
    call = action.call
    return call if _simple_arguments(call.call) and call.suspends else None


def _simple_arguments(call: cst.Call) -> bool:
    return all(arg.star == "" and isinstance(arg.value, _SIMPLE) for arg in call.args)


def _gathered_alone(action: FanOut) -> bool:
    """Whether a fan-out is one gathering coroutine: concurrent calls, assigned as
    the list they make, over an iterable that is a name."""
    call = action.result
    return (
        action.kind is FanOutKind.LIST
        and action.target is not None
        and not action.element.steps
        and action.in_order is None
        and call.suspends
        and not awaits(call.call)
        and isinstance(action.clauses.iter, _SIMPLE)
    )


# Expressions whose evaluation runs no code of the user's.
_SIMPLE: Final = (
    cst.Name,
    cst.SimpleString,
    cst.Integer,
    cst.Float,
    cst.Imaginary,
)
