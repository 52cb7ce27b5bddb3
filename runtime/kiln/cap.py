"""A run's concurrency cap: `asyncio.Semaphore`'s admission, taken without awaiting.

``@flow(concurrency=100)`` caps the node calls in flight in one run, and
every call of a capped fan-out passes the cap: a million calls, each of which
would otherwise make a coroutine (`Semaphore.acquire`) to learn that a slot
is free. `Cap.take` answers that at once; only a call that must wait awaits
`Cap.acquire`::

    if not cap.take():
        await cap.acquire()
    try:
        ...
    finally:
        cap.release()

Admission is the Semaphore's of Python 3.11, waiters in FIFO order: a slot
freed while calls wait goes to the first of them, and `take` refuses a
newcomer while a waiter that has not been cancelled is in line. A run lives
in one event loop, so unlike a `Limit`'s gate (`kiln.processor.admission`)
a cap needs no lock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import final

__all__ = ["Cap"]


@final
class Cap:
    """At most `capacity` holders at once; `take()` or `await acquire()`, then `release()`."""

    __slots__ = ("_free", "waiting")

    def __init__(self, capacity: int) -> None:
        self._free = capacity
        # Who waits for a slot, first in line first (a cancelled one until it
        # leaves): a holder that would take its slot again at once sees here
        # whether it must hand it over instead.
        self.waiting: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Take a slot if one is free and no waiter is ahead; False: `acquire()` instead."""
        if self._free > 0 and (
            not self.waiting or all(w.cancelled() for w in self.waiting)
        ):
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot, behind every caller already waiting."""
        if self.take():
            return
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        try:
            try:
                await future
            finally:
                self.waiting.remove(future)
        except asyncio.CancelledError:
            if not future.cancelled():  # handed a slot as it was cancelled: pass it on
                self._free += 1
                self._wake_next()
            raise
        if self._free > 0:
            self._wake_next()

    def release(self) -> None:
        self._free += 1
        if self.waiting:
            self._wake_next()

    def _wake_next(self) -> None:
        for future in self.waiting:
            if not future.done():
                self._free -= 1
                future.set_result(None)
                return
