"""A command that writes files finishes them whatever happens to its diagnostics.

``kiln compile app -o build 2>&1 | head -1`` (reading the first warning
only) closes the pipe the diagnostics and progress lines go to; a full disk
under a redirected stdout fails each write. Either used to stop the command
where it was printing: the outputs half written (a module without its
package's ``__init__.py``) or not at all. Now the outputs are written whole,
and the command then exits 141 for a reader gone (quietly), 1 with one line
for another error. Each command runs unbuffered (``PYTHONUNBUFFERED=1``, as
in many containers), so that every line is a write of its own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import KILN, kiln, write

EXIT_READER_GONE = 141

SUB = """\
from kiln import flow, node

from .state import SETTINGS


@node
async def configure(mode: str) -> str:
    SETTINGS["mode"] = mode
    return mode


@node
async def work(x: int) -> str:
    return f"{x} in {SETTINGS['mode']}"


@flow
async def inner(x: int, mode: str) -> str:
    await configure(mode)
    return await work(x)
"""

MAIN = """\
from kiln import flow

from .sub import configure, inner, work


@flow
async def main(x: int, mode: str) -> str:
    await configure(mode)
    a = await work(x)
    return a + await inner(x, mode)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two flow modules whose compile warns (KLN311: module state orders the calls)."""
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "state.py", 'SETTINGS: dict[str, str] = {"mode": "a"}\n')
    write(tmp_path / "app" / "sub.py", SUB)
    write(tmp_path / "app" / "main.py", MAIN)
    return tmp_path


def unbuffered() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def closed_reader(
    *args: str, cwd: Path, stdout: bool = True
) -> subprocess.CompletedProcess[str]:
    """kiln with a pipe whose reader is gone as stderr, and as stdout too."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [*KILN, *args],
            cwd=cwd,
            env=unbuffered(),
            stdout=writer if stdout else subprocess.DEVNULL,
            stderr=writer,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)


def complete(project: Path) -> None:
    """Every output there, and current: `kiln compile --check` finds nothing."""
    for output in ("__init__.py", "app/__init__.py", "app/main.py", "app/sub.py"):
        assert (project / "build" / output).is_file(), output
    checked = kiln("compile", "app", "-o", "build", "--check", cwd=project)
    assert checked.returncode == 0, checked.stdout


def test_the_compile_says_something_on_the_way(project: Path) -> None:
    """What the other tests cut off: warnings, then a line per output written."""
    result = kiln("compile", "app", "-o", "build", cwd=project)
    assert result.returncode == 0, result
    assert "[KLN311]" in result.stdout
    assert "app/sub.py -> build/app/sub.py" in result.stdout


def test_a_reader_gone_leaves_the_outputs_whole(project: Path) -> None:
    result = closed_reader("compile", "app", "-o", "build", cwd=project)
    assert result.returncode == EXIT_READER_GONE, result
    complete(project)


def test_an_unwritable_stdout_leaves_the_outputs_whole(project: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full (Linux)")
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*KILN, "compile", "app", "-o", "build"],
            cwd=project,
            env=unbuffered(),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [
        "kiln: error: cannot write the output: No space left on device"
    ]
    complete(project)


def test_a_drawing_is_written_whole_without_its_warnings(project: Path) -> None:
    shown = kiln("graph", "app/main.py", cwd=project)
    assert shown.returncode == 0, shown
    assert "[KLN311]" in shown.stderr, "the warnings the closed stderr cuts off"
    result = closed_reader(
        "graph", "app/main.py", "-o", "flow.mmd", cwd=project, stdout=False
    )
    assert result.returncode == EXIT_READER_GONE, result
    assert (project / "flow.mmd").read_text(encoding="utf-8") == shown.stdout
