"""The ledger: the durable results of `cache=True` nodes, and the calls that use them.

A compiled flow hands every call of a cached node to its ledger::

    ledger = Ledger.at(path)                 # one per file per process; opened lazily
    value, hit = await ledger.call("summarize", "3f2a…", summarize, args, kwargs,
                                   compute, classes=(Summary,), run=run_id)
    value, hit = ledger.call_sync("load", "9b1c…", load, args, kwargs, compute, run=run_id)

The key is the node's name, the hash of its source (computed by the compiler
over the node and the project code it reaches: an edited node misses its old
results), and the text of its arguments bound to their parameters, so
``f(1)``, ``f(x=1)`` and a default of 1 are one key (`keys`; `codec`
writes the values). A hit decodes the stored result, rebuilding only the
`classes` the compiler found in the node's return annotation, and answers
with it only when it is of the annotated type and its row's checksum holds;
any other row is a `RefusedEntry` warning and a miss. A miss runs `compute`,
and returns once the result is committed by the writer thread
(`writer`): a process killed at any moment has lost no call that had
returned. A call that fails is not stored, so the next run retries it.
Both go through one `lookup.Lookup`, and differ only in how they wait: an
``await``, or the calling thread blocked (`commits` for the commit).

Identical calls in flight at once on one event loop run once (`flights`):
in one run and across the loop's runs; a call on another loop, or a sync
call, computes itself rather than wait for a loop that may be blocked on it.
`hit` is True when the call did not run `compute`: the ledger answered it,
or an identical call in flight did. If the caller computing a key is
cancelled, a waiting caller takes over and computes it itself.

A value that cannot be stored, or a result that would not come back as it
was returned, raises `UncacheableValue` (naming the node, the argument or
"its result", and the type), or with ``uncacheable="run"`` runs the call
without the cache (and returns, without storing, such a result).

The first call opens the file (`file.prepare`: a blocking moment,
once per process); reads use one connection per thread and, in WAL mode,
never wait for writers, so a hit never leaves the calling thread.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar, cast

from kiln.errors import LedgerError
from kiln.ledger.commits import Blocking, on_loop
from kiln.ledger.file import (
    LedgerStats,
    NodeEntries,
    RunHits,
    connect,
    delete_entries,
    prepare,
    read_stats,
)
from kiln.ledger.flights import Flights
from kiln.ledger.keys import shape_of
from kiln.ledger.lookup import Lookup, Refused, Uncacheable
from kiln.ledger.problems import problem
from kiln.ledger.writer import Settle, Writer, WriterClosed

__all__ = ["Ledger", "LedgerStats", "NodeEntries", "RunHits", "Uncacheable"]

R = TypeVar("R")
T = TypeVar("T")

DEFAULT_PATH: Final = Path(".kiln") / "ledger.db"


class Ledger:
    """One ledger file, shared by every flow of the process that uses it: get it with `at`."""

    _shared: ClassVar[dict[Path, Ledger]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def at(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        default: str | os.PathLike[str] | None = None,
    ) -> Ledger:
        """The process's ledger at `path`.

        Without a path: ``$KILN_LEDGER``, else `default` (a project's configured
        ledger), else ``.kiln/ledger.db``. Nothing is opened or created until
        the ledger is first used.
        """
        chosen = Path(
            path
            if path is not None
            else os.environ.get("KILN_LEDGER") or default or DEFAULT_PATH
        )
        resolved = chosen.expanduser().resolve()
        with cls._shared_lock:
            ledger = cls._shared.get(resolved)
            if ledger is None:
                ledger = cls._shared[resolved] = cls(resolved)
            return ledger

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open_lock = threading.Lock()
        self._writer: Writer | None = None
        self._flights = Flights()
        # By node, source and Shape (the classes it may rebuild): the refusal of a
        # result, so that no later call pays for one.
        self._refused: Refused = {}
        # This thread's connection (.reader), and the generation it belongs to:
        # close() bumps the generation, which makes every thread's reader stale.
        self._local = threading.local()
        self._generation = 0
        self._readers: list[sqlite3.Connection] = []

    def __repr__(self) -> str:
        return f"Ledger.at({str(self.path)!r})"

    @property
    def flights(self) -> Flights:
        """The calls of this ledger in flight, identical ones run once (`lookup`)."""
        return self._flights

    @property
    def refused(self) -> Refused:
        """The results this ledger refused, so that no later call pays for one (`lookup`)."""
        return self._refused

    # --- the calls compiled flows make -----------------------------------------------

    async def call(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        compute: Callable[[], Awaitable[R]],
        *,
        classes: tuple[object, ...] = (),
        run: str = "",
        uncacheable: Uncacheable = "raise",
    ) -> tuple[R, bool]:
        """The stored result of ``fn(*args, **kwargs)``, else `compute`'s, stored; and hit.

        `classes` are those a stored result may rebuild (the compiler lists them
        from the node's return annotation); `run` names the flow run in the hit
        statistics ("" counts nothing).
        """
        lookup = Lookup(self, node, source, shape_of(fn, classes), run, uncacheable)
        flight = lookup.begin(args, kwargs)
        while flight is not None:
            flight = lookup.next(await self._flights.wait(flight))
        if lookup.answered:
            return cast(R, lookup.value), True
        try:
            value = await compute()
        except BaseException as error:
            lookup.failed(error)
            raise
        text = lookup.storable(value)
        if text is not None:
            committed, settle = on_loop()
            lookup.store(text, settle)
            await committed
        return value, False

    def call_sync(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        compute: Callable[[], R],
        *,
        classes: tuple[object, ...] = (),
        run: str = "",
        uncacheable: Uncacheable = "raise",
    ) -> tuple[R, bool]:
        """`call` for a sync node: the calling thread waits for the commit.

        It never waits for an identical call in flight: it computes too (`flights`).
        """
        shape = shape_of(fn, classes)
        lookup = Lookup(self, node, source, shape, run, uncacheable, blocking=True)
        waiting = lookup.begin(args, kwargs)
        assert waiting is None, "a sync call waits for no flight (lookup)"
        if lookup.answered:
            return cast(R, lookup.value), True
        try:
            value = compute()
        except BaseException as error:
            lookup.failed(error)
            raise
        text = lookup.storable(value)
        if text is not None:
            commit = Blocking()
            lookup.store(text, commit.settle)
            commit.wait()
        return value, False

    # --- the file ----------------------------------------------------------------------

    def writer(self) -> Writer:
        """The writer thread of the file, started (and the file made) on first use."""
        writer = self._writer
        if writer is not None:
            return writer
        with self._open_lock:
            if self._writer is None:
                try:
                    prepare(self.path, create=True)
                except OSError as error:
                    raise problem(self.path, error) from error
                self._writer = Writer(self.path)
            return self._writer

    def reader(self) -> sqlite3.Connection:
        """This thread's connection to the file, for reads that never wait for writers."""
        local = self._local
        reader: sqlite3.Connection | None = getattr(local, "reader", None)
        if reader is None or local.generation != self._generation:
            try:
                reader = connect(self.path, reader=True)
            except sqlite3.Error as error:
                raise problem(self.path, error) from error
            local.reader, local.generation = reader, self._generation
            with self._open_lock:
                self._readers.append(reader)
        return reader

    def _run(
        self, work: Callable[[sqlite3.Connection], T], *, transaction: bool = True
    ) -> T:
        while True:
            try:
                return self.writer().run(work, transaction=transaction)
            except WriterClosed:
                continue  # closed meanwhile: the next writer() starts another

    # --- tools -------------------------------------------------------------------------

    def stats(self, runs: int = 10) -> LedgerStats:
        """Entries per node, size on disk, and the hits and misses of the last `runs` runs.

        A path without a ledger has empty stats (and is not created).
        """
        if self._writer is not None:
            self.flush()
        elif not self._exists():
            return LedgerStats(self.path, 0, (), ())
        try:
            return read_stats(self.reader(), self.path, runs)
        except sqlite3.Error as error:
            raise problem(self.path, error) from error

    def clear(self, node: str | None = None) -> int:
        """Remove the entries of `node` (of every node, and the run history, if None).

        Returns how many entries were removed, and gives their space back.
        """
        if self._writer is None and not self._exists():
            return 0
        removed = self._run(lambda connection: delete_entries(connection, node))
        self._run(lambda c: c.execute("PRAGMA incremental_vacuum").fetchall())
        self._run(
            lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(),
            transaction=False,
        )
        return removed

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work`'s result, run on the writer's connection in a transaction of its own.

        Every result and journal row handed to the writer before is committed first.
        """
        return self._run(work)

    def record(
        self, run: str, key: str, node: str, digest: str, text: str
    ) -> Awaitable[None]:
        """Journal one outcome of durable run `run`; the awaitable is done once it is committed."""
        committed, settle = on_loop()
        self._record(run, key, node, digest, text, settle)
        return committed

    def record_sync(
        self, run: str, key: str, node: str, digest: str, text: str
    ) -> None:
        """`record` for a sync call: the calling thread waits for the commit."""
        commit = Blocking()
        self._record(run, key, node, digest, text, commit.settle)
        commit.wait()

    def _record(
        self, run: str, key: str, node: str, digest: str, text: str, settle: Settle
    ) -> None:
        while not self.writer().record(run, key, node, digest, text, settle):
            pass  # closed meanwhile: the next writer() starts another

    def flush(self) -> None:
        """Wait until the hit and miss counts handed to the writer are committed.

        (Results are committed before their calls return; only counts wait.)
        """
        if self._writer is not None:
            self._run(lambda connection: None)

    def close(self) -> None:
        """Commit what waits, stop the writer, close the connections; reopened on next use."""
        with self._open_lock:
            writer, self._writer = self._writer, None
            readers, self._readers = self._readers, []
            self._generation += 1
        if writer is not None:
            writer.close(timeout=30.0)
        for reader in readers:
            with suppress(sqlite3.Error):
                reader.close()

    def _exists(self) -> bool:
        try:
            return prepare(self.path, create=False)
        except OSError as error:
            raise problem(self.path, error) from error

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's thread and connections, never close them."""
        _INHERITED.extend(self._readers)
        self._open_lock = threading.Lock()
        self._writer = None
        self._readers = []
        self._flights = Flights()
        self._generation += 1


# Connections a forked child inherited: closing them there could disturb the parent's.
_INHERITED: list[sqlite3.Connection] = []


def _close_all() -> None:
    for ledger in list(Ledger._shared.values()):
        with suppress(LedgerError, sqlite3.Error, OSError):
            ledger.close()


def _forget_all() -> None:
    Ledger._shared_lock = threading.Lock()
    for ledger in Ledger._shared.values():
        ledger._after_fork()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_forget_all)
