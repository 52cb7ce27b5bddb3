"""Single flight: identical calls in flight at once on one event loop run once.

The first caller of a key on a loop leads: it registers a `Flight` and
computes. Every caller of the same key on the same loop that arrives before
the flight lands joins it and awaits its outcome::

    flight, leading = flights.join(key)
    if leading:
        ...compute, store...; flights.land(key, flight, Landed(text))
    else:
        outcome = await flights.wait(flight)

A caller on another loop never waits for the flight: it leads one of its own
on its loop. Waiting across loops could wait forever, since the leader's loop
may be blocked on the waiter: a node that calls another compiled flow's sync
entry point blocks its loop while that flow runs on a worker thread's loop,
and a call there of a key the blocked loop has in flight would wait for a
leader that cannot go on. Computing twice only costs the call: both write the
same row. For the same reason a sync caller (``call_sync``, its thread
blocked) waits for no flight, and leads none that others could wait for.

Landing takes the flight out of the registry and wakes every waiter, through
``call_soon_threadsafe``: a flight may land on the ledger's writer thread.
One `threading.Lock` guards the registry, shared by every loop of the
process, and every flight's waiters, so a waiter that joins while the flight
lands either sees the outcome at once or is woken by the landing, never
neither.

What waiters get, by outcome:

- `Landed`: the result's stored text, which each waiter decodes into a value
  of its own (a waiter never shares a mutable result with another);
- `Shared`: a result that could not be stored (``uncacheable="run"``): the
  leader's object itself;
- `Failed`: the exception the computation raised, the same object for all,
  each waiter raising it from the leader's frames as it landed;
- `ABANDONED`: the leader was cancelled (or interrupted) before it had a
  result. Waiters then start over, and one of them leads a new flight: a
  cancellation is the leader's own business, not its waiters'.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Final, NoReturn, final

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
class Failed:
    """The computation (or storing its result) raised `error`.

    `traceback` is where it was raised, as it landed: each waiter raises the
    error from there, not from the frames the leader's caller added to the
    object since (a flow's note names the call whose frames it finds, `kiln.notes`).
    """

    __slots__ = ("error", "traceback")

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.traceback = error.__traceback__

    def raised(self) -> NoReturn:
        """Raise the error, the same object, from where it was raised as it landed."""
        raise self.error.with_traceback(self.traceback)


@final
class _Abandoned:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABANDONED"


ABANDONED: Final = _Abandoned()
Outcome = Landed | Shared | Failed | _Abandoned


@final
class Flight:
    """One computation of a key in progress, and who waits for it on the leader's loop.

    `loop` is None for a sync caller's computation, which nobody waits for.
    """

    __slots__ = ("loop", "outcome", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.outcome: Outcome | None = None
        self.waiters: list[asyncio.Future[Outcome]] = []


@final
class Flights:
    """The flights of one ledger, each on the event loop of the call that leads it."""

    __slots__ = ("_lock", "_open")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[asyncio.AbstractEventLoop, bytes], Flight] = {}

    def join(self, key: bytes) -> tuple[Flight, bool]:
        """The running loop's flight of `key`, and True if the caller leads it (a new one)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            flight = self._open.get((loop, key))
            if flight is not None:
                return flight, False
            flight = self._open[loop, key] = Flight(loop)
            return flight, True

    def land(self, key: bytes, flight: Flight, outcome: Outcome) -> None:
        """End `flight` with `outcome`: out of the registry, every waiter woken."""
        loop = flight.loop
        with self._lock:
            if loop is not None and self._open.get((loop, key)) is flight:
                del self._open[loop, key]
            flight.outcome = outcome
            waiters, flight.waiters = flight.waiters, []
        if loop is None or not waiters:
            return
        with suppress(RuntimeError):  # the loop is closed: nobody waits there
            loop.call_soon_threadsafe(_settle, waiters, outcome)

    async def wait(self, flight: Flight) -> Outcome:
        """The outcome of `flight`, a flight of the running loop."""
        loop = asyncio.get_running_loop()
        assert flight.loop is loop, "a flight is waited for on its own loop only"
        with self._lock:
            if flight.outcome is not None:
                return flight.outcome
            future: asyncio.Future[Outcome] = loop.create_future()
            flight.waiters.append(future)
        try:
            return await future
        finally:
            if not future.done() or future.cancelled():
                with self._lock, suppress(ValueError):  # already woken
                    flight.waiters.remove(future)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)


def _settle(waiters: list[asyncio.Future[Outcome]], outcome: Outcome) -> None:
    for future in waiters:
        if not future.done():  # else the waiter was cancelled meanwhile
            future.set_result(outcome)
