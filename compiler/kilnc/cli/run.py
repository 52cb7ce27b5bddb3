"""`kiln run PATH.py[:FLOW] [name=value ...]`: run a flow, watch its node calls, sum them up.

    kiln run pipelines/digest.py:digest path=README.md      # compiles the source first
    kiln run build/digest.py:digest path=README.md --json  # a module kiln generated
    kiln run build/digest.py:digest path=README.md --trace run.json
    kiln run build/publish.py:publish doc=a.md --run-id r1  # durable: `kiln runs`

The result goes to stdout (a string as it is, anything else as its repr; a
streaming flow's items one per line as they arrive); the live progress line
and the per-node summary go to stderr, the progress line only when stderr is a
terminal. `--json` prints one JSON document instead of both, `--trace FILE`
writes the calls as Chrome trace-event JSON for Perfetto.

`--run-id ID` runs the flow durably (``F(run_id=ID)``): every call's value
is journaled in the ledger file, and the same command run again replays what
finished and goes on from there (`kiln runs resume ID` does that with the
arguments the run was started with). A run that stops at a question
(`kiln.ask`) prints it on stderr, its name, line, expected type and
payload, and exits 3; `kiln runs answer ID name=VALUE` answers it and goes on.

Exit status: 0 when the flow returned, 1 when it raised (or the source has
errors, or its import failed, or a durable run cannot go on: its id is
another flow's, or taken by a live process, ...), 2 for bad command-line
use, 3 when a durable run is suspended, waiting for an answer, 130 when
interrupted, 141 when stdout's reader went away (``| head -1``): a stream
is stopped there, and the trace and the summary are still written. A
failure prints the exception and its kiln notes (the node, its definition
and call lines), not a Python traceback unless `--show-traceback`.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import inspect
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext, redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any, Final, final

from rich.console import Console
from rich.text import Text

from kiln import (
    AsyncProcess,
    AsyncStreamProcess,
    Backend,
    DurableRunError,
    Flow,
    KilnError,
    OptionError,
    Process,
    StreamProcess,
    Suspended,
)
from kiln.durable import started_by
from kiln.durable.journal import Question
from kilnc.cli.closed_output import EXIT_READER_GONE
from kilnc.cli.interrupts import EXIT_INTERRUPTED, running
from kilnc.cli.interrupts import message as interrupted_message
from kilnc.cli.outputs import PendingFile
from kilnc.cli.parser import EXIT_SUSPENDED
from kilnc.cli.runs import ledger_option
from kilnc.run.args import ArgumentError, bind_arguments, parse_assignments, type_hints
from kilnc.run.durable import (
    Durable,
    check_asks,
    check_durable,
    recorded_name,
    suspension,
)
from kilnc.run.execute import execute, print_item, print_out
from kilnc.run.files import (
    check_flow_ledger,
    check_ledger,
    checked_trace,
    pending_trace,
    run_ledger,
)
from kilnc.run.load import (
    CompileFailed,
    Target,
    TargetError,
    choose_flow,
    loaded_module,
    parse_target,
)
from kilnc.run.observe import Call, Observer, summarize_calls
from kilnc.run.output import (
    Outcome,
    failure_text,
    json_document,
    note,
    question_json,
    question_text,
    shown,
)
from kilnc.run.progress import RunProgress, format_seconds, summary_table
from kilnc.run.trace import chrome_trace
from kilnc.source import display_path
from kilnc.terminal import LINES, printable, safe_str

__all__ = [
    "EXIT_SUSPENDED",
    "Display",
    "RunCall",
    "configure",
    "entry",
    "report_target_error",
    "run_call",
    "run_flow_command",
]

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
_PLAIN_WIDTH: Final = 200  # the summary's widest in a log: no node name cut short

# The method `kiln run` calls, by the first process mode the flow's class has.
_ENTRIES: Final[tuple[tuple[str, type], ...]] = (
    ("astream", AsyncStreamProcess),
    ("aforward", AsyncProcess),
    ("stream", StreamProcess),
    ("forward", Process),
)


def run_flow_command(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except TargetError as exc:
        return report_target_error(exc, args.show_traceback)
    except ArgumentError as exc:
        return _usage(str(exc))
    except KeyboardInterrupt:
        print(interrupted_message(), file=sys.stderr)
        return EXIT_INTERRUPTED


@final
@dataclasses.dataclass(frozen=True, slots=True)
class RunCall:
    """The flow to run, the method that runs it, and its arguments."""

    name: str
    mode: str
    method: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    observer: Observer
    durable: Durable | None = None
    ledger: Path | None = None  # the ledger file the flow uses; None: ledger=False


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Display:
    """How a run is shown: one JSON document or text, a live progress line, tracebacks."""

    json: bool = False
    progress: bool = True
    show_traceback: bool = False
    trace: Path | None = None  # --trace FILE, written when the run ends


def _run(args: argparse.Namespace) -> int:
    target = parse_target(args.target)
    with ExitStack() as stack:
        # Refused before anything is compiled: a trace or a ledger kiln may not write.
        ledger = run_ledger(args.ledger, target.path)
        trace_path = checked_trace(args.trace, target.path, ledger)
        check_ledger(ledger, target.path)
        module = stack.enter_context(loaded_module(target.path))
        backend = None if args.dask is None else _dask_backend(args.dask, stack)
        call = _prepare(module, target, args, backend, ledger.given)
        check_flow_ledger(call.ledger, ledger, trace_path, target.path)
        trace = pending_trace(trace_path, stack)
        display = Display(
            json=args.json,
            progress=not args.no_progress,
            show_traceback=args.show_traceback,
            trace=args.trace,
        )
        return run_call(call, display, trace)


def run_call(call: RunCall, display: Display, trace: PendingFile | None = None) -> int:
    """Run the call with its progress display, write its trace, report: the exit status."""
    stderr = _stderr_console()
    live = stderr.is_terminal and display.progress and not display.json
    # With --json, stdout holds the one document: what the flow prints goes to stderr.
    prints: AbstractContextManager[object] = (
        redirect_stdout(sys.stderr) if display.json else nullcontext()
    )
    with running(), prints:
        outcome = _watch(call, stderr if live else None, collect=display.json)
    calls = call.observer.calls()
    if trace is not None:
        document = chrome_trace(call.name, calls, outcome.began, outcome.ended)
        try:
            trace.commit(json.dumps(document, separators=(",", ":")).encode())
        except OSError as exc:
            message = (
                f"cannot write the trace to {display.trace}: {exc.strerror or exc}"
            )
            raise TargetError(message, EXIT_ERRORS) from None
    return _report(display, call, outcome, calls, stderr)


def _dask_backend(address: str, stack: ExitStack) -> Backend:
    """The `--dask` backend, closed (with a cluster it started) when the run ends."""
    from kiln.dask import backend_from_address  # noqa: PLC0415 - only for --dask

    try:
        backend = backend_from_address(address)
    except KilnError as exc:  # a bad address, or Dask distributed not installed
        raise ArgumentError(f"--dask: {exc}") from None
    return stack.enter_context(backend)


def _prepare(
    module: ModuleType,
    target: Target,
    args: argparse.Namespace,
    backend: Backend | None,
    ledger: Path | None,
) -> RunCall:
    """The observed instance of the chosen flow, and the arguments `args` ask for."""
    shown = display_path(target.path)
    name, flow = choose_flow(module, target.flow, shown)
    observer = Observer()
    run_id: str | None = args.run_id
    configured = configure(
        flow, observer, backend=backend, ledger=ledger, run_id=run_id
    )
    mode, method = entry(configured)
    signature = inspect.signature(method)
    try:
        given = parse_assignments(args.arguments, signature)
        call_args, kwargs = bind_arguments(signature, type_hints(method), given)
    except ArgumentError as exc:
        raise ArgumentError(f"{shown}:{name}: {exc}") from None
    durable = None
    if run_id is not None:
        started = f"{target.path.resolve()}:{name}"
        started_by(configured, started)
        durable = Durable(
            run_id,
            recorded_name(configured),
            configured.ledger_of(),
            started,
            ledger_option(configured.ledger_of()),
        )
    used = None if configured.ledger is False else configured.ledger_of().path
    return RunCall(name, mode, method, call_args, kwargs, observer, durable, used)


def configure(
    flow: Flow,
    observer: Observer,
    *,
    backend: Backend | None = None,
    ledger: Path | None = None,
    run_id: str | None = None,
) -> Flow:
    """An instance of `flow`'s class that reports to `observer`, with these options.

    With `run_id` it runs durably; a flow that cannot is an `ArgumentError`.
    """
    if run_id is not None:
        check_durable(flow)
    else:
        check_asks(flow, type(flow).__name__)
    try:
        return type(flow)(
            on_event=observer, backend=backend, ledger=ledger, run_id=run_id
        )
    except OptionError as exc:
        if run_id is None:
            raise
        raise ArgumentError(f"--run-id: {exc}") from None
    except DurableRunError as exc:  # a call it could not journal: it says which
        raise TargetError(f"--run-id: {exc}", EXIT_ERRORS) from None


def _watch(call: RunCall, display: Console | None, *, collect: bool) -> Outcome:
    """Run the call, with the live display on `display` when there is one.

    A stream's items are printed as they arrive, or with `collect` kept as its result.
    """
    collected: list[Any] = []
    on_item = collected.append if collect else print_item
    with ExitStack() as stack:
        if display is not None:
            stack.enter_context(RunProgress(call.name, call.observer.counts, display))
        outcome = execute(call.mode, call.method, call.args, call.kwargs, on_item)
    if collect and call.mode in ("astream", "stream"):
        return dataclasses.replace(outcome, result=collected)
    return outcome


def entry(flow: Flow) -> tuple[str, Callable[..., Any]]:
    """The method `kiln run` calls (`aforward`, `astream`, `forward`, `stream`), and its mode."""
    for mode, base in _ENTRIES:
        if isinstance(flow, base):
            method: Callable[..., Any] = getattr(flow, mode)
            return mode, method
    raise TargetError(
        f"{type(flow).__name__} has no process mode to run (aforward, astream, forward, stream)",
        EXIT_USAGE,
    )


class _Console(Console):
    """rich's Console, but a reader gone is BrokenPipeError, as for any write of
    kiln's (closed_output.py), where rich would exit with status 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "the reader of stderr went away")


