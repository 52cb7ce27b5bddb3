"""The cache lookup of one call, the same for `Ledger.call` and `Ledger.call_sync`.

A `Lookup` is one call of a cached node on its way through the ledger. Its
key is made first (`keys.call_key`); then each turn of `next` answers the
call from the file, or from an identical call in flight (`flights`), or
takes the lead, or names the flight to wait for. The two callers differ only
in how they wait for the commit, and in that only an async caller waits for
an identical call in flight::

    lookup = Lookup(ledger, node, source, shape, run, uncacheable)
    flight = lookup.begin(args, kwargs)                 # the key (None: uncached)
    while flight is not None:                           # never, for a sync caller
        flight = lookup.next(await flights.wait(flight))
    if lookup.answered:
        return lookup.value, True
    value = <compute>                                   # lookup.failed(error) if it raises
    text = lookup.storable(value)                       # None: returned unstored
    lookup.store(text, settle); <wait for the commit>
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Final, Literal, final

from kiln.errors import RefusedEntry, UncacheableValue
from kiln.ledger.codec import Undecodable
from kiln.ledger.file import checksum
from kiln.ledger.flights import (
    ABANDONED,
    Failed,
    Flight,
    Landed,
    Outcome,
    Shared,
)
from kiln.ledger.keys import Shape, call_key, result_text
from kiln.ledger.problems import problem
from kiln.ledger.writer import Settle

if TYPE_CHECKING:
    from kiln.ledger.store import Ledger

__all__ = ["Lookup", "Refused", "Uncacheable"]

Uncacheable = Literal["raise", "run"]
# By node, source and Shape (the classes it may rebuild): the refusal of a result.
Refused = dict[tuple[str, str, Shape], UncacheableValue]


@final
class _Missing:
    __slots__ = ()


_MISSING: Final = _Missing()


@final
class Lookup:
    """One call of a cached node: its key, and what answers it, or the flight it leads.

    `blocking` is a sync caller's, whose thread waits for the commit: it
    computes rather than wait for an identical call in flight (`flights`).
    """

    __slots__ = (
        "answered",
        "blocking",
        "flight",
        "key",
        "ledger",
        "node",
        "run",
        "shape",
        "source",
        "uncacheable",
        "value",
    )

    def __init__(
        self,
        ledger: Ledger,
        node: str,
        source: str,
        shape: Shape,
        run: str,
        uncacheable: Uncacheable,
        blocking: bool = False,
    ) -> None:
        self.ledger, self.node, self.source, self.shape = ledger, node, source, shape
        self.run, self.uncacheable, self.blocking = run, uncacheable, blocking
        self.key: bytes | None = None
        self.flight: Flight | None = None  # the flight this call leads
        self.answered = False  # by the ledger, or an identical call in flight
        self.value: object = None  # the answer

    def begin(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Flight | None:
        """Make the call's key (None: it runs uncached), and take the lookup's first turn.

        The first call of a ledger opens its file, before anything reads it.
        """
        try:
            self.key = call_key(self.node, self.source, self.shape, args, kwargs)
        except UncacheableValue:
            if self.uncacheable == "raise":
                raise  # else it runs uncached: arguments `fn` does not take, too
        else:
            self.ledger.writer()
        return self.next()

    def next(self, outcome: Outcome | None = None) -> Flight | None:
        """One turn of the lookup: the flight to wait for, or None once the call is settled.

        `outcome` is that of the flight the last turn named. Settled: answered
        (a hit), or this call computes, leading `flight` (or uncached).
        """
        key = self.key
        if key is None:
            self._tally(hit=False)
            return None
        found = _MISSING if outcome is None else self._shared_value(outcome)
        if found is _MISSING:
            found = self._found(key)
        if found is not _MISSING:
            self.answered, self.value = True, found
            self._tally(hit=True)
            return None
        if self.blocking:
            # A thread that blocks waits for no flight (`flights`): one of its own
            # loop would wait for itself, one of another loop for a loop that may
            # be blocked on this thread. Storing twice writes the same row twice.
            flight, leading = Flight(None), True
        else:
            flight, leading = self.ledger.flights.join(key)
        if not leading:
            return flight
        self.flight = flight
        self._tally(hit=False)
        if self.uncacheable == "raise":
            self._refuse_again(key, flight)
        return None

    def failed(self, error: BaseException) -> None:
        """The computation raised `error`: its waiters share it, or start over."""
        if self.key is not None and self.flight is not None:
            outcome = Failed(error) if isinstance(error, Exception) else ABANDONED
            self.ledger.flights.land(self.key, self.flight, outcome)

    def storable(self, value: object) -> str | None:
        """The text to store for `value`; None to return it unstored.

        Lands the flight unless there is text to store.
        """
        key, flight = self.key, self.flight
        if key is None or flight is None:
            return None  # uncached
        node, source, shape = self.node, self.source, self.shape
        try:
            return result_text(node, shape, value)
        except UncacheableValue as failure:
            if self.uncacheable == "run":
                self.ledger.flights.land(key, flight, Shared(value))
                return None
            self.ledger.flights.land(key, flight, Failed(failure))
            self.ledger.refused[node, source, shape] = failure
            raise

    def store(self, text: str, settle: Settle) -> None:
        """Hand `text` to the writer; once it is committed, land the flight, then `settle`."""
        key, flight = self.key, self.flight
        assert key is not None, "a call without a key is not stored"
        assert flight is not None, "a call is stored by the one that leads its flight"

        def landed(error: BaseException | None) -> None:  # on the writer thread
            self.ledger.flights.land(
                key, flight, Landed(text) if error is None else Failed(error)
            )
            settle(error)

        while not self.ledger.writer().store(key, self.node, self.source, text, landed):
            pass  # closed meanwhile: the next writer() starts another

    # --- keys and values ---------------------------------------------------------------

    def _refuse_again(self, key: bytes, flight: Flight) -> None:
        """Refuse a call, before it runs, of a node one of whose results was refused.

        Its annotation could not tell (`Any`, a base class): the first result
        told, and a second call would only pay for a value it cannot store.
        """
        node = self.node
        earlier = self.ledger.refused.get((node, self.source, self.shape))
        if earlier is None:
            return
        error = UncacheableValue(
            f"{earlier} (an earlier call's; this call of {node!r} did not run: with "
            "cache=True each of its calls would pay for a result the ledger refuses)",
            node=earlier.node,
            what=earlier.what,
            kind=earlier.kind,
        )
        self.ledger.flights.land(key, flight, Failed(error))
        raise error

    def _found(self, key: bytes) -> object:
        """The stored value of `key`, or _MISSING: none, or one the ledger refuses."""
        try:
            row = (
                self.ledger.reader()
                .execute(
                    # As bytes: a damaged value may not even be UTF-8.
                    "SELECT CAST(value AS BLOB), checksum FROM entries WHERE key = ?",
                    (key,),
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            raise problem(self.ledger.path, error) from error
        if row is None:
            return _MISSING
        value, stored = row
        if stored != checksum(key, value):
            self._refuse(key, "its checksum fails: the file was damaged or edited")
            return _MISSING
        try:
            return self.shape.decode(value.decode("ascii"))
        except UnicodeDecodeError:
            self._refuse(key, "its value is not the ASCII text kiln writes")
        except Undecodable as error:
            self._refuse(key, f"it is not a value the node may return: {error}")
        return _MISSING

    def _refuse(self, key: bytes, why: str) -> None:
        node = self.node
        warnings.warn(
            RefusedEntry(
                f"the ledger {self.ledger.path} holds an entry for node {node!r} (key "
                f"{key.hex()[:16]}...) that it will not answer with, since {why}; the "
                "call runs, and its result replaces the entry",
                node=node,
                key=key,
            ),
            stacklevel=1,
        )

    def _shared_value(self, outcome: Outcome) -> object:
        """What a waiter of a flight returns; _MISSING to start over (the leader left)."""
        if isinstance(outcome, Failed):
            outcome.raised()
        if isinstance(outcome, Shared):
            return outcome.value
        if isinstance(outcome, Landed):
            # Undecodable: this waiter's fn is another, which computes for itself.
            with suppress(Undecodable):
                return self.shape.decode(outcome.text)
        return _MISSING

    def _tally(self, *, hit: bool) -> None:
        if self.run:
            while not self.ledger.writer().tally(self.run, hit=hit):
                pass  # closed meanwhile: the next writer() starts another writer
