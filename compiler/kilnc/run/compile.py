"""Compiling a flow source for `kiln run`: it and the project's modules whose flows it imports.

The modules go into a package at a directory of the run's own (`_kiln_run`),
laid out as `kiln compile` lays out an output directory; errors stop the run,
warnings are shown on stderr. `run_load` imports this module only for a
source, so a module kiln generated runs without libcst, networkx or black.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kilnc.cli.config import Config, config_start, ledger_beside, load_config
from kilnc.diagnostics import Code, render_all
from kilnc.packages import OutputTree, marker_text, plan_tree, with_imported_flows
from kilnc.pipeline import FRONT_END, Compilation, compile_file
from kilnc.run.load import (
    EXIT_ERRORS,
    EXIT_USAGE,
    RUN_PACKAGE,
    CompileFailed,
    TargetError,
)
from kilnc.source import display_path


def compile_for_run(path: Path, directory: Path) -> tuple[str, Path]:
    """Compile the flow source at `path`, with the project's modules whose flows it
    imports, into the package at `directory`: the entry's module name and file.
    Diagnostics go to stderr."""
    config, problems = load_config(config_start([path]))
    if problems:
        sources = {config.source.path: config.source} if config.source else {}
        raise CompileFailed(render_all(problems, sources), EXIT_ERRORS)
    try:
        files = with_imported_flows(path, FRONT_END)
        tree = plan_tree(files, directory, FRONT_END)
        compiled = [_compile_one(file, tree, config) for file in files]
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    entry = compiled[0]
    if entry.output is None:
        raise TargetError(f"{display_path(path)} has no @flow to run", EXIT_USAGE)
    targets = [(tree.target(file), c) for file, c in zip(files, compiled, strict=True)]
    for target, compilation in targets:
        if compilation.output is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(compilation.output, encoding="utf-8")
    for marker in tree.markers(t for t, c in targets if c.output is not None):
        marker.write_text(marker_text(marker, directory), encoding="utf-8")
    return f"{RUN_PACKAGE}.{tree.locations[path].name}", targets[0][0]


def _compile_one(file: Path, tree: OutputTree, config: Config) -> Compilation:
    """One module of the run's compile; its errors stop the run, its warnings are shown."""
    ledger = ledger_beside(config.ledger_path, tree.target(file))
    compilation = compile_file(
        file, max_visits=config.max_visits, ledger=ledger, links=tree.links(file)
    )
    rendered = render_all(compilation.diagnostics, compilation.sources)
    if compilation.failed:
        internal = any(d.code is Code.INTERNAL for d in compilation.diagnostics)
        details = "\n".join(compilation.dumps) if internal else ""
        raise CompileFailed(
            rendered, EXIT_USAGE if internal else EXIT_ERRORS, details=details
        )
    if rendered:  # warnings
        print(rendered, file=sys.stderr)
    return compilation
