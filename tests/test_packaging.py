"""The repository's own plumbing: CI runs the README's command, the hooks, no skips in CI."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, a dependency of distributed

from tests.test_cli import KILN

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_s_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.search(r"```console\n(.*?)```", readme, re.DOTALL)
    assert commands is not None, "the README starts with its commands"
    test_command = next(
        line
        for line in commands[1].splitlines()
        if line.startswith("python3 -m venv") and "pytest" in line
    )
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_pre_commit_hooks_run_kiln_commands(tmp_path: Path) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {hook["id"]: hook["entry"] for hook in hooks} == {
        "kiln-check": "kiln check",
        "kiln-compile": "kiln compile --check",
    }
    for hook in hooks:
        assert (hook["language"], hook["pass_filenames"]) == ("python", False)
        program, *arguments = shlex.split(hook["entry"])
        assert program == "kiln"
        done = subprocess.run(
            [*KILN, *arguments, "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done


SKIPPING = """
import pytest

def test_needs_a_tool() -> None:
    pytest.skip("the tool is not installed")
"""


@pytest.mark.parametrize("ci", [False, True])
def test_a_skip_fails_under_ci(tmp_path: Path, ci: bool) -> None:
    (tmp_path / "test_skipping.py").write_text(SKIPPING)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*pytest_command, "-p", "tests.conftest", str(tmp_path / "test_skipping.py")],
        cwd=ROOT,
        env={**env, "CI": "true"} if ci else env,
        capture_output=True,
        text=True,
        check=False,
    )
    if ci:
        assert done.returncode == 1, done.stdout
        assert (
            "skipped under CI, where every test must run: the tool is not installed"
            in done.stdout
        )
    else:
        assert done.returncode == 0, done.stdout
        assert "1 skipped" in done.stdout
