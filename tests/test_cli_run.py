"""`kiln run` end to end, through the installed command (DESIGN.md §1, §5; issue 4.4)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import KILN, write

HELPERS = """\
OFFSET = 1000
"""

FLOWS = '''\
import asyncio
import os
import time
from pathlib import Path
from typing import Optional

from helpers import OFFSET
from kiln import flow, node

FAILED: dict[int, bool] = {}


@node(retries=1)
async def flaky(i: int) -> int:
    """Fails its first attempt for i == 0; every call takes 50 ms. (`FAILED` is
    filled, never read back otherwise: the elements of a fan-out overlap.)"""
    await asyncio.sleep(0.05)
    if i == 0 and i not in FAILED:
        FAILED[i] = True
        raise ConnectionError("the first attempt fails")
    return i


@node
async def pause(ms: int) -> int:
    await asyncio.sleep(ms / 1000)
    return ms


@node
async def boom(x: int) -> int:
    raise ValueError(f"boom at {x}")


@node
def describe(
    x: int, rate: float, on: bool, where: Path, tags: list[str], limit: Optional[int]
) -> dict[str, str]:
    values = {"x": x, "rate": rate, "on": on, "where": where, "tags": tags, "limit": limit}
    return {k: f"{type(v).__name__}:{v}" for k, v in values.items()}


@node
async def gate(path: str) -> str:
    """Waits (at most a minute) for the test to create `path`."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        await asyncio.sleep(0.01)
    return "opened"


