"""The journal of durable runs, in the ledger's file: what each run finished, and its state.

A run with an id (``F(run_id="r1")``) is durable. `open_run` claims the id
for this process and reads back every outcome the run journaled before; the
run replays those and journals each call it finishes live (`Writer.record`,
committed before the value is used); `close_run` says how it ended: done,
failed, or suspended at a question. Two tables, apart from the cache's,
since nothing here may be thrown away as a cache is (``kiln ledger clear``
leaves them alone):

    durable   one row per run id: its flow, how to start it again (`target`),
              its arguments (codec text, when they can be stored) and their
              digest, its state, the process that owns it while it runs,
              the open question, the result or the error
    journal   one row per finished call of a run, by call key (`durable.py`
              says how keys name a call): the node, its arguments' digest,
              the value (codec text), a checksum

A question's answer is a journal row at the question's key, like any outcome.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

from kiln.durable.record import (
    DurableRun,
    Question,
    State,
    argument_names,
    arguments_match,
    from_row,
    parameters_changed,
)
from kiln.durable.record import damaged as damaged_record
from kiln.errors import DurableRunError, runs_command
from kiln.ledger.file import row_checksum

if TYPE_CHECKING:
    from kiln.ledger import Ledger

__all__ = [
    "DurableRun",
    "Entry",
    "Question",
    "State",
    "alive",
    "answer",
    "close_run",
    "durable_runs",
    "entries",
    "forget",
    "last_calls",
    "open_run",
    "run_record",
]

_HOST: Final = socket.gethostname()
# The run ids this process has open, by ledger file: a second run of one id waits for none.
_OPEN: set[tuple[str, str]] = set()
_OPEN_LOCK: Final = threading.Lock()


class Entry(NamedTuple):
    """A journaled outcome: the node called, its arguments' digest, the value's codec text.

    A tuple, not a dataclass: a replayed run reads one per call before it starts.
    """

    node: str
    digest: str
    text: str


def open_run(
    ledger: Ledger,
    run: str,
    *,
    flow: str,
    target: str,
    arguments: str | None,
    digest: str,
) -> dict[str, Entry]:
    """Claim run id `run` for this process and return what it journaled, by call key.

    A new id is recorded as running. A known one must belong to the same flow
    and have been started with the same arguments, and no live process may
    own it; `DurableRunError` says what to do otherwise.
    """
    claim = (str(ledger.path), run)
    with _OPEN_LOCK:
        if claim in _OPEN:
            raise DurableRunError(
                f"run {run!r} is already running in this process; wait for it to end, "
                "or start another run id",
                run=run,
            )
        _OPEN.add(claim)
    try:
        return ledger.transaction(
            lambda connection: _claim(connection, run, flow, target, arguments, digest)
        )
    except BaseException:
        with _OPEN_LOCK:
            _OPEN.discard(claim)
        raise


def close_run(
    ledger: Ledger,
    run: str,
    state: State,
    *,
    outcome: str | None = None,
    question: Question | None = None,
) -> None:
    """Record how the run ended, give up its ownership, and let this process open it again."""
    asked = None if question is None else json.dumps(dataclasses.asdict(question))
    try:
        ledger.transaction(
            lambda connection: connection.execute(
                "UPDATE durable SET state = ?, owner = '', updated = ?, question = ?, "
                "outcome = ? WHERE run = ?",
                (state, time.time(), asked, outcome, run),
            )
        )
    finally:
        with _OPEN_LOCK:
            _OPEN.discard((str(ledger.path), run))


def answer(ledger: Ledger, run: str, name: str, text: str) -> Question:
    """Journal `text` as the answer to the question run `run` waits at, named `name`."""

    def work(connection: sqlite3.Connection) -> Question:
        record = _record(connection, run)
        if record is None:
            raise DurableRunError(
                f"there is no durable run {run!r} in {ledger.path}", run=run
            )
        question = record.question
        if record.state != "suspended" or question is None:
            raise DurableRunError(
                f"run {run!r} waits for no answer (it is {record.state}); "
                "resume it without one",
                run=run,
            )
        if question.name != name:
            raise DurableRunError(
                f"run {run!r} waits for an answer to {question.name!r} (asked at "
                f"{question.where}), not to {name!r}",
                run=run,
            )
        connection.execute(
            "INSERT OR REPLACE INTO journal (run, key, node, digest, value, checksum, created) "
            "VALUES (?, ?, ?, '', ?, ?, ?)",
            (
                run,
                question.key,
                f"?{name}",
                text,
                row_checksum(run, question.key, "", text),
                time.time(),
            ),
        )
        return question

    return ledger.transaction(work)


def durable_runs(
    ledger: Ledger, damaged: list[DurableRunError] | None = None
) -> list[DurableRun]:
    """Every durable run the ledger knows, the latest started first.

    A damaged record (`kiln.durable.record`) is refused; with `damaged`, it is
    added there instead, and the others are listed.
    """

    def work(connection: sqlite3.Connection) -> list[DurableRun]:
        found: list[DurableRun] = []
        path = _path(connection)
        for row in connection.execute(f"{_SELECT} ORDER BY started DESC, run"):
            try:
                found.append(from_row(row, path))
            except DurableRunError as error:
                if damaged is None:
                    raise
                damaged.append(error)
        return found

    return ledger.transaction(work)


def run_record(ledger: Ledger, run: str) -> DurableRun | None:
    return ledger.transaction(lambda connection: _record(connection, run))


def entries(ledger: Ledger, run: str) -> list[tuple[str, Entry, float]]:
    """The run's journal in the order it was written: key, outcome, time."""
    return ledger.transaction(
        lambda connection: [
            (key, Entry(node, digest, value), created)
            for key, node, digest, value, created in connection.execute(
                "SELECT key, node, digest, value, created FROM journal WHERE run = ? "
                "ORDER BY rowid",
                (run,),
            )
        ]
    )


