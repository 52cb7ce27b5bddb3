"""`kiln check [SRC... -o OUTDIR]`: what CI runs before trusting the outputs.

Compiles every source in memory, reports an output in OUTDIR that is missing
or differs from what kiln writes now, or that no source compiles to now
(KLN502, with the command that fixes it: orphans.py),
and type-checks the fresh outputs with mypy --strict, each error reported at
the source line it comes from (KLN501, mypy's message and code). It also
warns where a flow's body reads the clock, randomness, a uuid or the
environment, which a resumed durable run would read anew (KLN315,
determinism.py). Silent and
exit 0 when all is well; exit 1 on any error; 2 for bad usage, and when mypy
could not check (its message on stderr, never a pass). Without arguments it
checks what `[tool.kiln]` configures, as `kiln compile` builds it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kilnc.cli.config import ledger_beside
from kilnc.cli.inputs import find_sources
from kilnc.cli.orphans import find_orphans, orphan_error
from kilnc.cli.report import Report
from kilnc.cli.settle import settle_args
from kilnc.cli.write import missing_marker, stale_output, unusable_directory
from kilnc.determinism import check_determinism
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import ParsedModule
from kilnc.packages import plan_tree
from kilnc.parse import parse_source
from kilnc.pipeline import FRONT_END, Compilation, compile_file
from kilnc.source import Span
from kilnc.terminal import LINES, printable
from kilnc.typecheck import MypyFailed, typecheck_modules

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def run_check(args: argparse.Namespace) -> int:
    report = Report(args.format)
    settled = settle_args(args, report)
    if isinstance(settled, int):
        report.close()
        return settled
    status = _check(settled, report)
    report.close()
    return status


def _check(args: argparse.Namespace, report: Report) -> int:
    files, problems = find_sources(args.sources, args.output)
    tree = plan_tree(files, args.output, FRONT_END)
    problems += tree.clashes()
    if problems:
        print(printable("\n".join(problems), LINES), file=sys.stderr)
        return EXIT_USAGE
    unusable = unusable_directory(args, files)
    if unusable is not None:
        report.add([unusable], args.config_sources)
        return EXIT_ERRORS
    compilations: list[tuple[Path, Compilation]] = []
    outcomes: dict[Path, bool | None] = {}  # each source: an output, none, failed
    diagnostics: list[Diagnostic] = []
    sources = {}
    fix = args.compile_again
    for file in files:
        target = tree.target(file)
        ledger = ledger_beside(args.ledger, target)
        try:
            compilation = compile_file(
                file, max_visits=args.max_visits, ledger=ledger, links=tree.links(file)
            )
        except OSError as exc:
            unreadable = error(
                Span.at(str(file), 1), Code.UNREADABLE, f"cannot read: {exc.strerror}"
            )
            report.add([unreadable], {})
            return EXIT_ERRORS
        sources.update(compilation.sources)
        diagnostics += compilation.diagnostics
        failed = compilation.failed
        outcomes[file] = None if failed else compilation.output is not None
        parsed = parse_source(compilation.source)
        if isinstance(parsed, ParsedModule):
            diagnostics += check_determinism(parsed, compilation.flows)
        if compilation.output is not None:
            compilations.append((target, compilation))
            stale = stale_output(compilation, target, fix)
            diagnostics += [stale] if stale is not None else []
    markers = tree.markers(target for target, _ in compilations)
    diagnostics += [
        missing
        for marker in markers
        if (missing := missing_marker(marker, fix)) is not None
    ]
    diagnostics += [
        orphan_error(orphan, fix) for orphan in find_orphans(tree, outcomes)
    ]
    if any(d.code is Code.INTERNAL for d in diagnostics):
        report.add(diagnostics, sources)
        return EXIT_USAGE
    if not args.no_mypy and compilations:
        above = args.output.parent
        roots = [tree.locations[file].root for file in files if file in tree.locations]
        try:
            diagnostics += typecheck_modules(
                [
                    (str(target.relative_to(above)), c.output or "", c.line_map)
                    for target, c in compilations
                ],
                [str(marker.relative_to(above)) for marker in markers],
                roots,
                {path: source.text for path, source in sources.items()},
            )
        except MypyFailed as failure:  # never a pass: nothing was checked
            report.add(diagnostics, sources)
            message = f"kiln: error: mypy could not run: {failure}"
            print(printable(message, LINES), file=sys.stderr)
            return EXIT_USAGE
    report.add(diagnostics, sources)
    return EXIT_ERRORS if any(d.is_error for d in diagnostics) else EXIT_OK
