"""`kiln runs answer ID name=VALUE` and `kiln runs resume ID`: a durable run goes on.

    kiln runs answer r1 review=yes               # read by the question's type
    kiln runs resume r1                          # a run that failed, or was killed
    kiln runs resume r1 --flow build/publish.py:publish

Both load the flow the run recorded (the file `kiln run` was given, a source
compiled again or a module kiln generated, and the flow's name there), or
the one `--flow` names, as `kiln run` loads it, and run it again with the
arguments the run was started with: what the run journaled is replayed, and
it goes on live from the first call it had not finished. `answer` first
journals the answer to the question the run waits at, read as `kiln run`
reads an argument (run/args.py) of the question's type, which the compiled
flow classes list in `_kiln_questions` (`kiln.durable.questions_of`).

What they print and their exit statuses are `kiln run`'s (run.py): 0
when the flow returned, 1 when it failed or the run cannot go on (an unknown
run id, no question open or another one, an answer of the wrong type, a run
a live process owns, its module gone), 2 for bad command-line use, 3 when
the run stops at a question again, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import stat
import sys
from pathlib import Path
from types import ModuleType

from kiln import Flow
from kiln.durable import answer_text, questions_of, resume_arguments, started_by
from kiln.durable.journal import DurableRun, alive, answer
from kiln.errors import DurableRunError, LedgerError
from kiln.ledger import Ledger
from kilnc.cli.config import UsageError, config_start, load_config
from kilnc.cli.interrupts import EXIT_INTERRUPTED
from kilnc.cli.interrupts import message as interrupted_message
from kilnc.cli.ledger import ConfigProblems
from kilnc.cli.run import (
    Display,
    RunCall,
    configure,
    entry,
    report_target_error,
    run_call,
)
from kilnc.cli.runs import (
    RunsError,
    error_status,
    find_run,
    ledger_option,
    runs_ledger,
    shown_state,
)
from kilnc.run.args import ArgumentError, convert
from kilnc.run.durable import Durable, recorded_name
from kilnc.run.load import (
    Target,
    TargetError,
    choose_flow,
    find_flows,
    loaded_module,
    parse_target,
)
from kilnc.run.observe import Observer
from kilnc.source import display_path
from kilnc.terminal import LINES, printable

__all__ = ["resume_command"]

EXIT_ERRORS, EXIT_USAGE = 1, 2


def resume_command(args: argparse.Namespace) -> int:
    """The handler of answer and resume: the run goes on, reported as `kiln run` reports."""
    display = Display(
        json=args.format == "json",
        progress=not args.no_progress,
        show_traceback=args.show_traceback,
    )
    try:
        return _resume(args, display)
    except ConfigProblems as problems:
        print(problems, file=sys.stderr)
        return EXIT_ERRORS
    except TargetError as exc:
        return report_target_error(exc, args.show_traceback)
    except UsageError as exc:
        print(f"kiln: error: {printable(str(exc), LINES)}", file=sys.stderr)
        return EXIT_USAGE
    except (RunsError, DurableRunError, LedgerError, ArgumentError) as error:
        return error_status(error)
    except KeyboardInterrupt:
        print(interrupted_message(), file=sys.stderr)
        return EXIT_INTERRUPTED


def _resume(args: argparse.Namespace, display: Display) -> int:
    ledger = runs_ledger(args.ledger)
    record = find_run(ledger, args.run)
    if shown_state(record) == "running" and alive(record.owner):
        raise RunsError(
            f"run {record.run!r} is running in process {record.owner}; two processes"
            " never run one durable run at once: wait for it to end, or stop it first"
        )
    reply = None if args.runs_command == "resume" else _reply(record, args.answer)
    target = _target(record, args.flow)
    with loaded_module(target.path) as module:
        shown = display_path(target.path)
        name, flow = _chosen(module, target, record, shown, given=args.flow is not None)
        observer = Observer()
        configured = configure(flow, observer, ledger=ledger.path, run_id=record.run)
        call_args, kwargs = resume_arguments(configured, record.arguments, record.run)
        if reply is not None:
            _answer(configured, ledger, record, *reply)
        mode, method = entry(configured)
        started = f"{target.path.resolve()}:{name}"
        started_by(configured, started)
        durable = Durable(
            record.run,
            recorded_name(configured),
            ledger,
            started,
            ledger_option(ledger),
        )
        call = RunCall(name, mode, method, call_args, kwargs, observer, durable)
        return run_call(call, display)


def _reply(record: DurableRun, word: str) -> tuple[str, str]:
    """The question's name and the answer's text, once the run is known to wait at it."""
    name, equals, text = word.partition("=")
    name = name.strip()
    question = record.question
    if not equals or not name:
        asked = question.name if question is not None else "NAME"
        missing = "has no '='" if not equals else "has no name before '='"
        raise UsageError(f"the answer {word!r} {missing}: give it as {asked}=VALUE")
    if record.state != "suspended" or question is None:
        state = shown_state(record)
        hint = "" if state == "done" else f"; `kiln runs resume {record.run}` goes on"
        raise RunsError(f"run {record.run!r} waits for no answer: it is {state}{hint}")
    if question.name != name:
        raise RunsError(
            f"run {record.run!r} waits for an answer to {question.name!r} (asked at"
            f" {question.where}), not to {name!r}"
        )
    return name, text


def _target(record: DurableRun, given: str | None) -> Target:
    """`--flow PATH.py:FLOW`, else the file and flow the run recorded.

    A ledger is data, which may come from elsewhere: the file it names is
    loaded (its code run) only from under a trusted root (`trusted_roots`);
    one anywhere else must be named with --flow. Nothing is imported before
    the file has passed.
    """
    if given is not None:
        return parse_target(given)
    path, colon, flow = record.target.rpartition(":")
    if not colon or not Path(path).is_file():
        raise RunsError(
            f"run {record.run!r} was started from {record.target}, which is not there"
            " any more; give its flow with --flow PATH.py:FLOW"
        )
    real = Path(path).resolve()
    roots, refused = trusted_roots()
    if real.suffix != ".py" or not any(real.is_relative_to(r) for r in roots):
        raise RunsError(
            f"run {record.run!r} was started from {record.target}, which the ledger"
            f" names {_outside(roots, refused)}; run this command in the run's"
            " project, or give its flow with --flow PATH.py:FLOW"
        )
    if flow and flow not in _top_level_names(real):
        raise RunsError(
            f"run {record.run!r} was started from {record.target}, but {path} binds"
            f" no {flow} at its top level, so kiln does not load it; give its flow"
            " with --flow PATH.py:FLOW"
        )
    return Target(Path(path), flow or None)


def trusted_roots() -> tuple[list[Path], list[tuple[Path, str]]]:
    """The directories whose files a ledger's recorded target may be loaded from,
    and those left out with the reason.

    The roots are the project's (the directory of the pyproject.toml whose
    `[tool.kiln]` configures kiln here, found from the working directory
    upward) and the working directory. A root is a project's: never one that
    holds everything (`/`, the home directory or a directory above it) or
    that anyone may write to (`/tmp`): under those, a file proves nothing
    about who put it there. The ledger's own directory is no root: it comes
    with the ledger, which is the data being judged.
    """
    config, _ = load_config(config_start([]))
    found = [Path.cwd().resolve()]
    if config.root is not None:
        found.insert(0, config.root.resolve())
    roots: list[Path] = []
    refused: list[tuple[Path, str]] = []
    for root in dict.fromkeys(found):
        why = _too_broad(root)
        if why is None:
            roots.append(root)
        else:
            refused.append((root, why))
    return roots, refused


def _too_broad(root: Path) -> str | None:
    """Why files under `root` say nothing of the project, or None."""
    if root.parent == root:
        return "the file system's root"
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):  # no home directory known
        home = None
    if home is not None and home.is_relative_to(root):
        return "the home directory" if home == root else "above the home directory"
    try:
        writable = root.stat().st_mode & stat.S_IWOTH
    except OSError:
        return "a directory kiln cannot read"
    return "writable by anyone" if writable else None


def _outside(roots: list[Path], refused: list[tuple[Path, str]]) -> str:
    """Where the refused file is not, and why a directory left out is no root."""
    where = " and ".join(map(str, roots)) or "any directory kiln trusts here"
    notes = "".join(f", and {root} is {why}, not a project" for root, why in refused)
    return (
        f"outside {where}: kiln runs the code a ledger names only from the project"
        f" it runs in{notes}"
    )


def _top_level_names(path: Path) -> set[str]:
    """The names a module binds at its top level, read without running it."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(statement.name)
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = (
                statement.targets
                if isinstance(statement, ast.Assign)
                else [statement.target]
            )
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _chosen(
    module: ModuleType, target: Target, record: DurableRun, shown: str, *, given: bool
) -> tuple[str, Flow]:
    """The flow to resume: `--flow`'s, else the run's class under the recorded name.

    A run started without `kiln run` records a name made from its class's,
    which need not be the instance's; the class decides.
    """
    if given:  # named as `kiln run` names it; the run refuses another flow's class
        return choose_flow(module, target.flow, shown)
    own, imported = find_flows(module)
    flows = own | imported
    ours = [name for name, flow in flows.items() if recorded_name(flow) == record.flow]
    name = target.flow if target.flow in ours else next(iter(ours), None)
    if name is None:
        listed = ", ".join(flows) or "none"
        raise RunsError(
            f"{shown} has no flow {record.flow}, the flow of run {record.run!r} (its"
            f" flows: {listed}); give it with --flow PATH.py:FLOW"
        )
    return name, flows[name]


def _answer(
    flow: Flow, ledger: Ledger, record: DurableRun, name: str, text: str
) -> None:
    """Journal `text`, read by the question's type, as the answer to question `name`."""
    expected = questions_of(type(flow)).get(name, inspect.Parameter.empty)
    value = convert(name, expected, text, what="the answer to")
    answer(ledger, record.run, name, answer_text(flow, record.run, name, value))
