"""The other paths kiln writes or reads, attacked: traces, ledgers, drawings (issue 12).

`kiln run --trace` and `--ledger`, `kiln ledger stats|clear PATH`, `kiln graph
SRC -o FILE`, each given a source, a link to one, a file of the user's, a
directory, a FIFO (which would block a reader for ever), a device, a
read-only directory, a crafted ledger. A refusal says what the path is and
leaves it as it was; a FIFO never hangs the command (every run has a timeout).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kiln.ledger import Ledger
from kilnc.cli.outputs import is_kiln_trace
from tests.test_cli_ledger import fill
from tests.test_cli_ledger import kiln as kiln_env
from tests.test_cli_outputs import snapshot
from tests.unprivileged import kiln_as_user, place

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")

CACHED = """\
from kiln import flow, node


@node(cache=True)
async def square(x: int) -> int:
    return x * x


@flow
async def squares(x: int) -> int:
    return await square(x)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "squares.py").write_text(CACHED, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    return tmp_path


def make(path: Path, kind: str, project: Path) -> None:
    """Put a `kind` of thing at `path`."""
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "source-link":
        path.symlink_to(project / "squares.py")
    elif kind == "hard-link":
        os.link(project / "squares.py", path)
    elif kind == "dangling":
        path.symlink_to(project / "nowhere")
    elif kind == "user-file":
        path.write_text("mine\n", encoding="utf-8")
    elif kind == "empty":
        path.touch()


# --- kiln run --trace ------------------------------------------------------------------


@POSIX
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("directory", "is a directory, not a trace"),
        ("fifo", "is a FIFO, not a trace"),
        ("source-link", "would overwrite the source"),
        ("hard-link", "would overwrite the source"),
        ("dangling", "symbolic link to a path that does not exist"),
        ("user-file", "is not a trace kiln wrote"),
        ("empty", "is not a trace kiln wrote"),
    ],
)
def test_trace_refuses(project: Path, kind: str, message: str) -> None:
    make(project / "run.json", kind, project)
    before = snapshot(project)
    result = kiln_env("run", "squares.py", "x=3", "--trace", "run.json", cwd=project)
    assert result.returncode == 2, result
    assert result.stderr.startswith("kiln: error: --trace: "), result.stderr
    assert message in result.stderr
    assert result.stdout == "", "nothing ran"
    assert snapshot(project) == before


def test_trace_never_overwrites_the_source(project: Path) -> None:
    before = snapshot(project)
    for path in ("squares.py", "./squares.py", str(project / "squares.py")):
        result = kiln_env("run", "squares.py", "x=3", "--trace", path, cwd=project)
        assert result.returncode == 2, result
        assert "would overwrite the source" in result.stderr
    assert snapshot(project) == before


def test_trace_replaces_its_own_trace_whole(project: Path) -> None:
    for x in ("3", "4"):
        result = kiln_env(
            "run", "squares.py", f"x={x}", "--trace", "run.json", cwd=project
        )
        assert result.returncode == 0, result
        assert is_kiln_trace(project / "run.json")
        json.loads((project / "run.json").read_text())
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".run")) == []


# --- kiln run --ledger -----------------------------------------------------------------


@POSIX
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("directory", "is a directory"),
        ("fifo", "is a FIFO"),
        ("source-link", "would overwrite the source"),
        ("hard-link", "would overwrite the source"),
        ("dangling", "symbolic link to a path that does not exist"),
        ("user-file", "not a kiln ledger"),
        ("empty", "is an empty file, not a kiln ledger"),
    ],
)
def test_ledger_refuses(project: Path, kind: str, message: str) -> None:
    make(project / "cache.db", kind, project)
    before = snapshot(project)
    result = kiln_env("run", "squares.py", "x=3", "--ledger", "cache.db", cwd=project)
    assert result.returncode == 2, result
    assert result.stderr.startswith("kiln: error: --ledger: "), result.stderr
    assert message in result.stderr
    assert snapshot(project) == before


def test_ledger_given_is_used_and_reused(project: Path) -> None:
    for hits in ("0", "1"):
        result = kiln_env(
            "run", "squares.py", "x=3", "--ledger", "cache.db", cwd=project
        )
        assert result.returncode == 0, result
        assert result.stdout == "9\n"
        row = next(line for line in result.stderr.splitlines() if " square " in line)
        assert row.split()[4] == hits, result.stderr  # cache hits
    assert Ledger.at(project / "cache.db").stats().entries == 1


@POSIX
@pytest.mark.parametrize("where", ["env", "config"])
def test_a_configured_ledger_that_is_a_fifo_is_refused_as_the_option_is(
    project: Path, where: str
) -> None:
    """Before anything runs, `kiln: error:` and exit 2, as `--ledger fifo.db` (trial Q6b)."""
    os.mkfifo(project / "fifo.db")
    env = {"KILN_LEDGER": str(project / "fifo.db")} if where == "env" else {}
    if where == "config":
        (project / "pyproject.toml").write_text('[tool.kiln]\nledger = "fifo.db"\n')
    result = kiln_env("run", "squares.py", "x=3", cwd=project, env=env)
    assert result.returncode == 2, result
    named = "KILN_LEDGER" if where == "env" else "[tool.kiln] ledger"
    assert result.stderr.startswith(f"kiln: error: {named}: "), result.stderr
    assert "fifo.db is a FIFO, not a ledger" in result.stderr


