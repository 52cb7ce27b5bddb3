"""Packages compile as packages: the output tree mirrors the sources, and flows
called across modules run compiled (packages.py).

Each test writes a project of several modules and drives the real `kiln`
command; compiled modules run in a fresh interpreter from another directory,
the project root on PYTHONPATH as the sources need it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from tests.diagnostic_shape import parse_report

KILN = [sys.executable, "-m", "kilnc"]

NODES = """\
import asyncio

from kiln import node

IN_FLIGHT = [0, 0]  # now, most at once
ATTEMPTS: dict[int, int] = {}


@node(retries=2, wait=0, limit="llm", retry_on=(ConnectionError,))
async def ask(q: int) -> int:
    ATTEMPTS[q] = ATTEMPTS.get(q, 0) + 1
    IN_FLIGHT[0] += 1
    IN_FLIGHT[1] = max(IN_FLIGHT)
    await asyncio.sleep(0.01)
    IN_FLIGHT[0] -= 1
    return q * 2


@node
def double(x: int) -> int:
    return x * 2
"""

SUB = """\
from kiln import Limit, flow

from .nodes import ask


@flow(limits={"llm": Limit(1)})
async def inner(q: int) -> int:
    a = await ask(q)
    return a + 1
"""

UTIL = """\
from kiln import flow

from app.nodes import double


@flow
def tidy(values: list[int]) -> int:
    total = sum(values)
    return double(total)
"""

OTHER_UTIL = """\
from kiln import flow, node


@node
def negate(x: int) -> int:
    return -x


@flow
def tidy(x: int) -> int:
    return negate(x)
"""

MAIN = """\
from kiln import Limit, flow

from app.sub import inner
from . import util
from tools.util import tidy


@flow(limits={"llm": Limit(1)})
async def outer(n: int) -> int:
    values = [await inner(i) for i in range(n)]
    total = util.tidy(values)
    return tidy(total)
"""


def make_package_project(root: Path) -> Path:
    """Five modules in two packages, with [tool.kiln] sources and output."""
    files = {
        "pyproject.toml": '[tool.kiln]\nsources = ["app", "tools"]\noutput = "build"\n',
        "app/__init__.py": "",
        "app/nodes.py": NODES,
        "app/sub.py": SUB,
        "app/util.py": UTIL,
        "app/main.py": MAIN,
        "tools/__init__.py": "",
        "tools/util.py": OTHER_UTIL,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _kiln(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KILN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def _located(output: str, path: str, line: int, code: str) -> None:
    """`output` reports `code` at `path:line`, in mypy's shape."""
    found = [(r.path, r.line, r.code) for r in parse_report(output)]
    assert (path, line, code) in found, output


