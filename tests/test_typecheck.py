"""Types: every golden output passes `mypy --strict`, and so do runtime/ and compiler/.

mypy runs through its API (`mypy.api.run`), once over all goldens together.
The generated code imports the runtime as `kiln`, which mypy finds where it is
installed, as it does for users: no MYPYPATH.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mypy import api

from tests.goldens import DATA, load_cases

ROOT = Path(__file__).resolve().parent.parent


def mypy_strict(paths: list[Path]) -> str:
    # No cache: test_lint's mypy, maybe running beside this one, owns .mypy_cache.
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            "--show-error-codes",
            *map(str, paths),
        ]
    )
    assert status == 0, stdout + stderr
    return stdout


def test_golden_outputs_pass_mypy_strict(tmp_path: Path) -> None:
    written = []
    for path in sorted(DATA.glob("*.test")):
        for case in load_cases(path):
            if case.expected:
                module = tmp_path / f"golden_{case.name}.py"
                module.write_text(case.expected, encoding="utf-8")
                written.append(module)
    assert len(written) >= 10
    mypy_strict(written)


def test_the_project_passes_mypy_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    mypy_strict([ROOT / "runtime" / "kiln", ROOT / "compiler" / "kilnc"])
