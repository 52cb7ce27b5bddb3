"""Structured concurrency for generated code: `Scope`, whose failures leave as themselves.

`Scope` is `asyncio.TaskGroup` with two differences that matter to users. A
failure leaves as the original exception object, never wrapped in an
`ExceptionGroup`, so ``except ValueError`` around a compiled flow catches what
the source run would have raised. And an ordered scope raises the failure the
sequential run would have raised: each child, and the body, has a *step*, its
place in that run (a flow's steps in source order, a fan-out's elements by
index), and the failure with the lowest step wins, whenever it happens.

The guarantees: when a participant fails, those at later steps are cancelled
at once and those at earlier steps are waited for, only as long as it takes
to know whether they fail; the winning failure is raised as itself; what a
participant raises after the scope cancelled it is noise, never raised; when
the scope exits, nothing it started is still running; cancelling the task
running the scope cancels everything it started, and that task gets
CancelledError, whatever the children raise as they unwind.
KeyboardInterrupt and SystemExit win over everything.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
from collections.abc import Awaitable, Generator
from types import FrameType, TracebackType
from typing import Any, Final, Generic, Self, TypeVar, final

from kiln.ahead import Ahead
from kiln.awaitables import as_coroutine
from kiln.errors import raise_as_is, spawned_from
from kiln.outside import ChildTask, as_cancellation, cancellation_of, closed, opened

__all__ = ["Child", "Scope"]

T = TypeVar("T")

_AFTER_ALL: Final = math.inf  # an ordered body's step until it says: after its children
_EVERYTHING: Final = -math.inf  # the cut of a failure that cancels every participant


@final
class Child(Generic[T]):
    """A task of a `Scope`, awaited as the task itself is.

    While a task of the scope, or its body, awaits a child, the scope does not
    cancel it for a failure the child comes before: asyncio would pass the
    cancellation on to the child, which may still fail with the error that
    wins. The scope cancels the waiter once the child is done instead.
    """

    __slots__ = (
        "_noise",
        "_scope",
        "_spawned",
        "_then_stop",
        "_traceback",
        "step",
        "task",
    )

    def __init__(
        self,
        scope: Scope,
        task: asyncio.Task[T],
        step: float,
        spawned: tuple[FrameType, int] | None,
    ) -> None:
        self.task = task
        self._scope = scope
        # Its place in the sequential run. Said with `at_step`, which also stops
        # a child past a known failure; written directly by a child that checks
        # for one itself (a bounded fan-out's worker, once per element).
        self.step = step
        # The frame that spawned it and where, until it is done (`spawned_from`).
        self._spawned = spawned
        self._noise = False  # its scope cancelled it: what it raises now is noise
        self._then_stop: list[asyncio.Task[Any]] | None = None  # cancel once done
        # Where its failure was raised: asyncio hands the frames to the first
        # awaiter only, and a flow's note is read from them (`kiln.notes`).
        self._traceback: TracebackType | None = None

    def __await__(self) -> Generator[Any, None, T]:
        task = self.task
        try:
            if task.done():
                self._keep_frames()
                return task.result()
            scope = self._scope
            waiting = scope._waiting
            # Given the loop, current_task() is five times cheaper; and a task
            # awaits one thing at a time.
            waiter = asyncio.current_task(scope._loop)
            waiting[waiter] = self
            try:
                return (yield from task.__await__())
            finally:
                waiting.pop(waiter, None)
        except Exception as error:
            if self._traceback is None:
                raise
            raise error.with_traceback(self._traceback)  # noqa: B904 - the same error

    def done(self) -> bool:
        return self.task.done()

    def cancelled(self) -> bool:
        return self.task.cancelled()

    def result(self) -> T:
        self._keep_frames()
        return self.task.result()

    def _keep_frames(self) -> None:
        """Keep where the task's failure was raised, before anyone awaits it.

        The first `result()` of a failed task raises the failure with those
        frames, and each raise adds the raiser's frames to it: the awaiters
        after the first, and the scope's callback, would find the first
        awaiter's frames, or none.
        """
        task = self.task
        if self._traceback is None and task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                self._traceback = error.__traceback__
                if self._spawned is not None:
                    self._traceback = spawned_from(self._traceback, *self._spawned)

    def cancel(self) -> bool:
        """Cancel it on purpose: what it raises now is no failure of the scope's."""
        self._noise = True
        return self.task.cancel()

    def at_step(self, step: int) -> None:
        """`Scope.at_step`, said by this child's own task, which it need not look up."""
        self.step = step
        if step > self._scope._cut:
            self._noise = True
            raise asyncio.CancelledError(f"kiln: a step before {step} failed")


