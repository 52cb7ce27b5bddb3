"""The `kiln` command line: every command's arguments, and which module runs it.

Parsing needs none of the compiler, so `kiln --help` starts without libcst,
networkx, black or mypy. A command's handler is named as a module and a
function (`Handler`) and imported only when that command runs: `kiln compile`
never loads mypy, `kiln ledger` no compiler at all.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, final

from kilnc import __version__
from kilnc.cli.report import FORMATS
from kilnc.cli.settle import visit_limit

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

EXIT_USAGE: Final = 2
EXIT_SUSPENDED: Final = 3  # a durable run waits for an answer (run.py)
RUN_EXIT_STATUS: Final = (
    "exit status: 0 done, 1 the flow failed (or cannot be run), 2 bad usage,"
    f" {EXIT_SUSPENDED} suspended: a durable run waits for an answer (kiln runs answer),"
    " 130 interrupted, 141 stdout's reader went away"
)
GRAPH_FORMATS: Final = ("mermaid", "dot", "svg", "png")
LEDGER_PATH_HELP: Final = (
    "the ledger file (default: $KILN_LEDGER, else [tool.kiln] ledger, else .kiln/ledger.db)"
)


@final
@dataclass(frozen=True, slots=True)
class Handler:
    """A command's entry point, `function` of `module`, imported when the command runs."""

    module: str
    function: str

    def __call__(self, args: argparse.Namespace) -> int:
        # An import makes many objects and little cyclic garbage: collecting
        # while the compiler's libraries load cost a tenth of a small compile.
        gc.disable()
        try:
            module = importlib.import_module(self.module)
        finally:
            gc.enable()
        entry: Callable[[argparse.Namespace], int] = getattr(module, self.function)
        # What is alive now (the compiler and its libraries, once imported)
        # outlives the command: the cyclic collector need not scan it at every
        # full collection, which cost a big compile about 6%. Unfrozen after,
        # for a process that runs more than one command.
        gc.freeze()
        try:
            return entry(args)
        finally:
            gc.unfreeze()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"kiln: error: {message}\n")

    def _print_message(
        self, message: str, file: SupportsWrite[str] | None = None
    ) -> None:
        """argparse's, but a write that fails raises: argparse ignores it, so help,
        usage or --version on a full disk or a closed pipe exited 0 (closed_output.py).
        """
        stream = file or sys.stderr  # argparse's choice: stderr for a closed stdout
        if message and stream is not None:
            stream.write(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kiln", description="Compile Python flows to standalone asyncio modules."
    )
    parser.add_argument("--version", action="version", version=f"kiln {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    # Each command sets its handler and `trailing`, its positional of any number
    # of words (see cli._parse).
    _add_compile(commands)
    _add_check(commands)
    _add_graph(commands)
    _add_run(commands)
    _add_ledger(commands)
    _add_runs(commands)
    return parser


def _add_sources(command: argparse.ArgumentParser, output_help: str) -> None:
    """SRC..., -o OUTDIR and --max-visits, which `compile` and `check` share: what
    decides the outputs, which `check` compiles again to compare."""
    command.add_argument(
        "sources",
        nargs="*",
        default=[],  # else listed as required when another argument is missing
        type=Path,
        metavar="SRC",
        help="files or directories (default: [tool.kiln] sources)",
    )
    command.add_argument(
        "-o", "--output", type=Path, metavar="OUTDIR", help=output_help
    )
    command.add_argument(
        "--max-visits",
        type=visit_limit,
        metavar="N",
        help="max_visits of flows that set none (default: [tool.kiln] max_visits, else 5)",
    )


def _add_compile(commands: Any) -> None:
    """Register `kiln compile` on the `kiln` parser's subcommands."""
    compile_ = commands.add_parser("compile", help="compile flows to modules")
    _add_sources(compile_, "default: [tool.kiln] output")
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
        choices=("ir", "graph", "plan", "schema"),
        help="print an intermediate form (or each flow's JSON Schema) and write"
        " nothing: a look, not a build (no OUTDIR needed)",
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
        help="replaces nothing: the outputs are modules, and kiln never replaces"
        " Python code it did not write (accepted so that scripts passing it run)",
    )
    compile_.add_argument(
        "--show-traceback",
        action="store_true",
        help="print kiln's own traceback on an internal error",
    )
    compile_.set_defaults(
        handler=Handler("kilnc.cli.compile", "run_compile"), trailing=("sources", Path)
    )


