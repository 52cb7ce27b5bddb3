"""`[tool.kiln]` in pyproject.toml: found above the sources, checked, and overridden by flags."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kilnc.cli.config import Config, load_config
from tests.diagnostic_shape import assert_caret_under_column, parse_report
from tests.test_cli import GOOD, kiln, write

LOOPING = """\
from kiln import flow, node


@node
async def good(x: int) -> bool:
    return x > 3


@node
async def step(x: int) -> int:
    return x + 1


@flow
async def climb(x: int) -> int:
    while not await good(x):
        x = await step(x)
    return x
"""

HELPERS = "def helper() -> int:\n    return 1\n"


def bounds(module: Path) -> set[int]:
    """The visit limits a generated module checks."""
    text = module.read_text(encoding="utf-8")
    return {int(n) for n in re.findall(r'visits\(\s*"\w+",\s*(\d+)', text)}


def project(root: Path, table: str) -> Path:
    write(root / "pyproject.toml", f'[project]\nname = "demo"\n\n[tool.kiln]\n{table}')
    return root


def test_compile_without_arguments_builds_the_configured_sources(
    tmp_path: Path,
) -> None:
    root = project(tmp_path, 'sources = ["pipelines/*.py"]\noutput = "build"\n')
    write(root / "pipelines" / "first.py", GOOD)
    write(root / "pipelines" / "looping.py", LOOPING)
    write(root / "pipelines" / "helpers.py", HELPERS)  # no flow: not a source
    (root / "deep").mkdir()
    result = kiln("compile", cwd=root / "deep")  # found by walking up
    assert result.returncode == 0, result
    built = sorted(p.name for p in (root / "build").iterdir())
    assert built == ["__init__.py", "first.py", "looping.py"]
    assert "pipelines/first.py -> ../build/first.py" not in result.stdout
    assert f"{root / 'build' / 'first.py'}" in result.stdout
    check = kiln("compile", "--check", cwd=root)
    assert check.returncode == 0, check


def test_globs_files_and_directories(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        'sources = ["flows/**/*.py", "one.py", "more"]\noutput = "out"\n',
    )
    write(root / "flows" / "a" / "alpha.py", GOOD)
    write(root / "flows" / "b" / "beta.py", LOOPING)
    write(root / "one.py", GOOD.replace("first", "third"))
    write(root / "more" / "gamma.py", GOOD.replace("first", "fourth"))
    write(root / "out" / "stale.py", GOOD)  # under the output: never a source
    result = kiln("compile", cwd=root)
    assert result.returncode == 0, result
    built = sorted(p.name for p in (root / "out").iterdir())
    assert built == ["alpha.py", "beta.py", "gamma.py", "one.py", "stale.py"]
    assert "stale.py ->" not in result.stdout


def test_an_entry_that_matches_nothing_is_an_error_at_sources(tmp_path: Path) -> None:
    root = project(tmp_path, 'output = "build"\nsources = ["pipelines/*.py"]\n')
    result = kiln("compile", cwd=root)
    assert result.returncode == 1, result
    (reported,) = parse_report(result.stdout)
    assert (reported.path, reported.line, reported.column) == ("pyproject.toml", 6, 1)
    assert reported.code == "KLN602"
    assert "no file matches 'pipelines/*.py'" in reported.message


def test_flags_win_over_the_file_and_the_file_over_defaults(tmp_path: Path) -> None:
    root = project(
        tmp_path, 'sources = ["looping.py"]\noutput = "build"\nmax_visits = 9\n'
    )
    write(root / "looping.py", LOOPING)
    write(root / "other.py", LOOPING.replace("climb", "descend"))

    assert kiln("compile", cwd=root).returncode == 0
    assert bounds(root / "build" / "looping.py") == {9}

    flags = kiln(
        "compile", "other.py", "-o", "elsewhere", "--max-visits", "2", cwd=root
    )
    assert flags.returncode == 0, flags
    assert bounds(root / "elsewhere" / "other.py") == {2}
    assert not (root / "elsewhere" / "looping.py").exists(), "SRC replaces sources"

    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n', encoding="utf-8")
    default = kiln("compile", "looping.py", "-o", "plain", cwd=root)
    assert default.returncode == 0, default
    assert bounds(root / "plain" / "looping.py") == {5}


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ((), "kiln compile"),  # sources and output from the file, as before
        (("--max-visits", "3"), "kiln compile --max-visits 3"),
        (("flows dir", "-o", "out"), "kiln compile 'flows dir' -o out"),
    ],
)
def test_checks_hint_is_the_command_given_and_running_it_fixes_the_outputs(
    tmp_path: Path, given: tuple[str, ...], hint: str
) -> None:
    """A stale output's hint rewrites it as it was asked for: the arguments as
    typed (a directory, not its files), the flags that change what is written,
    the file's settings left to the file."""
    root = project(tmp_path, 'sources = ["flows dir"]\noutput = "out"\n')
    write(root / "flows dir" / "looping.py", LOOPING)
    write(root / "flows dir" / "first.py", GOOD)
    assert kiln("compile", *given, cwd=root).returncode == 0
    write(root / "flows dir" / "looping.py", LOOPING.replace("x + 1", "x + 2"))
    stale = kiln("compile", *given, "--check", cwd=root)
    assert stale.returncode == 1, stale
    assert f"note: run: {hint}\n" in stale.stdout, stale.stdout
    rerun = kiln(*shlex.split(hint)[1:], cwd=root)
    assert rerun.returncode == 0, rerun
    assert kiln("compile", *given, "--check", cwd=root).returncode == 0
    assert kiln("check", *given[:3], "--no-mypy", cwd=root).returncode == 0


