"""`kiln run PATH.py[:FLOW] [name=value ...]`: run a flow, watch its node calls, sum them up.

    kiln run pipelines/digest.py:digest path=README.md      # compiles the source first
    kiln run build/digest.py:digest path=README.md --json  # a module kiln generated
    kiln run build/digest.py:digest path=README.md --trace run.json

The result goes to stdout (a string as it is, anything else as its repr; a
streaming flow's items one per line as they arrive); the live progress line
and the per-node summary go to stderr, the progress line only when stderr is a
terminal. `--json` prints one JSON document instead of both, `--trace FILE`
writes the calls as Chrome trace-event JSON for Perfetto.

Exit status: 0 when the flow returned, 1 when it raised (or the source has
errors, or its import failed), 2 for bad command-line use, 130 when
interrupted. A failure prints the exception and its kiln notes (the node, its
definition and call lines), not a Python traceback unless `--show-traceback`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import inspect
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import ExitStack, aclosing, closing
from pathlib import Path, PurePath
from types import ModuleType
from typing import IO, Any, Final, final

from rich.console import Console

from kiln import (
    AsyncProcess,
    AsyncStreamProcess,
    Backend,
    Flow,
    KilnError,
    Process,
    StreamProcess,
)
from kilnc.observe import Call, NodeSummary, Observer, summarize_calls
from kilnc.progress import RunProgress, format_seconds, summary_table
from kilnc.run_args import ArgumentError, bind_arguments, parse_assignments, type_hints
from kilnc.run_load import (
    CompileFailed,
    TargetError,
    choose_flow,
    find_flows,
    loaded_module,
    parse_target,
)
from kilnc.source import display_path
from kilnc.trace import chrome_trace

__all__ = ["add_run_command", "run_flow_command"]

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_PLAIN_WIDTH: Final = 200  # the summary's widest in a log: no node name cut short

# The method `kiln run` calls, by the first process mode the flow's class has.
_ENTRIES: Final[tuple[tuple[str, type], ...]] = (
    ("astream", AsyncStreamProcess),
    ("aforward", AsyncProcess),
    ("stream", StreamProcess),
    ("forward", Process),
)


def add_run_command(commands: Any) -> None:
    """Register `kiln run` on the `kiln` parser's subcommands."""
    run = commands.add_parser(
        "run", help="run a flow with a live progress display and a per-node summary"
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
        "--no-progress", action="store_true", help="no live progress display"
    )
    run.add_argument(
        "--show-traceback",
        action="store_true",
        help="print the Python traceback of a failure",
    )
    run.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the node calls on the Dask scheduler at ADDRESS (tcp://host:8786),"
        " or on a cluster started on this machine with 'local' (pip install 'kiln[dask]')",
    )
    run.set_defaults(handler=run_flow_command)


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: its result or its error, and when it began and ended."""

    result: Any
    error: BaseException | None
    interrupted: bool
    began: float
    ended: float

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted


class _OutputClosed(Exception):
    """stdout was closed under a streaming flow (``kiln run ... | head``)."""


def run_flow_command(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except TargetError as exc:
        return _target_error(exc, args.show_traceback)
    except ArgumentError as exc:
        return _usage(str(exc))
    except KeyboardInterrupt:
        print("kiln: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


@final
@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    """The flow to run, the method that runs it, and its arguments."""

    name: str
    mode: str
    method: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    observer: Observer


def _run(args: argparse.Namespace) -> int:
    target = parse_target(args.target)
    given = parse_assignments(args.arguments)
    with ExitStack() as stack:
        module = stack.enter_context(loaded_module(target.path))
        backend = None if args.dask is None else _dask_backend(args.dask, stack)
        call = _prepare(module, target.flow, display_path(target.path), given, backend)
        trace_file = _open_trace(args.trace, stack)
        stderr = _stderr_console()
        live = stderr.is_terminal and not (args.no_progress or args.json)
        outcome = _watch(call, stderr if live else None, collect=args.json)
        calls = call.observer.calls()
        if trace_file is not None:
            document = chrome_trace(call.name, calls, outcome.began, outcome.ended)
            json.dump(document, trace_file, separators=(",", ":"))
        return _report(args, call.name, call.mode, outcome, calls, stderr)


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
    flow_name: str | None,
    shown: str,
    given: dict[str, str],
    backend: Backend | None = None,
) -> _Call:
    """The observed instance of the chosen flow, and the arguments `given` ask for."""
    name, flow = choose_flow(find_flows(module), flow_name, shown)
    observer = Observer()
    mode, method = _entry(type(flow)(on_event=observer, backend=backend))
    try:
        args, kwargs = bind_arguments(
            inspect.signature(method), type_hints(method), given
        )
    except ArgumentError as exc:
        raise ArgumentError(f"{shown}:{name}: {exc}") from None
    return _Call(name, mode, method, args, kwargs, observer)


def _watch(call: _Call, display: Console | None, *, collect: bool) -> Outcome:
    """Run the call, with the live display on `display` when there is one.

    A stream's items are printed as they arrive, or with `collect` kept as its result.
    """
    collected: list[Any] = []
    on_item = collected.append if collect else _print_item
    with ExitStack() as stack:
        if display is not None:
            stack.enter_context(RunProgress(call.name, call.observer.counts, display))
        outcome = _execute(call.mode, call.method, call.args, call.kwargs, on_item)
    if collect and call.mode in ("astream", "stream"):
        return dataclasses.replace(outcome, result=collected)
    return outcome


def _entry(flow: Flow) -> tuple[str, Callable[..., Any]]:
    for mode, base in _ENTRIES:
        if isinstance(flow, base):
            method: Callable[..., Any] = getattr(flow, mode)
            return mode, method
    raise TargetError(
        f"{type(flow).__name__} has no process mode to run (aforward, astream, forward, stream)",
        EXIT_USAGE,
    )


def _open_trace(path: Path | None, stack: ExitStack) -> IO[str] | None:
    """The trace file, opened before the run so that a bad path fails before it starts."""
    if path is None:
        return None
    try:
        return stack.enter_context(path.open("w", encoding="utf-8"))
    except OSError as exc:
        message = f"cannot write the trace to {path}: {exc.strerror}"
        raise TargetError(message, EXIT_USAGE) from None


def _stderr_console() -> Console:
    # Not a terminal: plain text, and no columns cut short to fit a screen it is not
    # on (COLUMNS is no guide there; readline exports it to every child process).
    terminal = sys.stderr.isatty()
    return Console(
        file=sys.stderr,
        force_terminal=None if terminal else False,
        width=None if terminal else _PLAIN_WIDTH,
    )


# --- running ----------------------------------------------------------------------------


def _execute(
    mode: str,
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> Outcome:
    began = time.perf_counter()
    result: Any = None
    error: BaseException | None = None
    interrupted = False
    try:
        result = _RUNNERS[mode](method, args, kwargs, on_item)
    except KeyboardInterrupt:
        interrupted = True
    except _OutputClosed:
        pass  # stop quietly, as `yes | head` does
    except (Exception, asyncio.CancelledError) as exc:
        error = exc
    return Outcome(result, error, interrupted, began, time.perf_counter())


Runner = Callable[
    [Callable[..., Any], tuple[Any, ...], dict[str, Any], Callable[[Any], object]], Any
]


def _aforward(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> Any:
    return asyncio.run(method(*args, **kwargs))


def _astream(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> None:
    async def drain() -> None:
        async with aclosing(method(*args, **kwargs)) as items:
            async for item in items:
                on_item(item)

    asyncio.run(drain())


def _forward(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> Any:
    return method(*args, **kwargs)


def _stream(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> None:
    with closing(method(*args, **kwargs)) as items:
        for item in items:
            on_item(item)


_RUNNERS: Final[Mapping[str, Runner]] = {
    "aforward": _aforward,
    "astream": _astream,
    "forward": _forward,
    "stream": _stream,
}


def _print_item(item: Any) -> None:
    text = _shown(item)
    if text is not None and not _print_out(text):
        raise _OutputClosed


def _print_out(text: str) -> bool:
    """Print a line to stdout; False when its reader is gone (``kiln run ... | head``)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Whoever reads has all they want. Point stdout at devnull, or Python's own
        # flush at exit would complain about the pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


