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

The trace's directory and its temporary file beside it are made once the
flow's arguments are bound, before the run, so that a place where it cannot
be written fails at once (and a mistyped argument leaves nothing behind); the
temporary file is renamed over the trace at the end.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from kiln.errors import LedgerError
from kiln.ledger.file import prepare
from kiln.ledger.store import DEFAULT_PATH
from kilnc.cli.outputs import (
    PendingFile,
    check_directory,
    check_target,
    is_kiln_trace,
    pending_file,
)
from kilnc.run.load import TargetError

__all__ = ["checked_ledger", "checked_trace", "pending_trace"]

EXIT_USAGE = 2


def checked_trace(
    path: Path | None, source: Path, ledger: Path | None = None
) -> Path | None:
    """The `--trace` path, once it is known that kiln may write it (nothing made
    yet): never the ledger the run keeps its results in (`ledger`, else
    `$KILN_LEDGER` or `.kiln/ledger.db`), which may not exist yet, and which the
    trace, written when the run ends, would replace."""
    if path is None:
        return None
    kept = ledger or os.environ.get("KILN_LEDGER") or DEFAULT_PATH
    if _same(path, Path(kept)):
        raise TargetError(
            f"--trace: {path} is the ledger this run keeps its results in;"
            " give the trace another path",
            EXIT_USAGE,
        )
    refusal = check_directory(path.parent, [source], what="directory") or check_target(
        path, [source], is_kiln_trace, what="trace"
    )
    if refusal is not None:
        raise TargetError(f"--trace: {refusal.message}", EXIT_USAGE)
    return path


def pending_trace(path: Path | None, stack: ExitStack) -> PendingFile | None:
    """The trace file to commit when the run ends (its directory made), or None."""
    if path is None:
        return None
    try:
        return stack.enter_context(pending_file(path))
    except OSError as exc:
        message = f"cannot write the trace to {path}: {exc.strerror or exc}"
        raise TargetError(message, EXIT_USAGE) from None


def checked_ledger(path: Path | None, source: Path) -> Path | None:
    """The `--ledger` path, once it is known to be a kiln ledger or a free path."""
    if path is None:
        return None
    refusal = check_target(path, [source], lambda _: True, what="ledger")
    if refusal is not None:
        raise TargetError(f"--ledger: {refusal.message}", EXIT_USAGE)
    if not path.exists():
        return path
    try:
        prepare(path.resolve(), create=False)
    except LedgerError as exc:
        raise TargetError(f"--ledger: {exc}", EXIT_USAGE) from None
    return path


def _same(one: Path, other: Path) -> bool:
    """Whether two paths name one file, there or not yet."""
    return Path(os.path.realpath(one.expanduser())) == Path(
        os.path.realpath(other.expanduser())
    )
