"""`closing` and `aclosing`: a loop over a stream closes the stream however it ends.

A compiled flow that iterates a stream node (``async for t in tokens(n)``)
wraps the loop in one of these, so that a ``break``, a ``return`` or an error
in the loop's body closes the producer at once, running its ``finally``,
instead of whenever the garbage collector gets to it. Unlike their namesakes
in `contextlib`, they accept any iterable: one without ``close``/``aclose``
(a plain iterator a node returned) has nothing to close. A loop that ends
with an exception cuts an observed stream's call short: CANCELLED, where a
``break`` or a ``return`` leaves it COMPLETED.

When the loop ends with an exception (a node's failure, the run's
cancellation, Ctrl-C), that exception is what leaves: a stream that fails to
close is reported (to the event loop's exception handler, or to the ``kiln``
logger for a sync loop), as Python reports a generator that fails as it is
finalized, and never raised in its place.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from kiln.run import close_after_failure
from kiln.stream_calls import ObservedAsyncStream, ObservedStream

__all__ = ["aclosing", "closing"]


@contextmanager
def closing(stream: object) -> Iterator[None]:
    """Call ``stream.close()`` when the block ends, if the stream has one."""
    try:
        yield
    except GeneratorExit:  # the flow's own stream was closed: as a `break` would
        _close(stream)
        raise
    except BaseException:
        _cut_short(stream)
        try:
            _close(stream)
        except Exception:  # the exception in flight is the one that leaves
            logging.getLogger("kiln").exception(
                "kiln: closing %r after the loop over it failed raised", stream
            )
        raise
    _close(stream)


@asynccontextmanager
async def aclosing(stream: object) -> AsyncIterator[None]:
    """Await ``stream.aclose()`` when the block ends, if the stream has one."""
    try:
        yield
    except GeneratorExit:  # the flow's own stream was closed: as a `break` would
        await _aclose(stream)
        raise
    except BaseException:
        _cut_short(stream)
        await close_after_failure(stream)
        raise
    await _aclose(stream)


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


async def _aclose(stream: object) -> None:
    aclose = getattr(stream, "aclose", None)
    if callable(aclose):
        await aclose()


def _cut_short(stream: object) -> None:
    """The loop over `stream` ended with an exception: an observed call was cut short."""
    if isinstance(stream, ObservedStream | ObservedAsyncStream):
        stream.interrupt()