def _add_check(commands: Any) -> None:
    """Register `kiln check` on the `kiln` parser's subcommands."""
    check = commands.add_parser(
        "check", help="fail on stale outputs and on type errors, mapped to the source"
    )
    _add_sources(check, "where the outputs are (default: [tool.kiln] output)")
    check.add_argument(
        "--no-mypy", action="store_true", help="check staleness only, not types"
    )
    check.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="diagnostics as text, or as one JSON list",
    )
    check.set_defaults(
        handler=Handler("kilnc.cli.check", "run_check"), trailing=("sources", Path)
    )


def _add_graph(commands: Any) -> None:
    """Register `kiln graph` on the `kiln` parser's subcommands."""
    graph = commands.add_parser("graph", help="draw flows as Mermaid, DOT, SVG or PNG")
    graph.add_argument("source", type=Path, metavar="SRC", help="a flow source file")
    graph.add_argument("--flow", metavar="NAME", help="draw this flow only")
    graph.add_argument(
        "--format", choices=GRAPH_FORMATS, default="mermaid", help="default: mermaid"
    )
    graph.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here, not to stdout"
    )
    graph.add_argument(
        "--force",
        action="store_true",
        help="replace -o FILE even when it is not a drawing (never a source,"
        " never Python code)",
    )
    graph.add_argument(
        "--diagnostics",
        choices=FORMATS,
        default="text",
        help="how to print the source's errors",
    )
    graph.set_defaults(handler=Handler("kilnc.cli.graph", "run_graph"))


def _add_run(commands: Any) -> None:
    """Register `kiln run` on the `kiln` parser's subcommands."""
    run = commands.add_parser(
        "run",
        help="run a flow with a live progress display and a per-node summary",
        epilog=RUN_EXIT_STATUS,
    )
    run.add_argument(
        "target",
        metavar="PATH.py:FLOW",
        help="a flow source or a module kiln generated, and the flow's name"
        " (optional when the module has one flow)",
    )
    run.add_argument(
        "arguments",
        nargs="*",
        default=[],  # else listed as required when PATH.py:FLOW is missing
        metavar="name=value",
        help="the flow's arguments, read by their annotations (JSON for lists, dicts, ...)",
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: result, error, per-node summary",
    )
    run.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="write the node calls as Chrome trace-event JSON (open it in Perfetto)",
    )
    run.add_argument(
        "--ledger",
        type=Path,
        metavar="FILE",
        help="the ledger of cache=True nodes and durable runs (default: $KILN_LEDGER,"
        " else [tool.kiln] ledger, else .kiln/ledger.db)",
    )
    _display_options(run)
    run.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the node calls on the Dask scheduler at ADDRESS (tcp://host:8786),"
        " or on a cluster started on this machine with 'local' (pip install 'kiln[dask]')",
    )
    run.add_argument(
        "--run-id",
        type=_run_id,
        metavar="ID",
        help="run durably as run ID: every call's value is journaled in the ledger, and"
        " running ID again replays what finished (see kiln runs); a run that stops at"
        f" a question prints it and exits {EXIT_SUSPENDED}",
    )
    run.set_defaults(
        handler=Handler("kilnc.cli.run", "run_flow_command"),
        trailing=("arguments", str),
    )


