"""`kiln check`: stale outputs, and mypy's errors on generated code moved to the source.

Each type-error case is a flow whose types do not meet somewhere; the check
must report mypy's message at the line and column of the source that the
mismatch comes from, never at a line of the generated module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from textwrap import dedent

import pytest

from kilnc.pipeline import compile_file
from kilnc.typecheck import typecheck_modules
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
        [("edge.py", compilation.output, compilation.line_map)], [], tmp_path
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
            [("edge.py", compilation.output, compilation.line_map)], [], tmp_path
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
