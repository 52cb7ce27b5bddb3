"""`kiln graph SRC [--flow NAME] [--format mermaid|dot|svg|png] [-o FILE]`: draw flows.

Mermaid by default (a `flowchart TD` to paste into Markdown), Graphviz DOT, or
SVG and PNG made by Graphviz's `dot` program from the DOT text. Without
`--flow`, every flow of the file is drawn, each in a subgraph of its own. A
source with errors prints its diagnostics (`--diagnostics json` for one JSON
document) and exits 1, as `kiln compile` does; bad command-line use exits 2.
"""

from __future__ import annotations

import argparse
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from kilnc.cli.closed_output import finishing, writing
from kilnc.cli.config import config_start, load_config
from kilnc.cli.outputs import check_target, describe, is_kiln_drawing, write_atomically
from kilnc.cli.report import Report
from kilnc.depth import run_deep
from kilnc.diagnostics import Code, Diagnostic, error, render_all
from kilnc.drawing.draw import draw_flow
from kilnc.drawing.text import to_dot, to_mermaid
from kilnc.ir import FlowIR
from kilnc.pipeline import compile_file
from kilnc.source import SourceFile, Span, display_path, is_generated_module
from kilnc.terminal import LINES, printable

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
GRAPHVIZ: Final = "graphviz (apt install graphviz / brew install graphviz)"


def run_graph(args: argparse.Namespace) -> int:
    # A reader gone from the warnings leaves no -o FILE unwritten.
    with finishing():
        return _graph(args)


def _graph(args: argparse.Namespace) -> int:
    source: Path = args.source
    problem = _not_a_source(source)
    if problem is not None:
        return _usage(problem)
    config, problems = load_config(config_start([source]))
    if problems:
        sources = {config.source.path: config.source} if config.source else {}
        return _errors(problems, sources, args.diagnostics)
    try:
        compilation = compile_file(source, max_visits=config.max_visits)
    except OSError as exc:
        unreadable = error(
            Span.at(display_path(source), 1),
            Code.UNREADABLE,
            f"cannot read: {exc.strerror}",
        )
        return _errors([unreadable], {}, args.diagnostics)
    if compilation.failed:
        return _errors(compilation.diagnostics, compilation.sources, args.diagnostics)
    # Warnings go to stderr (stdout is the drawing's); whether another module's
    # flow runs compiled (KLN313) is a matter of what a compile includes, not of
    # the drawing.
    flows = _chosen(compilation.flows, args.flow, compilation.source.path)
    if isinstance(flows, str):
        return _usage(flows)
    warnings = [
        d
        for d in compilation.diagnostics
        if d.code is not Code.UNCOMPILED_FLOW
        and _drawn(d, compilation.flows, flows, compilation.source.path)
    ]
    if warnings:
        print(render_all(warnings, compilation.sources), file=sys.stderr)
    output: Path | None = args.output
    if output is not None:
        read = [source, *map(Path, compilation.sources)]
        refusal = check_target(
            output, read, is_kiln_drawing, force=args.force, what="drawing"
        )
        if refusal is not None:
            return _refused(f"-o: {refusal.message}; {refusal.hint}")
    elif args.format == "png" and sys.stdout.isatty():
        return _usage("a PNG is binary: give -o FILE, or redirect stdout to a file")
    # Deep code (a sum of a thousand terms) needs the passes' stack (depth.py).
    drawings = run_deep(
        lambda: [draw_flow(flow, f"f{index}") for index, flow in enumerate(flows)]
    )
    text = to_dot(drawings) if args.format != "mermaid" else to_mermaid(drawings)
    if args.format in ("svg", "png"):
        return _render(text, args.format, output)
    return _write(text.encode("utf-8"), output)


def _not_a_source(source: Path) -> str | None:
    """What is wrong with SRC, said for what it is, or None for a regular file."""
    try:
        mode = source.stat().st_mode
    except FileNotFoundError:
        if source.is_symlink():
            return f"{source} is a symbolic link to a path that does not exist"
        return f"no such file: {source}"
    except OSError as exc:
        return f"cannot read {source}: {exc.strerror}"
    if stat.S_ISDIR(mode):
        return f"{source} is a directory; kiln graph draws the flows of one source file"
    if not stat.S_ISREG(mode):
        return f"{source} is {describe(mode)}, not a source file"
    if is_generated_module(source):
        return f"{source} is a module kiln generated; draw its source instead"
    return None


def _chosen(
    flows: tuple[FlowIR, ...], name: str | None, path: str
) -> list[FlowIR] | str:
    """The flows to draw, or what is wrong with --flow (or with a file without flows)."""
    if not flows:
        return f"{path} defines no @flow to draw"
    if name is None:
        return list(flows)
    chosen = [f for f in flows if name in (f.flow.name, f.flow.identifier)]
    if not chosen:
        names = ", ".join(f.flow.name for f in flows)
        return f"no flow named '{name}' in {path}; its flows: {names}"
    return chosen


def _drawn(
    diagnostic: Diagnostic,
    flows: tuple[FlowIR, ...],
    drawn: list[FlowIR],
    path: str,
) -> bool:
    """Whether a warning is about a flow drawn: the last flow defined above its line
    (one above every flow is the module's, and always shown)."""
    span = diagnostic.span
    above = [f for f in flows if f.flow.span.line <= span.line]
    if span.path != path or not above:
        return True
    return max(above, key=lambda f: f.flow.span.line) in drawn


def _render(dot_text: str, form: str, output: Path | None) -> int:
    """SVG or PNG from Graphviz's `dot`: to the file, or to stdout as bytes."""
    program = shutil.which("dot")
    if program is None:
        print(
            f"kiln: error: --format {form} needs Graphviz's 'dot' program; install {GRAPHVIZ},"
            " or use --format dot or mermaid",
            file=sys.stderr,
        )
        return EXIT_ERRORS
    done = subprocess.run(
        [program, f"-T{form}"],
        input=dot_text.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", errors="replace").strip()
        print(
            f"kiln: error: dot -T{form} failed: {printable(reason, LINES)}",
            file=sys.stderr,
        )
        return EXIT_ERRORS
    return _write(done.stdout, output)


def _write(data: bytes, output: Path | None) -> int:
    if output is None:
        if sys.stdout is not None:  # None: closed before kiln started (`>&-`)
            with writing():  # past the text stream's guard: a full disk is no bug
                sys.stdout.flush()
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
        return EXIT_OK
    try:
        write_atomically(output, data)
    except OSError as exc:
        return _refused(f"cannot write {output}: {exc.strerror or exc}")
    return EXIT_OK


def _refused(message: str) -> int:
    print(f"kiln: error: {printable(message)}", file=sys.stderr)
    return EXIT_ERRORS


def _errors(
    diagnostics: Sequence[Diagnostic], sources: dict[str, SourceFile], form: str
) -> int:
    report = Report(form)
    report.add(diagnostics, sources)
    report.close()
    internal = any(d.code is Code.INTERNAL for d in diagnostics)
    return EXIT_USAGE if internal else EXIT_ERRORS


def _usage(message: str) -> int:
    print(f"kiln: error: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE
