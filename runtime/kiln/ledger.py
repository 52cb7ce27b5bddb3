"""The ledger: the durable results of `cache=True` nodes, on SQLite in WAL mode.

A compiled flow asks the ledger for every call of a cached node::

    value, hit = await ledger.call("summarize", "3f2a…", summarize, args, kwargs,
                                   compute, run=run_id)

The key is the node's name, the fingerprint of its source (computed by the
compiler, so an edited node misses its old results) and the canonical
encoding of its arguments bound to their parameters (`f(1)`, `f(x=1)` and a
default of 1 are one key). A hit decodes the stored result; a miss runs
`compute` and returns only once the result is committed, so a process killed
at any moment loses no call that had returned. Identical calls in flight at
once, in one run or in concurrent runs of the process (on any event loop),
run once and share the outcome (single flight). A failed call is never
stored.

Writes go through one writer thread per ledger, which commits every waiting
result in one transaction: the event loop never waits on the disk, and a
fan-out of a thousand results costs a few commits. Reads use one connection
per thread; WAL lets them proceed while another process writes. Durability:
WAL with ``synchronous=NORMAL`` survives the death of the process (``kill
-9``); a power failure may take the last commits with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, final

from kiln.codec import decode, dumps, encode, loads, returns
from kiln.errors import LedgerError, UncacheableValue

__all__ = ["Ledger", "LedgerStats", "NodeEntries", "RunHits"]

R = TypeVar("R")
Uncacheable = Literal["raise", "run"]

SCHEMA_VERSION: Final = 1
APPLICATION_ID: Final = 0x6B696C6E  # "kiln": marks a SQLite file as a kiln ledger
DEFAULT_PATH: Final = Path(".kiln") / "ledger.db"
_SQLITE_HEADER: Final = b"SQLite format 3\x00"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    source TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_node ON entries (node);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    started REAL NOT NULL,
    hits INTEGER NOT NULL,
    misses INTEGER NOT NULL
);
"""


@final
@dataclass(frozen=True, slots=True)
class NodeEntries:
    node: str
    entries: int
    bytes: int  # of the stored values


@final
@dataclass(frozen=True, slots=True)
class RunHits:
    run: str
    started: float  # time.time()
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        calls = self.hits + self.misses
        return self.hits / calls if calls else 0.0


@final
@dataclass(frozen=True, slots=True)
class LedgerStats:
    path: Path
    size: int  # bytes on disk, the write-ahead log included
    nodes: tuple[NodeEntries, ...]
    runs: tuple[RunHits, ...]  # the last runs, newest first


