"""Every command that writes a file, pointed at the files of a project, with and without --force.

A package `app/` holds two flow modules (one calls the other's flow), a
settings module no flow imports (`config.py`), a stub, notes and a data
directory; `tools/deploy` is a Python script without a suffix. `kiln graph
-o`, `kiln compile -o`, `kiln check -o` and `kiln run --trace` are each
pointed at each of them. What may happen:

    -o names                     graph          graph --force     compile, check   run --trace
    ---------------------------  -------------  ----------------  ---------------  -----------
    a module no flow imports,    refused        refused           KLN703           refused
      a stub, a python script
    the flow's source            refused        refused           KLN703           refused
    notes of the user's          refused        replaced          KLN703           refused
    a directory                  refused        refused           (a directory)    refused

and `kiln compile -o DIR --force`, where DIR holds a module of the user's at
an output path, refuses it (KLN702): every output is a module, and --force
never replaces Python code that kiln did not write. A ledger (`kiln run
--ledger`, `kiln ledger clear`, `kiln runs forget`) is written only to a kiln
ledger. Whatever is refused is left byte for byte as it was, and nothing
else is written.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import kiln, write

FLOWS = """\
from kiln import flow, node


@node
async def double(x: int) -> int:
    return 2 * x


@flow
async def pipe(x: int) -> int:
    return await double(x)
"""

MORE = """\
from kiln import flow

from .flows import pipe


@flow
async def twice(x: int) -> int:
    return await pipe(await pipe(x))
"""

CONFIG = 'SETTINGS: dict[str, str] = {"mode": "prod"}\n'
SCRIPT = "#!/usr/bin/env python3\nprint('deploying')\n"
PYTHON = ["app/config.py", "app/stub.pyi", "tools/deploy"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "pyproject.toml", '[tool.kiln]\nsources = ["app"]\n')
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "config.py", CONFIG)
    write(tmp_path / "app" / "stub.pyi", "def f() -> int: ...\n")
    write(tmp_path / "app" / "flows.py", FLOWS)
    write(tmp_path / "app" / "more.py", MORE)
    write(tmp_path / "app" / "notes.txt", "my notes\n")
    (tmp_path / "app" / "data").mkdir()
    write(tmp_path / "tools" / "deploy", SCRIPT)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every directory (None), less Python's caches."""
    found: dict[str, bytes | None] = {}
    for directory, names, files in os.walk(root):
        names[:] = [n for n in names if n != "__pycache__"]
        for name in names + files:
            path = Path(directory) / name
            mode = path.lstat().st_mode
            key = str(path.relative_to(root))
            found[key] = path.read_bytes() if stat.S_ISREG(mode) else None
    return found


def unchanged(
    project: Path,
    before: dict[str, bytes | None],
    result: subprocess.CompletedProcess[str],
) -> None:
    assert result.returncode == 1, result
    assert snapshot(project) == before, result


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("target", [*PYTHON, "app/flows.py", "app/data"])
def test_graph_never_replaces_python_code_nor_a_directory(
    project: Path, target: str, force: bool
) -> None:
    before = snapshot(project)
    flags = ["--force"] if force else []
    result = kiln("graph", "app/flows.py", "-o", target, *flags, cwd=project)
    unchanged(project, before, result)
    error = result.stderr.splitlines()
    assert len(error) == 1, result
    assert error[0].startswith("kiln: error: -o: "), result
    if target in PYTHON:
        assert "is Python code that kiln did not write" in error[0]
        assert "even with --force" in error[0]
        assert "--force replaces it" not in error[0]


