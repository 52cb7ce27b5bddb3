"""The ledger's file when it is not as it should be: every case a clear error or a recovery.

A file that is not kiln's is never written to: those tests compare its bytes,
and the directory's listing, before and after.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from kiln import LedgerError
from kiln.ledger import Ledger
from kiln.ledger.file import APPLICATION_ID, SCHEMA_VERSION


async def node(x: int) -> int:
    return x * 10


def computing(log: list[int], x: int) -> Callable[[], Awaitable[int]]:
    async def compute() -> int:
        log.append(x)
        return x * 10

    return compute


async def use(path: Path, x: int = 1, log: list[int] | None = None) -> tuple[int, bool]:
    ledger = Ledger.at(path)
    try:
        compute = computing([] if log is None else log, x)
        return await ledger.call("node", "v1", node, (x,), {}, compute)
    finally:
        ledger.close()


def snapshot(directory: Path, *, index: bool = True) -> dict[str, str]:
    """Every file's hash; `index=False` leaves out SQLite's -shm index, which readers touch."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and (index or not p.name.endswith("-shm"))
    }


async def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="is a directory; give a file path"):
        await use(tmp_path)


async def test_a_file_that_is_not_sqlite_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_text("my notes, not a ledger\n" * 100)
    before = snapshot(tmp_path)
    log: list[int] = []
    with pytest.raises(LedgerError, match=r"not a kiln ledger .*never overwrites"):
        await use(path, log=log)
    assert log == [], "refused before computing"
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("journal", ["delete", "wal"])
async def test_a_foreign_sqlite_database_is_never_written_to(
    tmp_path: Path, journal: str
) -> None:
    path = tmp_path / "app.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute(f"PRAGMA journal_mode = {journal}")
    other.execute("CREATE TABLE users (name TEXT)")
    other.execute("INSERT INTO users VALUES ('ada')")
    if journal == "wal":
        other.execute("PRAGMA wal_autocheckpoint = 0")
        other.execute("INSERT INTO users VALUES ('grace')")  # only in its -wal file
    # A live -wal file must be read through SQLite, which may touch its -shm index.
    before = snapshot(tmp_path, index=journal != "wal")
    with pytest.raises(LedgerError, match="SQLite database that is not a kiln ledger"):
        await use(path)
    assert snapshot(tmp_path, index=journal != "wal") == before
    assert other.execute("SELECT count(*) FROM users").fetchone()[0] == 1 + (
        journal == "wal"
    )
    other.close()


async def test_a_ledger_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await use(path)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    connection.close()
    before = snapshot(tmp_path)
    with pytest.raises(
        LedgerError, match=f"schema version 99.*reads version {SCHEMA_VERSION}"
    ):
        await use(path)
    assert snapshot(tmp_path) == before


def test_the_documented_schema_version_is_the_one_this_kiln_writes() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"
    text = " ".join(doc.read_text(encoding="utf-8").split())
    found = re.search(r"`user_version`, now (\d+)", text)
    assert found is not None, "docs/ledger.md §1 names the schema version"
    assert int(found[1]) == SCHEMA_VERSION


async def test_a_ledger_of_schema_2_without_checksums_is_refused_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    with closing(
        sqlite3.connect(path)
    ) as connection:  # as the kiln before checksums made it
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(
            "CREATE TABLE entries (key BLOB NOT NULL UNIQUE, node TEXT NOT NULL, "
            "source TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL)"
        )
        connection.execute("INSERT INTO entries VALUES (x'00', 'node', 'v1', '10', 0)")
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 2")
        connection.commit()
    before = snapshot(tmp_path)
    with pytest.raises(
        LedgerError,
        match=r"schema version 2, and this kiln reads version 4; delete it with its -wal",
    ):
        await use(path)
    assert snapshot(tmp_path) == before


async def test_an_empty_file_is_refused_untouched(tmp_path: Path) -> None:
    """It may be a path given by mistake: an empty `__init__.py`, say."""
    path = tmp_path / "__init__.py"
    path.touch()
    before = snapshot(tmp_path)
    with pytest.raises(LedgerError, match=r"is an empty file, not a kiln ledger"):
        await use(path)
    assert snapshot(tmp_path) == before


async def test_an_empty_sqlite_database_becomes_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA user_version = 0")
        connection.execute("VACUUM")  # writes the header: an empty database
    assert path.stat().st_size > 0
    assert await use(path) == (10, False)
    assert await use(path) == (10, True)
    with closing(sqlite3.connect(path)) as connection:
        assert (
            connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        )
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


MAKER = """
import asyncio, sys
from pathlib import Path
from kiln.ledger import Ledger

async def node(x: int) -> int:
    return x

async def main() -> None:
    go = Path(sys.argv[2])
    while not go.exists():
        await asyncio.sleep(0.001)
    ledger = Ledger.at(Path(sys.argv[1]))
    await ledger.call("node", "v1", node, (int(sys.argv[3]),), {}, lambda: node(1))
    ledger.close()

asyncio.run(main())
"""