class Ledger:
    """One ledger file, shared by every flow of the process that uses it (`Ledger.at`)."""

    _shared: dict[Path, Ledger] = {}  # noqa: RUF012  (the process-wide registry)
    _shared_lock = threading.Lock()

    @classmethod
    def at(cls, path: str | os.PathLike[str] | None = None) -> Ledger:
        """The ledger at `path`; None means ``$KILN_LEDGER``, else ``.kiln/ledger.db``."""
        chosen = Path(
            path if path is not None else os.environ.get("KILN_LEDGER") or DEFAULT_PATH
        )
        resolved = chosen.expanduser().resolve()
        with cls._shared_lock:
            ledger = cls._shared.get(resolved)
            if ledger is None:
                ledger = cls._shared[resolved] = cls(resolved)
            return ledger

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened = False
        self._open_lock = threading.Lock()
        self._readers = threading.local()
        self._signatures: dict[Callable[..., Any], inspect.Signature] = {}
        self._returns: dict[Callable[..., Any], object] = {}
        self._flights: dict[str, concurrent.futures.Future[Any]] = {}
        self._flights_lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # run -> [hits, misses] not yet written
        self._counts_lock = threading.Lock()
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    # --- the calls compiled flows make ---------------------------------------------------

    async def call(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        compute: Callable[[], Awaitable[R]],
        *,
        run: str,
        uncacheable: Uncacheable = "raise",
    ) -> tuple[R, bool]:
        """The stored result of this call, or `compute`'s, stored; and whether it was stored."""
        key = self._key_or_none(node, source, fn, args, kwargs, uncacheable)
        if key is None:
            return await compute(), False
        while True:
            found = self._lookup(key, fn, run)
            if found is not None:
                return found[0], True
            flight, leader = self._join(key)
            if leader:
                return (
                    await self._lead(
                        key, node, source, flight, compute, run, uncacheable
                    ),
                    False,
                )
            try:
                return await asyncio.wrap_future(flight), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not flight.cancelled() or (task is not None and task.cancelling()):
                    raise
                # The caller computing it was cancelled, this one was not: take over.

    def call_sync(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        compute: Callable[[], R],
        *,
        run: str,
        uncacheable: Uncacheable = "raise",
    ) -> tuple[R, bool]:
        """`call` for a sync node: the caller waits for the commit, briefly."""
        key = self._key_or_none(node, source, fn, args, kwargs, uncacheable)
        if key is None:
            return compute(), False
        found = self._lookup(key, fn, run)
        if found is not None:
            return found[0], True
        value = compute()
        text = self._stored(value, node, uncacheable)
        if text is not None:
            self._submit(_Write(key, node, source, text, run)).result()
        return value, False

    async def _lead(
        self,
        key: str,
        node: str,
        source: str,
        flight: concurrent.futures.Future[Any],
        compute: Callable[[], Awaitable[R]],
        run: str,
        uncacheable: Uncacheable,
    ) -> R:
        try:
            value = await compute()
            text = self._stored(value, node, uncacheable)
            if text is not None:
                await asyncio.wrap_future(
                    self._submit(_Write(key, node, source, text, run))
                )
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as error:
            flight.set_exception(error)
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            with self._flights_lock:
                self._flights.pop(key, None)

    def _join(self, key: str) -> tuple[concurrent.futures.Future[Any], bool]:
        """The flight computing `key`, and whether this caller is the one to compute it."""
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = concurrent.futures.Future()
            return flight, True

    # --- keys and values -----------------------------------------------------------------

    def _key_or_none(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        uncacheable: Uncacheable,
    ) -> str | None:
        try:
            return self.key(node, source, fn, args, kwargs)
        except UncacheableValue:
            if uncacheable == "run":
                return None
            raise

    def key(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> str:
        """The ledger key of a call: node, source fingerprint, arguments by parameter."""
        signature = self._signatures.get(fn)
        if signature is None:
            signature = self._signatures[fn] = inspect.signature(fn)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = [
            [name, encode(value, f"argument {name!r} of node {node!r}")]
            for name, value in bound.arguments.items()
        ]
        text = dumps([node, source, arguments])
        return hashlib.sha256(text.encode()).hexdigest()

    def _stored(self, value: object, node: str, uncacheable: Uncacheable) -> str | None:
        try:
            return dumps(encode(value, f"the result of node {node!r}"))
        except UncacheableValue:
            if uncacheable == "run":
                return None
            raise

    def _lookup(self, key: str, fn: Callable[..., Any], run: str) -> tuple[Any] | None:
        with self._reading() as connection:
            row = connection.execute(
                "SELECT value FROM entries WHERE key = ?", (key,)
            ).fetchone()
        self._count(run, hit=row is not None)
        if row is None:
            return None
        annotation = self._returns.get(fn)
        if annotation is None and fn not in self._returns:
            annotation = self._returns[fn] = returns(fn)
        return (decode(loads(row[0]), annotation),)

    def _count(self, run: str, *, hit: bool) -> None:
        with self._counts_lock:
            counts = self._counts.setdefault(run, [0, 0])
            counts[0 if hit else 1] += 1
            first = sum(counts) == 1
        if first:  # the writer folds in every count that arrives until it runs
            self._submit(None)

    # --- the file -------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        self._open()
        connection: sqlite3.Connection | None = getattr(
            self._readers, "connection", None
        )
        if connection is None:
            connection = self._readers.connection = self._connect()
        try:
            yield connection
        except sqlite3.DatabaseError as error:
            raise self._problem(error) from error

    def _open(self) -> None:
        if self._opened:
            return
        with self._open_lock:
            if self._opened:
                return
            self._create()
            self._writer = threading.Thread(
                target=self._write_loop,
                name=f"kiln-ledger {self.path.name}",
                daemon=True,
            )
            self._writer.start()
            self._opened = True

    def _create(self) -> None:
        """Check that the file is a kiln ledger of this version, or make a new one."""
        if self.path.is_dir():
            raise LedgerError(
                f"the ledger path {self.path} is a directory; give a file path"
            )
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as file:
                header = file.read(len(_SQLITE_HEADER))
            if header != _SQLITE_HEADER:
                raise LedgerError(
                    f"{self.path} is not a kiln ledger (not a SQLite database), and kiln "
                    "never overwrites a file it did not make; move it, or point "
                    "KILN_LEDGER or the flow's ledger= at another path"
                )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                self._initialize(connection)
            finally:
                connection.close()
        except (sqlite3.DatabaseError, OSError) as error:
            raise self._problem(error) from error

    def _initialize(self, connection: sqlite3.Connection) -> None:
        application = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application == 0 and tables == 0:
            # IF NOT EXISTS: another process may be creating the same ledger right now.
            connection.executescript(
                "BEGIN IMMEDIATE;"
                f"PRAGMA application_id = {APPLICATION_ID};"
                f"PRAGMA user_version = {SCHEMA_VERSION};"
                f"{_SCHEMA}"
                "COMMIT;"
            )
            application = APPLICATION_ID
        if application != APPLICATION_ID:
            raise LedgerError(
                f"{self.path} is a SQLite database that is not a kiln ledger; kiln never "
                "writes to a file it did not make: point KILN_LEDGER or the flow's "
                "ledger= at another path"
            )
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} is a kiln ledger of schema version {version}, and this kiln "
                f"reads version {SCHEMA_VERSION}; delete it (its results are recomputed) "
                "or use another path"
            )
        connection.execute("PRAGMA journal_mode = WAL")

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA busy_timeout = 30000")
        return connection

    def _problem(self, error: BaseException) -> LedgerError:
        text = str(error)
        if (
            "readonly" in text
            or "unable to open" in text
            or isinstance(error, PermissionError)
        ):
            return LedgerError(
                f"cannot write the ledger {self.path}: {text}; make its directory writable, "
                "point KILN_LEDGER or the flow's ledger= elsewhere, or pass ledger=False"
            )
        if (
            "malformed" in text
            or "not a database" in text
            or "file is encrypted" in text
        ):
            return LedgerError(
                f"the ledger {self.path} is damaged ({text}); delete it and its -wal and "
                "-shm files (its results are recomputed), or use another path"
            )
        return LedgerError(f"the ledger {self.path} failed: {text}")

    # --- the writer -----------------------------------------------------------------------

    def _submit(self, write: _Write | None) -> concurrent.futures.Future[None]:
        self._open()
        if write is None:
            self._writes.put(None)
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        self._writes.put(write)
        return write.done

    def _write_loop(self) -> None:
        connection = self._connect()
        while True:
            batch = [self._writes.get()]
            while True:  # everything already waiting goes into the same commit
                try:
                    batch.append(self._writes.get_nowait())
                except queue.Empty:
                    break
            writes = [w for w in batch if w is not None]
            try:
                self._commit(connection, writes)
            except BaseException as error:
                problem = (
                    self._problem(error) if isinstance(error, sqlite3.Error) else error
                )
                for write in writes:
                    write.done.set_exception(problem)
            else:
                for write in writes:
                    write.done.set_result(None)

    def _commit(self, connection: sqlite3.Connection, writes: list[_Write]) -> None:
        with self._counts_lock:
            counts, self._counts = self._counts, {}
        now = time.time()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)",
                [(w.key, w.node, w.source, w.text, now) for w in writes if w.key],
            )
            connection.executemany(
                "INSERT INTO runs VALUES (?, ?, ?, ?) ON CONFLICT (run) DO UPDATE SET "
                "hits = hits + excluded.hits, misses = misses + excluded.misses",
                [
                    (run, now, hits, misses)
                    for run, (hits, misses) in counts.items()
                    if run
                ],
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    # --- tools ----------------------------------------------------------------------------

    def stats(self, runs: int = 10) -> LedgerStats:
        """Entries per node, size on disk, and the hit rate of the last `runs` runs."""
        self.flush()
        with self._reading() as connection:
            nodes = connection.execute(
                "SELECT node, count(*), sum(length(value)) FROM entries GROUP BY node ORDER BY node"
            ).fetchall()
            recent = connection.execute(
                "SELECT run, started, hits, misses FROM runs ORDER BY started DESC, rowid DESC "
                "LIMIT ?",
                (runs,),
            ).fetchall()
        size = sum(
            file.stat().st_size
            for file in (self.path, Path(f"{self.path}-wal"))
            if file.exists()
        )
        return LedgerStats(
            self.path,
            size,
            tuple(NodeEntries(*row) for row in nodes),
            tuple(RunHits(*row) for row in recent),
        )

    def clear(self, node: str | None = None) -> int:
        """Remove every entry (of `node`, when given); the number removed."""
        self.flush()
        with self._reading() as connection:
            if node is None:
                cursor = connection.execute("DELETE FROM entries")
                connection.execute("DELETE FROM runs")
            else:
                cursor = connection.execute(
                    "DELETE FROM entries WHERE node = ?", (node,)
                )
        return cursor.rowcount

    def flush(self) -> None:
        """Wait until every result and count handed to the writer is committed."""
        self._submit(_Write.marker()).result()


@final
@dataclass(slots=True)
class _Write:
    key: str
    node: str
    source: str
    text: str
    run: str
    done: concurrent.futures.Future[None] = field(
        default_factory=concurrent.futures.Future
    )

    @staticmethod
    def marker() -> _Write:
        """A write of nothing (no key), to wait for the writer's next commit."""
        return _Write("", "", "", "", "")
