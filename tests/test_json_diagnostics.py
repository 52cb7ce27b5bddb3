"""`kiln compile --format json`: one JSON document of every diagnostic, for editors and CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.diagnostic_shape import parse_report
from tests.test_cli import BAD, BAD_ERRORS, GOOD, kiln, write

FIELDS = {
    "path",
    "line",
    "column",
    "end_line",
    "end_column",
    "severity",
    "code",
    "message",
    "hint",
}


def compile_json(tmp_path: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = kiln("compile", *args, "--format", "json", cwd=tmp_path)
    document = json.loads(result.stdout)  # stdout is the document and nothing else
    assert isinstance(document, list)
    return result.returncode, document


def test_every_error_with_its_place_code_and_hint(tmp_path: Path) -> None:
    write(tmp_path / "bad.py", BAD)
    status, reported = compile_json(tmp_path, "bad.py", "-o", "build")
    assert status == 1
    assert len(reported) == BAD_ERRORS
    assert all(set(entry) == FIELDS for entry in reported)
    assert [(e["line"], e["column"], e["code"]) for e in reported] == [
        (4, 7, "KLN101"),
        (9, 7, "KLN106"),
        (21, 9, "KLN301"),
        (22, 5, "KLN305"),
    ]
    unknown = reported[0]
    assert unknown == {
        "path": "bad.py",
        "line": 4,
        "column": 7,
        "end_line": 4,
        "end_column": 13,
        "severity": "error",
        "code": "KLN101",
        "message": "unknown option 'retrys'",
        "hint": "did you mean 'retries'?",
    }
    assert not (tmp_path / "build").exists()


def test_the_same_diagnostics_as_the_text_form(tmp_path: Path) -> None:
    write(tmp_path / "bad.py", BAD)
    text = kiln("compile", "bad.py", "-o", "build", cwd=tmp_path)
    _, reported = compile_json(tmp_path, "bad.py", "-o", "build")
    assert [
        (r.path, r.line, r.column, r.severity, r.code, r.message)
        for r in parse_report(text.stdout)
    ] == [
        (e["path"], e["line"], e["column"], e["severity"], e["code"], e["message"])
        for e in reported
    ]
    for entry in reported:
        assert (entry["end_line"], entry["end_column"]) >= (
            entry["line"],
            entry["column"],
        )
        hint = entry["hint"]
        shown = f"{entry['path']}:{entry['line']}:{entry['column']}: note: {hint}"
        assert (hint is None) or shown in text.stdout


def test_a_clean_build_is_an_empty_list(tmp_path: Path) -> None:
    write(tmp_path / "good.py", GOOD)
    status, reported = compile_json(tmp_path, "good.py", "-o", "build")
    assert (status, reported) == (0, [])
    assert (tmp_path / "build" / "good.py").is_file()


def test_several_files_make_one_document(tmp_path: Path) -> None:
    write(tmp_path / "src" / "good.py", GOOD)
    write(tmp_path / "src" / "bad.py", BAD)
    write(tmp_path / "src" / "worse.py", "from kiln import flow\n\n@flow\ndef f(:\n")
    status, reported = compile_json(tmp_path, "src", "-o", "build")
    assert status == 1
    assert {e["path"] for e in reported} == {"src/bad.py", "src/worse.py"}
    assert [e["code"] for e in reported if e["path"] == "src/worse.py"] == ["KLN001"]
    assert not (tmp_path / "build").exists(), "nor the module without an error"


def test_stale_output_under_check(tmp_path: Path) -> None:
    write(tmp_path / "good.py", GOOD)
    status, reported = compile_json(tmp_path, "good.py", "-o", "build", "--check")
    assert status == 1
    marker, stale = reported  # in path order
    assert marker["message"] == (
        "package marker build/__init__.py is missing: the outputs import through it"
    )
    assert (stale["path"], stale["line"], stale["code"]) == (
        "build/good.py",
        1,
        "KLN502",
    )
    assert stale["message"] == "output build/good.py is missing"
    assert stale["hint"] == "run: kiln compile good.py -o build"


def test_unicode_stays_readable(tmp_path: Path) -> None:
    write(tmp_path / "ünï.py", BAD.replace("retrys", "rétries"))
    result = kiln("compile", "ünï.py", "-o", "build", "--format", "json", cwd=tmp_path)
    assert "unknown option 'rétries'" in result.stdout  # not \\u escapes
    assert json.loads(result.stdout)[0]["path"] == "ünï.py"


def test_dump_cannot_be_json(tmp_path: Path) -> None:
    write(tmp_path / "good.py", GOOD)
    result = kiln(
        "compile",
        "good.py",
        "-o",
        "build",
        "--dump",
        "ir",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result
    assert "--dump" in result.stderr
