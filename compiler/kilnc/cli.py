"""The `kiln` command.

    kiln compile SRC... -o OUTDIR [--check] [--dump ir|graph|plan]

Exit status: 0 when everything compiled (warnings allowed), 1 when a source
has errors or `--check` finds stale output, 2 for bad command-line use or an
internal error in kiln. Diagnostics go to stdout in mypy's shape; nothing in a
user's input ever produces a Python traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from kilnc import __version__
from kilnc.diagnostics import Code, render_all
from kilnc.pipeline import Compilation, compile_file

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"kiln: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """The console script's entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return _compile(args)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kiln", description="Compile Python flows to standalone asyncio modules."
    )
    parser.add_argument("--version", action="version", version=f"kiln {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    compile_ = commands.add_parser("compile", help="compile flows to modules")
    compile_.add_argument(
        "sources", nargs="+", type=Path, metavar="SRC", help="files or directories"
    )
    compile_.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR")
    compile_.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when an output is missing or stale",
    )
    compile_.add_argument(
        "--dump", choices=("ir", "graph", "plan"), help="print an intermediate form"
    )
    compile_.add_argument(
        "-q", "--quiet", action="store_true", help="print only diagnostics"
    )
    compile_.add_argument(
        "--show-traceback",
        action="store_true",
        help="print kiln's own traceback on an internal error",
    )
    return parser


def _sources(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.py") if _declares_flow(p))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"kiln: error: no such file or directory: {path}")
    stems: dict[str, Path] = {}
    for file in files:
        other = stems.setdefault(file.stem, file)
        if other != file:
            problems.append(
                f"kiln: error: {other} and {file} would both be written as {file.stem}.py"
            )
    return files, problems


def _declares_flow(path: Path) -> bool:
    """A cheap filter for directory arguments; the compiler decides for real."""
    try:
        return b"flow" in path.read_bytes()
    except OSError:
        return False


def _compile(args: argparse.Namespace) -> int:
    files, problems = _sources(args.sources)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EXIT_USAGE
    output_dir: Path = args.output
    status = EXIT_OK
    errors = 0
    failed_files = 0
    for file in files:
        try:
            compilation = compile_file(file, args.dump)
        except OSError as exc:
            print(
                f"{file}: error: cannot read: {exc.strerror}  [{Code.UNREADABLE.value}]"
            )
            status, errors, failed_files = (
                max(status, EXIT_ERRORS),
                errors + 1,
                failed_files + 1,
            )
            continue
        status = max(status, _report(compilation, args.show_traceback))
        if compilation.failed:
            errors += sum(d.is_error for d in compilation.diagnostics)
            failed_files += 1
            continue
        for listing in compilation.dumps:
            print(listing)
        if compilation.output is None:
            if not args.quiet:
                print(f"{compilation.source.path}: note: no @flow to compile")
            continue
        target = output_dir / f"{file.stem}.py"
        status = max(status, _write(compilation, target, args))
    if errors:
        plural = "s" if errors != 1 else ""
        print(
            f"Found {errors} error{plural} in {failed_files} file{'s' if failed_files != 1 else ''}"
        )
    return status


def _report(compilation: Compilation, show_traceback: bool) -> int:
    if compilation.diagnostics:
        print(render_all(compilation.diagnostics, compilation.sources))
    internal = any(d.code is Code.INTERNAL for d in compilation.diagnostics)
    if internal and show_traceback:
        print("\n".join(compilation.dumps), file=sys.stderr)
    if internal:
        return EXIT_USAGE
    return EXIT_ERRORS if compilation.failed else EXIT_OK


def _write(compilation: Compilation, target: Path, args: argparse.Namespace) -> int:
    assert compilation.output is not None
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == compilation.output:
            return EXIT_OK
        state = "missing" if current is None else "stale"
        print(
            f"{target}: error: output is {state}; run: kiln compile {compilation.source.path} "
            f"-o {args.output}"
        )
        return EXIT_ERRORS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(compilation.output, encoding="utf-8")
    if not args.quiet:
        print(f"{compilation.source.path} -> {target}")
    return EXIT_OK