def _add_ledger(commands: Any) -> None:
    """Register `kiln ledger` and its subcommands on the `kiln` parser's subcommands."""
    ledger = commands.add_parser(
        "ledger", help="show or clear the ledger of cached results"
    )
    actions = ledger.add_subparsers(
        dest="ledger_command", metavar="ACTION", required=True
    )
    stats = actions.add_parser(
        "stats", help="entries per node, size, hit rate of the last runs"
    )
    _ledger_path(stats)
    stats.add_argument(
        "--runs",
        type=_count,
        default=10,
        metavar="N",
        help="show the hit rate of the last N runs (default: 10)",
    )
    stats.add_argument("--json", action="store_true", help="print one JSON document")
    stats.set_defaults(handler=Handler("kilnc.cli.ledger", "run_ledger"))
    clear = actions.add_parser("clear", help="remove entries (of one node with --node)")
    _ledger_path(clear)
    clear.add_argument("--node", metavar="NAME", help="remove this node's entries only")
    clear.add_argument("--json", action="store_true", help="print one JSON document")
    clear.set_defaults(handler=Handler("kilnc.cli.ledger", "run_ledger"))


def _ledger_path(command: argparse.ArgumentParser) -> None:
    """The ledger as PATH, or as --ledger FILE, as `kiln run` and `kiln runs` take it."""
    given = command.add_mutually_exclusive_group()
    given.add_argument(
        "path", nargs="?", type=Path, metavar="PATH", help=LEDGER_PATH_HELP
    )
    given.add_argument("--ledger", type=Path, metavar="FILE", help="the same as PATH")


def _add_runs(commands: Any) -> None:
    """Register `kiln runs` and its subcommands on the `kiln` parser's subcommands."""
    runs = commands.add_parser(
        "runs", help="list, show, answer, resume or forget durable runs (--run-id)"
    )
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    listed = actions.add_parser(
        "list", help="the durable runs: id, flow, state, started, last call, calls"
    )
    _runs_options(listed)
    show = actions.add_parser(
        "show", help="a run's calls in journal order, its open question, its outcome"
    )
    _run_options(show)
    answer = actions.add_parser(
        "answer",
        help="answer the question a suspended run waits at, and resume it",
        epilog=RUN_EXIT_STATUS,
    )
    _run_options(answer)
    answer.add_argument(
        "answer",
        metavar="name=VALUE",
        help="the question's name and its answer, read by the question's type",
    )
    _resume_options(answer)
    resume = actions.add_parser(
        "resume",
        help="run a run again with its arguments: what it journaled is replayed",
        epilog=RUN_EXIT_STATUS,
    )
    _run_options(resume)
    _resume_options(resume)
    forget = actions.add_parser(
        "forget", help="forget a run (with --from KEY, its calls from KEY on)"
    )
    _run_options(forget)
    forget.add_argument(
        "--from",
        dest="start",
        metavar="KEY",
        help="forget only the calls journaled from this call key on (kiln runs show"
        " lists them), so that resuming runs them again",
    )


def _runs_options(command: argparse.ArgumentParser) -> None:
    """--ledger and --format, which every `kiln runs` action takes."""
    command.add_argument(
        "--ledger",
        type=Path,
        metavar="FILE",
        help="the ledger file of the runs (default: $KILN_LEDGER, else [tool.kiln]"
        " ledger, else .kiln/ledger.db)",
    )
    command.add_argument(
        "--format", choices=("text", "json"), default="text", help="default: text"
    )
    command.set_defaults(handler=Handler("kilnc.cli.runs", "run_runs"))


def _run_options(command: argparse.ArgumentParser) -> None:
    """ID, and the options of every action on one run."""
    command.add_argument("run", type=_run_id, metavar="ID", help="the run's id")
    _runs_options(command)


def _resume_options(command: argparse.ArgumentParser) -> None:
    """The options of the actions that run the flow again (answer, resume)."""
    command.add_argument(
        "--flow",
        metavar="PATH.py:FLOW",
        help="run this flow (a source or a module kiln generated), not the one the"
        " run recorded",
    )
    _display_options(command)
    command.set_defaults(handler=Handler("kilnc.cli.resume", "resume_command"))


def _display_options(command: argparse.ArgumentParser) -> None:
    """How a command that runs a flow shows it: kiln run's, and kiln runs answer's."""
    command.add_argument(
        "--no-progress", action="store_true", help="no live progress display"
    )
    command.add_argument(
        "--show-traceback",
        action="store_true",
        help="print the Python traceback of a failure",
    )


def _run_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a run id must not be empty")
    return text


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value