def test_graph_force_replaces_notes_of_the_users(project: Path) -> None:
    before = snapshot(project)
    plain = kiln("graph", "app/flows.py", "-o", "app/notes.txt", cwd=project)
    unchanged(project, before, plain)
    assert "--force replaces it" in plain.stderr
    forced = kiln(
        "graph", "app/flows.py", "-o", "app/notes.txt", "--force", cwd=project
    )
    assert forced.returncode == 0, forced
    assert (project / "app" / "notes.txt").read_text().startswith("flowchart TD")


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize(
    "sources", [["app"], ["app/flows.py"], []], ids=["dir", "file", "config"]
)
@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("app/config.py", "a regular file"),
        ("app/more.py", "a regular file"),
        ("app/flows.py", "the source app/flows.py"),
        ("app/notes.txt", "a regular file"),
        ("tools/deploy", "a regular file"),
    ],
)
def test_compile_to_a_file_is_kln703(
    project: Path, target: str, kind: str, sources: list[str], force: bool
) -> None:
    """Several modules or one: the output directory is a file, said once, as such
    (not as KLN704 at each call across modules, nor as the source read)."""
    before = snapshot(project)
    flags = ["--force"] if force else []
    if not sources:  # the output from [tool.kiln]: the error is at its key
        write(
            project / "pyproject.toml",
            f'[tool.kiln]\nsources = ["app"]\noutput = "{target}"\n',
        )
        before = snapshot(project)
    output = ["-o", target] if sources else []
    result = kiln("compile", *sources, *output, *flags, cwd=project)
    unchanged(project, before, result)
    assert "[KLN704]" not in result.stdout, result.stdout
    assert result.stdout.count("[KLN703]") == 1, result.stdout
    # A directory searched for sources skips the output directory: then the
    # source is only a file in the way.
    said = kind if sources == ["app/flows.py"] else "a regular file"
    assert f"the output directory {target} is {said}, not a directory" in result.stdout
    if not sources:
        assert result.stdout.startswith("pyproject.toml:3:1: error: "), result.stdout
    assert result.stdout.rstrip().endswith("Found 1 error in 1 file; nothing written")


@pytest.mark.parametrize("command", [["check", "--no-mypy"], ["compile", "--check"]])
def test_checking_against_a_file_is_kln703(project: Path, command: list[str]) -> None:
    before = snapshot(project)
    result = kiln(*command, "app", "-o", "app/config.py", cwd=project)
    unchanged(project, before, result)
    assert "[KLN704]" not in result.stdout, result.stdout
    assert "the output directory app/config.py is a regular file" in result.stdout


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_compile_never_replaces_a_module_of_the_users(
    project: Path, force: bool
) -> None:
    """The output directory holds, at an output path, a module kiln did not write."""
    write(project / "out" / "app" / "flows.py", CONFIG)
    before = snapshot(project)
    flags = ["--force"] if force else []
    result = kiln("compile", "app", "-o", "out", *flags, cwd=project)
    unchanged(project, before, result)
    assert "[KLN702]" in result.stdout
    assert "out/app/flows.py is Python code that kiln did not write" in result.stdout


@pytest.mark.parametrize(
    "target", [*PYTHON, "app/flows.py", "app/notes.txt", "app/data"]
)
def test_run_trace_never_replaces_a_file_of_the_users(
    project: Path, target: str
) -> None:
    before = snapshot(project)
    result = kiln("run", "app/flows.py:pipe", "x=1", "--trace", target, cwd=project)
    assert result.returncode == 2, result
    assert result.stderr.startswith("kiln: error: --trace: "), result
    assert snapshot(project) == before


@pytest.mark.parametrize("target", ["app/config.py", "tools/deploy", "app/notes.txt"])
@pytest.mark.parametrize(
    "command",
    [
        ["run", "app/flows.py:pipe", "x=1", "--ledger", "{}"],
        ["ledger", "clear", "{}"],
        ["runs", "forget", "r1", "--ledger", "{}"],
    ],
    ids=["run", "ledger-clear", "runs-forget"],
)
def test_a_ledger_is_never_made_over_a_file_of_the_users(
    project: Path, command: list[str], target: str
) -> None:
    """The commands that write a ledger: only a kiln ledger is written to."""
    before = snapshot(project)
    args = [word.format(target) for word in command]
    result = kiln(*args, cwd=project)
    assert result.returncode in (1, 2), result
    assert "is not a kiln ledger" in result.stderr, result
    assert snapshot(project) == before
