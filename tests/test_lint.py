"""The project's own code stays clean: ruff's rules, black's formatting, mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ["compiler", "runtime", "tests", "benchmarks", "examples"]


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name(tool)), *args]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_black_is_clean() -> None:
    result = run("black", "--check", "--quiet", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compiler_and_the_runtime_pass_mypy_strict() -> None:
    result = run("mypy", "--strict", "runtime/kiln", "compiler/kilnc")
    assert result.returncode == 0, result.stdout + result.stderr
