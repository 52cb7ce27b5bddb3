"""Single flight: identical calls in flight at once run once and share the outcome.

The first caller of a key leads: it registers a `Flight` and computes. Every
caller of the same key that arrives before the flight lands joins it and
waits, on its own event loop (an ``await``) or its own thread (a blocking
wait), whichever thread and loop the leader runs on::

    flight, leading = flights.join(key)
    if leading:
        ...compute, store...; flights.land(key, flight, Landed(text))
    else:
        outcome = await flights.wait(flight)      # or flights.wait_sync(flight)

Landing takes the flight out of the registry and wakes every waiter: those on
other loops through ``call_soon_threadsafe``, blocked threads through a
`threading.Event`. One `threading.Lock` guards the registry and every
flight's waiters, so a waiter that joins while the flight lands either sees
the outcome at once or is woken by the landing, never neither.

What waiters get, by outcome:

- `Landed`: the result's stored text, which each waiter decodes into a value
  of its own (a waiter never shares a mutable result with another);
- `Shared`: a result that could not be stored (``uncacheable="run"``): the
  leader's object itself;
- `Failed`: the exception the computation raised, the same object for all;
- `ABANDONED`: the leader was cancelled (or interrupted) before it had a
  result. Waiters then start over, and one of them leads a new flight: a
  cancellation is the leader's own business, not its waiters'.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Final, final

__all__ = ["ABANDONED", "Failed", "Flight", "Flights", "Landed", "Outcome", "Shared"]


@final
@dataclass(frozen=True, slots=True)
class Landed:
    """The result was stored: its text, for each waiter to decode."""

    text: str


@final
@dataclass(frozen=True, slots=True)
class Shared:
    """A result that is not stored, handed to the waiters as it is."""

    value: object


@final
@dataclass(frozen=True, slots=True)
class Failed:
    """The computation (or storing its result) raised `error`."""

    error: BaseException


@final
class _Abandoned:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABANDONED"


ABANDONED: Final = _Abandoned()
Outcome = Landed | Shared | Failed | _Abandoned


@final
class Flight:
    """One computation of a key in progress, and who waits for it."""

    __slots__ = ("blocked", "leader", "outcome", "waiters")

    def __init__(self, leader: int) -> None:
        self.leader = leader  # the leading thread's ident
        self.outcome: Outcome | None = None
        self.waiters: list[
            tuple[asyncio.AbstractEventLoop, asyncio.Future[Outcome]]
        ] = []
        self.blocked: threading.Event | None = None  # made by the first blocking waiter


@final
class Flights:
    """The flights of one ledger, shared by every thread and event loop of the process."""

    __slots__ = ("_lock", "_open")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[bytes, Flight] = {}

    def join(self, key: bytes) -> tuple[Flight, bool]:
        """The flight of `key`, and True if the caller leads it (it was not in flight)."""
        with self._lock:
            flight = self._open.get(key)
            if flight is not None:
                return flight, False
            flight = self._open[key] = Flight(threading.get_ident())
            return flight, True

    def land(self, key: bytes, flight: Flight, outcome: Outcome) -> None:
        """End `flight` with `outcome`: out of the registry, every waiter woken."""
        with self._lock:
            if self._open.get(key) is flight:
                del self._open[key]
            flight.outcome = outcome
            waiters, flight.waiters = flight.waiters, []
            blocked = flight.blocked
        for loop, future in waiters:
            with suppress(RuntimeError):  # that loop is closed: nobody waits there
                loop.call_soon_threadsafe(_settle, future, outcome)
        if blocked is not None:
            blocked.set()

    async def wait(self, flight: Flight) -> Outcome:
        """The outcome of `flight`, awaited on the running loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if flight.outcome is not None:
                return flight.outcome
            future: asyncio.Future[Outcome] = loop.create_future()
            flight.waiters.append((loop, future))
        try:
            return await future
        finally:
            if not future.done() or future.cancelled():
                with self._lock, suppress(ValueError):  # already woken
                    flight.waiters.remove((loop, future))

    def wait_sync(self, flight: Flight) -> Outcome:
        """The outcome of `flight`, waited for by blocking this thread."""
        with self._lock:
            if flight.outcome is not None:
                return flight.outcome
            if flight.blocked is None:
                flight.blocked = threading.Event()
            blocked = flight.blocked
        blocked.wait()
        assert flight.outcome is not None  # set under the lock before the event
        return flight.outcome

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():  # else the waiter was cancelled meanwhile
        future.set_result(outcome)
