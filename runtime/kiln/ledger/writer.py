"""The ledger's writer: one thread per ledger file that commits for every caller.

A caller hands its result to `Writer.store` with a callback and goes on
waiting (an ``await`` on its loop, or a blocked sync call); the writer
thread takes every store waiting in its queue, writes them all in one
transaction, commits, and then calls each callback: ``settle(None)`` once
the row is on disk, ``settle(error)`` if it could not be. So an event loop
never waits on the disk, each result is durable before its call returns,
and a fan-out of a thousand results that finish together costs a handful of
commits (group commit).

Hit and miss counts cost no write of their own: `tally` adds to a table in
memory, and the writer folds the counts into its next transaction, or
commits them alone `COUNTS_DELAY` seconds after the first uncommitted one
(a warm rerun stores nothing, and still records its hits).

A durable run's journal rows (`record`) go the same way, in the same
transactions as the results: a row is on disk before its call's value is used.

A transaction that finds the file locked by another process waits for it
(SQLite's busy timeout) and is retried `RETRIES` times before its stores
fail. `run` executes other work (clearing, a flush) on the writer's
connection in a transaction of its own, and blocks until it is done.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Generic, NamedTuple, TypeVar, final

from kiln.ledger.file import KEPT_RUNS, checksum, connect, row_checksum
from kiln.ledger.problems import problem

__all__ = ["Settle", "Writer", "WriterClosed"]

T = TypeVar("T")
Settle = Callable[[BaseException | None], None]

COUNTS_DELAY: Final = 0.2
RETRIES: Final = 5
_BUSY: Final = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class WriterClosed(RuntimeError):
    """The writer was closed (`Ledger.close`) before it took the work: use a new one."""


# Rows are tuples, not dataclasses: a fan-out of a thousand results makes a
# thousand of them on its event loop's thread.
class _Store(NamedTuple):
    key: bytes
    node: str
    source: str
    text: str
    settle: Settle


class _Record(NamedTuple):
    """A journal row of a durable run: the outcome of the call at `key`."""

    run: str
    key: str
    node: str
    digest: str
    text: str
    settle: Settle


@final
class _Job(Generic[T]):
    """Work run on the writer's connection, in its own transaction; waited for."""

    __slots__ = ("done", "error", "result", "transaction", "work")

    def __init__(
        self, work: Callable[[sqlite3.Connection], T], transaction: bool
    ) -> None:
        self.work = work
        self.transaction = transaction
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


_COUNTS: Final = "counts"  # queued when the first count since the last commit arrives
_STOP: Final = "stop"
_Row = _Store | _Record
_Item = _Row | _Job[object] | str


