"""The installed `kiln` command, run as a user runs it (DESIGN.md §4.2, §4.7)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kilnc import __version__
from tests.diagnostic_shape import assert_caret_under_column, parse_report

VENV_BIN = Path(sys.executable).parent


def kiln_command() -> list[str]:
    found = shutil.which("kiln", path=str(VENV_BIN)) or shutil.which("kiln")
    return [found] if found else [sys.executable, "-m", "kilnc"]


KILN = kiln_command()

GOOD = '''\
from kiln import flow, node


@node
def double(x: int) -> int:
    return 2 * x


@node
async def increment(x: int) -> int:
    return x + 1


@flow
async def first(x: int) -> int:
    """Double, then increment."""
    y = double(x)
    return await increment(y)


@flow
def second(x: int) -> int:
    a = double(x)
    b = double(a)
    return a + b
'''

BAD = """\
from kiln import flow, node


@node(retrys=3)
def f(x: int) -> int:
    return x


@node("fetch")
def g(x: int) -> int:
    return x


@node
async def h(x: int) -> int:
    return x


@flow
async def run(x: int) -> int:
    y = h(x)
    try:
        z = f(x)
    except ValueError:
        z = 0
    return z
"""
BAD_ERRORS = 4

NODES_ONLY = """\
from kiln import node


@node
def f(x: int) -> int:
    return x
