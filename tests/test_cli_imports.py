"""Each `kiln` command loads only the libraries it needs.

The compiler's libraries cost most of a second to import on this machine
(libcst, networkx and black; mypy more). `kiln --help`, `kiln ledger`, `kiln runs`
and `kiln run` of a module kiln generated need none of them, and `kiln compile`
never needs mypy. Python's own import log (`PYTHONPROFILEIMPORTTIME`) of the
real command says what each one loaded.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import GOOD, KILN

COMPILER = frozenset({"libcst", "networkx", "black", "mypy"})


def imported_by(*args: str, cwd: Path, status: int = 0) -> frozenset[str]:
    """The top-level packages the command imported."""
    result = subprocess.run(
        [*KILN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert result.returncode == status, result.stdout + result.stderr
    modules = {
        line.rpartition("|")[2].strip().partition(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "kilnc" in modules, "the import log was not written"
    return frozenset(modules)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipeline.py").write_text(GOOD, encoding="utf-8")
    return tmp_path


def test_help_loads_no_compiler(project: Path) -> None:
    assert not imported_by("--help", cwd=project) & COMPILER


def test_compile_loads_no_type_checker(project: Path) -> None:
    loaded = imported_by("compile", "pipeline.py", "-o", "build", cwd=project)
    assert {"libcst", "black"} <= loaded
    assert "mypy" not in loaded


def test_running_a_generated_module_loads_no_compiler(project: Path) -> None:
    imported_by("compile", "pipeline.py", "-o", "build", cwd=project)
    loaded = imported_by(
        "run", "build/pipeline.py:first", "x=3", "--no-progress", cwd=project
    )
    assert not loaded & COMPILER


def test_the_ledger_commands_load_no_compiler(project: Path) -> None:
    # No ledger yet: exit 1, after loading everything the command may need.
    assert not imported_by("ledger", "stats", cwd=project, status=1) & COMPILER


def test_the_runs_commands_load_no_compiler(project: Path) -> None:
    imported_by("compile", "pipeline.py", "-o", "build", cwd=project)
    run = ("run", "build/pipeline.py:first", "x=3", "--no-progress", "--run-id", "r1")
    assert not imported_by(*run, cwd=project) & COMPILER
    assert not imported_by("runs", "list", cwd=project) & COMPILER
    assert not imported_by("runs", "resume", "r1", cwd=project) & COMPILER