@final
class Writer:
    """The writer thread of the ledger at `path`, started at once; `close` stops it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._counts: dict[str, list[float]] = {}  # run -> [started, hits, misses]
        # Guards the counts, and `_open`: whatever is queued before _STOP is done.
        self._lock = threading.Lock()
        self._open = True
        self._thread = threading.Thread(
            target=self._serve, name=f"kiln-ledger-writer {path.name}", daemon=True
        )
        self._thread.start()

    def store(
        self, key: bytes, node: str, source: str, text: str, settle: Settle
    ) -> bool:
        """Commit one result soon, then call `settle` from the writer thread.

        False if the writer is closed: it took nothing, and will call nothing.
        """
        return self._put(_Store(key, node, source, text, settle))

    def record(
        self, run: str, key: str, node: str, digest: str, text: str, settle: Settle
    ) -> bool:
        """Commit one journal row soon (replacing the row at its key), then `settle`.

        False if the writer is closed: it took nothing, and will call nothing.
        """
        return self._put(_Record(run, key, node, digest, text, settle))

    def tally(self, run: str, *, hit: bool) -> bool:
        """Count a call of `run` as a hit or a miss, committed with the next transaction.

        False if the writer is closed and counted nothing.
        """
        with self._lock:
            if not self._open:
                return False
            counts = self._counts.get(run)
            first = not self._counts
            if counts is None:
                counts = self._counts[run] = [time.time(), 0, 0]
            counts[1 if hit else 2] += 1
            if first:
                self._queue.put(_COUNTS)
        return True

    def run(
        self, work: Callable[[sqlite3.Connection], T], *, transaction: bool = True
    ) -> T:
        """Run `work` on the writer's connection (in a transaction of its own); its result.

        Every store handed over before is committed first. Raises `WriterClosed`
        if the writer is closed.
        """
        job: _Job[T] = _Job(work, transaction)
        if not self._put(job):  # type: ignore[arg-type]  # a _Job of any result is an _Item
            raise WriterClosed(self.path)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # set with done, error None

    def close(self, timeout: float | None = None) -> None:
        """Commit what is waiting, then stop the thread and close its connection."""
        with self._lock:
            if self._open:
                self._open = False
                self._queue.put(_STOP)
        self._thread.join(timeout)

    def _put(self, item: _Item) -> bool:
        with self._lock:
            if self._open:
                self._queue.put(item)
            return self._open

    # --- the thread ----------------------------------------------------------------------

    def _serve(self) -> None:
        connection: sqlite3.Connection | None = None
        counts_due: float | None = None
        while True:
            wait = (
                None if counts_due is None else max(0.0, counts_due - time.monotonic())
            )
            try:
                batch = [self._queue.get(timeout=wait)]
            except queue.Empty:
                batch = []  # the counts are due
            while True:  # whatever else is waiting goes into the same commit
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            if batch and all(item == _COUNTS for item in batch):
                counts_due = counts_due or time.monotonic() + COUNTS_DELAY
                continue
            counts_due = None
            try:
                if connection is None:
                    connection = connect(self.path, reader=False)
            except BaseException as error:
                self._fail(batch, error)
            else:
                self._handle(connection, batch)
            if stop:
                if connection is not None:
                    connection.close()
                return

    def _handle(self, connection: sqlite3.Connection, batch: list[_Item]) -> None:
        """Commit the batch in order: the stores between two jobs in one transaction."""
        stores: list[_Row] = []
        for item in batch:
            if isinstance(item, _Store | _Record):
                stores.append(item)
            elif isinstance(item, _Job):
                self._commit(connection, stores)
                stores = []
                try:
                    item.result = (
                        _transaction(connection, item.work)
                        if item.transaction
                        else item.work(connection)
                    )
                except BaseException as error:
                    item.error = (
                        problem(self.path, error) if _is_storage(error) else error
                    )
                item.done.set()
        self._commit(connection, stores)

    def _commit(self, connection: sqlite3.Connection, stores: list[_Row]) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
        if not stores and not counts:
            return
        try:
            _transaction(connection, lambda c: _write(c, stores, counts))
        except BaseException as error:
            self._restore(counts)
            self._fail(stores, error)
            return
        for store in stores:
            store.settle(None)

    def _fail(self, batch: list[_Row] | list[_Item], error: BaseException) -> None:
        failure = problem(self.path, error) if _is_storage(error) else error
        for item in batch:
            if isinstance(item, _Store | _Record):
                item.settle(failure)
            elif isinstance(item, _Job):
                item.error = failure
                item.done.set()

    def _restore(self, counts: dict[str, list[float]]) -> None:
        """Put counts that could not be committed back, for the next transaction."""
        with self._lock:
            for run, (started, hits, misses) in counts.items():
                now = self._counts.setdefault(run, [started, 0, 0])
                now[1] += hits
                now[2] += misses


def _write(
    connection: sqlite3.Connection, rows: list[_Row], counts: dict[str, list[float]]
) -> None:
    now = time.time()
    connection.executemany(
        "INSERT INTO entries (key, node, source, value, checksum, created) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
        "checksum = excluded.checksum, created = excluded.created",
        [
            (s.key, s.node, s.source, s.text, checksum(s.key, s.text.encode()), now)
            for s in rows
            if isinstance(s, _Store)
        ],
    )
    connection.executemany(
        "INSERT OR REPLACE INTO journal (run, key, node, digest, value, checksum, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.run,
                r.key,
                r.node,
                r.digest,
                r.text,
                row_checksum(r.run, r.key, r.digest, r.text),
                now,
            )
            for r in rows
            if isinstance(r, _Record)
        ],
    )
    if counts:
        connection.executemany(
            "INSERT INTO runs (run, started, hits, misses) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run) DO UPDATE SET hits = hits + excluded.hits, "
            "misses = misses + excluded.misses, started = min(started, excluded.started)",
            [
                (run, started, hits, misses)
                for run, (started, hits, misses) in counts.items()
            ],
        )
        connection.execute(
            "DELETE FROM runs WHERE run NOT IN "
            "(SELECT run FROM runs ORDER BY started DESC LIMIT ?)",
            (KEPT_RUNS,),
        )


def _transaction(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]
) -> T:
    """`work` in one IMMEDIATE transaction, retried when another process holds the lock."""
    for attempt in range(1, RETRIES + 1):
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            code = getattr(error, "sqlite_errorcode", 0) & 0xFF
            if code not in _BUSY or attempt == RETRIES:
                raise
            time.sleep(0.05 * attempt)
        else:
            return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _is_storage(error: BaseException) -> bool:
    return isinstance(error, (sqlite3.Error, OSError))
