"""The ledger's file: a SQLite database in WAL mode that kiln made and marked as its own.

`prepare` decides, before kiln writes a byte, whether the file at a path may
be used (checked in this order, each refusal a `LedgerError` that says what
to do):

    the path is            then
    -------------------    -----------------------------------------------------
    a directory            refused
    a FIFO, device, socket refused (never opened: a FIFO would block)
    missing                created, marked (application_id "kiln", user_version)
    an empty file          refused: a path given by mistake (an `__init__.py`)
    not SQLite             refused: never overwritten
    SQLite, unmarked,      created in place (an empty database holds nothing
      without tables         to lose)
    SQLite, not kiln's     refused: never written to
    kiln's, other schema   refused: delete it (a cache) or use the kiln that made it
    kiln's, this schema    used (if kiln may write the file and its directory)
    unreadable, damaged    refused: delete it and its -wal and -shm files, unless
                             it may hold durable runs (then: copy it aside first)

The inspection reads the file's header, and opens it only read-only, so a
foreign database is not even checkpointed (`_inspect` says more). A ledger is
made beside its path and linked there whole: no process sees it half made.
Connections wait up to `BUSY_TIMEOUT` seconds for another process's lock,
and commit with ``synchronous=FULL``: a committed result survives the death
of the process and of the machine.

The schema: `entries` holds one row per stored call (the key is the sha256
of the call's text; the value is codec JSON; the checksum is the sha256 of
the key and the value, `checksum`), `runs` the hit and miss counts of the
last `KEPT_RUNS` runs. The durable runs (`kiln.durable.journal`) keep theirs apart,
since they are not a cache: `durable` holds one row per run id, and
`journal` the outcome of every call a durable run finished, by run and call
key. A ledger of version 3 (before durable runs) is upgraded in place: the
two tables are added, nothing else changes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from kiln.errors import LedgerError
from kiln.ledger.problems import problem

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT",
    "KEPT_RUNS",
    "SCHEMA_VERSION",
    "LedgerStats",
    "NodeEntries",
    "RunHits",
    "checksum",
    "connect",
    "delete_entries",
    "prepare",
    "read_stats",
    "row_checksum",
]

# 1: the first draft (hex keys, another value encoding); 2: no checksums, keys
# blind to dict order, classes found by the name a row gives; 3: no durable runs.
SCHEMA_VERSION: Final = 4
_UPGRADABLE: Final = 3
APPLICATION_ID: Final = 0x6B696C6E  # "kiln" in ASCII
BUSY_TIMEOUT: Final = 30.0
KEPT_RUNS: Final = 100
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_BESIDE: Final = ("-wal", "-shm", "-journal")  # what SQLite keeps beside a file

_SCHEMA: Final = (
    """CREATE TABLE entries (
        key BLOB NOT NULL UNIQUE,
        node TEXT NOT NULL,
        source TEXT NOT NULL,
        value TEXT NOT NULL,
        checksum BLOB NOT NULL,
        created REAL NOT NULL
    )""",
    "CREATE INDEX entries_by_node ON entries (node, source)",
    """CREATE TABLE runs (
        run TEXT PRIMARY KEY,
        started REAL NOT NULL,
        hits INTEGER NOT NULL,
        misses INTEGER NOT NULL
    )""",
    f"PRAGMA application_id = {APPLICATION_ID}",
)
# Added by version 4; the upgrade of a version 3 ledger runs these alone.
_DURABLE: Final = (
    """CREATE TABLE IF NOT EXISTS durable (
        run TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        target TEXT NOT NULL,
        arguments TEXT,
        digest TEXT NOT NULL,
        state TEXT NOT NULL,
        owner TEXT NOT NULL,
        started REAL NOT NULL,
        updated REAL NOT NULL,
        question TEXT,
        outcome TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS journal (
        run TEXT NOT NULL,
        key TEXT NOT NULL,
        node TEXT NOT NULL,
        digest TEXT NOT NULL,
        value TEXT NOT NULL,
        checksum BLOB NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (run, key)
    )""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


@final
@dataclass(frozen=True, slots=True)
class NodeEntries:
    """The stored results of one node: how many, of how many source versions, their size."""

    node: str
    entries: int
    versions: int  # distinct source hashes: more than 1 means stale entries of old code
    bytes: int  # of the stored values' JSON


@final
@dataclass(frozen=True, slots=True)
class RunHits:
    """How one flow run fared: calls the ledger answered (hits) and calls that ran."""

    run: str
    started: float  # time.time() of its first cached call
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float:
        calls = self.hits + self.misses
        return self.hits / calls if calls else 0.0


@final
@dataclass(frozen=True, slots=True)
class LedgerStats:
    """What a ledger holds: entries per node, size on disk, and its last runs."""

    path: Path
    size: int  # bytes on disk, the write-ahead log included
    nodes: tuple[NodeEntries, ...]  # by node name
    runs: tuple[RunHits, ...]  # newest first

    @property
    def entries(self) -> int:
        return sum(node.entries for node in self.nodes)


def checksum(key: bytes, value: bytes) -> bytes:
    """The checksum of an entry: the sha256 of its key (32 bytes) and its value's bytes.

    A row whose checksum fails is never answered with: a flipped bit in a
    stored number would otherwise be a wrong result, silently.
    """
    return hashlib.sha256(key + value).digest()


def row_checksum(run: str, key: str, digest: str, text: str) -> bytes:
    """The checksum of a journal row: its place, its arguments' digest and its value."""
    return checksum(f"{run}\0{key}\0{digest}".encode(), text.encode())


def prepare(path: Path, *, create: bool) -> bool:
    """Check that `path` holds a kiln ledger of this schema; make one there if `create`.

    Returns whether a ledger exists at `path` now (False only without `create`).
    """
    if path.is_dir():
        raise LedgerError(
            f"the ledger path {path} is a directory; give a file path, "
            f"such as {path / 'ledger.db'}"
        )
    if path.exists() and not path.is_file():
        # A FIFO would block the first read for ever; a device is nobody's cache.
        raise LedgerError(
            f"the ledger path {path} is not a regular file (a FIFO, a device or a "
            "socket); give the path of a file, or of none, where kiln keeps the ledger"
        )
    if path.exists() and path.stat().st_size == 0:
        raise LedgerError(
            f"{path} is an empty file, not a kiln ledger, and kiln never writes to a "
            "file it did not make; give the path of a ledger, or one where no file is, "
            "and kiln makes the ledger there"
        )
    if path.exists() and _inspect(path):
        if create:
            _check_writable(path)
        return True
    if not create:
        return False
    if path.parent.exists():
        _check_writable(path)
    try:
        if path.exists():  # an empty SQLite database: nothing in it to lose
            _make_schema(path)
        else:
            _create(path, made_directory=not path.parent.exists())
    except (sqlite3.Error, OSError) as error:
        raise problem(path, error) from error
    return prepare(path, create=True)  # ours, or one another process made first


def connect(path: Path, *, reader: bool) -> sqlite3.Connection:
    """A connection for one thread's reads, or the writer's; autocommit, so BEGIN is explicit."""
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        if reader:
            connection.execute("PRAGMA query_only = ON")
        else:
            connection.execute("PRAGMA synchronous = FULL")
    except BaseException:
        connection.close()
        raise
    return connection


def _check_writable(path: Path) -> None:
    """Refuse a ledger kiln could read but not write, before a call computes for nothing."""
    for where in (path, path.parent):
        if where.exists() and not os.access(where, os.W_OK):
            raise LedgerError(
                f"the ledger {path} is read-only ({where} is not writable; kiln writes the "
                "file, and its -wal and -shm files beside it): make them writable, point "
                "KILN_LEDGER or the flow's ledger= elsewhere, or pass ledger=False to run "
                "without the cache"
            )


def _inspect(path: Path) -> bool:
    """True if `path` is a kiln ledger of this schema, False if an empty database.

    kiln's marks are in the file's header from the first checkpoint on, and a
    file with no live write-ahead log tells all by itself: then nothing but its
    bytes is read (an ``immutable`` connection creates no -wal or -shm file).
    Only a live log needs SQLite's read-only reading of it, which may update
    the -shm index beside it, as any reader does.
    """
    header = _header(path)
    application = int.from_bytes(header[68:72], "big")
    version = int.from_bytes(header[60:64], "big")
    wal = path.with_name(f"{path.name}-wal")
    live = wal.exists() and wal.stat().st_size > 0
    if application == APPLICATION_ID or not live:
        tables = 0 if application else _read(path, "immutable=1")[2]
    else:
        application, version, tables = _read(path, "mode=ro")
    if application == APPLICATION_ID:
        if version == _UPGRADABLE:
            _upgrade(path)
        elif version != SCHEMA_VERSION:
            raise LedgerError(
                f"{path} is a kiln ledger of schema version {version}, and this kiln reads "
                f"version {SCHEMA_VERSION}; delete it with its -wal and -shm files (its "
                "results are recomputed), use the kiln that made it, or use another path"
            )
        return True
    if application != 0 or tables != 0:
        raise LedgerError(
            f"{path} is a SQLite database that is not a kiln ledger, and kiln never writes "
            "to a file it did not make; point KILN_LEDGER or the flow's ledger= at another "
            "path"
        )
    return False


def _upgrade(path: Path) -> None:
    """Add the durable runs' tables to a version 3 ledger (unless another process did)."""
    try:
        connection = connect(path, reader=False)
        try:
            with _immediate(connection):
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version == _UPGRADABLE:
                    for statement in _DURABLE:
                        connection.execute(statement)
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise problem(path, error) from error


def _header(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as error:
        raise problem(path, error) from error
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise LedgerError(
            f"{path} is not a kiln ledger (not even a SQLite database), and kiln never "
            "overwrites a file it did not make; move it away, or point KILN_LEDGER or "
            "the flow's ledger= at another path"
        )
    return header


def _read(path: Path, mode: str) -> tuple[int, int, int]:
    """The application id, the user version and the number of schema objects."""
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?{mode}", uri=True)
        try:
            application = connection.execute("PRAGMA application_id").fetchone()[0]
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            tables = connection.execute(
                "SELECT count(*) FROM sqlite_master"
            ).fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise problem(path, error) from error
    return application, version, tables


def _create(path: Path, *, made_directory: bool) -> None:
    """A ledger made beside `path`, then linked there unless a file is there by then."""
    made = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if made_directory and path.parent.name == ".kiln":
            # A cache directory, like .mypy_cache: kept out of version control.
            (path.parent / ".gitignore").write_text("# made by kiln\n*\n")
        _make_schema(made)
        try:
            os.link(made, path)  # never over a file: another process's ledger, say
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: a rename, checked first
            if not path.exists():
                os.replace(made, path)
    finally:
        for leftover in (made, *(made.with_name(made.name + e) for e in _BESIDE)):
            with suppress(OSError):
                leftover.unlink()


def _make_schema(path: Path) -> None:
    """kiln's schema in the database at `path` (made if missing), unless another
    process made it since `_inspect` looked; the last connection closed, so its
    -wal is checkpointed into the file."""
    connection = connect(path, reader=False)
    try:
        # Before the first table: lets `clear` give the space back.
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("PRAGMA journal_mode = WAL")
        with _immediate(connection):
            application = connection.execute("PRAGMA application_id").fetchone()[0]
            if application == APPLICATION_ID:
                return
            if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise LedgerError(
                    f"{path} became a SQLite database that is not a kiln ledger"
                )
            for statement in (*_SCHEMA, *_DURABLE):
                connection.execute(statement)
    finally:
        connection.close()


@contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taken at once: committed, or rolled back on any exception."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def read_stats(connection: sqlite3.Connection, path: Path, runs: int) -> LedgerStats:
    nodes = connection.execute(
        "SELECT node, count(*), count(DISTINCT source), sum(length(value)) "
        "FROM entries GROUP BY node ORDER BY node"
    ).fetchall()
    recent = connection.execute(
        "SELECT run, started, hits, misses FROM runs ORDER BY started DESC, run LIMIT ?",
        (runs,),
    ).fetchall()
    size = sum(
        file.stat().st_size
        for file in (path, path.with_name(f"{path.name}-wal"))
        if file.exists()
    )
    return LedgerStats(
        path,
        size,
        tuple(NodeEntries(*row) for row in nodes),
        tuple(RunHits(*row) for row in recent),
    )


def delete_entries(connection: sqlite3.Connection, node: str | None) -> int:
    """Delete the entries of `node` (of every node, and the run counts, when None)."""
    if node is None:
        removed = connection.execute("DELETE FROM entries").rowcount
        connection.execute("DELETE FROM runs")
    else:
        removed = connection.execute(
            "DELETE FROM entries WHERE node = ?", (node,)
        ).rowcount
    return removed