def forget(ledger: Ledger, run: str, *, start: str | None = None) -> int:
    """Forget run `run` (with `start`, only what it journaled from that call key on).

    Returns how many journal rows went. A run that a live process owns is refused.
    """

    def work(connection: sqlite3.Connection) -> int:
        # Not the whole record: a damaged one is forgotten too, as its message says.
        row = connection.execute(
            "SELECT owner FROM durable WHERE run = ?", (run,)
        ).fetchone()
        if row is None:
            raise DurableRunError(
                f"there is no durable run {run!r} in {ledger.path}", run=run
            )
        owner = row[0] if isinstance(row[0], str) else ""
        if alive(owner):
            raise DurableRunError(
                f"run {run!r} is running in process {owner}; stop it first",
                run=run,
            )
        if start is None:
            connection.execute("DELETE FROM durable WHERE run = ?", (run,))
            return connection.execute(
                "DELETE FROM journal WHERE run = ?", (run,)
            ).rowcount
        first = connection.execute(
            "SELECT rowid FROM journal WHERE run = ? AND key = ?", (run, start)
        ).fetchone()
        if first is None:
            raise DurableRunError(
                f"run {run!r} journaled no call at {start!r}; `kiln runs show {run}` lists "
                "its calls and their keys",
                run=run,
            )
        # Resumable, as a failed run is; what it ended with is no longer its outcome.
        connection.execute(
            "UPDATE durable SET state = 'failed', question = NULL, updated = ?, "
            "outcome = ? WHERE run = ?",
            (
                time.time(),
                f"forgotten from {start}: resume it to run on from there",
                run,
            ),
        )
        return connection.execute(
            "DELETE FROM journal WHERE run = ? AND rowid >= ?", (run, first[0])
        ).rowcount

    return ledger.transaction(work)


def last_calls(ledger: Ledger) -> dict[str, float]:
    """When each run journaled its latest call, by run id (a run with none is left out)."""
    return ledger.transaction(
        lambda connection: dict(
            connection.execute("SELECT run, max(created) FROM journal GROUP BY run")
        )
    )


