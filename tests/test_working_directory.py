"""The process's working directory is state the nodes share: `os.chdir` keeps its order.

`enter(work)` (`os.chdir(path)`) then `write_report("report.csv", rows)`
(`open(name, "w")`): the source writes the report in the new directory. The
compiled flow ran the two thread nodes at once, and the report landed in the
caller's directory, with no warning (trial Q10 §13). Now `os.chdir` changes
the piece `os.getcwd`, which every call that may resolve a relative path
reads (`open`, `os.path.abspath`, `os.listdir`, `shutil`, `subprocess`), so
the nodes keep the source's order, both ways, and KLN311 says why. Each case
runs its source and its compiled flow in fresh interpreters, each in a
directory of its own, and compares what they return.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file

NODES = """
import asyncio
import os
import tempfile
import time

from kiln import flow, node


@node
def make_workdir(prefix: str) -> str:
    return os.path.realpath(tempfile.mkdtemp(prefix=prefix))


@node(thread=True)
def enter(path: str) -> str:
    time.sleep(0.05)
    os.chdir(path)
    return path


@node
async def aenter(path: str) -> str:
    await asyncio.sleep(0.05)
    os.chdir(path)
    return path


@node(thread=True)
def write_report(name: str, rows: list[int]) -> str:
    with open(name, "w") as fh:
        fh.write(",".join(map(str, rows)))
    return os.path.abspath(name)


@node(thread=True)
def listed(tag: str) -> list[str]:
    time.sleep(0.1)
    return sorted(os.listdir())


@node
async def here(tag: str) -> str:
    return os.getcwd()
"""

FLOWS = {
    "a_write_after_chdir": """
@flow
def main() -> bool:
    work = make_workdir("rep-")
    enter(work)
    where = write_report("report.csv", [1, 2])
    return os.path.dirname(where) == work
""",
    "a_listing_before_chdir": """
@flow
def main() -> bool:
    work = make_workdir("rep-")
    before = listed("x")
    enter(work)
    return "marker" in before
""",
    "an_async_chdir_then_getcwd": """
@flow
async def main() -> bool:
    work = make_workdir("rep-")
    await aenter(work)
    return await here("x") == work
""",
}

RUNNER = """
import asyncio, importlib, inspect, json, os, sys
sys.path.insert(0, sys.argv[1])
module = importlib.import_module(sys.argv[2])
os.chdir(sys.argv[3])
result = module.main()
if inspect.iscoroutine(result):
    result = asyncio.run(result)
print(json.dumps(result))
"""


def _run(directory: Path, module: str, cwd: Path) -> object:
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(directory), module, str(cwd)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


@pytest.mark.parametrize("case", sorted(FLOWS))
def test_a_change_of_directory_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    source = tmp_path / "case.py"
    source.write_text(NODES + textwrap.dedent(FLOWS[case]), encoding="utf-8")
    compilation = compile_file(source)
    assert compilation.output is not None, compilation.diagnostics
    (tmp_path / "compiled_case.py").write_text(compilation.output, encoding="utf-8")
    for run, module in enumerate(["case", "compiled_case"]):
        cwd = tmp_path / f"cwd{run}"
        cwd.mkdir()
        (cwd / "marker").write_text("", encoding="utf-8")
        assert _run(tmp_path, module, cwd) is True, (case, module)
    warned = [d.message for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER]
    assert any("'os.getcwd'" in message for message in warned), warned
