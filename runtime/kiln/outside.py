"""A cancellation from outside, heard by every scope of the task at once.

asyncio tells a cancelled task's cancellation to the one thing the task
awaits, and a `Scope` learns of it only when its body leaves the ``async
with``: a body awaiting a slow call, or one of its tasks, would keep the
scope's other tasks running until that call has unwound, and a fan-out's
elements would be cancelled one after another. So the scopes each task runs
are kept here, and the kiln code that sees a cancellation first (a task
awaited by the body, `Child`; a fan-out's element run in the caller's task,
`Started`) tells them all (`heard_cancel`): every task of the run is
cancelled at once, and the run ends after the slowest cleanup, not their sum.
"""

# A node call the body awaits in place (`await slow(n)` beside a task) is no
# kiln code: it hears the cancellation first, and the scope's tasks are
# cancelled once it has unwound (the README's "Cancelling a run" decision).

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:  # the scope imports this module: a cycle at run time
    from kiln.scope import Scope

__all__ = ["awaited_heard", "closed", "heard_cancel", "opened", "runs_scopes"]

T = TypeVar("T")

# The scopes whose body each task runs, innermost last; weak, as a task's
# scopes end with it.
_OPEN: Final[weakref.WeakKeyDictionary[asyncio.Task[Any], list[Scope]]] = (
    weakref.WeakKeyDictionary()
)


def opened(scope: Scope, task: asyncio.Task[Any]) -> None:
    _OPEN.setdefault(task, []).append(scope)


def closed(scope: Scope, task: asyncio.Task[Any]) -> None:
    scopes = _OPEN[task]
    scopes.remove(scope)
    if not scopes:
        del _OPEN[task]


def runs_scopes(task: asyncio.Task[Any] | None) -> bool:
    return task in _OPEN


def heard_cancel(task: asyncio.Task[Any] | None) -> None:
    """`task` is being cancelled: each scope it runs stops its children now, if
    the cancellation comes from outside that scope."""
    for scope in _OPEN.get(task, ()) if task is not None else ():
        scope.heard_cancel()


def awaited_heard(
    task: asyncio.Task[T], waiter: asyncio.Task[Any] | None
) -> Generator[Any, None, T]:
    """Await `task` from `waiter` through a future of its own, which cancelling
    `waiter` cancels at once (asyncio would cancel `task` alone, and tell
    `waiter` once `task` has unwound)."""
    heard: asyncio.Future[None] = task.get_loop().create_future()

    def settle(_: object) -> None:
        if not heard.done():
            heard.set_result(None)

    def hear(_: object) -> None:
        if heard.cancelled():
            heard_cancel(waiter)

    heard.add_done_callback(hear)
    task.add_done_callback(settle)
    try:
        yield from heard.__await__()
    finally:
        task.remove_done_callback(settle)
    return task.result()