def alive(owner: str) -> bool:
    """Whether the process that owns a run (`DurableRun.owner`, ``"host:pid"``) still runs.

    False for no owner, for this process, and for one that exited and is not
    reaped yet (a zombie runs nothing); true for one on another host, which
    cannot be asked.
    """
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != _HOST:
        return True
    try:
        number = int(pid)
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return number != os.getpid() and not _exited(number)


# --- rows ------------------------------------------------------------------------------

_SELECT: Final = (
    "SELECT run, flow, target, state, owner, started, updated, "
    "(SELECT count(*) FROM journal WHERE journal.run = durable.run), "
    "arguments, question, outcome FROM durable"
)


def _claim(
    connection: sqlite3.Connection,
    run: str,
    flow: str,
    target: str,
    arguments: str | None,
    digest: str,
) -> dict[str, Entry]:
    record = _record(connection, run)
    now = time.time()
    owner = f"{_HOST}:{os.getpid()}"
    if record is None:
        connection.execute(
            "INSERT INTO durable (run, flow, target, arguments, digest, state, owner, "
            "started, updated) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            (run, flow, target, arguments, digest, owner, now, now),
        )
        return {}
    if record.flow != flow:
        raise DurableRunError(
            f"run id {run!r} belongs to a run of flow {record.flow}, not of {flow}; "
            "use a new run id",
            run=run,
        )
    stored = connection.execute(
        "SELECT digest FROM durable WHERE run = ?", (run,)
    ).fetchone()[0]
    if stored and digest and stored != digest:
        if not arguments_match(record.arguments, stored):
            # Changed by hand: running it "with those" would be refused again.
            raise damaged_record(
                run, _path(connection), "its arguments are not those of its digest"
            )
        # The flow's parameters changed since: resuming cannot help.
        changed = parameters_changed(run, record.arguments, argument_names(arguments))
        raise DurableRunError(
            changed
            or f"run {run!r} was started with other arguments ({_short(record.arguments)}); "
            "run it again with those (resume() it, or "
            f"`{runs_command(_path(connection), f'resume {run}')}`), or use a new run id",
            run=run,
        )
    if record.owner and record.owner != owner and alive(record.owner):
        raise DurableRunError(
            f"run {run!r} is running in process {record.owner}; two processes never run "
            "one durable run at once: wait for it, or stop it first",
            run=run,
        )
    connection.execute(
        "UPDATE durable SET state = 'running', owner = ?, updated = ?, question = NULL, "
        "target = ? WHERE run = ?",
        (owner, now, target, run),
    )
    found: dict[str, Entry] = {}
    for key, node, entry_digest, value, stored_sum in connection.execute(
        "SELECT key, node, digest, value, checksum FROM journal WHERE run = ?", (run,)
    ):
        if stored_sum != row_checksum(run, key, entry_digest, value):
            raise DurableRunError(
                f"the journal of run {run!r} in {_path(connection)} is damaged at "
                f"{key!r} (its checksum fails); forget the run from there with "
                f"`{runs_command(_path(connection), f'forget {run} --from {key}')}`",
                run=run,
            )
        found[key] = Entry(node, entry_digest, value)
    return found


def _path(connection: sqlite3.Connection) -> str:
    row = connection.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row is not None else "the ledger"


def _record(connection: sqlite3.Connection, run: str) -> DurableRun | None:
    row = connection.execute(f"{_SELECT} WHERE run = ?", (run,)).fetchone()
    # The columns of _SELECT are DurableRun's fields, in order.
    return None if row is None else from_row(row, _path(connection))


def _exited(pid: int) -> bool:
    """Whether process `pid` exited and waits to be reaped (Linux's /proc says 'Z')."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] == "Z"


def _short(text: str | None) -> str:
    if text is None:
        return "not storable"
    return text if len(text) <= 80 else f"{text[:77]}..."
