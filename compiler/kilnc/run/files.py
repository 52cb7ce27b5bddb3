"""The files `kiln run` writes besides the flow's own: the trace, and the ledger it is given.

Both are checked before anything is compiled (cli/outputs.py has the rules):

    kiln run flows.py:digest --trace flows.py      refused: the source
    kiln run flows.py:digest --trace notes.txt     refused: not a trace kiln wrote
    kiln run flows.py:digest --trace run.json      written when the run ends, whole
    kiln run flows.py:digest --trace out/run.json  out/ made first, parents too
    kiln run flows.py:digest --trace notes.txt/r   refused: a file is in the way
    kiln run flows.py:digest --trace run.db --ledger run.db   refused: the ledger
    kiln run flows.py:digest --ledger flows.py     refused: the source
    kiln run flows.py:digest --ledger fifo         refused: not a regular file
    kiln run flows.py:digest --ledger notes.db     refused unless a kiln ledger
    kiln run flows.py:digest --ledger copy.db      refused if damaged (truncated)

The ledger is checked wherever it is named: `--ledger`, else `$KILN_LEDGER`,
else the `[tool.kiln] ledger` of the source's project, else `.kiln/ledger.db`
(`run_ledger`, as `Flow.ledger_of` finds it), and the trace may be none of
them, nor a file SQLite keeps beside it (-wal, -shm, -journal).

The trace's directory and its temporary file beside it are made once the
flow's arguments are bound, before the run, so that a place where it cannot
be written fails at once (and a mistyped argument leaves nothing behind); the
temporary file is renamed over the trace at the end.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from kiln.errors import LedgerError
from kiln.ledger.file import prepare
from kiln.ledger.problems import check_intact
from kiln.ledger.store import DEFAULT_PATH
from kilnc.cli.config import config_start, load_config
from kilnc.cli.outputs import (
    PendingFile,
    check_directory,
    check_target,
    is_kiln_trace,
    pending_file,
)
from kilnc.run.load import TargetError

__all__ = [
    "RunLedger",
    "check_flow_ledger",
    "check_ledger",
    "checked_trace",
    "pending_trace",
    "run_ledger",
]

EXIT_USAGE = 2
_BESIDE: Final = ("", "-wal", "-shm", "-journal")  # the file, and SQLite's beside it


@final
@dataclass(frozen=True, slots=True)
class RunLedger:
    """The ledger file a run keeps its results in, and what named it (in messages)."""

    path: Path
    named_by: str
    given: Path | None = None  # --ledger's path, passed to the flow


def run_ledger(given: Path | None, source: Path) -> RunLedger:
    """The ledger a run of `source` uses: `--ledger`, `$KILN_LEDGER`, the project's
    `[tool.kiln] ledger` (one `[tool.kiln]` with errors names none: compiling
    the source reports them), else `.kiln/ledger.db`."""
    if given is not None:
        return RunLedger(given, "--ledger", given)
    named = os.environ.get("KILN_LEDGER")
    if named:
        return RunLedger(Path(named), "KILN_LEDGER")
    config, problems = load_config(config_start([source]))
    if config.ledger_path is not None and not problems:
        return RunLedger(config.ledger_path, "[tool.kiln] ledger")
    return RunLedger(DEFAULT_PATH, "the default ledger")


def checked_trace(path: Path | None, source: Path, ledger: RunLedger) -> Path | None:
    """The `--trace` path, once it is known that kiln may write it (nothing made
    yet): never the ledger the run keeps its results in, nor a file beside it,
    which may not exist yet, and which the trace, written when the run ends,
    would replace."""
    if path is None:
        return None
    check_trace_beside(path, ledger.path)
    refusal = check_directory(path.parent, [source], what="directory") or check_target(
        path, [source], is_kiln_trace, what="trace"
    )
    if refusal is not None:
        raise TargetError(f"--trace: {refusal.message}", EXIT_USAGE)
    return path


def check_trace_beside(trace: Path, ledger: Path) -> None:
    """Refuse a trace at `ledger`'s path, or at a file SQLite keeps beside it."""
    for suffix in _BESIDE:
        if _same(trace, ledger.with_name(ledger.name + suffix)):
            what = (
                "the ledger" if not suffix else f"the {suffix} file beside the ledger"
            )
            raise TargetError(
                f"--trace: {trace} is {what} this run keeps its results in;"
                " give the trace another path",
                EXIT_USAGE,
            )


def pending_trace(path: Path | None, stack: ExitStack) -> PendingFile | None:
    """The trace file to commit when the run ends (its directory made), or None."""
    if path is None:
        return None
    try:
        return stack.enter_context(pending_file(path))
    except OSError as exc:
        message = f"cannot write the trace to {path}: {exc.strerror or exc}"
        raise TargetError(message, EXIT_USAGE) from None


def check_ledger(ledger: RunLedger, source: Path) -> None:
    """Refuse a ledger that is not a kiln ledger, nor a free path, or that is damaged.

    Read only: nothing is made (SQLite's ``quick_check`` reads the file whole).
    """
    path = ledger.path.expanduser()
    refusal = check_target(path, [source], lambda _: True, what="ledger")
    if refusal is not None:
        raise TargetError(f"{ledger.named_by}: {refusal.message}", EXIT_USAGE)
    if not path.exists():
        return
    try:
        if prepare(path.resolve(), create=False):
            check_intact(path.resolve())
    except LedgerError as exc:
        raise TargetError(f"{ledger.named_by}: {exc}", EXIT_USAGE) from None


def check_flow_ledger(
    used: Path | None, ledger: RunLedger, trace: Path | None, source: Path
) -> None:
    """Check the ledger the loaded flow uses, where it is not `ledger`, checked already.

    A module kiln generated elsewhere keeps the `[tool.kiln] ledger` of the
    project it was compiled in.
    """
    if used is None or _same(used, ledger.path):
        return
    if trace is not None:
        check_trace_beside(trace, used)
    check_ledger(RunLedger(used, "the flow's ledger"), source)


def _same(one: Path, other: Path) -> bool:
    """Whether two paths name one file, there or not yet."""
    return Path(os.path.realpath(one.expanduser())) == Path(
        os.path.realpath(other.expanduser())
    )
