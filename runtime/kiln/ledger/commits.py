"""Waiting for the writer's commit: on an event loop, or on a blocked thread.

The writer thread (`writer`) calls a row's `Settle` once the row is on disk,
or with the error that kept it off. A caller on an event loop awaits a future
of its loop (`on_loop`); a sync caller blocks until its `Blocking` is settled.
Either way the caller goes on only once its row is committed, and a failed
commit raises in the caller.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from contextlib import suppress
from functools import partial
from typing import final

from kiln.ledger.writer import Settle

__all__ = ["Blocking", "on_loop"]


def on_loop() -> tuple[asyncio.Future[None], Settle]:
    """A future of the running loop for a commit, and the writer's way to settle it."""
    loop = asyncio.get_running_loop()
    settled = _SETTLED.get(loop)
    if settled is None:
        settled = _SETTLED[loop] = _Settled(loop)
    committed = loop.create_future()
    return committed, partial(settled.settle, committed)


@final
class Blocking:
    """A commit a thread waits for: settled on the writer thread, waited for on its own."""

    __slots__ = ("_done", "_failures")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._failures: list[BaseException] = []

    def settle(self, error: BaseException | None) -> None:  # on the writer thread
        if error is not None:
            self._failures.append(error)
        self._done.set()

    def wait(self) -> None:
        """Block until the row is committed; raise what kept it off the disk."""
        self._done.wait()
        if self._failures:
            raise self._failures[0]


@final
class _Settled:
    """The commits the writer settled for one event loop, handed back to it in batches.

    One wake-up of the loop per batch, not per commit: a fan-out of a thousand
    cached or journaled calls would otherwise write a thousand bytes to the
    loop's self-pipe, and the loop poll as often.
    """

    __slots__ = ("__weakref__", "_lock", "_loop", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[None], BaseException | None]] = []

    def settle(
        self, committed: asyncio.Future[None], error: BaseException | None
    ) -> None:
        """On the writer thread: `committed` is on disk (or failed with `error`)."""
        with self._lock:
            first = not self._pending
            self._pending.append((committed, error))
        if first:
            with suppress(RuntimeError):  # the loop is closed: nobody waits for these
                self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for committed, error in pending:
            if committed.done():  # its caller was cancelled meanwhile
                continue
            if error is None:
                committed.set_result(None)
            else:
                committed.set_exception(error)


_SETTLED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Settled] = (
    weakref.WeakKeyDictionary()
)