def _python(code: str, root: Path, cwd: Path) -> str:
    """Run `code` in a fresh interpreter in `cwd` with the project importable."""
    ran = subprocess.run(
        [sys.executable, "-c", dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_package_project(tmp_path / "proj")


def test_the_output_tree_mirrors_the_packages(project: Path) -> None:
    done = _kiln("compile", cwd=project)
    assert done.returncode == 0, done.stderr
    written = sorted(
        p.relative_to(project / "build").as_posix()
        for p in (project / "build").rglob("*.py")
    )
    assert written == [
        "__init__.py",
        "app/__init__.py",
        "app/main.py",
        "app/sub.py",
        "app/util.py",
        "tools/__init__.py",
        "tools/util.py",
    ]
    main = (project / "build/app/main.py").read_text()
    assert "from build.app.sub import inner" in main
    assert "from build.app import util" in main
    assert "from build.tools.util import tidy" in main
    assert "from ." not in main
    assert "from app.sub" not in main
    # A node imported from a module with no flow stays the source's.
    assert "from app.nodes import ask" in (project / "build/app/sub.py").read_text()
    assert "warning" not in done.stderr
    assert _kiln("compile", "--check", cwd=project).returncode == 0


def test_subflows_across_modules_run_compiled_from_anywhere(
    project: Path, tmp_path: Path
) -> None:
    assert _kiln("compile", cwd=project).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    compiled = _python(
        """
        import json
        from build.app.main import outer
        from app import nodes
        events = []
        result = type(outer)(on_event=events.append)(6)
        called = sorted({e.node for e in events})
        print(json.dumps([result, nodes.IN_FLIGHT[1], called]))
        """,
        project,
        elsewhere,
    )
    source = _python(
        "import asyncio; from app.main import outer; print(asyncio.run(outer(6)))",
        project,
        elsewhere,
    )
    result, most_at_once, called = json.loads(compiled)
    assert result == int(source)
    assert most_at_once == 1, "the subflow's Limit(1) held across modules"
    assert called == ["ask", "double", "negate"]


def test_kiln_run_compiles_the_subflows_a_source_imports(project: Path) -> None:
    ran = _kiln("run", "app/main.py:outer", "n=4", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert "no node calls" not in ran.stderr + ran.stdout
    assert "ask" in ran.stderr + ran.stdout


def test_a_flow_of_a_module_compiled_alone_warns_at_the_call(project: Path) -> None:
    done = _kiln("compile", "app/main.py", "-o", "build", cwd=project)
    assert done.returncode == 0, done.stderr
    _located(done.stdout + done.stderr, "app/main.py", 10, "KLN313")
    assert "flow 'inner' of app.sub is not compiled with this module" in (
        done.stdout + done.stderr
    )


def test_a_flow_reached_through_a_package_warns_that_it_runs_its_source(
    project: Path,
) -> None:
    # `import app.sub` binds the source package `app`: the generated module
    # cannot point `app.sub.inner` at the compiled module, so kiln says so.
    main = (project / "app/main.py").read_text()
    main = main.replace("from app.sub import inner\n", "import app.sub\n")
    main = main.replace("await inner(i)", "await app.sub.inner(i)")
    (project / "app/main.py").write_text(main)
    done = _kiln("compile", cwd=project)
    assert done.returncode == 0, done.stderr
    _located(done.stdout + done.stderr, "app/main.py", 10, "KLN313")
    assert "called through the package that `import app.sub` binds" in done.stdout
    assert "from app import sub" in done.stdout


def test_modules_whose_compiled_flows_would_import_each_other_are_refused(
    project: Path,
) -> None:
    # app.sub imports app.main as a module: Python binds it at once, and the
    # source reads its flows only when called; a compiled module's class reads
    # the flows it calls as it is imported, so neither could be imported.
    sub = (project / "app/sub.py").read_text()
    sub = "from app import main\n" + sub
    sub += "\n\n@flow\nasync def back(n: int) -> int:\n    return await main.outer(n)\n"
    (project / "app/sub.py").write_text(sub)
    done = _kiln("compile", cwd=project)
    assert done.returncode == 1, done.stdout
    _located(done.stdout, "app/main.py", 10, "KLN401")
    _located(done.stdout, "app/sub.py", 15, "KLN401")
    assert "app.sub imports app.main, which calls its flow 'inner' here" in done.stdout


def test_a_module_kiln_generated_is_read_as_an_installed_package(
    project: Path,
) -> None:
    # A node may call a compiled flow: its module is kiln's, not the user's,
    # and is not read for definitions (its `_kiln` names are not theirs).
    assert _kiln("compile", cwd=project).returncode == 0
    (project / "app/user.py").write_text(dedent("""\
            from kiln import flow, node

            from build.app import sub


            @node(thread=True)
            def through(q: int) -> int:
                return sub.inner(q)


            @flow
            async def user(q: int) -> int:
                return through(q)
            """))
    done = _kiln("compile", "app/user.py", "-o", "elsewhere", cwd=project)
    assert done.returncode == 0, done.stdout
    assert "KLN203" not in done.stdout


def test_a_reexport_through_an_uncompiled_package_warns(project: Path) -> None:
    (project / "app/__init__.py").write_text("from .sub import inner\n")
    main = (project / "app/main.py").read_text()
    (project / "app/main.py").write_text(
        main.replace("from app.sub import inner", "from app import inner")
    )
    done = _kiln("compile", cwd=project)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert "flow 'inner' is imported through app," in said
    assert "import it from app.sub" in said


def test_an_output_directory_that_cannot_be_a_package_is_an_error(
    project: Path,
) -> None:
    done = _kiln("compile", "-o", "out-dir", cwd=project)
    assert done.returncode == 1
    _located(done.stdout + done.stderr, "app/main.py", 10, "KLN704")
    assert not (project / "out-dir").exists(), "nor the modules without an error"


@pytest.mark.parametrize("broken", ["app/sub.py", "app/util.py", "tools/util.py"])
def test_check_finds_a_type_error_in_any_module(
    project: Path, tmp_path: Path, broken: str
) -> None:
    assert _kiln("compile", cwd=project).returncode == 0
    sources = ["app/main.py", "app/sub.py", "app/util.py", "tools/util.py"]
    assert _kiln("check", *sources, "-o", "build", cwd=project).returncode == 0
    path = project / broken
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("return"))
    lines[at] = lines[at].replace("return ", "return str(", 1) + ")"
    path.write_text("\n".join(lines) + "\n")
    # From the project root in either order (the same report), and from another
    # directory.
    reports = []
    for cwd, named, output in (
        (project, sources, "build"),
        (project, sources[::-1], "build"),
        (tmp_path, [str(project / s) for s in sources], str(project / "build")),
    ):
        checked = _kiln("check", *named, "-o", output, cwd=cwd)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert f"{broken}:{at + 1}:" in checked.stdout
        assert "[KLN501]" in checked.stdout
        # The hint is the command as given; the rest does not depend on the order.
        reports.append(checked.stdout.replace(" ".join(named), "SOURCES"))
    assert reports[0] == reports[1]


def test_plain_mypy_passes_on_the_output_tree(project: Path, tmp_path: Path) -> None:
    assert _kiln("compile", cwd=project).returncode == 0
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(project / "build")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(project)},  # the source modules it imports
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout


def test_a_missing_package_marker_is_stale(project: Path) -> None:
    assert _kiln("compile", cwd=project).returncode == 0
    (project / "build/app/__init__.py").unlink()
    checked = _kiln("compile", "--check", cwd=project)
    assert checked.returncode == 1
    assert "package marker build/app/__init__.py is missing" in checked.stdout
    assert _kiln("compile", cwd=project).returncode == 0
    assert (
        (project / "build/app/__init__.py")
        .read_text()
        .startswith("# Generated by kiln")
    )


IMPORT_FORMS = {
    "absolute": ("from app.sub import inner", "inner"),
    "relative": ("from .sub import inner", "inner"),
    "package_relative": ("from . import sub", "sub.inner"),
    "module_alias": ("import app.sub as sub", "sub.inner"),
    "split": ("from app import nodes, sub", "sub.inner"),
    "star": ("from .sub import *", "inner"),
}


@pytest.mark.parametrize("form", sorted(IMPORT_FORMS))
def test_every_import_form_calls_the_compiled_subflow(
    form: str, tmp_path: Path
) -> None:
    project = make_package_project(tmp_path / "proj")
    statement, callee = IMPORT_FORMS[form]
    (project / "app/main.py").write_text(dedent(f"""\
        from kiln import Limit, flow

        {statement}


        @flow(limits={{"llm": Limit(1)}})
        async def outer(n: int) -> list[int]:
            return [await {callee}(i) for i in range(n)]
        """))
    done = _kiln("compile", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stdout + done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    compiled = _python(
        """
        import json
        from build.app.main import outer
        events = []
        result = type(outer)(on_event=events.append)(3)
        print(json.dumps([result, sorted({e.node for e in events})]))
        """,
        project,
        elsewhere,
    )
    assert json.loads(compiled) == [[1, 3, 5], ["ask"]]


def test_two_modules_of_one_name_from_two_roots_are_refused(tmp_path: Path) -> None:
    flow = "from kiln import flow\n\n\n@flow\ndef f(x: int) -> int:\n    return x\n"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "util.py").write_text(flow)
    done = _kiln("compile", "a/util.py", "b/util.py", "-o", "build", cwd=tmp_path)
    assert done.returncode == 2
    assert "a/util.py and b/util.py would both be written as build/util.py" in (
        done.stderr
    )
    assert not (tmp_path / "build").exists()


def test_a_source_that_does_not_parse_is_reported_not_raised(project: Path) -> None:
    (project / "app/broken.py").write_text("from kiln import flow\n\n@flow\ndef f(:\n")
    (project / "app/deep.py").write_text(
        "from kiln import flow\nx = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    )
    done = _kiln("compile", cwd=project)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "app/broken.py:4:" in said
    assert "[KLN001]" in said
    assert not (project / "build").exists(), "nor are the others written"
