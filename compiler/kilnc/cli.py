"""The `kiln` command.

    kiln compile [SRC...] [-o OUTDIR] [--check] [--dump ir|graph|plan] [--format text|json]
                 [--warnings-as-errors] [--force]  (writing: cli_write.py, outputs.py)
    kiln check SRC... -o OUTDIR [--no-mypy]
    kiln graph SRC [--flow NAME] [--format mermaid|dot|svg|png] [-o FILE]  (see cli_graph.py)
    kiln run PATH.py:FLOW [name=value ...] [--json] [--trace FILE]  (see cli_run.py)
    kiln ledger stats|clear [--node NAME] [PATH] [--json]  (see cli_ledger.py)

Exit status: 0 when everything compiled (warnings allowed), 1 when a source
has errors, `--check` finds stale output or an output may not be written, 2
for bad command-line use or an internal error in kiln, 130 when interrupted,
141 when stdout's reader went away before kiln wrote everything (`| head`).
Diagnostics go to stdout in mypy's shape; nothing ever produces a Python
traceback: `main` reports kiln's own bugs as such, and the console script
(cli_entry.py) answers Ctrl-C and a closed stdout.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from kilnc import __version__
from kilnc.cli_check import add_check_command
from kilnc.cli_config import positive_int, settle_args
from kilnc.cli_graph import add_graph_command
from kilnc.cli_ledger import add_ledger_command
from kilnc.cli_report import FORMATS, Report
from kilnc.cli_run import add_run_command
from kilnc.cli_write import (
    Tally,
    compile_command,
    missing_marker,
    stale_output,
    write_all,
)
from kilnc.config import ledger_beside
from kilnc.diagnostics import Code, error
from kilnc.inputs import find_sources
from kilnc.interrupts import EXIT_INTERRUPTED
from kilnc.packages import plan_tree
from kilnc.pipeline import Compilation, compile_file
from kilnc.source import Span
from kilnc.terminal import LINES, printable, safe_str

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"kiln: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """The command's entry point (cli_entry.py adds Ctrl-C); returns the exit status."""
    parser = _parser()
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("kiln: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # stdout's reader went away: the console script answers (closed_output.py)
    except Exception as exc:  # kiln's own bug: said so, never a traceback
        if _interrupted(exc):
            print("kiln: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        return _internal_error(exc, getattr(args, "show_traceback", False))


def _parse(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """The arguments, where a command's trailing words may also follow its options.

    argparse gives a positional of any number of words only those before the
    first option, so `kiln run f.py --json n=4` would call `n=4`, and `kiln
    compile a.py -o build b.py` would call `b.py`, unrecognized. A command
    with such a positional names it in `trailing` (set_defaults: attribute,
    type), and the words left over after the options are added to it.
    """
    args, extra = parser.parse_known_args(argv)
    trailing: tuple[str, Callable[[str], object]] | None = getattr(
        args, "trailing", None
    )
    words = [w for w in extra if trailing is not None and not w.startswith("-")]
    unknown = [w for w in extra if w not in words]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if trailing is not None and words:
        name, kind = trailing
        setattr(args, name, [*getattr(args, name), *map(kind, words)])
    return args


def _interrupted(error: BaseException) -> bool:
    """Ctrl-C that a library wrapped in another exception (a class body, a `finally`)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _internal_error(error: Exception, show_traceback: bool) -> int:
    print(
        f"kiln: internal error: {type(error).__name__}: {printable(safe_str(error))}\n"
        "kiln: this is a bug in kiln, not in your code; please report it"
        + ("" if show_traceback else " (--show-traceback prints where it happened)"),
        file=sys.stderr,
    )
    if show_traceback:
        print(
            printable("".join(traceback.format_exception(error)), LINES),
            file=sys.stderr,
        )
    return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kiln", description="Compile Python flows to standalone asyncio modules."
    )
    parser.add_argument("--version", action="version", version=f"kiln {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    compile_ = commands.add_parser("compile", help="compile flows to modules")
    compile_.add_argument(
        "sources",
        nargs="*",
        default=[],  # else listed as required when another argument is missing
        type=Path,
        metavar="SRC",
        help="files or directories (default: [tool.kiln] sources)",
    )
    compile_.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUTDIR",
        help="default: [tool.kiln] output",
    )
    compile_.add_argument(
        "--max-visits",
        type=positive_int,
        metavar="N",
        help="max_visits of flows that set none (default: [tool.kiln] max_visits, else 5)",
    )
    compile_.add_argument(
        "--format", choices=FORMATS, default="text", help="how to print diagnostics"
    )
    compile_.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when an output is missing or stale",
    )
    compile_.add_argument(
        "--dump",
        choices=("ir", "graph", "plan"),
        help="print an intermediate form and write nothing: a look, not a build"
        " (no OUTDIR needed)",
    )
    compile_.add_argument(
        "-q", "--quiet", action="store_true", help="print only diagnostics"
    )
    compile_.add_argument(
        "--warnings-as-errors",
        action="store_true",
        help="treat warnings as errors: report them as such, write nothing, exit 1",
    )
    compile_.add_argument(
        "--force",
        action="store_true",
        help="replace files at the output paths that kiln did not write"
        " (never a source)",
    )
    compile_.add_argument(
        "--show-traceback",
        action="store_true",
        help="print kiln's own traceback on an internal error",
    )
    compile_.set_defaults(handler=_compile, trailing=("sources", Path))
    # Each further command registers its parser and its handler (set_defaults), and
    # `trailing`, its positional of any number of words (see _parse).
    add_check_command(commands)
    add_graph_command(commands)
    add_run_command(commands)
    add_ledger_command(commands)
    return parser


def _compile(args: argparse.Namespace) -> int:
    report = Report(args.format)
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
    tree = plan_tree(files, args.output or Path("build"))
    problems += tree.clashes()
    if problems:
        print(printable("\n".join(problems), LINES), file=sys.stderr)
        return EXIT_USAGE
    status, tally = EXIT_OK, Tally()
    planned: list[tuple[Compilation, Path]] = []
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
            report.add(
                [error(where, Code.UNREADABLE, f"cannot read: {exc.strerror}")], {}
            )
            status = max(status, EXIT_ERRORS)
            tally.failed(1)
            continue
        status = max(status, _report(compilation, args.show_traceback, report))
        if compilation.failed:
            tally.failed(sum(d.is_error for d in compilation.diagnostics))
            continue
        for listing in compilation.dumps:
            print(printable(listing, LINES))
        if compilation.output is None:
            if not args.quiet:
                shown = printable(compilation.source.path)
                report.say(f"{shown}: note: no @flow to compile")
            continue
        if target is None or (args.dump and not args.check):
            continue  # --dump is a look, not a build: nothing is written
        planned.append((compilation, target))
    markers = tree.markers(target for _, target in planned)
    if args.check:
        status = max(status, _check_stale(planned, markers, files, args, report))
    elif planned:
        status = max(status, write_all(planned, markers, files, args, report, tally))
    if tally.errors:
        report.say(tally.summary())
    report.close()
    return status


def _check_stale(
    planned: list[tuple[Compilation, Path]],
    markers: list[Path],
    files: list[Path],
    args: argparse.Namespace,
    report: Report,
) -> int:
    """--check: exit 1 when an output or a package marker is missing or stale."""
    fix = compile_command(files, args.output)
    stale = [stale_output(c, t, fix) for c, t in planned]
    stale += [missing_marker(marker, fix) for marker in markers]
    found = [d for d in stale if d is not None]
    report.add(found, {})
    return EXIT_ERRORS if found else EXIT_OK


def _report(compilation: Compilation, show_traceback: bool, report: Report) -> int:
    report.add(compilation.diagnostics, compilation.sources)
    internal = any(d.code is Code.INTERNAL for d in compilation.diagnostics)
    if internal and show_traceback:
        print("\n".join(compilation.dumps), file=sys.stderr)
    if internal:
        return EXIT_USAGE
    return EXIT_ERRORS if compilation.failed else EXIT_OK
