"""`kiln check`: stale outputs, and mypy's errors on generated code moved to the source.

Each type-error case is a flow whose types do not meet somewhere; the check
must report mypy's message at the line and column of the source that the
mismatch comes from, never at a line of the generated module.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from textwrap import dedent

import pytest
from mypy import api as mypy_api

from kilnc.cli import main as cli
from kilnc.pipeline import compile_file
from kilnc.typecheck import MypyFailed, typecheck_modules
from tests.test_cli import KILN
from tests.test_cli import kiln as run

HEAD = """\
from kiln import flow, node


@node
async def produce(n: int) -> list[str]:
    return [str(i) for i in range(n)]


@node
async def consume(values: list[int]) -> int:
    return sum(values)


@node
async def length(text: str) -> int:
    return len(text)
"""

# Each flow is appended to HEAD; `# here` marks the line the error belongs to.
MISMATCHES = {
    "argument": """
@flow
async def edge(n: int) -> int:
    values = await produce(n)
    return await consume(values)  # here
""",
    "flow_return": """
@flow
async def edge(n: int) -> str:
    values = await produce(n)
    return await consume([len(v) for v in values])  # here
""",
    "fan_out_element": """
@flow
async def edge(n: int) -> list[int]:
    values = await produce(n)
    return [await length(v) for v in range(n)]  # here
""",
    "annotated_assignment": """
@flow
async def edge(n: int) -> int:
    values = await produce(3)
    total: str = await consume([len(v) for v in values])  # here
    return len(total)
