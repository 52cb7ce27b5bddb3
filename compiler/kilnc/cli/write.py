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
from collections.abc import Iterable
from pathlib import Path

from kilnc.cli.orphans import Orphan, remove_orphan
from kilnc.cli.outputs import (
    Files,
    Refusal,
    check_directory,
    check_target,
    write_atomically,
)
from kilnc.cli.report import Report
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.packages import marker_text
from kilnc.pipeline import Compilation
from kilnc.resolve import locate, module_file
from kilnc.source import Span, is_generated_module, read_regular
from kilnc.terminal import printable

__all__ = [
    "Tally",
    "missing_marker",
    "stale_output",
    "unusable_directory",
    "write_all",
]

EXIT_OK, EXIT_ERRORS = 0, 1


class Tally:
    """The errors of a run, the files they are in, and the outputs written, for
    "Found 2 errors in 1 file; nothing written"."""

    def __init__(self) -> None:
        self.errors = 0
        self.written = 0
        self._files: set[str] = set()

    def count(self, reported: Iterable[Diagnostic]) -> None:
        """The errors among diagnostics reported, each in the file it names: one
        module's compile reports the errors of the modules it imports too."""
        for diagnostic in reported:
            if diagnostic.is_error:
                self.errors += 1
                self._files.add(diagnostic.span.path)

    def summary(self, nothing_written: bool) -> str:
        errors = f"{self.errors} error{'s' * (self.errors != 1)}"
        files = len(self._files)
        found = f"Found {errors} in {files} file{'s' * (files != 1)}"
        return f"{found}; nothing written" if nothing_written else found


def stale_output(compilation: Compilation, target: Path, fix: str) -> Diagnostic | None:
    """`--check`: why the output is missing or differs from what kiln writes now."""
    current = read_regular(target)
    if current == (compilation.output or "").encode("utf-8"):
        return None
    state = "missing" if current is None else "stale"
    message = f"output {target} is {state}"
    return error(Span.at(str(target), 1), Code.STALE_OUTPUT, message, fix)


def missing_marker(marker: Path, fix: str) -> Diagnostic | None:
    """`--check`: a package marker the outputs import through, when it is missing."""
    if marker.exists():
        return None
    message = f"package marker {marker} is missing: the outputs import through it"
    return error(Span.at(str(marker), 1), Code.STALE_OUTPUT, message, fix)


def write_all(
    planned: list[tuple[Compilation, Path]],
    markers: list[Path],
    orphans: list[Orphan],
    files: list[Path],
    args: argparse.Namespace,
    report: Report,
    tally: Tally,
) -> int:
    """Write every output, or none when one of them may not be written (outputs.py),
    then each package marker that is missing (one that is there, kiln's or the
    user's, already makes its directory a package). The orphans (orphans.py) are
    removed first: an orphan `__init__.py` that the outputs import through is
    written again as a marker."""
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
        refused = [_refused(refusal, args) for refusal in refusals]
        tally.count(report.add(refused, args.config_sources))
        return EXIT_ERRORS
    for orphan in orphans:
        try:
            remove_orphan(orphan)
        except OSError as exc:
            message = f"cannot remove {orphan.path}: {exc.strerror or exc}"
            why = f"it was compiled from {orphan.source}, which {orphan.why}"
            failed = error(
                Span.at(str(orphan.path), 1), Code.OUTPUT_UNWRITABLE, message, why
            )
            tally.count(report.add([failed], {}))
            return EXIT_ERRORS
        if not args.quiet:
            report.say(
                printable(
                    f"removed {orphan.path}: compiled from {orphan.source},"
                    f" which {orphan.why}"
                )
            )
    writes: list[tuple[Path, str, str | None]] = [
        (target, compilation.output or "", compilation.source.path)
        for compilation, target in planned
    ]
    writes += [
        (marker, marker_text(marker, args.output), None)
        for marker in markers
        if not marker.exists()
    ]
    for target, text, source in writes:
        try:
            write_atomically(target, text.encode("utf-8"))
        except OSError as exc:
            message = f"cannot write {target}: {exc.strerror or exc}"
            failed = error(Span.at(str(target), 1), Code.OUTPUT_UNWRITABLE, message)
            tally.count(report.add([failed], {}))
            return EXIT_ERRORS
        tally.written += 1
        if source is not None and not args.quiet:
            report.say(printable(f"{source} -> {target}"))
    return EXIT_OK


def unusable_directory(
    args: argparse.Namespace, files: list[Path]
) -> Diagnostic | None:
    """KLN703 when the output directory is a file, or a file stands where it would
    be made: said before anything is compiled, for nothing could be written
    there, rather than as each call across modules that could not import
    through it (KLN704)."""
    refusal = check_directory(args.output, files)
    return None if refusal is None else _refused(refusal, args)


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
    names: set[str] = set()
    for node in ast.walk(tree):  # once: the output of a long flow is long
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
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