@pytest.mark.parametrize("where", ["option", "env", "config", "instance"])
def test_an_empty_file_is_refused_however_the_ledger_is_given(
    project: Path, where: str
) -> None:
    """`touch cache.db` is refused as `--ledger cache.db` is: kiln cannot tell it
    from a file given by mistake, and makes the ledger where no file is."""
    (project / "cache.db").touch()
    before = snapshot(project)
    env = {"KILN_LEDGER": str(project / "cache.db")} if where == "env" else {}
    if where == "config":
        (project / "pyproject.toml").write_text('[tool.kiln]\nledger = "cache.db"\n')
        before = snapshot(project)
    if where == "instance":
        assert (
            kiln_env("compile", "squares.py", "-o", "build", cwd=project).returncode
            == 0
        )
        script = "from build.squares import Squares\nSquares(ledger='cache.db')(3)\n"
        (project / "use.py").write_text(script)
        before = snapshot(project)
        result = subprocess.run(
            [sys.executable, "use.py"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    else:
        option = ["--ledger", "cache.db"] if where == "option" else []
        result = kiln_env("run", "squares.py", "x=3", *option, cwd=project, env=env)
    assert result.returncode != 0, result
    assert "cache.db is an empty file, not a kiln ledger" in result.stderr
    assert (project / "cache.db").stat().st_size == 0
    assert snapshot(project) == before


# --- kiln ledger stats|clear -----------------------------------------------------------


@POSIX
@pytest.mark.parametrize("action", ["stats", "clear"])
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", "is not a regular file"),
        ("directory", "is a directory"),
        ("source-link", "not a kiln ledger"),
        ("user-file", "not a kiln ledger"),
        ("empty", "is an empty file, not a kiln ledger"),
    ],
)
def test_ledger_tools_refuse(
    project: Path, action: str, kind: str, message: str
) -> None:
    make(project / "cache.db", kind, project)
    before = snapshot(project)
    result = kiln_env("ledger", action, "cache.db", cwd=project)
    assert result.returncode == 1, result
    assert message in result.stderr
    assert snapshot(project) == before


@POSIX
def test_ledger_stats_in_a_read_only_directory() -> None:
    with place() as root:
        cache = root / "cache" / "ledger.db"
        cache.parent.mkdir()
        fill(cache)
        entries = Ledger.at(cache).stats().entries
        Ledger.at(cache).close()
        for leftover in cache.parent.glob("ledger.db-*"):
            leftover.unlink()
        before = snapshot(root)
        cache.chmod(0o444)
        cache.parent.chmod(0o555)
        result = kiln_as_user("ledger", "stats", cache, cwd=root)
        assert result.returncode == 0, result
        assert "summarize" in result.stdout
        as_json = kiln_as_user("ledger", "stats", cache, "--json", cwd=root)
        assert json.loads(as_json.stdout)["entries"] == entries
        cache.parent.chmod(0o755)
        assert snapshot(root) == before, "stats wrote nothing"


def craft(path: Path, nodes: list[object], runs: list[tuple[object, ...]]) -> None:
    """A kiln ledger whose rows hold what SQLite lets anyone write."""
    fill(path)
    Ledger.at(path).close()
    with sqlite3.connect(path) as connection:
        template = connection.execute("SELECT * FROM entries LIMIT 1").fetchone()
        columns = [
            d[0] for d in connection.execute("SELECT * FROM entries").description
        ]
        for index, node in enumerate(nodes):
            row = dict(zip(columns, template, strict=True))
            row["node"] = node
            row[columns[0]] = f"crafted-{index}".encode()
            marks = ", ".join("?" * len(row))
            connection.execute(
                f"INSERT INTO entries VALUES ({marks})", list(row.values())
            )
        for run in runs:
            connection.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", run)
    connection.close()


def test_ledger_stats_of_a_crafted_ledger(tmp_path: Path) -> None:
    path = tmp_path / "crafted.db"
    escapes = "evil\x1b]0;owned\x07\x1b[2J\u202e\x9b31m"
    craft(
        path,
        [escapes, b"\xff\x1b[31m", 12345, "[/b]"],
        [
            ("r\x1b[2J", 1e300, "many", 0),
            (b"\x00", -5, 2**62, 2**62),
            (7, "yesterday", 1.5, -3),
        ],
    )
    assert "evil\\x1b]0;owned" in kiln_env("ledger", "stats", path, cwd=tmp_path).stdout
    for args in (["stats"], ["stats", "--json"], ["clear", "--node", escapes]):
        result = kiln_env("ledger", *args, path, cwd=tmp_path)
        assert result.returncode == 0, result
        for control in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert control not in result.stdout + result.stderr, args


