"""settle_args: a command's arguments, completed from `[tool.kiln]` (config.py).

Example: `kiln compile` with no SRC and no -o, in a project whose
pyproject.toml says `sources = ["pipelines/*.py"]` and `output = "build"`,
runs as `kiln compile pipelines/a.py pipelines/b.py -o build`. A flag given
on the command line wins over the file. Errors in the file are diagnostics
located in it (exit 1); nothing to compile, or nowhere to write it, is a
usage error saying what to write (exit 2).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from kilnc.cli.config import UsageError, config_start, key_span, load_config, settle
from kilnc.cli.report import Report

EXIT_ERRORS, EXIT_USAGE = 1, 2


def settle_args(args: argparse.Namespace, report: Report) -> argparse.Namespace | int:
    """`args` with `sources`, `output`, `max_visits` and `ledger` settled, or the exit status.

    Also `output_key`, the span of `output` in pyproject.toml when the output
    directory comes from there (else None), `config_sources`, that file
    for rendering diagnostics located in it, and `compile_again`, the command
    that writes the outputs again (`compile_command`).
    """
    config, problems = load_config(config_start(args.sources))
    sources = {config.source.path: config.source} if config.source else {}
    if problems:
        report.add(problems, sources)
        return EXIT_ERRORS
    try:
        # --dump is a look, not a build: no output directory, unless --check reads it.
        looks = getattr(args, "dump", None) and not getattr(args, "check", False)
        settings, problems = settle(
            config, args.sources, args.output, args.max_visits, writes=not looks
        )
    except UsageError as exc:
        print(f"kiln: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings is None:
        report.add(problems, sources)
        return EXIT_ERRORS
    # Where a refusal to write an output points when the output comes from the file.
    output_key = (
        key_span(config.source, "output")
        if args.output is None and config.source is not None
        else None
    )
    return argparse.Namespace(
        **{
            **vars(args),
            "sources": list(settings.sources),
            "output": settings.output,
            "max_visits": settings.max_visits,
            "ledger": settings.ledger,
            "output_key": output_key,
            "config_sources": sources,
            "compile_again": compile_command(args),
        }
    )


def compile_command(given: argparse.Namespace) -> str:
    """The hint that writes the outputs again: `kiln compile` with the arguments
    given that decide what is written (an output depends on which modules are
    compiled with it, and on the visit limit), the rest left to pyproject.toml
    again, as it was. The sources as typed, not as found: `src`, not its files.
    """
    words = ["kiln", "compile", *map(str, given.sources)]
    if given.output is not None:
        words += ["-o", str(given.output)]
    if given.max_visits is not None:
        words += ["--max-visits", str(given.max_visits)]
    return f"run: {shlex.join(words)}"


def visit_limit(text: str) -> int:
    """An argparse type: `--max-visits`, every flow's default `@flow(max_visits=...)`.

    The runtime's rule for that option, read when the flag is given (the
    runtime is no import of `kiln --help`).
    """
    from kiln.options import FLOW_RULES  # noqa: PLC0415 - see above

    rule = FLOW_RULES["max_visits"]
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not rule.accepts(value):
        raise argparse.ArgumentTypeError(f"must be {rule.requirement}: {value}")
    return value
