"""check_stale and write_all: what `kiln compile` does with the modules it compiled.

Example: `kiln compile digest.py -o .` compiled `digest.py` and plans to write
`./digest.py`. `write_all` checks every planned output first (outputs.py has
the rules), so this one is refused with KLN701 at `digest.py:1:1`, or at the
`output` key of pyproject.toml when the directory comes from there, and
nothing at all is written. Outputs that may be written are written whole,
one by one. `check_stale` is `--check`: it reads each output (a FIFO or a
file of another encoding too) and writes nothing.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from kilnc.cli_report import Report
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.outputs import (
    Files,
    Refusal,
    check_directory,
    check_target,
    is_generated_module,
    read_regular,
    write_atomically,
)
from kilnc.pipeline import Compilation
from kilnc.resolve import locate, module_file
from kilnc.source import Span
from kilnc.terminal import printable

__all__ = ["Tally", "check_stale", "write_all"]

EXIT_OK, EXIT_ERRORS = 0, 1


class Tally:
    """The errors of a run, and the files they are in, for "Found 2 errors in 1 file"."""

    def __init__(self) -> None:
        self.errors = 0
        self.files = 0

    def failed(self, errors: int, files: int = 1) -> None:
        self.errors += errors
        self.files += files

    def summary(self) -> str:
        errors = f"{self.errors} error{'s' * (self.errors != 1)}"
        return f"Found {errors} in {self.files} file{'s' * (self.files != 1)}"


def check_stale(
    compilation: Compilation, target: Path, args: argparse.Namespace, report: Report
) -> int:
    """--check: exit 1 when the output is missing or differs from what kiln writes now."""
    assert compilation.output is not None
    current = read_regular(target)
    if current == compilation.output.encode("utf-8"):
        return EXIT_OK
    state = "missing" if current is None else "stale"
    fix = f"run: kiln compile {compilation.source.path} -o {args.output}"
    where = Span.at(str(target), 1)
    message = f"output {target} is {state}"
    report.add([error(where, Code.STALE_OUTPUT, message, fix)], {})
    return EXIT_ERRORS


def write_all(
    planned: list[tuple[Compilation, Path]],
    files: list[Path],
    args: argparse.Namespace,
    report: Report,
    tally: Tally,
) -> int:
    """Write every output, or none when one of them may not be written (outputs.py)."""
    sources = Files([*files, *(Path(p) for c, _ in planned for p in c.sources)])
    directory = check_directory(args.output, sources)
    refusals = (
        [directory]
        if directory is not None
        else [
            refusal
            for compilation, target in planned
            if (refusal := _refusal(compilation, target, sources, args.force))
            is not None
        ]
    )
    if refusals:
        report.add(
            [_refused(refusal, args) for refusal in refusals], args.config_sources
        )
        tally.failed(len(refusals), len(refusals))
        return EXIT_ERRORS
    for compilation, target in planned:
        assert compilation.output is not None
        try:
            write_atomically(target, compilation.output.encode("utf-8"))
        except OSError as exc:
            message = f"cannot write {target}: {exc.strerror or exc}"
            report.add(
                [error(Span.at(str(target), 1), Code.OUTPUT_UNWRITABLE, message)], {}
            )
            tally.failed(1)
            return EXIT_ERRORS
        if not args.quiet:
            report.say(printable(f"{compilation.source.path} -> {target}"))
    return EXIT_OK


def _refusal(
    compilation: Compilation, target: Path, sources: Files, force: bool
) -> Refusal | None:
    imported = _imported_files(compilation, target)
    owned = is_generated_module
    return check_target(
        target, sources, owned, force=force, what="module", imported=imported
    )


def _imported_files(compilation: Compilation, target: Path) -> list[Path]:
    """The project's files of the modules the output imports, beside it or its source."""
    assert compilation.output is not None
    try:
        tree = ast.parse(compilation.output)
    except (SyntaxError, ValueError, RecursionError):  # black checked it: never
        return []
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    roots = {Path.cwd()}
    for module in (target, Path(compilation.source.path)):
        try:
            roots.add(locate(module).root)
        except (OSError, RuntimeError):  # a link loop: the check of the path says so
            continue
    found = (module_file(root, name) for root in roots for name in names)
    return [file for file in found if file is not None]


def _refused(refusal: Refusal, args: argparse.Namespace) -> Diagnostic:
    """The refusal at the `output` key of pyproject.toml when the output comes from there."""
    key: Span | None = args.output_key
    if key is None:
        return error(
            Span.at(str(refusal.target), 1), refusal.code, refusal.message, refusal.hint
        )
    hint = "set 'output' in [tool.kiln] to a directory apart from the sources, such as \"build\""
    return error(key, refusal.code, refusal.message, hint)