class Scope:
    """A nursery of tasks: ``async with Scope() as scope: scope.spawn(coro)``.

    Children still running when the body finishes are awaited, and whatever
    fails is raised from ``__aexit__`` as itself. A scope is used once. In
    ``Scope()`` the first failure wins and cancels every other participant
    (TaskGroup's rule); in ``Scope(ordered=True)`` the failure at the lowest
    step wins, cancels what is at a later step and waits for the rest. A
    child that raises CancelledError of its own, cancelled by no one here,
    fails at its step, as the sequential run would stop there.

    In an ordered scope a child's step is ``spawn(coro, step=n)``, else the
    number of children spawned before it; the body is after all of them until
    it says otherwise with `at_step`, or from the start with
    ``Scope(ordered=True, step=n)``. A child or the body moves on with
    ``scope.at_step(n)``: a flow's task says so between its steps, and a task
    that moves past the step of a known failure is cancelled there. The body
    may run a later step before earlier ones of its own inside
    ``with scope.ahead(n):``, which holds that step's failure until the body
    moves past `n`.

    Unlike the TaskGroup of Python 3.11, a child failing after the body has
    finished does not cancel the task that runs the scope. (TaskGroup does, and
    never takes the request back: `cancelling()` stays at 1, and an enclosing
    `asyncio.timeout` then raises CancelledError instead of TimeoutError.)
    """

    __slots__ = (
        "_body_noise",
        "_body_step",
        "_cancelling",
        "_children",
        "_cut",
        "_entered",
        "_error",
        "_error_step",
        "_error_traceback",
        "_exiting",
        "_interrupt",
        "_loop",
        "_ordered",
        "_parent",
        "_spawned",
        "_stopping_parent",
        "_waiter",
        "_waiting",
        "outer",
    )

    # Set by __aenter__; spawn() checks `_entered` before it touches them.
    _loop: asyncio.AbstractEventLoop
    _parent: asyncio.Task[Any]
    _cancelling: int  # the parent's cancel requests already pending on entry
    outer: Scope | None  # the scope the parent runs this one inside (kiln.outside)

    def __init__(self, *, ordered: bool = False, step: int | None = None) -> None:
        if step is not None and not ordered:
            raise TypeError("Scope(step=...) needs ordered=True")
        self._ordered = ordered
        self._children: dict[asyncio.Task[Any], Child[Any]] = {}
        # The child each waiter awaits (None: code that runs outside any task).
        self._waiting: dict[asyncio.Task[Any] | None, Child[Any]] = {}
        self._spawned = 0
        # Where the body is (`at_step`): after all its children until it says.
        self._body_step = (_AFTER_ALL if step is None else step) if ordered else 0.0
        self._body_noise = False  # the scope stopped the body: what it raises is noise
        self._error: BaseException | None = None  # the failure that wins so far
        self._error_step = _AFTER_ALL
        self._error_traceback: TracebackType | None = None  # where it was raised
        self._interrupt: BaseException | None = None  # KeyboardInterrupt, SystemExit
        self._cut = _AFTER_ALL  # participants at a later step are cancelled
        self._waiter: asyncio.Future[None] | None = None
        self._entered = False
        self._exiting = False
        self._stopping_parent = False  # we asked the parent to stop its body

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(
                "a Scope is used once; create a new Scope for each async with"
            )
        parent = asyncio.current_task()
        if parent is None:
            raise RuntimeError("a Scope must be entered inside an asyncio task")
        self._loop = parent.get_loop()
        self._parent = parent
        self._cancelling = parent.cancelling()
        self._entered = True
        self.outer = opened(self, parent)
        return self

    def spawn(
        self,
        awaitable: Awaitable[T],
        *,
        step: int | None = None,
        context: contextvars.Context | None = None,
        traced: bool = True,
    ) -> Child[T]:
        """Start `awaitable` as a child task of this scope and return its handle:
        a coroutine as it is, any other awaitable (a node's call through the
        user's decorator may return a Future) awaited by one.

        `step` (ordered scopes only): the child's place in the sequential run;
        `context`: the task's, instead of a copy of the current one; `traced`:
        whether the child's failure shows the line that spawned it (a fan-out's
        elements, spawned by the runtime by the thousand, do without).
        A child whose step is past a failure already known is created cancelled
        (it never runs, and Python does not warn that it was never awaited).
        """
        coro = as_coroutine(awaitable)
        if not self._entered or (self._exiting and not self._children):
            coro.close()
            raise RuntimeError(
                "Scope.spawn() works inside the async with block (or while the "
                "scope waits for its children)"
            )
        if step is not None and not self._ordered:
            coro.close()
            raise TypeError("spawn(step=...) needs a Scope(ordered=True)")
        place = float(self._spawned if step is None else step) if self._ordered else 0.0
        self._spawned += 1
        task = ChildTask(coro, self, self._loop, context)
        caller = sys._getframe(1) if traced else None
        child = Child(self, task, place, caller and (caller, caller.f_lasti))
        self._children[task] = child
        task.add_done_callback(self._on_done)
        if place > self._cut:
            child._noise = True
            task.cancel()
        return child

    def at_step(self, step: int) -> None:
        """Say that the calling child, or the body, has moved on to `step`.

        Raises CancelledError when a failure at an earlier step is known: the
        sequential run would never have got here.
        """
        if not self._ordered:
            raise TypeError("at_step() needs a Scope(ordered=True)")
        task = asyncio.current_task(self._loop)
        child = self._children.get(task) if task is not None else None
        if child is not None:
            child.at_step(step)
        elif task is self._parent and not self._exiting:
            self._body_step = step
            if step > self._cut:
                self._body_noise = True
                raise asyncio.CancelledError(f"kiln: a step before {step} failed")
        else:
            raise RuntimeError("at_step() is called by a scope's body or its children")

    def child(self) -> Child[Any]:
        """The calling child's handle: a child that says many steps says them to it."""
        task = asyncio.current_task(self._loop)
        if not self._ordered or task not in self._children:
            raise RuntimeError("child() is called by a child of an ordered scope")
        return self._children[task]

    def ahead(self, step: int) -> Ahead:
        """A context for the body to run its step `step` before earlier ones.

        The body first tells `at_step` the earliest step it still has to run.
        An exception inside is the body's failure at `step`: held, not raised,
        while the body runs its earlier steps (one of which may fail first and
        win), and raised when the body moves past `step` or leaves the scope.
        Raised as it would be without the context while the scope is stopping
        the body, and for cancellation, KeyboardInterrupt and SystemExit.
        """
        if not self._ordered:
            raise TypeError("ahead() needs a Scope(ordered=True)")
        return Ahead(self, step)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Typed None, not bool: a scope never swallows an exception, and mypy
        # must know it, or a `return` inside the block leaves the function with
        # a "missing return statement" error.
        self._exiting = True
        closed(self._parent, self.outer)  # a cancellation heard now: the loop below
        if self._stopping_parent:
            # We cancelled the parent to stop its body: take our request back.
            self._stopping_parent = False
            self._parent.uncancel()
        cancellation = None
        if self._parent_cancelled():
            # Someone outside asked the task running the scope to stop: whatever
            # the body ended with (a node swallowed the CancelledError, or raised
            # while unwinding), the caller gets its cancellation.
            cancellation = as_cancellation(exc)
            self._cancel_after(_EVERYTHING)
            if exc is not None:
                self._failed(exc, self._body_step, noise=True)  # an interrupt counts
        elif exc is not None:
            noise = self._body_noise or exc is self._error
            self._failed(exc, self._body_step, noise=noise)
        while self._children:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError as cancelled:
                # The task running the scope is being cancelled from outside.
                cancellation = cancelled
                self._cancel_after(_EVERYTHING)
            self._waiter = None
        error = self._interrupt or cancellation or self._error
        if error is not None and error is self._error:
            error.__traceback__ = self._error_traceback  # another awaiter's, else
        self._interrupt = self._error = None  # exceptions hold frames: let them go
        self._error_traceback = None
        if error is not None and error is not exc:
            raise_as_is(error)
        # Nothing to raise, or the body's own exception, which Python re-raises.

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        child = self._children.pop(task)
        if not self._children and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if not task.cancelled() and (error := task.exception()) is not None:
            child._keep_frames()
            self._failed(
                error.with_traceback(child._traceback), child.step, noise=child._noise
            )
        elif task.cancelled() and not child._noise and not self._parent_cancelled():
            self._failed(cancellation_of(task), child.step, noise=False)
        child._spawned = None  # the spawning frame holds the child's handle: part them
        # Before the waiters wake (their callbacks come after this one): the
        # ones the scope stopped while they waited for this child stop now.
        for waiter in child._then_stop or ():
            if self._waiting.get(waiter) is child:
                self._cancel(waiter)

    def heard_cancel(self, through: asyncio.Task[Any] | None = None) -> None:
        """The body heard a cancellation: one from outside stops every child now.

        `through`: the child it reached, which asyncio cancels as it cancels the
        body awaiting it; a child's own timeout cancels it too, while the body
        awaits something else, and that is no news to the scope.
        """
        if through is not None:
            awaited = self._waiting.get(self._parent)
            if awaited is None or awaited.task is not through:
                return
        if self._parent.cancelling() > self._cancelling + self._stopping_parent:
            self._cancel_after(_EVERYTHING)

    def _parent_cancelled(self) -> bool:
        """Whether someone outside asked the task running the scope to stop."""
        return self._parent.cancelling() > self._cancelling

    def _failed(self, error: BaseException, step: float, *, noise: bool) -> None:
        """Account for a failure at `step`; cancel what it makes pointless."""
        if isinstance(error, KeyboardInterrupt | SystemExit):
            self._interrupt = self._interrupt or error
            self._cancel_after(_EVERYTHING)
            return
        if noise:
            return
        if self._error is None or (self._ordered and step < self._error_step):
            self._error, self._error_step = error, step
            self._error_traceback = error.__traceback__
        self._cancel_after(step if self._ordered else _EVERYTHING)

    def _cancel_after(self, step: float) -> None:
        """Cancel every participant at a step after `step`, once."""
        if step >= self._cut:
            return
        self._cut = step
        stopped = [c for c in self._children.values() if c.step > step and not c._noise]
        for child in stopped:
            child._noise = True
        for child in stopped:
            self._stop(child.task)
        if self._body_step > step and not self._exiting and not self._body_noise:
            # Stop the body at its current await; __aexit__ takes the request back.
            self._body_noise = True
            self._stop(self._parent)

    def _stop(self, task: asyncio.Task[Any]) -> None:
        """Cancel `task`, or, while it awaits a child that goes on, once that is done.

        A cancellation passes down a chain of awaits: the body awaiting a
        stopped child that awaits one that goes on would cancel that one too.
        So the first child down the chain that goes on decides.
        """
        awaited = self._waiting.get(task)
        while awaited is not None and awaited._noise and awaited.task is not task:
            awaited = self._waiting.get(awaited.task)
        if awaited is not None and not awaited._noise:
            awaited._then_stop = [*(awaited._then_stop or ()), task]
        else:
            self._cancel(task)

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        if task is not self._parent:
            task.cancel()
        elif self._parent.cancelling() <= self._cancelling and not self._exiting:
            # Not a body already being cancelled from outside: a second request
            # would cut short the cleanup it is running.
            self._stopping_parent = True
            self._parent.cancel()