# --- kiln graph ------------------------------------------------------------------------


@POSIX
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("directory", "is a directory, not a drawing"),
        ("fifo", "is a FIFO, not a drawing"),
        ("source-link", "would overwrite the source"),
        ("hard-link", "would overwrite the source"),
        ("user-file", "is not a drawing kiln wrote"),
    ],
)
def test_graph_output_refuses(project: Path, kind: str, message: str) -> None:
    make(project / "flow.mmd", kind, project)
    before = snapshot(project)
    result = kiln_env("graph", "squares.py", "-o", "flow.mmd", "--force", cwd=project)
    if kind == "user-file":
        assert result.returncode == 0, "--force replaces a file of the user's"
        result = kiln_env("graph", "squares.py", "-o", "notes.txt", cwd=project)
        before = snapshot(project)
    assert result.returncode == 1, result
    assert message in result.stderr
    assert snapshot(project) == before


def test_graph_replaces_its_drawings(project: Path) -> None:
    for form in ("mermaid", "dot", "mermaid"):
        result = kiln_env(
            "graph", "squares.py", "--format", form, "-o", "f.txt", cwd=project
        )
        assert result.returncode == 0, result
    assert (project / "f.txt").read_text().startswith("flowchart TD")
    same = kiln_env("graph", "squares.py", "-o", "squares.py", "--force", cwd=project)
    assert same.returncode == 1, same
    assert "would overwrite the source" in same.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/dev/null", "is a character device, not a source file"),
        (".", "is a directory; kiln graph draws the flows of one source file"),
        ("missing.py", "no such file"),
    ],
)
def test_graph_of_what_is_not_a_source(
    project: Path, source: str, message: str
) -> None:
    if not Path(source).exists() and source.startswith("/"):
        pytest.skip(f"no {source}")
    result = kiln_env("graph", source, cwd=project)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_graph_of_a_generated_module(project: Path) -> None:
    assert kiln_env("compile", "squares.py", "-o", "build", cwd=project).returncode == 0
    result = kiln_env("graph", "build/squares.py", cwd=project)
    assert result.returncode == 2, result
    assert "is a module kiln generated; draw its source instead" in result.stderr


@POSIX
def test_graph_of_a_fifo_does_not_hang(project: Path) -> None:
    os.mkfifo(project / "pipe.py")
    result = kiln_env("graph", "pipe.py", cwd=project)
    assert result.returncode == 2, result
    assert "is a FIFO, not a source file" in result.stderr


@pytest.mark.parametrize("form", ["mermaid", "dot"])
def test_graph_labels_escape_controls(tmp_path: Path, form: str) -> None:
    (tmp_path / "names.py").write_text(
        "from kiln import flow, node\n\n\n"
        '@node(name="x\\x1b]0;owned\\x07\\u202e\\x9b")\n'
        "def double(x: int) -> int:\n    return 2 * x\n\n\n"
        "@flow\nasync def names(x: int) -> int:\n    return double(x)\n",
        encoding="utf-8",
    )
    result = kiln_env("graph", "names.py", "--format", form, cwd=tmp_path)
    assert result.returncode == 0, result
    for control in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert control not in result.stdout
    assert "x\\x1b]0;owned" in result.stdout.replace("\\\\", "\\")


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_graph_replaces_its_svg(project: Path) -> None:
    for _ in range(2):
        result = kiln_env(
            "graph", "squares.py", "--format", "svg", "-o", "f.svg", cwd=project
        )
        assert result.returncode == 0, result


@pytest.mark.parametrize(
    "name",
    ["with space", "quo'te", 'dou"ble', "new\nline", "esc\x1b[2Jape"],
    ids=["space", "quote", "double-quote", "newline", "escape"],
)
def test_odd_names_for_a_run_its_trace_and_its_ledger(
    tmp_path: Path, name: str
) -> None:
    if sys.platform == "win32":
        pytest.skip("not Windows file names")
    (tmp_path / f"{name}.py").write_text(CACHED, encoding="utf-8")
    args = [
        "run",
        f"{name}.py",
        "x=3",
        "--trace",
        f"{name}.json",
        "--ledger",
        f"{name}.db",
    ]
    for hits in ("0", "1"):
        result = kiln_env(*args, cwd=tmp_path)
        assert result.returncode == 0, result
        assert result.stdout == "9\n"
        assert "\x1b" not in result.stderr
        row = next(line for line in result.stderr.splitlines() if " square " in line)
        assert row.split()[4] == hits, result.stderr
    assert is_kiln_trace(tmp_path / f"{name}.json")
    stats = kiln_env("ledger", "stats", f"{name}.db", cwd=tmp_path)
    assert stats.returncode == 0, stats
    assert "\x1b" not in stats.stdout
    assert len(stats.stdout.splitlines()[0].split(":")) == 2, "one line for the path"
