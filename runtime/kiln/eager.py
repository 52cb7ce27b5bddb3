"""A fan-out's element started in the caller's task, and awaited from where it waits.

`kiln.gather` starts the elements of an unbounded fan-out as Python 3.12's
eager tasks do (Python 3.11 has none): one coroutine in the caller's task
awaits them one after another, and an element that finishes there never
becomes a task. Once an element waits, that coroutine goes on in the same
task, through `Started`, which yields what it waits for and forwards every
resumption to it, and finishes that element. Not in a task made for it: the
element has seen the caller's task as its own (`asyncio.timeout` and
`kiln.Scope` hold the task current when they are entered), and only that
task may go on running it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar, cast, final

from kiln.outside import heard_cancel

__all__ = ["Started"]

T = TypeVar("T")


@final
class Started(Generic[T]):
    """A coroutine started elsewhere, awaited from where it first waits.

    `waiting` is what the coroutine yielded when it was started, which this
    yields to the task in its turn; each resumption runs in the element's
    own `context`, as a task's steps run in the task's.
    """

    __slots__ = ("_context", "_coro", "_waiting")

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        waiting: object,
        context: contextvars.Context,
    ) -> None:
        self._coro = coro
        self._waiting = waiting
        self._context = context

    def __await__(self) -> Generator[Any, Any, T]:
        coro, context, waiting = self._coro, self._context, self._waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                context.run(coro.close)
                raise
            except BaseException as error:  # thrown in: a cancellation, passed on
                try:
                    waiting = context.run(coro.throw, error)
                except StopIteration as done:
                    return cast(T, done.value)
                finally:
                    if isinstance(error, asyncio.CancelledError):
                        # Heard once the element has had it, not once it has
                        # unwound: one its own timeout asked for (entered in
                        # this task) and took back is no news to the other
                        # elements; one from outside stops them now.
                        heard_cancel(asyncio.current_task())
                continue
            try:
                waiting = context.run(coro.send, sent)
            except StopIteration as done:
                return cast(T, done.value)

    def abandon(self) -> None:
        """Cancel the element where it waits, for a fan-out that cannot wait for it."""
        coro = self._coro
        try:
            self._context.run(coro.throw, asyncio.CancelledError())
        except BaseException:  # it ended: what it raised on the way out is noise
            return
        coro.close()  # it waits again, cancelled: nothing will resume it