""",
}


def marked_line(source: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if "# here" in line)


@pytest.mark.parametrize("shape", sorted(MISMATCHES))
def test_type_errors_are_reported_where_the_source_wrote_them(
    tmp_path: Path, shape: str
) -> None:
    source = HEAD + MISMATCHES[shape]
    path = tmp_path / "edge.py"
    path.write_text(source)
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    found = typecheck_modules(
        [("edge.py", compilation.output, compilation.line_map)], [], [tmp_path]
    )
    assert found, f"mypy found nothing wrong with {shape}"
    assert {d.span.path for d in found} == {compilation.source.path}
    assert {d.span.line for d in found} == {marked_line(source)}
    assert all(d.code.value == "KLN501" for d in found)
    assert all("(mypy: " in d.message for d in found)


def test_a_well_typed_flow_checks_clean(tmp_path: Path) -> None:
    source = HEAD + MISMATCHES["argument"].replace(
        "values = await produce(n)", "values = [len(v) for v in await produce(n)]"
    )
    path = tmp_path / "edge.py"
    path.write_text(source)
    compilation = compile_file(path)
    assert compilation.output is not None
    assert (
        typecheck_modules(
            [("edge.py", compilation.output, compilation.line_map)], [], [tmp_path]
        )
        == []
    )


def test_check_is_silent_then_reports_staleness_and_type_errors(tmp_path: Path) -> None:
    good = HEAD + dedent("""
        @flow
        async def edge(n: int) -> int:
            values = await produce(n)
            return await length(values[0])
        """)
    (tmp_path / "edge.py").write_text(good)
    assert run("compile", "edge.py", "-o", "build", "-q", cwd=tmp_path).returncode == 0
    clean = run("check", "edge.py", "-o", "build", cwd=tmp_path)
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "")

    broken = good.replace("await length(values[0])", "await consume(values)")
    (tmp_path / "edge.py").write_text(broken)
    result = run("check", "edge.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 1
    line = next(
        n for n, text in enumerate(broken.splitlines(), 1) if "consume(values)" in text
    )
    assert (
        "build/edge.py:1:1: error: output build/edge.py is stale  [KLN502]"
        in result.stdout
    )
    assert "run: kiln compile edge.py -o build" in result.stdout
    assert re.search(
        rf"^edge\.py:{line}:\d+: error: Argument 1 .*\"list\[str\]\".*\"list\[int\]\".*"
        r"\(mypy: arg-type\)  \[KLN501\]$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    assert "Traceback" not in result.stdout + result.stderr

    skipped = run("check", "edge.py", "-o", "build", "--no-mypy", cwd=tmp_path)
    assert skipped.returncode == 1
    assert "KLN501" not in skipped.stdout


def test_check_names_a_missing_output(tmp_path: Path) -> None:
    (tmp_path / "edge.py").write_text(HEAD + MISMATCHES["argument"])
    result = run("check", "edge.py", "-o", "build", "--no-mypy", cwd=tmp_path)
    assert result.returncode == 1
    assert "output build/edge.py is missing" in result.stdout


def test_a_configured_project_compiles_checks_and_catches_a_broken_edge(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.kiln]\nsources = ["pipelines/*.py"]\n'
        'output = "build"\n'
    )
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    good = HEAD + dedent("""
        @flow
        async def edge(n: int) -> int:
            values = await produce(n)
            return await length(values[0])
        """)
    (pipelines / "edge.py").write_text(good)
    assert run("compile", "-q", cwd=tmp_path).returncode == 0
    assert (tmp_path / "build" / "edge.py").is_file()
    clean = run("check", cwd=tmp_path)
    assert (clean.returncode, clean.stdout) == (0, "")

    broken = good.replace("await length(values[0])", "await consume(values)")
    (pipelines / "edge.py").write_text(broken)
    result = run("check", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1
    found = json.loads(result.stdout)
    line = next(
        n for n, text in enumerate(broken.splitlines(), 1) if "consume(values)" in text
    )
    assert {(d["code"], d["path"].endswith("edge.py")) for d in found} == {
        ("KLN501", True),
        ("KLN502", True),
    }
    typed = next(d for d in found if d["code"] == "KLN501")
    assert typed["line"] == line
    assert "incompatible type" in typed["message"]


# --- the search path comes from every source, in no order -----------------------------


HELPER = "def scale(x: int) -> int:\n    return 2 * x\n"


def flows(helper_module: str, name: str) -> str:
    return dedent(f"""\
        from kiln import flow, node
        from {helper_module} import scale


        @node
        def double(x: int) -> int:
            return scale(x)


        @flow
        def {name}(x: int) -> int:
            return double(x)
        """)


def test_every_source_s_import_root_is_searched_whatever_the_order(
    tmp_path: Path,
) -> None:
    """a/x.py and b/y.py each import a helper beside them: both roots are searched."""
    for root, name in (("a", "x"), ("b", "y")):
        (tmp_path / root).mkdir()
        (tmp_path / root / f"helpers_{root}.py").write_text(HELPER)
        (tmp_path / root / f"{name}.py").write_text(flows(f"helpers_{root}", name))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sources = [str(tmp_path / "a" / "x.py"), str(tmp_path / "b" / "y.py")]
    out = str(tmp_path / "build")
    assert run("compile", *sources, "-o", out, "-q", cwd=elsewhere).returncode == 0
    clean = run("check", *sources[::-1], "-o", out, cwd=elsewhere)  # b's root first
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "")

    broken = HELPER.replace("int:", "str:").replace("2 * x", "str(x)")
    (tmp_path / "b" / "helpers_b.py").write_text(broken)  # y's node returns str now
    reports_of = (sources, sources[::-1])
    reports = [run("check", *order, "-o", out, cwd=elsewhere) for order in reports_of]
    assert reports[0].returncode == reports[1].returncode == 1
    # The same diagnostics; each hint the command as given, in its order.
    hints = [f"run: kiln compile {' '.join(order)} -o {out}" for order in reports_of]
    said = [
        r.stdout.replace(hint, "HINT") for r, hint in zip(reports, hints, strict=True)
    ]
    assert "HINT" in said[0], reports[0].stdout
    assert said[0] == said[1]
    assert (
        'Incompatible return value type (got "str", expected "int")'
        in reports[0].stdout
    )
    assert f"{tmp_path / 'b' / 'y.py'}:7:" in reports[0].stdout, reports[0].stdout


# --- a mypy that cannot check never passes ---------------------------------------------


def refuses_the_path(args: list[str]) -> tuple[str, str, int]:
    """What mypy does with site-packages on its search path: tells the process, exits 1."""
    print("site-packages is in the MYPYPATH. Please remove it.", file=sys.stderr)
    return "", "", 1


def crashes(args: list[str]) -> tuple[str, str, int]:
    raise AssertionError("mypy's internal error")


MYPY_FAILURES = {
    "stderr": (lambda args: ("", "mypy.ini: [mypy]: bad option", 2), "bad option"),
    "blocking_error": (
        lambda args: ("edge.py:3: error: invalid syntax  [syntax]", "", 2),
        "invalid syntax",
    ),
    "refused_path": (refuses_the_path, "is in the MYPYPATH"),
    "status_only": (lambda args: ("", "", 1), "mypy exited with 1"),
    "crash": (crashes, "AssertionError: mypy's internal error"),
}


@pytest.mark.parametrize("failure", sorted(MYPY_FAILURES))
def test_a_mypy_that_could_not_check_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    fake, message = MYPY_FAILURES[failure]
    monkeypatch.setattr(mypy_api, "run", fake)
    with pytest.raises(MypyFailed, match=re.escape(message)):
        typecheck_modules([("edge.py", "x = 1\n", ())], [], [tmp_path])


def test_a_warning_printed_while_mypy_checked_is_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def warns(args: list[str]) -> tuple[str, str, int]:
        print("UserWarning: a plugin's warning", file=sys.stderr)
        return "", "", 0

    monkeypatch.setattr(mypy_api, "run", warns)
    assert typecheck_modules([("edge.py", "x = 1\n", ())], [], [tmp_path]) == []
    assert capsys.readouterr().err == "UserWarning: a plugin's warning\n"


def test_kiln_check_fails_when_mypy_could_not_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "edge.py").write_text(HEAD + MISMATCHES["argument"])
    monkeypatch.chdir(tmp_path)
    assert cli.main(["compile", "edge.py", "-o", "build", "-q"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(mypy_api, "run", refuses_the_path)
    assert cli.main(["check", "edge.py", "-o", "build"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "kiln: error: mypy could not run: "
        "site-packages is in the MYPYPATH. Please remove it.\n"
    )


def test_kiln_check_fails_when_mypy_refuses_its_search_path(tmp_path: Path) -> None:
    """The real refusal: this environment's site-packages on MYPYPATH."""
    (tmp_path / "edge.py").write_text(HEAD + MISMATCHES["argument"])
    assert run("compile", "edge.py", "-o", "build", "-q", cwd=tmp_path).returncode == 0
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        [*KILN, "check", "edge.py", "-o", "build"],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": site_packages},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"kiln: error: mypy could not run: {site_packages} is in the MYPYPATH."
    ), result.stderr
