"""Names re-exported by a package's `__init__.py` are what Python binds them to.

`app/flows/__init__.py` does `from .crawl import crawl`: the package's
attribute `crawl` is the flow (importing the submodule bound the module
first, and the from-import bound the function over it). kiln once read
`from app.flows import crawl` in another module as the compiled submodule,
and the compiled module failed with "module 'build.app.flows.crawl' has no
attribute 'aforward'", where the source ran (trial H, section B); the
reverse, `from .flows import crawl as crawl_mod; crawl_mod.crawl(...)`,
returned a value where the source raises. A node re-exported the same way
was code kiln could not read: its fan-out ran one element at a time, with a
false KLN311 (section E). `project.attribute_of` now follows a package's
names as Python's import system binds them, and each pass asks it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from kilnc.diagnostics import Code
from kilnc.front import ImportedName, ModuleDefs
from kilnc.pipeline import FRONT_END, compile_file
from kilnc.project import Reader, attribute_of

KILN = [sys.executable, "-m", "kilnc"]


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")
    return root


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        timeout=300,
        check=False,
    )


CRAWL = """\
from kiln import flow, node


@node
async def fetch(url: str) -> int:
    return len(url)


@flow
async def crawl(root: str) -> int:
    return await fetch(root)
"""

# What `from pkg import crawl` binds, for each way pkg/__init__.py may be
# written (pkg/crawl.py defines `crawl` and `helper`).
PACKAGES = {
    "reexported": "from .crawl import crawl\n",
    "nothing": "",
    "submodule": "from . import crawl\n",
    "other_name": "from .crawl import helper\n",
    # Python's rule: importing the submodule binds it over the function.
    "def_then_import": "def crawl() -> int:\n    return 0\n\nfrom .crawl import helper\n",
    "import_then_def": "from .crawl import helper\n\ndef crawl() -> int:\n    return 0\n",
    "assigned": "crawl = 3\n",
    "chained": "from .inner import crawl\n",
}


@pytest.mark.parametrize("shape", sorted(PACKAGES))
def test_a_package_s_attribute_is_what_python_binds(shape: str, tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "pkg/__init__.py": PACKAGES[shape],
            "pkg/crawl.py": "def crawl() -> int:\n    return 1\n\n\nhelper = 2\n",
            "pkg/inner/__init__.py": "from ..crawl import crawl\n",
        },
    )
    reader = Reader(root, FRONT_END)

    def load(name: str) -> ModuleDefs | None:
        found = reader(name)
        return None if found is None else FRONT_END.collect(found)[0]

    # Python's answer, as kiln names it: a module, or what a module binds.
    ran = run(
        [
            sys.executable,
            "-c",
            "import types; from pkg import crawl as value\n"
            "if isinstance(value, types.ModuleType): print(value.__name__)\n"
            "elif callable(value): print(value.__module__, value.__qualname__)\n"
            "else: print('pkg crawl')",
        ],
        root,
    )
    assert ran.returncode == 0, ran.stderr
    module, *name = ran.stdout.split()
    expected = ImportedName(module, name[0] if name else None)
    assert attribute_of(load, "pkg", "crawl") == expected


@pytest.fixture
def reexporting(tmp_path: Path) -> Path:
    return write(
        tmp_path / "proj",
        {
            "app/__init__.py": "",
            "app/flows/__init__.py": 'from .crawl import crawl\n__all__ = ["crawl"]\n',
            "app/flows/crawl.py": CRAWL,
            "app/report.py": """\
                from kiln import flow, node
                from app.flows import crawl


                @node
                def fmt(n: int) -> str:
                    return f"n={n}"


                @flow
                async def report(root: str) -> str:
                    n = await crawl(root)
                    return fmt(n)
                """,
        },
    )


def test_a_flow_a_package_reexports_under_its_submodule_s_name_runs(
    reexporting: Path,
) -> None:
    done = run([*KILN, "compile", "app", "-o", "build"], reexporting)
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    # The package has no output: the call runs the source's flow, as it says.
    assert "flow 'crawl' is imported through app.flows, which has no output" in said
    assert "import it from app.flows.crawl" in said
    report = (reexporting / "build/app/report.py").read_text()
    assert "from app.flows import crawl" in report
    ran = run(
        [
            sys.executable,
            "-c",
            "from build.app.report import report; print(report('/abc'))",
        ],
        reexporting,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["n=4"]
    checked = run([*KILN, "check", "app", "-o", "build"], reexporting)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "KLN501" not in checked.stdout


def test_the_function_a_package_reexports_has_no_attributes_of_the_module(
    reexporting: Path,
) -> None:
    write(
        reexporting,
        {"app/report.py": """\
                from kiln import flow
                from .flows import crawl as crawl_mod  # the function, in Python


                @flow
                async def report(root: str) -> int:
                    return await crawl_mod.crawl(root)
                """},
    )
    code = "import asyncio; from {}app.report import report; print(asyncio.run({}))"
    source = run([sys.executable, "-c", code.format("", "report('/abc')")], reexporting)
    assert "AttributeError: 'function' object has no attribute 'crawl'" in source.stderr
    done = run([*KILN, "compile", "app", "-o", "build"], reexporting)
    assert done.returncode == 0, done.stdout + done.stderr
    compiled = run(
        [sys.executable, "-c", code.format("build.", "report.aforward('/abc')")],
        reexporting,
    )
    assert "AttributeError: 'function' object has no attribute 'crawl'" in (
        compiled.stderr
    )


def test_a_node_a_package_reexports_is_read_as_its_module_s(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/core/__init__.py": "from .nodes import fetch\n",
            "app/core/nodes.py": """\
                import asyncio

                from kiln import node

                IN_FLIGHT = [0, 0]  # now, most at once


                @node
                async def fetch(url: str) -> str:
                    IN_FLIGHT[0] += 1
                    IN_FLIGHT[1] = max(IN_FLIGHT)
                    await asyncio.sleep(0.02)
                    IN_FLIGHT[0] -= 1
                    return url.upper()
                """,
            "app/via_package.py": """\
                from kiln import flow
                from app.core import fetch


                @flow
                async def crawl(urls: list[str]) -> list[str]:
                    return [await fetch(u) for u in urls]
                """,
        },
    )
    compiled = compile_file(root / "app" / "via_package.py")
    assert compiled.output is not None, compiled.diagnostics
    assert not compiled.diagnostics, [d.message for d in compiled.diagnostics]
    (root / "build").mkdir()
    (root / "build" / "via_package.py").write_text(compiled.output)
    ran = run(
        [
            sys.executable,
            "-c",
            "import json, sys; sys.path.insert(0, 'build')\n"
            "import via_package; from app.core import nodes\n"
            "print(json.dumps([via_package.crawl(['a', 'b', 'c']), nodes.IN_FLIGHT[1]]))",
        ],
        root,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == [["A", "B", "C"], 3]


def test_module_state_a_package_reexports_is_read_in_place(tmp_path: Path) -> None:
    """A read of module state imported through the package keeps its place: kiln
    once took `app.SETTINGS` for no state and read it before `configure` ran."""
    root = write(
        tmp_path,
        {
            "app/__init__.py": "from .settings import SETTINGS, configure\n",
            "app/settings.py": """\
                import asyncio

                from kiln import node

                SETTINGS: dict[str, str] = {"mode": "draft"}


                @node
                async def configure(mode: str) -> None:
                    await asyncio.sleep(0.02)
                    SETTINGS["mode"] = mode
                """,
            "app/flows.py": """\
                from kiln import flow, node

                from app import SETTINGS, configure


                @node
                async def show(n: int) -> int:
                    return n


                @flow
                async def size(mode: str) -> int:
                    await configure(mode)
                    n = len(SETTINGS["mode"])  # after configure, as the source reads it
                    return await show(n)
                """,
        },
    )
    compiled = compile_file(root / "app" / "flows.py")
    assert compiled.output is not None, compiled.diagnostics
    [warned] = [d for d in compiled.diagnostics if d.code is Code.EFFECT_ORDER]
    assert "reads SETTINGS" in warned.message
    (root / "build").mkdir()
    (root / "build" / "flows.py").write_text(compiled.output)
    ran = run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, 'build')\n"
            "import flows\nprint(flows.size('finalist'))",
        ],
        root,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["8"], "the length of 'draft', read before configure"