def test_a_flow_or_node_that_sets_max_visits_keeps_it(tmp_path: Path) -> None:
    root = project(tmp_path, "max_visits = 9\n")
    own = LOOPING.replace("@flow\n", "@flow(max_visits=4)\n")
    write(
        root / "looping.py",
        own.replace("@node\nasync def step", "@node(max_visits=2)\nasync def step"),
    )
    result = kiln("compile", "looping.py", "-o", "build", cwd=root)
    assert result.returncode == 0, result
    assert bounds(root / "build" / "looping.py") == {4, 2}


def test_unknown_keys_say_what_was_meant(tmp_path: Path) -> None:
    table = 'sources = ["a.py"]\nmax_visit = 3\n"outptu" = "build"\nfrobnicate = 1\n'
    root = project(tmp_path, table)
    result = kiln("compile", cwd=root)
    assert result.returncode == 1, result
    reported = parse_report(result.stdout)
    assert [(r.line, r.column, r.code, r.message) for r in reported] == [
        (6, 1, "KLN601", "unknown key 'max_visit' in [tool.kiln]"),
        (7, 1, "KLN601", "unknown key 'outptu' in [tool.kiln]"),
        (8, 1, "KLN601", "unknown key 'frobnicate' in [tool.kiln]"),
    ]
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    for r in reported:
        assert_caret_under_column(r, text)
    assert "pyproject.toml:6:1: note: did you mean 'max_visits'?" in result.stdout
    assert "pyproject.toml:7:1: note: did you mean 'output'?" in result.stdout
    assert "the keys are: sources, output, max_visits, ledger" in result.stdout


@pytest.mark.parametrize(
    ("line", "requirement"),
    [
        ('sources = "pipelines/*.py"', "a non-empty list of files or globs"),
        ("sources = []", "a non-empty list of files or globs"),
        ('sources = ["/abs/*.py"]', "relative to pyproject.toml"),
        ("output = 3", "a directory"),
        ('output = ""', "a directory"),
        ("max_visits = 0", "an integer >= 1"),
        ("max_visits = true", "an integer >= 1"),
        ("max_visits = 2.5", "an integer >= 1"),
        ("ledger = []", "a file path"),
    ],
)
def test_wrong_types_are_errors_at_the_key(
    tmp_path: Path, line: str, requirement: str
) -> None:
    root = project(tmp_path, f"{line}\n")
    write(root / "pipeline.py", GOOD)
    result = kiln("compile", "pipeline.py", "-o", "build", cwd=root)
    assert result.returncode == 1, result
    (reported,) = parse_report(result.stdout)
    key = line.split(" ", maxsplit=1)[0]
    assert (reported.path, reported.line, reported.column) == ("pyproject.toml", 5, 1)
    assert reported.code == "KLN602"
    assert reported.message.startswith(f"'{key}' in [tool.kiln] must be ")
    assert requirement in reported.message
    assert not (root / "build").exists()


def test_every_error_of_the_table_in_one_run(tmp_path: Path) -> None:
    root = project(tmp_path, 'output = 1\nmax_visits = "many"\nledgr = "x"\n')
    result = kiln("compile", cwd=root)
    assert result.returncode == 1, result
    codes = [(r.line, r.code) for r in parse_report(result.stdout)]
    assert codes == [(5, "KLN602"), (6, "KLN602"), (7, "KLN601")]


def test_keys_are_located_however_the_table_is_written(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        '[tool]\nkiln.output = "build"\nkiln.max_visits = -1\n',
    )
    result = kiln("compile", "x.py", cwd=tmp_path)
    (reported,) = parse_report(result.stdout)
    assert (reported.line, reported.column, reported.code) == (3, 6, "KLN602")