def _stderr_console() -> Console:
    # Not a terminal: plain text, and no columns cut short to fit a screen it is not
    # on (COLUMNS is no guide there; readline exports it to every child process).
    terminal = sys.stderr.isatty()
    return _Console(
        file=sys.stderr,
        force_terminal=None if terminal else False,
        width=None if terminal else _PLAIN_WIDTH,
    )


# --- reporting --------------------------------------------------------------------------


def _report(
    display: Display,
    call: RunCall,
    outcome: Outcome,
    calls: tuple[Call, ...],
    stderr: Console,
) -> int:
    name = call.name
    summaries = summarize_calls(calls)
    wall = outcome.ended - outcome.began
    printed = not outcome.closed
    suspended = suspension(call.durable, outcome.error)
    if display.json:
        document = json_document(name, outcome, summaries, len(calls))
        if call.durable is not None:
            document["run_id"] = call.durable.run
            document["suspended"] = (
                None if suspended is None else question_json(suspended)
            )
        printed = print_out(json.dumps(document, indent=2, allow_nan=False))
    else:
        if outcome.ok and call.mode in ("aforward", "forward"):
            text = shown(outcome.result)
            if text is not None:
                printed = print_out(text)
            why = note(outcome.result)
            if why is not None:
                print(why, file=sys.stderr)
        if summaries:
            stderr.print(summary_table(name, summaries, wall))
        elif not isinstance(outcome.error, DurableRunError):  # refused: it says why
            stderr.print(
                Text(
                    f"kiln run {printable(name)}: {format_seconds(wall)}, no node calls"
                )
            )
    if outcome.interrupted:
        print(interrupted_message(), file=sys.stderr)
        return EXIT_INTERRUPTED
    if not display.json:
        _print_failure(display, call, outcome.error, suspended)
    if not printed:
        return EXIT_READER_GONE
    if outcome.error is None:
        return EXIT_OK
    return EXIT_SUSPENDED if isinstance(outcome.error, Suspended) else EXIT_ERRORS


def _print_failure(
    display: Display,
    call: RunCall,
    error: BaseException | None,
    suspended: Question | None,
) -> None:
    """How the run failed, or the question it waits at, on stderr."""
    if error is None:
        return
    if suspended is not None and call.durable is not None:
        text = question_text(call.durable.run, suspended, call.durable.ledger_option)
        print(f"kiln: {text}", file=sys.stderr)
    elif isinstance(error, DurableRunError):
        print(f"kiln: error: {printable(safe_str(error), LINES)}", file=sys.stderr)
    else:
        print(failure_text(call.name, error, display.show_traceback), file=sys.stderr)


def report_target_error(exc: TargetError, show_traceback: bool) -> int:
    """Print why PATH:FLOW cannot be run; its exit status."""
    if isinstance(exc, CompileFailed):
        print(exc, file=sys.stderr)  # rendered diagnostics, escaped already
    else:
        print(f"kiln: error: {printable(safe_str(exc), LINES)}", file=sys.stderr)
    if show_traceback and exc.details:
        print(printable(exc.details, LINES), file=sys.stderr, end="")
    return exc.status


def _usage(message: str) -> int:
    print(f"kiln: error: {printable(message, LINES)}", file=sys.stderr)
    return EXIT_USAGE
