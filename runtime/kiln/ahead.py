"""`Scope.ahead`'s context: a step the body runs before earlier ones of its own.

Its failure is held while the body runs the earlier steps, one of which may
fail first and win (see `Scope.ahead`).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, final

if TYPE_CHECKING:  # the scope imports this module: a cycle at run time
    from kiln.scope import Scope

__all__ = ["Ahead"]


@final
class Ahead:
    """`Scope.ahead`'s context: the body's failure at a step it runs early, held."""

    __slots__ = ("_scope", "_step")

    def __init__(self, scope: Scope, step: int) -> None:
        self._scope = scope
        self._step = step

    def __enter__(self) -> None:
        scope = self._scope
        if asyncio.current_task(scope._loop) is not scope._parent or scope._exiting:
            raise RuntimeError("ahead() is entered by a scope's body")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        # Exception, not BaseException: cancellation and interrupts go on out.
        scope = self._scope
        if not isinstance(exc, Exception) or scope._body_noise:
            return False
        scope._failed(exc, self._step, noise=False)
        return True
