"""`kiln runs list|show|forget`: the durable runs in a ledger (`kiln run --run-id`).

    kiln runs list                       # $KILN_LEDGER, [tool.kiln] ledger, .kiln/ledger.db
    kiln runs show r1 --format json
    kiln runs forget r1 --from 1.0       # resuming runs call 1.0 and the rest again

`list` prints each run's id, flow, state, start, last call and number of
calls, the latest started first. A run whose record says it is running but
whose process is gone (killed) is shown "stopped": `kiln runs resume` goes
on with it. `show` prints a run's calls in the order they were journaled
(key, node, value shortened), the question it waits at with its payload,
and its outcome. `--format json` prints one JSON document instead, values
whole. `answer` and `resume` run the flow again (resume.py).

Exit status: 0 when done, 1 when the run or its ledger is not there or
cannot be used (an unknown run id, a run a live process owns, ...): one
line that says so, never a traceback; 2 for bad command-line use.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from kiln.durable.journal import (
    DurableRun,
    alive,
    durable_runs,
    entries,
    forget,
    last_calls,
    run_record,
)
from kiln.errors import DurableRunError, LedgerError
from kiln.ledger import Ledger
from kilnc.cli.ledger import ConfigProblems, local_time, locate_ledger, print_table
from kilnc.run.output import payload_value, question_json, question_text
from kilnc.terminal import LINES, printable

__all__ = [
    "RunsError",
    "error_status",
    "find_run",
    "ledger_option",
    "run_runs",
    "runs_ledger",
    "shown_state",
]

EXIT_OK, EXIT_ERRORS = 0, 1
_VALUE_WIDTH: Final = 60  # a value in `show`'s table: the JSON output has it whole


class RunsError(Exception):
    """The run or its ledger is not there, or cannot be used: the message says why."""


def run_runs(args: argparse.Namespace) -> int:
    """The handler of list, show and forget: find the ledger, act, print."""
    as_json = args.format == "json"
    try:
        ledger = runs_ledger(args.ledger)
        if args.runs_command == "list":
            return _print_list(ledger, as_json=as_json)
        if args.runs_command == "show":
            _print_run(ledger, find_run(ledger, args.run), as_json=as_json)
        else:
            _forget(ledger, args.run, args.start, as_json=as_json)
    except ConfigProblems as problems:
        print(problems, file=sys.stderr)
        return EXIT_ERRORS
    except (RunsError, DurableRunError, LedgerError) as error:
        return error_status(error)
    return EXIT_OK


def runs_ledger(path: Path | None) -> Ledger:
    """The ledger of `--ledger PATH`, else the one `kiln run` would use here."""
    return locate_ledger(path)


def find_run(ledger: Ledger, run: str) -> DurableRun:
    """What the ledger knows of run `run`; `RunsError` if nothing."""
    if not ledger.path.exists():
        raise RunsError(
            f"there is no durable run {run!r}: there is no ledger at {ledger.path}"
            " (give --ledger FILE, or set KILN_LEDGER)"
        )
    record = run_record(ledger, run)
    if record is not None:
        return record
    raise RunsError(
        f"there is no durable run {run!r} in {ledger.path}; `kiln runs list` lists them"
    )


def shown_state(record: DurableRun) -> str:
    """The run's state; "stopped" for one that says running, whose process is gone."""
    if record.state == "running" and not alive(record.owner):
        return "stopped"
    return record.state


def error_status(error: Exception) -> int:
    """Print a one-line error; exit status 1."""
    print(f"kiln: error: {printable(str(error), LINES)}", file=sys.stderr)
    return EXIT_ERRORS


# --- list ------------------------------------------------------------------------------


def _print_list(ledger: Ledger, *, as_json: bool) -> int:
    """The runs; each whose record is damaged said on stderr (exit 1), the others listed."""
    found = ledger.path.exists()
    damaged: list[DurableRunError] = []
    records = durable_runs(ledger, damaged) if found else []
    last = last_calls(ledger) if found else {}
    if as_json:
        document = {
            "ledger": str(ledger.path),
            "runs": [_run_json(r, last.get(r.run)) for r in records],
            "damaged": [{"run": e.run, "error": str(e)} for e in damaged],
        }
        print(json.dumps(document, indent=2))
    elif not records and not damaged:
        print(printable(f"no durable runs in {ledger.path}"))
    elif records:
        _print_rows(records, last)
    for error in damaged:
        error_status(error)
    return EXIT_ERRORS if damaged else EXIT_OK