def test_processes_making_one_ledger_at_once_all_use_it(tmp_path: Path) -> None:
    """The ledger is made beside its path and linked there whole: none of them
    finds the path empty (which is refused) or the schema half made."""
    (tmp_path / "maker.py").write_text(MAKER)
    go = tmp_path / "go"
    for attempt in range(3):
        path = tmp_path / f"ledger{attempt}.db"
        makers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(tmp_path / "maker.py"),
                    str(path),
                    str(go),
                    str(n),
                ],
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(6)
        ]
        go.touch()
        for maker in makers:
            _, errors = maker.communicate(timeout=120)
            assert maker.returncode == 0, errors
        go.unlink()
        assert Ledger.at(path).stats().entries == 6
        Ledger.at(path).close()
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")]
    assert not left, "no file kiln made the ledger in is left"


async def test_a_file_damaged_at_its_start_is_refused_with_what_to_do(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    await use(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page, past the header
    path.write_bytes(bytes(data))
    # The schema is past reading: the file may hold durable runs, never deleted blind.
    with pytest.raises(
        LedgerError, match=r"is damaged .*may hold the journals of durable runs"
    ) as refused:
        await use(path)
    assert "copy it aside with its -wal and -shm files" in str(refused.value)
    assert "kiln runs list --ledger" in str(refused.value)


async def test_a_file_damaged_in_its_entries_fails_lookups_clearly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    for x in range(400):
        await use(path, x)
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, page):  # every page past the schema
        data[start : start + page] = b"\x07" * page
    path.write_bytes(bytes(data))
    found = []
    for x in range(400):
        try:
            await use(path, x)
        except LedgerError as error:
            found.append(str(error))
    assert found, "some lookups read the damaged pages"
    assert all("is damaged" in message for message in found)


@pytest.mark.parametrize("runs", [0, 1])
async def test_a_damaged_ledger_is_said_to_be_deleted_only_without_durable_runs(
    tmp_path: Path, runs: int
) -> None:
    """Deleting a ledger that journals durable runs would run their finished calls again."""
    path = tmp_path / "ledger.db"
    for x in range(400):
        await use(path, x)
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(
            "INSERT INTO durable VALUES (?, 'f', 't', NULL, 'd', 'suspended', 'o', 0, 0, "
            "NULL, NULL)",
            [(f"r{n}",) for n in range(runs)],
        )
        kept = {1} | {  # the schema, and the pages telling whether there are runs
            page
            for (page,) in connection.execute(
                "SELECT rootpage FROM sqlite_master WHERE tbl_name IN ('durable', 'journal')"
            )
        }
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for number in range(1, len(data) // page + 1):
        if number not in kept:
            data[(number - 1) * page : number * page] = b"\x07" * page
    path.write_bytes(bytes(data))
    found = []
    for x in range(400):
        try:
            await use(path, x)
        except LedgerError as error:
            found.append(str(error))
    assert found, "some lookups read the damaged pages"
    for message in found:
        assert "is damaged" in message
        if runs:
            assert "it holds the journals of durable runs" in message
            assert "copy it aside" in message
            assert "delete it with" not in message
        else:
            assert "it holds only cached results: delete it with its -wal" in message


async def test_a_deleted_wal_file_loses_only_what_it_held_since_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    script = """
import asyncio, os, sys
from kiln.ledger import Ledger

async def node(x: int) -> int:
    return x * 10

async def main(path):
    ledger = Ledger.at(path)
    for x in range(10):
        if x == 5:
            ledger.close()  # the last connection closes: a checkpoint empties the -wal
        await ledger.call("node", "v1", node, (x,), {}, lambda x=x: node(x))
    os._exit(0)  # like kill -9: no close, no checkpoint

asyncio.run(main(sys.argv[1]))
"""
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    wal = tmp_path / "ledger.db-wal"
    assert wal.stat().st_size > 0, "the last five results are in the -wal file only"
    wal.unlink()
    log: list[int] = []
    hits = [(await use(path, x, log))[1] for x in range(10)]
    assert hits == [True] * 5 + [False] * 5
    assert log == [5, 6, 7, 8, 9]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make `paths` unwritable, for root too (which ignores modes: then chattr +i)."""
    if os.geteuid() != 0:
        modes = [p.stat().st_mode for p in paths]
        for p in paths:
            p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
        try:
            yield
        finally:
            for p, mode in zip(paths, modes, strict=True):
                p.chmod(stat.S_IMODE(mode))
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", *paths], check=False).returncode:
        pytest.skip("running as root, and chattr +i cannot make a file read-only here")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *paths], check=True)


async def test_a_read_only_directory_is_refused_before_computing(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "locked"
    directory.mkdir()
    log: list[int] = []
    with read_only(directory), pytest.raises(LedgerError, match="is read-only"):
        await use(directory / "ledger.db", log=log)
    assert log == []


async def test_a_read_only_ledger_is_refused_before_computing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await use(path, 1)
    before = snapshot(tmp_path)
    log: list[int] = []
    with (
        read_only(path),
        pytest.raises(LedgerError, match=r"is read-only .*ledger=False"),
    ):
        await use(path, 2, log=log)
    assert log == []
    assert snapshot(tmp_path) == before


async def test_a_ledger_in_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "locked"
    directory.mkdir()
    await use(directory / "ledger.db", 1)
    with read_only(directory), pytest.raises(LedgerError, match="is read-only"):
        await use(directory / "ledger.db", 1)


async def test_a_path_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LedgerError, match=r"file/ledger\.db"):
        await use(tmp_path / "file" / "ledger.db")
