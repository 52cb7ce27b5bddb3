"""`kiln ledger stats|clear [PATH]`: what the ledger of `cache=True` nodes holds, and emptying it.

    kiln ledger stats                # $KILN_LEDGER, [tool.kiln] ledger, .kiln/ledger.db
    kiln ledger stats build/ledger.db --json
    kiln ledger clear --node summarize   # that node's entries only

`stats` prints the entries per node (with how many source versions they
come from: more than one means entries of code since edited), the size on
disk and the hit rate of the last runs; `clear` removes entries and gives
their space back. Both print a table, or one JSON document with `--json`.

Exit status: 0 when done, 1 when there is no ledger at the path or it cannot
be used (the message says why and what to do), 2 for bad command-line use.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from kiln.errors import LedgerError
from kiln.ledger import Ledger, LedgerStats, NodeEntries, RunHits
from kiln.ledger.file import prepare, read_stats
from kiln.ledger.problems import problem
from kilnc.cli.config import config_start, load_config
from kilnc.diagnostics import render_all
from kilnc.terminal import LINES, printable, safe_str

EXIT_OK, EXIT_ERRORS = 0, 1


class ConfigProblems(Exception):
    """`[tool.kiln]` has errors, so the configured ledger is not known: the message
    is the rendered diagnostics."""


def locate_ledger(path: Path | None) -> Ledger:
    """The ledger at `path`, else the one flows run here use.

    That is ``$KILN_LEDGER``, else the ``[tool.kiln] ledger`` of the project
    around the working directory, else ``.kiln/ledger.db``: as `kiln run`
    finds it (`Flow.ledger`). Nothing is opened yet.
    """
    config, problems = load_config(config_start([]))
    if problems:
        sources = {config.source.path: config.source} if config.source else {}
        raise ConfigProblems(render_all(problems, sources))
    return Ledger.at(path, default=config.ledger_path)


def run_ledger(args: argparse.Namespace) -> int:
    """The handler of both subcommands: find the ledger, act, print; never a traceback."""
    given = args.path or args.ledger  # PATH or --ledger FILE: the parser takes one
    try:
        ledger = locate_ledger(given)
    except ConfigProblems as problems:
        print(problems, file=sys.stderr)
        return EXIT_ERRORS
    try:
        if not ledger.path.exists():
            return _error(
                f"no ledger at {ledger.path}: nothing has been cached there yet"
                + ("" if given else "; give a PATH, or set KILN_LEDGER")
            )
        if args.ledger_command == "stats":
            _print_stats(read_only_stats(ledger.path, args.runs), as_json=args.json)
            return EXIT_OK
        nodes = [n.node for n in ledger.stats(0).nodes]
        removed = ledger.clear(args.node)
    except LedgerError as error:
        return _error(str(error))
    finally:
        ledger.close()
    _print_cleared(ledger.path, args.node, removed, nodes, as_json=args.json)
    return EXIT_OK


def read_only_stats(path: Path, runs: int) -> LedgerStats:
    """The ledger's stats, read without writing a byte: `stats` works on a read-only copy.

    SQLite's read-only mode still needs the write-ahead log's index beside the
    file, which it cannot make in a read-only directory; a ledger without a
    live log is then read as immutable, as `prepare` inspects it.
    """
    if not prepare(path, create=False):  # refuses what is not a kiln ledger
        return LedgerStats(path, 0, (), ())
    try:
        connection = _read_only(path)
        try:
            return _plain(read_stats(connection, path, runs))
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise problem(path, error) from error


def _plain(stats: LedgerStats) -> LedgerStats:
    """The stats with the types they declare: SQLite keeps whatever a crafted file holds.

    A node name stored as a blob or a number, a count stored as text, a NULL:
    each is shown as what it is (names) or as 0 (numbers), never a crash.
    """
    nodes = tuple(
        NodeEntries(
            _text(n.node), _number(n.entries), _number(n.versions), _number(n.bytes)
        )
        for n in stats.nodes
    )
    runs = tuple(
        RunHits(_text(r.run), _moment(r.started), _number(r.hits), _number(r.misses))
        for r in stats.runs
    )
    return LedgerStats(stats.path, _number(stats.size), nodes, runs)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return safe_str(value)


def _moment(value: object) -> float:
    """A run's start time, or 0 when it is not one a clock could show (year 1970 to 2242)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if 0 <= value < 1 << 33 else 0.0
    return 0.0


def _number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return int(value)


def _read_only(path: Path) -> sqlite3.Connection:
    wal = path.with_name(f"{path.name}-wal")
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        if wal.exists() and wal.stat().st_size > 0:
            raise  # a live log holds results an immutable read would miss
        return sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True)
    return connection


def _print_stats(stats: LedgerStats, *, as_json: bool) -> None:
    if as_json:
        document = {
            "path": str(stats.path),
            "size": stats.size,
            "entries": stats.entries,
            "nodes": [
                {
                    "node": n.node,
                    "entries": n.entries,
                    "versions": n.versions,
                    "bytes": n.bytes,
                }
                for n in stats.nodes
            ],
            "runs": [
                {
                    "run": r.run,
                    "started": datetime.fromtimestamp(r.started, UTC).isoformat(),
                    "hits": r.hits,
                    "misses": r.misses,
                    "hit_rate": round(r.hit_rate, 4),
                }
                for r in stats.runs
            ],
        }
        print(json.dumps(document, indent=2))
        return
    print(
        f"ledger {printable(str(stats.path))}: {_entries(stats.entries)},"
        f" {_size(stats.size)} on disk"
    )
    if stats.nodes:
        rows = [
            (printable(n.node), f"{n.entries:,}", f"{n.versions:,}", _size(n.bytes))
            for n in stats.nodes
        ]
        print()
        print_table(("node", "entries", "versions", "stored"), rows)
    print()
    if not stats.runs:
        print("no runs recorded yet")
        return
    print("last runs, newest first:")
    print_table(
        ("run", "started", "hits", "misses", "hit rate"),
        [
            (
                printable(r.run[:12]),
                local_time(r.started),
                f"{r.hits:,}",
                f"{r.misses:,}",
                f"{r.hit_rate:.1%}",
            )
            for r in stats.runs
        ],
    )


def _print_cleared(
    path: Path, node: str | None, removed: int, nodes: list[str], *, as_json: bool
) -> None:
    if as_json:
        print(json.dumps({"path": str(path), "node": node, "removed": removed}))
    elif node is None:
        print(printable(f"removed {_entries(removed)} from {path}"))
    elif removed or node in nodes:
        print(printable(f"removed {_entries(removed)} of node {node!r} from {path}"))
    else:
        known = ", ".join(repr(n) for n in nodes) or "none"
        print(printable(f"no entries of node {node!r} in {path} (its nodes: {known})"))


def print_table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], left: int = 1
) -> None:
    """Columns as wide as their widest cell; the first `left` left-aligned, numbers right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable: GiB returns")


def _entries(count: int) -> str:
    return f"{count:,} {'entry' if count == 1 else 'entries'}"


def local_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _error(message: str) -> int:
    print(f"kiln: error: {printable(message, LINES)}", file=sys.stderr)
    return EXIT_ERRORS
