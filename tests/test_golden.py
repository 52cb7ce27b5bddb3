"""The generated code of every golden case, and the diagnostics of every error case."""

from __future__ import annotations

import fcntl
import re
from pathlib import Path

import pytest

from kilnc.pipeline import compile_file
from tests.goldens import DATA, Case, load_cases, write_cases
from tests.test_differential import formatted_once, nothing_after_return

CASES = [case for path in sorted(DATA.glob("*.test")) for case in load_cases(path)]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.file.stem}:{c.name}" for c in CASES])
def test_case(
    case: Case,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / f"{case.name}.py"
    source.write_text(case.source, encoding="utf-8")
    compilation = compile_file(Path(source.name))
    if case.expected_errors:
        reported = [
            (d.span.line, f"{d.message}  [{d.code.value}]")
            for d in compilation.diagnostics
            if d.is_error
        ]
        assert sorted(reported) == sorted(case.expected_errors)
        assert compilation.output is None
        return
    assert not compilation.failed, [d.message for d in compilation.diagnostics]
    assert compilation.output is not None
    if request.config.getoption("--update-goldens"):
        _update(case, compilation.output)
        return
    assert compilation.output == case.expected
    assert formatted_once(compilation.output)
    assert nothing_after_return(compilation.output)


def _update(case: Case, output: str) -> None:
    # Under xdist, each worker rewrites its own cases of the same files: one at
    # a time, each reading what the last one wrote.
    with open(case.file, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        cases = {c.name: c for c in load_cases(case.file)}
        cases[case.name] = Case(case.file, case.name, case.source, output)
        write_cases(case.file, list(cases.values()))


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z_0-9]+", n) for n in names)