"""


def kiln(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The `kiln` command run in `cwd` (with `env` added to the environment)."""
    result = subprocess.run(
        [*KILN, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    assert "Traceback" not in result.stdout + result.stderr, result
    return result


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_kiln_is_installed_in_the_venv() -> None:
    found = shutil.which("kiln", path=str(VENV_BIN))
    assert found is not None, f"no kiln script in {VENV_BIN}"
    assert [found] == KILN


def test_version() -> None:
    result = kiln("--version", cwd=Path.cwd())
    assert result.returncode == 0, result
    assert re.search(
        rf"\bkiln {re.escape(__version__)}\b", result.stdout + result.stderr
    )


def test_compile_writes_the_module_and_it_runs(tmp_path: Path) -> None:
    write(tmp_path / "pipeline.py", GOOD)
    result = kiln("compile", "pipeline.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 0, result
    target = tmp_path / "build" / "pipeline.py"
    assert target.is_file()
    # The output directory is a package (packages.py): its marker beside the module.
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "__init__.py",
        "pipeline.py",
    ]
    spec = importlib.util.spec_from_file_location("kiln_cli_compiled_pipeline", target)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.first(5) == 11
    assert module.second(3) == 18


def test_compiling_twice_gives_identical_bytes(tmp_path: Path) -> None:
    write(tmp_path / "pipeline.py", GOOD)
    assert kiln("compile", "pipeline.py", "-o", "one", cwd=tmp_path).returncode == 0
    assert kiln("compile", "pipeline.py", "-o", "two", cwd=tmp_path).returncode == 0
    before = (tmp_path / "one" / "pipeline.py").read_bytes()
    assert (tmp_path / "two" / "pipeline.py").read_bytes() == before


def assert_check_fails(result: subprocess.CompletedProcess[str], target: str) -> None:
    assert result.returncode == 1, result
    output = result.stdout + result.stderr
    assert target in output, output
    assert "kiln compile" in output, output
    assert "pipeline.py" in output


def test_check(tmp_path: Path) -> None:
    source = write(tmp_path / "pipeline.py", GOOD)
    target = tmp_path / "build" / "pipeline.py"
    shown = str(Path("build") / "pipeline.py")

    missing = kiln("compile", "pipeline.py", "-o", "build", "--check", cwd=tmp_path)
    assert_check_fails(missing, shown)
    assert not target.exists(), "--check writes nothing"

    assert kiln("compile", "pipeline.py", "-o", "build", cwd=tmp_path).returncode == 0
    fresh = kiln("compile", "pipeline.py", "-o", "build", "--check", cwd=tmp_path)
    assert fresh.returncode == 0, fresh

    compiled = target.read_bytes()
    target.write_bytes(compiled + b"# edited by hand\n")
    edited = kiln("compile", "pipeline.py", "-o", "build", "--check", cwd=tmp_path)
    assert_check_fails(edited, shown)
    assert (
        target.read_bytes() == compiled + b"# edited by hand\n"
    ), "--check writes nothing"

    target.write_bytes(compiled)
    source.write_text(GOOD.replace("return x + 1", "return x + 2"), encoding="utf-8")
    stale = kiln("compile", "pipeline.py", "-o", "build", "--check", cwd=tmp_path)
    assert_check_fails(stale, shown)
    assert target.read_bytes() == compiled


def test_errors_are_all_reported_in_mypy_shape(tmp_path: Path) -> None:
    write(tmp_path / "bad.py", BAD)
    result = kiln("compile", "bad.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 1, result
    assert not (tmp_path / "build" / "bad.py").exists()
    reported = parse_report(result.stdout)
    errors = [r for r in reported if r.severity == "error"]
    assert len(errors) == BAD_ERRORS, result.stdout
    assert {r.code for r in errors} == {"KLN101", "KLN106", "KLN301", "KLN305"}
    assert [r.line for r in errors] == [4, 9, 21, 22]
    for r in reported:
        assert r.path == "bad.py"
        assert_caret_under_column(r, BAD)
    # the call to the async node 'h' is not awaited: the caret is under the call
    unawaited = next(r for r in errors if r.code == "KLN301")
    assert unawaited.column == 9
    assert re.fullmatch(r" *\^~+", unawaited.caret or "")
    assert (
        result.stdout.rstrip().splitlines()[-1]
        == f"Found {BAD_ERRORS} errors in 1 file; nothing written"
    )


def test_syntax_error_is_located(tmp_path: Path) -> None:
    text = "from kiln import flow\n\n\n@flow\ndef f(x: int) -> int:\n    return (x +\n"
    write(tmp_path / "broken.py", text)
    result = kiln("compile", "broken.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 1, result
    [reported] = parse_report(result.stdout)
    assert reported.code == "KLN001"
    assert reported.line == 6
    assert (
        result.stdout.rstrip().splitlines()[-1]
        == "Found 1 error in 1 file; nothing written"
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["compile"],
        ["compile", "pipeline.py"],
        ["compile", "pipeline.py", "-o", "build", "--bogus"],
        ["frobnicate", "pipeline.py"],
        ["compile", "missing.py", "-o", "build"],
        ["compile", "pipeline.py", "-o", "build", "--dump", "bytecode"],
    ],
    ids=lambda args: " ".join(args) or "no-args",
)
def test_bad_usage_exits_2(tmp_path: Path, args: list[str]) -> None:
    write(tmp_path / "pipeline.py", GOOD)
    result = kiln(*args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr.strip(), "bad usage says what is wrong"
    assert not (tmp_path / "build").exists()


def test_sources_may_follow_the_options(tmp_path: Path) -> None:
    write(tmp_path / "one.py", GOOD)
    write(tmp_path / "two.py", GOOD)
    result = kiln("compile", "one.py", "-o", "build", "two.py", "-q", cwd=tmp_path)
    assert result.returncode == 0, result
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == [
        "__init__.py",
        "one.py",
        "two.py",
    ]
    refused = kiln("compile", "one.py", "-o", "build", "--bogus", cwd=tmp_path)
    assert refused.returncode == 2, refused
    assert "unrecognized arguments: --bogus" in refused.stderr


def test_directory_compiles_the_files_that_declare_flows(tmp_path: Path) -> None:
    write(tmp_path / "src" / "pipeline.py", GOOD)
    write(tmp_path / "src" / "other.py", GOOD.replace("first", "third"))
    write(tmp_path / "src" / "nodes.py", NODES_ONLY)
    write(
        tmp_path / "src" / "mentions.py", "# this helper is not a flow\nworkflow = 1\n"
    )
    write(tmp_path / "src" / "notes.txt", GOOD)
    result = kiln("compile", "src", "-o", "build", cwd=tmp_path)
    assert result.returncode == 0, result
    written = sorted(p.name for p in (tmp_path / "build").iterdir())
    assert written == ["__init__.py", "other.py", "pipeline.py"]


@pytest.mark.parametrize("form", ["ir", "graph", "plan"])
def test_dump_prints_every_flow(tmp_path: Path, form: str) -> None:
    write(tmp_path / "pipeline.py", GOOD)
    result = kiln("compile", "pipeline.py", "-o", "build", "--dump", form, cwd=tmp_path)
    assert result.returncode == 0, result
    for name in ("first", "second"):
        assert re.search(rf"\b{name}\b", result.stdout), result.stdout
    listing = [
        line
        for line in result.stdout.splitlines()
        if line.strip() and not line.startswith("pipeline.py")
    ]
    assert len(listing) >= 4, result.stdout
    assert "pipeline.py -> " not in result.stdout, "a dump is a look, not a build"
    assert not (tmp_path / "build").exists()


def test_dump_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path / "pipeline.py", GOOD)
    assert kiln("compile", "pipeline.py", "-o", "build", cwd=tmp_path).returncode == 0
    output = tmp_path / "build" / "pipeline.py"
    stale = output.read_text().replace("Double, then increment.", "An older flow.")
    output.write_text(stale)
    dump = ("compile", "pipeline.py", "--dump", "plan")
    dumped = kiln(*dump, "-o", "build", cwd=tmp_path)
    assert dumped.returncode == 0, dumped
    assert output.read_text() == stale
    # nothing to write, so no OUTDIR needed
    bare = kiln(*dump, cwd=tmp_path)
    assert (bare.returncode, bare.stdout) == (0, dumped.stdout), bare
    # --check still reads the outputs
    checked = kiln(*dump, "-o", "build", "--check", cwd=tmp_path)
    assert checked.returncode == 1, checked
    assert "is stale" in checked.stderr  # a --dump's listing holds stdout
    assert output.read_text() == stale