@flow
async def pipeline(n: int) -> int:
    firsts = [await flaky(i) for i in range(n)]
    slow = 100 if sum(firsts) >= 0 else 0
    waits = [await pause(slow) for _ in range(3)]
    last = await pause(sum(waits) // 300)
    return OFFSET + sum(firsts) + sum(waits) + last


@flow
async def broken(n: int) -> int:
    x = await pause(n)
    return await boom(x)


@flow
async def kinds(
    x: int, rate: float, on: bool, where: Path, tags: list[str], limit: Optional[int] = None
) -> dict[str, str]:
    return describe(x, rate, on, where, tags, limit)


@flow
async def greet(name: str) -> str:
    return "hello " + name + "\\nsecond line"


@flow
async def items(path: str):
    yield "first"
    yield await gate(path)
'''

PIPELINE_RESULT = 1000 + (0 + 1 + 2 + 3) + 300 + 1
CONTROL = re.compile(r"\x1b\[|\r")  # what a live display draws with


def run(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KILN, "run", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def clean(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """No Python traceback and no terminal control sequence: stderr is a pipe."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert not CONTROL.search(output), output
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run")
    write(root / "helpers.py", HELPERS)
    write(root / "flows.py", FLOWS)
    return root


@pytest.fixture(scope="module")
def compiled(project: Path) -> Path:
    done = subprocess.run(
        [*KILN, "compile", "flows.py", "-o", "build"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done
    return project / "build" / "flows.py"


@pytest.fixture(scope="module")
def pipeline_json(project: Path) -> dict[str, Any]:
    trace = project / "pipeline-trace.json"
    result = clean(
        run("flows.py:pipeline", "n=4", "--json", "--trace", trace, cwd=project)
    )
    assert result.returncode == 0, result
    document: dict[str, Any] = json.loads(result.stdout)
    document["trace"] = json.loads(trace.read_text(encoding="utf-8"))
    return document


def node_rows(stderr: str) -> dict[str, list[str]]:
    """The summary table's rows by node: the words after the node's name."""
    rows = {}
    for line in stderr.splitlines():
        words = line.split()
        if words and words[0] in {"flaky", "pause", "boom", "describe", "gate"}:
            rows[words[0]] = words[1:]
    return rows


def test_runs_a_source_compiled_on_the_fly(project: Path) -> None:
    result = clean(run("flows.py:pipeline", "n=4", cwd=project))
    assert result.returncode == 0, result
    assert result.stdout == f"{PIPELINE_RESULT}\n"
    # the summary: calls, failed, retries, cache hits, then the times
    rows = node_rows(result.stderr)
    assert rows["flaky"][:4] == ["4", "0", "1", "0"], result.stderr
    assert rows["pause"][:4] == ["4", "0", "0", "0"], result.stderr
    assert "kiln run pipeline: 8 node calls in" in result.stderr
    assert "p50" in result.stderr
    assert "p95" in result.stderr


def test_runs_a_compiled_module_as_it_is(compiled: Path, project: Path) -> None:
    # `helpers` is found as `python -m` would find it: in the working directory
    result = clean(run("build/flows.py:pipeline", "n=4", cwd=project))
    assert result.returncode == 0, result
    assert result.stdout == f"{PIPELINE_RESULT}\n"
    assert node_rows(result.stderr)["flaky"][:4] == ["4", "0", "1", "0"]


def test_a_source_imports_from_its_import_root(project: Path, tmp_path: Path) -> None:
    result = clean(run(f"{project / 'flows.py'}:pipeline", "n=4", cwd=tmp_path))
    assert result.returncode == 0, result
    assert result.stdout == f"{PIPELINE_RESULT}\n"


def test_a_compiled_module_is_not_compiled_again(
    compiled: Path, tmp_path: Path
) -> None:
    copy = write(tmp_path / "flows.py", compiled.read_text(encoding="utf-8"))
    write(tmp_path / "helpers.py", HELPERS)
    # A source would compile; this module calls _kiln names a source cannot use.
    result = clean(run(f"{copy}:greet", "name=x", cwd=tmp_path))
    assert result.returncode == 0, result
    assert "error" not in result.stderr


def test_argument_conversion(project: Path) -> None:
    result = clean(
        run(
            "flows.py:kinds",
            "x=3",
            "rate=0.5",
            "on=yes",
            "where=data/in.txt",
            'tags=["a", "b c"]',
            "--json",
            cwd=project,
        )
    )
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["result"] == {
        "x": "int:3",
        "rate": "float:0.5",
        "on": "bool:True",
        "where": f"{type(Path()).__name__}:{Path('data/in.txt')}",
        "tags": "list:['a', 'b c']",
        "limit": "NoneType:None",
    }
    given = clean(
        run(
            "flows.py:kinds",
            "x=-1",
            "rate=2",
            "on=0",
            "where=.",
            "tags=[]",
            "limit=7",
            "--json",
            cwd=project,
        )
    )
    assert json.loads(given.stdout)["result"] == {
        "x": "int:-1",
        "rate": "float:2.0",
        "on": "bool:False",
        "where": f"{type(Path()).__name__}:.",
        "tags": "list:[]",
        "limit": "int:7",
    }


def test_a_string_result_prints_as_it_is(project: Path) -> None:
    result = clean(run("flows.py:greet", "name=kiln run", cwd=project))
    assert result.returncode == 0, result
    assert result.stdout == "hello kiln run\nsecond line\n"


USAGE_ERRORS = [
    (
        ["flows.py:kinds", "x=three", "rate=1", "on=1", "where=.", "tags=[]"],
        "argument 'x' expects int; got 'three'",
    ),
    (
        ["flows.py:kinds", "x=1", "rate=fast", "on=1", "where=.", "tags=[]"],
        "argument 'rate' expects float; got 'fast'",
    ),
    (
        ["flows.py:kinds", "x=1", "rate=1", "on=maybe", "where=.", "tags=[]"],
        "argument 'on' expects bool; got 'maybe'",
    ),
    (
        ["flows.py:kinds", "x=1", "rate=1", "on=1", "where=.", "tags=[1"],
        "argument 'tags' expects list[str]; got '[1'",
    ),
    (
        ["flows.py:kinds", "x=1", "rate=1", "on=1", "where=.", "tags=[]", "limit=lots"],
        "argument 'limit' expects int | None; got 'lots'",
    ),
    (
        ["flows.py:kinds", "x=1"],
        "missing required arguments: rate (float), on (bool), where (Path), tags (list[str])",
    ),
    (["flows.py:greet", "name=a", "nmae=b"], "unknown argument 'nmae'"),
    (
        ["flows.py:greet", "name"],
        "flows.py:greet: argument 'name' has no '=': arguments are name=value;"
        " give its value as name=VALUE (the flow takes: name)",
    ),
    (
        ["flows.py:greet", "unknown q"],
        "flows.py:greet: argument 'unknown q' has no '=': arguments are name=value,"
        " such as 'name=unknown q' (the flow takes: name)",
    ),
    (
        ["flows.py:greet", "name=a", "b"],
        "argument 'b' has no '=': arguments are name=value; if it is the rest of"
        " the value before it, quote both: 'name=a b' (the flow takes: name)",
    ),
    (["flows.py:greet", "name=a", "name=b"], "argument 'name' is given twice"),
    (
        ["flows.py:greet"],
        "missing required argument: name (str); give it as name=VALUE",
    ),
    (
        ["flows.py:nope"],
        "no flow named 'nope' in flows.py; its flows: pipeline, broken, kinds",
    ),
    (["flows.py", "n=1"], "flows.py has several flows; name one as flows.py:FLOW"),
    (["missing.py:f"], "no such file: missing.py"),
    (
        ["flows.py:greet", "name=a", "--trace", "helpers.py/t.json"],
        "--trace: the directory helpers.py is a regular file, not a directory",
    ),
    (
        ["flows.py:greet", "name=a", "--trace", "helpers.py/deeper/t.json"],
        "--trace: the directory helpers.py/deeper cannot be made: helpers.py is a regular file",
    ),
    (["helpers.py:f"], "helpers.py has no @flow to run"),
    # The trace, written when the run ends, would replace the ledger the run
    # kept its results in, though it did not exist when the run began (trial Q6).
    (
        ["flows.py:greet", "name=a", "--ledger", "run.db", "--trace", "run.db"],
        "--trace: run.db is the ledger this run keeps its results in; give the"
        " trace another path",
    ),
    (
        ["flows.py:greet", "name=a", "--trace", ".kiln/ledger.db"],
        "--trace: .kiln/ledger.db is the ledger this run keeps its results in;"
        " give the trace another path",
    ),
]


def test_arguments_may_follow_the_options(project: Path) -> None:
    result = clean(
        run("flows.py:greet", "--json", "name=kiln", "--no-progress", cwd=project)
    )
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["result"] == "hello kiln\nsecond line"


def test_a_missing_target_is_the_only_required_argument(project: Path) -> None:
    result = clean(run(cwd=project))
    assert result.returncode == 2, result
    assert result.stderr.endswith(
        "kiln: error: the following arguments are required: PATH.py:FLOW\n"
    ), result.stderr


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS)
def test_usage_errors(project: Path, args: list[str], message: str) -> None:
    result = clean(run(*args, cwd=project))
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith("kiln: error: "), result.stderr
    assert message in result.stderr, result.stderr


def test_source_errors_are_diagnostics(tmp_path: Path) -> None:
    write(
        tmp_path / "bad.py",
        "from kiln import flow, node\n\n\n@node(retrys=3)\ndef f(x: int) -> int:\n"
        "    return x\n\n\n@flow\ndef g(x: int) -> int:\n    return f(x)\n",
    )
    result = clean(run("bad.py:g", "x=1", cwd=tmp_path))
    assert result.returncode == 1, result
    assert "bad.py:4:" in result.stderr
    assert "[KLN" in result.stderr
    assert result.stdout == ""


def test_a_failing_node_exits_1_with_its_note(project: Path) -> None:
    result = clean(run("flows.py:broken", "n=5", cwd=project))
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert "kiln: flow 'broken' failed:\nValueError: boom at 5\n" in result.stderr
    assert re.search(
        r"kiln: node 'boom' failed; defined at flows\.py:\d+, called at flows\.py:\d+",
        result.stderr,
    ), result.stderr
    assert node_rows(result.stderr)["boom"][:4] == ["1", "1", "0", "0"]


def test_the_user_s_exception_class_is_named_by_the_user_s_module(
    tmp_path: Path,
) -> None:
    """Not `_kiln_run.app.errs.LoadError`: the package kiln compiles into for the
    run is no name of the user's (trial Q10 §16); the cause's class too."""
    write(tmp_path / "app" / "__init__.py", "")
    write(
        tmp_path / "app" / "errs.py",
        "from kiln import flow, node\n\n\nclass LoadError(Exception):\n    pass\n\n\n"
        "class Cause(Exception):\n    pass\n\n\n@node\ndef load(name: str) -> int:\n"
        "    raise LoadError(f'cannot load {name}') from Cause(name)\n\n\n"
        "@flow\ndef two(name: str) -> int:\n    return load(name)\n",
    )
    result = clean(run("app/errs.py:two", "name=first", cwd=tmp_path))
    assert result.returncode == 1, result
    assert "failed:\napp.errs.LoadError: cannot load first\n" in result.stderr
    assert "_kiln_run" not in result.stderr
    shown = run("app/errs.py:two", "name=first", "--show-traceback", cwd=tmp_path)
    assert "\napp.errs.Cause: first\n" in shown.stderr, shown.stderr
    assert "\napp.errs.LoadError: cannot load first\n" in shown.stderr


def test_show_traceback(project: Path) -> None:
    result = run("flows.py:broken", "n=5", "--show-traceback", cwd=project)
    assert result.returncode == 1, result
    assert "Traceback (most recent call last)" in result.stderr
    assert "kiln: node 'boom' failed" in result.stderr


def test_json_document(pipeline_json: dict[str, Any]) -> None:
    document = pipeline_json
    assert set(document) == {
        "flow",
        "result",
        "ok",
        "error",
        "wall_seconds",
        "nodes",
        "events",
        "trace",
    }
    assert document["flow"] == "pipeline"
    assert document["result"] == PIPELINE_RESULT
    assert document["ok"] is True
    assert document["error"] is None
    assert document["events"] == 8
    assert document["wall_seconds"] > 0.2  # flaky's retry, then two rounds of pause
    flaky, pause = document["nodes"]
    assert flaky["node"] == "flaky"
    assert (
        flaky["calls"],
        flaky["failures"],
        flaky["retries"],
        flaky["cache_hits"],
    ) == (
        4,
        0,
        1,
        0,
    )
    assert pause["node"] == "pause"
    assert (pause["calls"], pause["failures"], pause["retries"]) == (4, 0, 0)
    for node in (flaky, pause):
        assert 0 < node["p50_seconds"] <= node["p95_seconds"] <= node["total_seconds"]
    # the failed first attempt, its wait and the retry are all in flaky(0)'s time
    assert flaky["p95_seconds"] >= 0.05


def test_json_of_a_failure(project: Path) -> None:
    result = clean(run("flows.py:broken", "n=2", "--json", cwd=project))
    assert result.returncode == 1, result
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["result"] is None
    assert document["error"]["type"] == "ValueError"
    assert document["error"]["message"] == "boom at 2"
    assert any("node 'boom' failed" in note for note in document["error"]["notes"])
    assert [(n["node"], n["failures"]) for n in document["nodes"]] == [
        ("pause", 0),
        ("boom", 1),
    ]
    assert result.stderr == "", "--json prints no summary table"


def test_trace_file(pipeline_json: dict[str, Any]) -> None:
    events = pipeline_json["trace"]["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == pipeline_json["events"] == 8
    assert sorted(e["name"] for e in complete) == ["flaky"] * 4 + ["pause"] * 4
    names = {
        e["args"]["name"]
        for e in events
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    assert names == {"kiln run pipeline"}
    lanes = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {e["tid"] for e in complete} == lanes
    for a, b in combinations(complete, 2):
        # 1 ns of slack for rounding to three decimals of a microsecond
        if (
            a["ts"] + a["dur"] > b["ts"] + 0.001
            and b["ts"] + b["dur"] > a["ts"] + 0.001
        ):
            assert a["tid"] != b["tid"], (a, b)
    # the four flaky calls overlap (50 ms each, all at once); the pauses come after
    # them and take their lanes back: four lanes for eight calls
    assert len(lanes) == 4
    flaky = [e for e in complete if e["name"] == "flaky"]
    assert len({e["tid"] for e in flaky}) == 4
    retried = [e for e in flaky if e["args"]["attempts"] == 2]
    assert len(retried) == 1
    assert all(e["cat"] == "completed" and e["ts"] >= 0 for e in complete)


def test_the_trace_directory_is_made(project: Path, tmp_path: Path) -> None:
    trace = tmp_path / "no" / "such" / "dir" / "t.json"
    result = clean(run("flows.py:greet", "name=a", "--trace", trace, cwd=project))
    assert result.returncode == 0, result
    assert json.loads(trace.read_text())["traceEvents"][0]["ph"] == "M"


def test_a_refused_argument_makes_no_trace_directory(
    project: Path, tmp_path: Path
) -> None:
    trace = tmp_path / "made" / "t.json"
    result = clean(run("flows.py:greet", "nmae=a", "--trace", trace, cwd=project))
    assert result.returncode == 2, result
    assert not trace.parent.exists()


def test_a_stream_prints_each_item_as_it_arrives(project: Path, tmp_path: Path) -> None:
    opened = tmp_path / "open"
    process = subprocess.Popen(
        [*KILN, "run", "flows.py:items", f"path={opened}"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # The flow waits for `opened` after its first item: that item must be out already.
        assert process.stdout.readline() == "first\n"
        opened.touch()
        rest, errors = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    assert rest == "opened\n"
    assert node_rows(errors)["gate"][:2] == ["1", "0"]


def test_json_of_a_stream_holds_its_items(project: Path, tmp_path: Path) -> None:
    opened = tmp_path / "open"
    opened.touch()
    result = clean(run("flows.py:items", f"path={opened}", "--json", cwd=project))
    assert result.returncode == 0, result
    document = json.loads(result.stdout)
    assert document["result"] == ["first", "opened"]
    assert [(n["node"], n["calls"]) for n in document["nodes"]] == [("gate", 1)]


def test_a_reader_that_goes_away_ends_a_stream_quietly(
    project: Path, tmp_path: Path
) -> None:
    opened = tmp_path / "open"
    process = subprocess.Popen(
        [*KILN, "run", "flows.py:items", f"path={opened}"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "first\n"
        process.stdout.close()  # as `kiln run ... | head -1` does
        opened.touch()
        errors = process.stderr.read() if process.stderr else ""
        process.wait(timeout=120)
    finally:
        process.kill()
    assert (
        process.returncode == 141
    ), errors  # as `yes | head -1` (tests/test_cli_pipes.py)
    assert "Traceback" not in errors
    assert "Error" not in errors


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupted_run_summarizes_and_exits_130(
    project: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [*KILN, "run", "flows.py:items", f"path={tmp_path / 'never'}"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "first\n"  # gate() is waiting now
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, errors
    assert "Traceback" not in errors
    assert "kiln: interrupted" in errors
    assert "gate" in node_rows(errors), errors


def test_cache_hits_are_counted(tmp_path: Path) -> None:
    write(
        tmp_path / "cached.py",
        "from kiln import flow, node\n\n\n@node(cache=True)\nasync def square(x: int) -> int:\n"
        "    return x * x\n\n\n@flow\nasync def squares(n: int) -> list[int]:\n"
        "    return [await square(i) for i in range(n)]\n",
    )
    ledger = str(tmp_path / "ledger.db")
    first = clean(run("cached.py", "n=3", "--json", cwd=tmp_path, KILN_LEDGER=ledger))
    again = clean(run("cached.py", "n=4", "--json", cwd=tmp_path, KILN_LEDGER=ledger))
    assert json.loads(first.stdout)["nodes"][0]["cache_hits"] == 0
    document = json.loads(again.stdout)
    assert document["result"] == [0, 1, 4, 9]
    (square,) = document["nodes"]
    assert (square["calls"], square["cache_hits"]) == (4, 3)


# --- the live display, on a real terminal ------------------------------------------------


def run_on_terminal(*args: str, cwd: Path) -> tuple[int, str, bytes]:
    """Run with stderr on a pseudo-terminal: (exit status, stdout, what the terminal got)."""
    import pty  # noqa: PLC0415  (POSIX only: imported where it is used)

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*KILN, "run", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"},
    )
    os.close(terminal)
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    reader.join(timeout=30)
    os.close(controller)
    return process.returncode, stdout.decode(), b"".join(received)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_progress_is_drawn_on_a_terminal(project: Path) -> None:
    status, stdout, screen = run_on_terminal("flows.py:pipeline", "n=4", cwd=project)
    assert status == 0, screen
    assert stdout == f"{PIPELINE_RESULT}\n", "the display stays off stdout"
    text = screen.decode("utf-8", errors="replace")
    assert "\x1b[?25l" in text, "a live display hides the cursor"
    assert "8/8 calls" in text, "the final counts stay on the screen"
    assert "━" in text, "the bar"
    assert "kiln run pipeline: 8 node calls" in text


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_no_progress_on_a_terminal(project: Path) -> None:
    status, _, screen = run_on_terminal(
        "flows.py:pipeline", "n=4", "--no-progress", cwd=project
    )
    assert status == 0, screen
    text = screen.decode("utf-8", errors="replace")
    assert "8/8 calls" not in text
    assert "\x1b[?25l" not in text, "a live display hides the cursor"
    assert "kiln run pipeline: 8 node calls" in text, "the summary is still there"