def _print_rows(records: list[DurableRun], last: dict[str, float]) -> None:
    rows = [
        (
            printable(r.run),
            printable(r.flow),
            shown_state(r),
            local_time(r.started),
            local_time(last[r.run]) if r.run in last else "-",
            f"{r.calls:,}",
        )
        for r in records
    ]
    print_table(("run", "flow", "state", "started", "last call", "calls"), rows, 5)


def _run_json(record: DurableRun, last_call: float | None) -> dict[str, Any]:
    """A run as JSON: its arguments and result as JSON values, times in ISO 8601."""
    question = record.question
    return {
        "run": record.run,
        "flow": record.flow,
        "target": record.target,
        "state": shown_state(record),
        "owner": record.owner or None,
        "started": _iso(record.started),
        "updated": _iso(record.updated),
        "last_call": None if last_call is None else _iso(last_call),
        "calls": record.calls,
        "arguments": (
            None if record.arguments is None else payload_value(record.arguments)
        ),
        "question": None if question is None else question_json(question),
        "result": (
            payload_value(record.outcome)
            if record.state == "done" and record.outcome is not None
            else None
        ),
        "error": record.outcome if record.state == "failed" else None,
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


# --- show ------------------------------------------------------------------------------


def _print_run(ledger: Ledger, record: DurableRun, *, as_json: bool) -> None:
    journal = entries(ledger, record.run)
    if as_json:
        last = journal[-1][2] if journal else None
        document = _run_json(record, last) | {
            "ledger": str(ledger.path),
            "journal": [
                {
                    "key": key,
                    "node": entry.node,
                    "value": payload_value(entry.text),
                    "journaled": _iso(created),
                }
                for key, entry, created in journal
            ],
        }
        print(json.dumps(document, indent=2))
        return
    state = shown_state(record)
    details = [
        ("started", local_time(record.started)),
        ("updated", local_time(record.updated)),
        ("target", record.target),
        ("arguments", record.arguments or "(not stored)"),
    ]
    if record.owner:
        gone = " (gone: `kiln runs resume` goes on)" if state == "stopped" else ""
        details.append(("process", f"{record.owner}{gone}"))
    print(printable(f"run {record.run}: flow {record.flow}, {state}"))
    for label, text in details:
        print(printable(f"  {label:<10} {_short(text, 200)}"))
    print()
    if journal:
        rows = [
            (printable(key), printable(entry.node), printable(_short(entry.text)))
            for key, entry, _ in journal
        ]
        print_table(("key", "node", "value"), rows, 3)
    else:
        print("no calls journaled")
    _print_end(ledger, record)


def _print_end(ledger: Ledger, record: DurableRun) -> None:
    """The open question, or how the run ended."""
    if record.question is not None:
        print()
        print(question_text(record.run, record.question, ledger_option(ledger)))
    elif record.state == "done" and record.outcome is not None:
        print()
        print(printable(f"result: {_short(record.outcome, 200)}"))
    elif record.state == "failed" and record.outcome is not None:
        print()
        print(printable(f"error: {record.outcome}", LINES))


def ledger_option(ledger: Ledger) -> str:
    """`--ledger PATH` for a command that must find this ledger again, or ""."""
    default = runs_ledger(None).path
    return (
        "" if ledger.path == default else f" --ledger {shlex.quote(str(ledger.path))}"
    )


def _short(text: str, width: int = _VALUE_WIDTH) -> str:
    """The text on one line, cut to `width` characters."""
    line = " ".join(text.split("\n"))
    return line if len(line) <= width else f"{line[: width - 3]}..."


# --- forget ----------------------------------------------------------------------------


def _forget(ledger: Ledger, run: str, start: str | None, *, as_json: bool) -> None:
    # Not find_run: a run whose record is damaged is forgotten too (its message says so).
    if not ledger.path.exists():
        find_run(ledger, run)
    removed = forget(ledger, run, start=start)
    if as_json:
        document = {
            "ledger": str(ledger.path),
            "run": run,
            "from": start,
            "removed": removed,
        }
        print(json.dumps(document))
        return
    calls = f"{removed:,} journaled call{'' if removed == 1 else 's'}"
    if start is None:
        print(printable(f"forgot run {run!r} ({calls})"))
    else:
        print(
            printable(
                f"forgot what run {run!r} journaled from {start} on ({calls});"
                f" `kiln runs resume {shlex.quote(run)}` runs it again from there"
            )
        )
