"""`closing` and `aclosing`: a loop over a stream closes the stream however it ends.

A compiled flow that iterates a stream node (``async for t in tokens(n)``)
wraps the loop in one of these, so that a ``break``, a ``return`` or an error
in the loop's body closes the producer at once, running its ``finally``,
instead of whenever the garbage collector gets to it. Unlike their namesakes
in `contextlib`, they accept any iterable: one without ``close``/``aclose``
(a plain iterator a node returned) has nothing to close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

__all__ = ["aclosing", "closing"]


@contextmanager
def closing(stream: object) -> Iterator[None]:
    """Call ``stream.close()`` when the block ends, if the stream has one."""
    try:
        yield
    finally:
        close = getattr(stream, "close", None)
        if callable(close):
            close()


@asynccontextmanager
async def aclosing(stream: object) -> AsyncIterator[None]:
    """Await ``stream.aclose()`` when the block ends, if the stream has one."""
    try:
        yield
    finally:
        aclose = getattr(stream, "aclose", None)
        if callable(aclose):
            await aclose()
