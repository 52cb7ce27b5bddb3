"""`kiln compile`: find the sources, compile each, write or check the outputs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kilnc.cli.closed_output import finishing
from kilnc.cli.config import ledger_beside
from kilnc.cli.inputs import find_sources
from kilnc.cli.orphans import Orphan, find_orphans, orphan_error
from kilnc.cli.parser import EXIT_USAGE
from kilnc.cli.report import Report
from kilnc.cli.settle import settle_args
from kilnc.cli.write import (
    Tally,
    missing_marker,
    stale_output,
    unusable_directory,
    write_all,
)
from kilnc.diagnostics import Code, error
from kilnc.packages import OutputTree, plan_tree
from kilnc.pipeline import FRONT_END, Compilation, compile_file
from kilnc.source import Span
from kilnc.terminal import LINES, printable

EXIT_OK, EXIT_ERRORS = 0, 1


def run_compile(args: argparse.Namespace) -> int:
    # A reader gone from the diagnostics leaves no output half written.
    with finishing():
        return _compile(args)


def _compile(args: argparse.Namespace) -> int:
    # A --dump's listing is the output: what else the compile says goes aside.
    report = Report(args.format, aside=args.dump is not None)
    if report.json and args.dump:
        print(
            "kiln: error: --dump prints text; leave out --format json", file=sys.stderr
        )
        return EXIT_USAGE
    settled = settle_args(args, report)
    if isinstance(settled, int):
        report.close()
        return settled
    args = settled
    files, problems = find_sources(args.sources, args.output)
    # A --dump with no output directory links the modules as a compile into one.
    tree = plan_tree(files, args.output or Path("build"), FRONT_END)
    problems += tree.clashes()
    if problems:
        print(printable("\n".join(problems), LINES), file=sys.stderr)
        return EXIT_USAGE
    if (refused := _refused_directory(args, files, report)) is not None:
        return refused
    status, tally = EXIT_OK, Tally()
    planned: list[tuple[Compilation, Path]] = []
    outcomes: dict[Path, bool | None] = {}  # each source: an output, none, failed
    schemas: list[Any] = []  # --dump schema: every file's flows
    for file in files:
        # No output directory only with --dump, which writes nothing.
        target = None if args.output is None else tree.target(file)
        try:
            ledger = None if target is None else ledger_beside(args.ledger, target)
            compilation = compile_file(
                file, args.dump, args.max_visits, ledger, tree.links(file)
            )
            if args.warnings_as_errors:
                compilation = compilation.warnings_as_errors()
        except OSError as exc:
            where = Span.at(str(file), 1)
            unreadable = error(where, Code.UNREADABLE, f"cannot read: {exc.strerror}")
            tally.count(report.add([unreadable], {}))
            status = max(status, EXIT_ERRORS)
            outcomes[file] = None
            continue
        status = max(status, _report(compilation, args.show_traceback, report, tally))
        outcomes[file] = None if compilation.failed else compilation.output is not None
        if compilation.failed:
            continue
        _show_dumps(compilation, args.dump, schemas)
        if compilation.output is None:
            if not args.quiet:
                shown = printable(compilation.source.path)
                report.say(f"{shown}: note: no @flow to compile")
            continue
        if target is None or (args.dump and not args.check):
            continue  # --dump is a look, not a build: nothing is written
        planned.append((compilation, target))
    if args.dump == "schema":
        print(json.dumps(schemas, indent=2))
    status = max(
        status, _check_or_write(planned, tree, outcomes, files, args, report, tally)
    )
    if tally.errors:
        building = args.output is not None and not args.check and not args.dump
        report.say(tally.summary(nothing_written=building and not tally.written))
    report.close()
    return status


def _refused_directory(
    args: argparse.Namespace, files: list[Path], report: Report
) -> int | None:
    """Exit 1 when the outputs are checked or written where a file stands (KLN703):
    said before compiling, once, not as each call across modules (KLN704)."""
    looked = args.output is not None and (args.check or not args.dump)
    unusable = unusable_directory(args, files) if looked else None
    if unusable is None:
        return None
    tally = Tally()
    tally.count(report.add([unusable], args.config_sources))
    report.say(tally.summary(nothing_written=not args.check))
    report.close()
    return EXIT_ERRORS


def _check_or_write(
    planned: list[tuple[Compilation, Path]],
    tree: OutputTree,
    outcomes: dict[Path, bool | None],
    files: list[Path],
    args: argparse.Namespace,
    report: Report,
    tally: Tally,
) -> int:
    """--check the outputs, or write them and remove the orphans (orphans.py)."""
    markers = tree.markers(target for _, target in planned)
    # Orphans are looked for where outputs are checked or written: --dump writes none.
    looked = args.output is not None and (args.check or not args.dump)
    orphans = find_orphans(tree, outcomes) if looked else []
    if args.check:
        return _check_stale(planned, markers, orphans, args, report)
    if (planned or orphans) and not tally.errors:
        # A module of the compile that failed would leave the others importing
        # it from a package where it is missing, or stale: none is written.
        return write_all(planned, markers, orphans, files, args, report, tally)
    return EXIT_OK


def _show_dumps(compilation: Compilation, dump: str | None, schemas: list[Any]) -> None:
    """Print a file's `--dump` listings; schemas gather into one document, printed last."""
    if dump == "schema":
        schemas += [
            schema for listing in compilation.dumps for schema in json.loads(listing)
        ]
        return
    for listing in compilation.dumps:
        print(printable(listing, LINES))


def _check_stale(
    planned: list[tuple[Compilation, Path]],
    markers: list[Path],
    orphans: list[Orphan],
    args: argparse.Namespace,
    report: Report,
) -> int:
    """--check: exit 1 when an output or a package marker is missing or stale, or
    an output is an orphan (no source compiles to it now)."""
    fix = args.compile_again
    stale = [stale_output(c, t, fix) for c, t in planned]
    stale += [missing_marker(marker, fix) for marker in markers]
    stale += [orphan_error(orphan, fix) for orphan in orphans]
    found = [d for d in stale if d is not None]
    report.add(found, {})
    return EXIT_ERRORS if found else EXIT_OK


def _report(
    compilation: Compilation, show_traceback: bool, report: Report, tally: Tally
) -> int:
    tally.count(report.add(compilation.diagnostics, compilation.sources))
    internal = any(d.code is Code.INTERNAL for d in compilation.diagnostics)
    if internal and show_traceback:
        print("\n".join(compilation.dumps), file=sys.stderr)
    if internal:
        return EXIT_USAGE
    return EXIT_ERRORS if compilation.failed else EXIT_OK
