"""The calls of stream nodes in an observed run: iterators that report their event.

A stream node's call makes a generator; the node's code runs as the flow
iterates it, so its event starts with the first item asked for and ends when
the stream is exhausted, fails, is cancelled, or is closed by the loop that
iterates it: after a ``break`` the call is COMPLETED (the node did what it was
asked), after an exception in the loop CANCELLED (`kiln.closers` says which).
A stream closed before its first item never ran: CANCELLED.

Streams take no capacity: a flow holds a stream open while its loop body
calls other nodes, which would wait forever for a slot the stream held.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol, Self, final

from kiln.events import NodeEvent

__all__ = ["ObservedAsyncStream", "ObservedStream"]


class Reporting(Protocol):
    """What a stream needs of its run: to say that its call started and ended."""

    def started(self, event: NodeEvent | None, attempt: int) -> None: ...

    def finished(
        self, event: NodeEvent | None, error: BaseException | None = None
    ) -> None: ...


class _Reported:
    """The event of one stream call, started once and ended once."""

    __slots__ = ("_begun", "_ended", "_event", "_run")

    def __init__(self, run: Reporting, event: NodeEvent) -> None:
        self._run = run
        self._event = event
        self._begun = False
        self._ended = False

    def _begin(self) -> None:
        if not self._begun:
            self._begun = True
            try:
                self._run.started(self._event, 1)
            except BaseException:
                self._ended = (
                    True  # by the run's on_event, which raised (`hook_failed`)
                )
                raise

    def interrupt(self) -> None:
        """The loop over the stream ended with an exception: the call was cut short."""
        self._end(asyncio.CancelledError("the loop over the stream ended early"))

    def _end(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        if not self._begun and error is None:
            error = asyncio.CancelledError("closed before its first item")
        self._run.finished(self._event, error)


@final
class ObservedStream(_Reported):
    """A sync stream node's generator, reporting its call's event."""

    __slots__ = ("_stream",)

    def __init__(self, run: Reporting, event: NodeEvent, stream: Iterator[Any]) -> None:
        super().__init__(run, event)
        self._stream = stream

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Any:
        self._begin()
        try:
            return next(self._stream)
        except StopIteration:
            self._end(None)
            raise
        except BaseException as error:
            self._end(error)
            raise

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        try:
            if callable(close):
                close()
        except BaseException as error:
            self._end(error)
            raise
        self._end(None)


@final
class ObservedAsyncStream(_Reported):
    """An async stream node's generator, reporting its call's event."""

    __slots__ = ("_stream",)

    def __init__(
        self, run: Reporting, event: NodeEvent, stream: AsyncIterator[Any]
    ) -> None:
        super().__init__(run, event)
        self._stream = stream

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        self._begin()
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as error:
            self._end(error)
            raise

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        try:
            if callable(aclose):
                await aclose()
        except BaseException as error:
            self._end(error)
            raise
        self._end(None)
