"""What an error of SQLite or of the OS at a ledger's path means, and what to do.

Example: SQLite's "database disk image is malformed" at ``.kiln/ledger.db``
is a `LedgerError` saying that the ledger is damaged and what to do with it,
which depends on what it holds. A ledger of cached results only is deleted
and its results recomputed; one that holds durable runs' journals is copied
aside first, since deleting it would run their finished calls again, side
effects included. When the damage hides which it is, it may hold runs.

SQLite finds most damage only when a query reaches the damaged page, which
may be in the middle of a run, after side effects. `check_intact` reads the
whole file up front (SQLite's ``quick_check``), read-only: `kiln run` refuses
a truncated copy, or one whose pages were zeroed, before anything runs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kiln.errors import LedgerError

__all__ = ["check_intact", "problem"]


def problem(path: Path, error: BaseException) -> LedgerError:
    """The `LedgerError` that an error of SQLite or of the OS at `path` means for the user."""
    text = str(error) or type(error).__name__
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in text:
        return LedgerError(f"the ledger {path} is damaged ({text}); {_damaged(path)}")
    if (
        code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM)
        or isinstance(error, PermissionError)
        or "readonly" in text
    ):
        return LedgerError(
            f"cannot use the ledger {path} ({text}); make the file and its directory "
            "readable and writable, point KILN_LEDGER or the flow's ledger= elsewhere, "
            "or pass ledger=False to run without the cache"
        )
    if code == sqlite3.SQLITE_FULL:
        return LedgerError(
            f"cannot store in the ledger {path}: the disk is full ({text})"
        )
    return LedgerError(f"the ledger {path} failed: {text}")


def check_intact(path: Path) -> None:
    """Refuse the ledger at `path` (absolute; a kiln ledger, `prepare` says) if damaged.

    Nothing is written or made: a file without a live write-ahead log is read
    as immutable; one with a log, read-only (as `prepare` inspects it).
    """
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?{_read_only(path)}", uri=True)
        try:
            found = connection.execute("PRAGMA quick_check(1)").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise problem(path, error) from error
    if found is None or found[0] != "ok":
        what = "no answer" if found is None else str(found[0])
        raise LedgerError(f"the ledger {path} is damaged ({what}); {_damaged(path)}")


def _read_only(path: Path) -> str:
    """How to open the file at `path` without writing it: SQLite's URI parameter."""
    wal = path.with_name(f"{path.name}-wal")
    return "mode=ro" if wal.exists() and wal.stat().st_size > 0 else "immutable=1"


def _damaged(path: Path) -> str:
    """What to do with a damaged ledger: deleting it loses the durable runs it holds."""
    holds = _holds_durable_runs(path)
    if holds is False:
        return (
            "it holds only cached results: delete it with its -wal and -shm files to "
            "start afresh, or use another path"
        )
    return (
        f"it {'holds' if holds else 'may hold'} the journals of durable runs, whose "
        "finished calls (side effects included) would run again if it were deleted: "
        "copy it aside with its -wal and -shm files, and see its runs with `kiln runs "
        "list --ledger COPY` before deleting it, or use another path"
    )


def _holds_durable_runs(path: Path) -> bool | None:
    """Whether a damaged ledger holds a durable run's rows; None when that cannot be read."""
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?{_read_only(path)}", uri=True)
        try:
            tables = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            if "entries" not in tables:
                return None  # not the schema kiln wrote: the damage hides it
            return any(
                connection.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                for table in ("durable", "journal")
                if table in tables  # a version 3 ledger has neither
            )
        finally:
            connection.close()
    except (sqlite3.Error, OSError):
        return None