def _shown(value: Any) -> str | None:
    """How a result prints: a string as it is, None not at all, anything else its repr."""
    if value is None:
        return None
    return value if isinstance(value, str) else repr(value)


# --- reporting --------------------------------------------------------------------------


def _report(
    args: argparse.Namespace,
    name: str,
    mode: str,
    outcome: Outcome,
    calls: tuple[Call, ...],
    stderr: Console,
) -> int:
    summaries = summarize_calls(calls)
    wall = outcome.ended - outcome.began
    if args.json:
        document = _json_document(name, outcome, summaries, len(calls))
        _print_out(json.dumps(document, indent=2, default=_jsonable, allow_nan=False))
    else:
        if outcome.ok and mode in ("aforward", "forward"):
            shown = _shown(outcome.result)
            if shown is not None:
                _print_out(shown)
        if summaries:
            stderr.print(summary_table(name, summaries, wall))
        else:
            stderr.print(f"kiln run {name}: {format_seconds(wall)}, no node calls")
    if outcome.interrupted:
        print("kiln: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.error is not None:
        if not args.json:
            print(_failure(name, outcome.error, args.show_traceback), file=sys.stderr)
        return EXIT_ERRORS
    return EXIT_OK


def _failure(name: str, error: BaseException, show_traceback: bool) -> str:
    """The error and its notes (kiln's name the node and its lines), as Python prints them."""
    lines = (
        traceback.format_exception(error)
        if show_traceback
        else traceback.format_exception_only(error)
    )
    return f"kiln: flow {name!r} failed:\n" + "".join(lines).rstrip()


def _json_document(
    name: str, outcome: Outcome, summaries: tuple[NodeSummary, ...], events: int
) -> dict[str, Any]:
    return {
        "flow": name,
        "result": _encodable(outcome.result),
        "ok": outcome.ok,
        "error": _error_json(outcome),
        "wall_seconds": outcome.ended - outcome.began,
        "nodes": [dataclasses.asdict(summary) for summary in summaries],
        "events": events,
    }


def _error_json(outcome: Outcome) -> dict[str, Any] | None:
    if outcome.interrupted:
        return {"type": "KeyboardInterrupt", "message": "interrupted", "notes": []}
    error = outcome.error
    if error is None:
        return None
    return {
        "type": type(error).__name__,
        "message": str(error),
        "notes": list(getattr(error, "__notes__", [])),
    }


def _encodable(value: Any) -> Any:
    """`value` when it encodes as JSON (dataclasses, paths and sets too), else its repr."""
    try:
        json.dumps(value, default=_jsonable, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return repr(value)
    return value


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _target_error(exc: TargetError, show_traceback: bool) -> int:
    if isinstance(exc, CompileFailed):
        print(exc, file=sys.stderr)
    else:
        print(f"kiln: error: {exc}", file=sys.stderr)
    if show_traceback and exc.details:
        print(exc.details, file=sys.stderr, end="")
    return exc.status


def _usage(message: str) -> int:
    print(f"kiln: error: {message}", file=sys.stderr)
    return EXIT_USAGE
