"""A cancellation from outside, heard by every scope of the task at once.

asyncio tells a cancelled task's cancellation to the one thing the task
awaits, and a `Scope` learns of it only when its body leaves the ``async
with``: a body awaiting a slow call, or one of its tasks, would keep the
scope's other tasks running until that call has unwound, and a fan-out's
elements would be cancelled one after another. So each task's open scopes
are kept here, innermost first, and the kiln code that sees a cancellation
first tells them all (`heard_cancel`): a scope's task that its body awaits
(`ChildTask.cancel`, which asyncio calls as it passes the body's
cancellation down) and a fan-out's element run in the caller's task
(`Started`). Every task of the run is cancelled at once, and the run ends
after the slowest cleanup, not their sum.

A node call the body awaits in place (`await slow(n)` beside a task) is no
kiln code: it hears the cancellation first, and the scope's tasks are
cancelled once it has unwound (the README's "Cancelling a run" decision).
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the scope imports this module: a cycle at run time
    from kiln.scope import Scope

__all__ = [
    "ChildTask",
    "as_cancellation",
    "cancellation_of",
    "closed",
    "heard_cancel",
    "opened",
]

# Each task's innermost open scope; a scope holds the one it is inside. Kept
# in a plain dict, which a scope leaves as it exits: a weak one costs a
# weakref per lookup, and every scope and every await would pay for it.
_INNERMOST: Final[dict[asyncio.Task[Any], Scope]] = {}


def opened(scope: Scope, task: asyncio.Task[Any]) -> Scope | None:
    """`scope`'s body runs in `task`: the scope it is inside, if any."""
    outer = _INNERMOST.get(task)
    _INNERMOST[task] = scope
    return outer


def closed(task: asyncio.Task[Any], outer: Scope | None) -> None:
    """The innermost scope of `task` is leaving; `outer` is innermost again."""
    if outer is None:
        del _INNERMOST[task]
    else:
        _INNERMOST[task] = outer


def heard_cancel(task: asyncio.Task[Any] | None) -> None:
    """`task` is being cancelled: each scope it runs stops its children now, if
    the cancellation comes from outside that scope."""
    scope = _INNERMOST.get(task) if task is not None else None
    while scope is not None:
        scope.heard_cancel()
        scope = scope.outer


class ChildTask(asyncio.Task[Any]):
    """A scope's task, which tells its scope when a cancellation passes through it.

    asyncio cancels a task's awaited task as it cancels the task: this is
    the moment the body awaiting a child hears a cancellation from outside.
    """

    __slots__ = ("scope",)

    def __init__(
        self,
        coro: Any,
        scope: Scope,
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None,
    ) -> None:
        super().__init__(coro, loop=loop, context=context)
        self.scope = scope

    def cancel(self, msg: Any = None) -> bool:
        self.scope.heard_cancel(through=self)
        return super().cancel(msg)


def as_cancellation(exc: BaseException | None) -> asyncio.CancelledError:
    """`exc` if it is a cancellation, else one that says what it replaced."""
    if isinstance(exc, asyncio.CancelledError):
        return exc
    cancellation = asyncio.CancelledError()
    cancellation.__context__ = exc
    return cancellation


def cancellation_of(task: asyncio.Task[Any]) -> asyncio.CancelledError:
    """The CancelledError a cancelled task raises to whoever awaits it."""
    try:
        task.result()
    except asyncio.CancelledError as cancelled:
        return cancelled
    raise AssertionError("the task was not cancelled")
