"""Odd `[tool.kiln]` values, a src layout, a deleted working directory (trial Q6b).

Through the installed `kiln` command: a NUL byte in a path of `[tool.kiln]`
is a located KLN602, never an internal error; invalid TOML is located where
tomllib finds it, the end of the document included; an output directory that
holds a package of the user's is not made a package; a working directory
deleted under the shell is one `kiln: error:` line.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.diagnostic_shape import assert_caret_under_column, parse_report
from tests.test_cli import GOOD, KILN, kiln, write


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('sources = ["a.py"]\noutput = "build\\u0000x"\n', "output"),
        ('sources = ["a.py"]\noutput = "build"\nledger = "l\\u0000.db"\n', "ledger"),
        ('sources = ["a\\u0000.py"]\noutput = "build"\n', "sources"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [["compile"], ["run", "a.py:first", "x=1"], ["runs", "list"], ["ledger", "stats"]],
    ids=lambda c: c[0],
)
def test_a_nul_byte_in_a_path_is_a_located_error(
    tmp_path: Path, table: str, key: str, command: list[str]
) -> None:
    write(tmp_path / "pyproject.toml", "[tool.kiln]\n" + table)
    write(tmp_path / "a.py", GOOD)
    result = kiln(*command, cwd=tmp_path)
    assert result.returncode == 1, result
    (reported,) = parse_report(result.stdout + result.stderr)
    assert (reported.path, reported.code) == ("pyproject.toml", "KLN602")
    assert reported.message == (
        f"'{key}' in [tool.kiln] holds a NUL byte (\\u0000), which no path can"
    )
    line = 1 + next(
        n for n, text in enumerate(table.splitlines(), 1) if text.startswith(key)
    )
    assert (reported.line, reported.column) == (line, 1)
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('[tool.kiln]\nsources = ["a.py"\n', 2, 18),  # open at the end of the file
        ('[tool.kiln]\nsources = ["a.py"\n\n\n', 2, 18),  # blank lines after it
        ('[tool.kiln]\nsources = ["a.py",\n  "b.py"', 3, 9),  # no newline at the end
    ],
)
def test_invalid_toml_at_the_end_is_located_there(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    write(tmp_path / "pyproject.toml", text)
    write(tmp_path / "a.py", GOOD)
    result = kiln("compile", cwd=tmp_path)
    assert result.returncode == 1, result
    (reported,) = parse_report(result.stdout)
    assert (reported.path, reported.code) == ("pyproject.toml", "KLN603")
    assert reported.message == "invalid TOML: Unclosed array"
    assert (reported.line, reported.column) == (line, column)
    assert_caret_under_column(reported, text)


def test_invalid_toml_inside_is_located_where_tomllib_says(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.kiln]\noutput = = "b"\n')
    result = kiln("compile", "a.py", cwd=tmp_path)
    (reported,) = parse_report(result.stdout)
    assert (reported.line, reported.column, reported.code) == (2, 10, "KLN603")


SRC_LAYOUT = """\
from kiln import flow, node


@node
def f(x: int) -> int:
    return x


@flow
def g(x: int) -> int:
    return f(x)
"""


@pytest.mark.parametrize("mine", ["other/__init__.py", "mymod.py"])
def test_an_output_directory_holding_the_users_package_is_not_made_one(
    tmp_path: Path, mine: str
) -> None:
    """`kiln compile app -o src`: src/ of a src layout is not kiln's to mark."""
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "jobs.py", SRC_LAYOUT)
    write(tmp_path / "src" / mine, "")
    for _ in range(2):  # and again, over its own output
        result = kiln("compile", "app", "-o", "src", cwd=tmp_path)
        assert result.returncode == 0, result
        assert not (tmp_path / "src" / "__init__.py").exists()
        assert (tmp_path / "src" / "app" / "jobs.py").exists()
    assert (tmp_path / "src" / mine).read_text() == ""


def test_an_output_directory_of_kilns_packages_alone_is_made_one(
    tmp_path: Path,
) -> None:
    """The packages kiln wrote there (their markers its own) are no user's."""
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "jobs.py", SRC_LAYOUT)
    for _ in range(2):
        result = kiln("compile", "app", "-o", "build", cwd=tmp_path)
        assert result.returncode == 0, result
        assert (tmp_path / "build" / "__init__.py").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["compile", "{root}/a.py", "-o", "{root}/build"],
        ["run", "{root}/a.py:first", "x=1"],
        ["runs", "list"],
        ["ledger", "stats"],
        ["graph", "{root}/a.py"],
    ],
    ids=lambda c: c[0],
)
def test_a_deleted_working_directory_is_one_error(
    tmp_path: Path, command: list[str]
) -> None:
    write(tmp_path / "a.py", GOOD)
    gone = tmp_path / "gone"
    gone.mkdir()
    # The child starts in `gone`, which is deleted before it runs kiln.
    script = (
        "import os, sys\nos.rmdir(os.getcwd())\nos.execv(sys.argv[1], sys.argv[1:])\n"
    )
    args = [a.format(root=tmp_path) for a in command]
    result = subprocess.run(
        ["python3", "-c", script, *KILN, *args],
        cwd=gone,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "KILN_LEDGER"},
    )
    assert not gone.exists()
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == (
        "kiln: error: the working directory no longer exists (it was deleted or"
        " moved); cd to one that exists and run kiln again\n"
    )
    assert not (tmp_path / "build").exists()
