"""The `kiln` command.

    kiln compile [SRC...] [-o OUTDIR] [--check] [--dump ir|graph|plan] [--format text|json]
                 [--warnings-as-errors] [--force]  (see compile.py, write.py)
    kiln check SRC... -o OUTDIR [--no-mypy]  (see check.py)
    kiln graph SRC [--flow NAME] [--format mermaid|dot|svg|png] [-o FILE]  (see graph.py)
    kiln run PATH.py:FLOW [name=value ...] [--json] [--trace FILE]  (see run.py)
    kiln ledger stats|clear [--node NAME] [PATH] [--json]  (see ledger.py)
    kiln runs list|show|answer|resume|forget [ID] [--format text|json]
                 (see runs.py, resume.py)

The arguments are in parser.py, which imports each command's module only
when that command runs. Exit status: 0 when everything compiled (warnings allowed), 1 when a source
has errors, `--check` finds stale output or an output may not be written, 2
for bad command-line use or an internal error in kiln, 130 when interrupted,
141 when stdout's reader went away before kiln wrote everything (`| head`);
`kiln run` and `kiln runs answer|resume` exit 3 when a durable run stops at a
question (run.py).
Diagnostics go to stdout in mypy's shape; nothing ever produces a Python
traceback: `main` reports kiln's own bugs as such, and the console script
(entry.py) answers Ctrl-C and a closed stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from kilnc.cli.closed_output import OutputError
from kilnc.cli.interrupts import EXIT_INTERRUPTED
from kilnc.cli.interrupts import message as interrupted_message
from kilnc.cli.parser import EXIT_USAGE, build_parser
from kilnc.terminal import LINES, printable, safe_str


def main(argv: Sequence[str] | None = None) -> int:
    """The command's entry point (entry.py adds Ctrl-C); returns the exit status."""
    parser = build_parser()
    args = _parse(parser, argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    gone = _working_directory_gone()
    if gone is not None:
        print(f"kiln: error: {gone}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(interrupted_message(), file=sys.stderr)
        return EXIT_INTERRUPTED
    except (BrokenPipeError, OutputError):
        # stdout's reader went away, or it cannot be written (a full disk): the
        # console script answers (closed_output.py)
        raise
    except Exception as exc:  # kiln's own bug: said so, never a traceback
        if _interrupted(exc):
            print(interrupted_message(), file=sys.stderr)
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


def _working_directory_gone() -> str | None:
    """Why kiln cannot run in this working directory (deleted under the shell), or None.

    Every command reads paths from it (relative ones, `.kiln/ledger.db`, the
    pyproject.toml above it, the paths it shows): none means anything there.
    """
    try:
        os.getcwd()
    except FileNotFoundError:
        return (
            "the working directory no longer exists (it was deleted or moved);"
            " cd to one that exists and run kiln again"
        )
    except OSError as error:
        return f"cannot read the working directory: {error.strerror or error}"
    return None


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