def test_invalid_toml_is_located(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.kiln]\nsources = ["a.py"\noutput = "b"\n')
    result = kiln("compile", cwd=tmp_path)
    assert result.returncode == 1, result
    (reported,) = parse_report(result.stdout)
    assert (reported.path, reported.code) == ("pyproject.toml", "KLN603")
    assert reported.message.startswith("invalid TOML: ")
    assert reported.line in (2, 3)


def test_a_pyproject_that_is_not_utf8_is_located_at_the_byte(tmp_path: Path) -> None:
    # TOML is UTF-8: tomllib and pip refuse a Latin-1 comment, and so does kiln.
    text = '[tool.kiln]\nsources = ["a.py"]  # caf\u00e9\noutput = "b"\n'
    (tmp_path / "pyproject.toml").write_bytes(text.encode("latin-1"))
    write(tmp_path / "a.py", GOOD)
    result = kiln("compile", cwd=tmp_path)
    assert result.returncode == 1, result
    (reported,) = parse_report(result.stdout)
    assert (reported.path, reported.code) == ("pyproject.toml", "KLN603")
    assert (reported.line, reported.column) == (
        2,
        text.split("\n")[1].index("\u00e9") + 1,
    )
    assert "not UTF-8" in reported.message
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "pyproject", [None, '[project]\nname = "demo"\n'], ids=["no-pyproject", "no-table"]
)
def test_nothing_to_compile_says_what_to_write(
    tmp_path: Path, pyproject: str | None
) -> None:
    if pyproject is not None:
        write(tmp_path / "pyproject.toml", pyproject)
    result = kiln("compile", cwd=tmp_path)
    assert result.returncode == 2, result
    assert "nothing to compile" in result.stderr
    assert (
        '[tool.kiln]\nsources = ["pipelines/*.py"]\noutput = "build"' in result.stderr
    )


def test_no_output_anywhere_is_a_usage_error(tmp_path: Path) -> None:
    root = project(tmp_path, 'sources = ["pipeline.py"]\n')
    write(root / "pipeline.py", GOOD)
    result = kiln("compile", cwd=root)
    assert result.returncode == 2, result
    assert "no output directory" in result.stderr
    assert "-o OUTDIR" in result.stderr


def test_the_nearest_pyproject_is_the_sources_not_the_working_directory(
    tmp_path: Path,
) -> None:
    project(tmp_path / "app", "max_visits = 3\n")
    project(tmp_path, "max_visits = 7\n")
    write(tmp_path / "app" / "looping.py", LOOPING)
    result = kiln("compile", "app/looping.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 0, result
    assert bounds(tmp_path / "build" / "looping.py") == {3}


def test_config_errors_as_json(tmp_path: Path) -> None:
    root = project(tmp_path, "max_visit = 3\n")
    result = kiln("compile", "--format", "json", cwd=root)
    assert result.returncode == 1, result
    (reported,) = json.loads(result.stdout)
    assert reported["code"] == "KLN601"
    assert reported["hint"] == "did you mean 'max_visits'?"
    assert (reported["path"], reported["line"], reported["column"]) == (
        "pyproject.toml",
        5,
        1,
    )


def test_graph_draws_the_configured_visit_bound(tmp_path: Path) -> None:
    root = project(tmp_path, "max_visits = 11\n")
    write(root / "looping.py", LOOPING)
    result = kiln("graph", "looping.py", cwd=root)
    assert result.returncode == 0, result
    assert "max 11 visits" in result.stdout


def test_load_config_keeps_the_ledger_path_for_the_runtime(tmp_path: Path) -> None:
    root = project(tmp_path, 'ledger = ".kiln/ledger.sqlite"\noutput = "build"\n')
    (root / "src").mkdir()
    config, problems = load_config(root / "src")
    assert problems == []
    assert config.pyproject == root / "pyproject.toml"
    assert config.ledger == ".kiln/ledger.sqlite"
    assert config.ledger_path == root / ".kiln" / "ledger.sqlite"
    assert config.output_dir == root / "build"
    assert (config.sources, config.max_visits) == ((), None)


def test_no_pyproject_is_an_empty_config(tmp_path: Path) -> None:
    config, problems = load_config(tmp_path)
    assert (config, problems) == (Config(), [])
    assert config.ledger_path is None


CACHED = """\
from kiln import flow, node


@node(cache=True)
async def square(x: int) -> int:
    return x * x


@flow
async def squares(n: int) -> list[int]:
    return [await square(i) for i in range(n)]
"""


def test_the_configured_ledger_is_the_compiled_flows_default(tmp_path: Path) -> None:
    root = project(
        tmp_path / "proj",
        'sources = ["pipeline.py"]\noutput = "build"\nledger = "data/cache.db"\n',
    )
    write(root / "pipeline.py", CACHED)
    assert kiln("compile", cwd=root).returncode == 0
    generated = (root / "build" / "pipeline.py").read_text(encoding="utf-8")
    assert '_kiln_ledger = "../data/cache.db"' in generated
    assert kiln("check", "--no-mypy", cwd=root).returncode == 0  # not stale
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = "import pipeline; print(pipeline.squares(4))"
    env = {"PYTHONPATH": str(root / "build")}
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[0, 1, 4, 9]"
    assert (root / "data" / "cache.db").is_file()  # beside the project, not the cwd
    assert not (elsewhere / ".kiln").exists()
    stats = kiln("ledger", "stats", "--json", cwd=root)  # the configured one, too
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["nodes"][0]["entries"] == 4
    # $KILN_LEDGER wins over the configured default, as F(ledger=...) over both.
    chosen = tmp_path / "chosen.db"
    subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        env={**os.environ, **env, "KILN_LEDGER": str(chosen)},
    )
    assert chosen.is_file()
