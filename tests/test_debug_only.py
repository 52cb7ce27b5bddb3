"""A node call in an `assert` runs only when Python runs asserts, as in the source.

`python -O` drops a whole `assert` statement, the calls in its test with it.
kiln lifts a node call out of the test to await it, so the lifted call and
the assert are written under `if __debug__:`, which `-O` drops the same way.
Each flow runs as source and compiled, with and without `-O`, in a process
of its own, and must give the same result and the same calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kilnc.pipeline import compile_file

NODES = """\
import asyncio
from kiln import flow, node

CALLED: list[str] = []


@node
async def check(x: int) -> bool:
    await asyncio.sleep(0.01)
    CALLED.append(f"check {x}")
    return x > 0


@node
async def work(x: int) -> int:
    await asyncio.sleep(0.005)
    CALLED.append(f"work {x}")
    return x * 2


@node
def sync_check(x: int) -> bool:
    CALLED.append(f"sync_check {x}")
    return x > 0
"""

FLOWS = {
    "alone": """
@flow
async def main(x: int) -> int:
    assert await check(x)
    return x
""",
    "among_steps": """
@flow
async def main(x: int) -> int:
    a = await work(x)
    assert await check(x), "not positive"
    b = await work(x + 1)
    return a + b
""",
    "in_a_branch_and_a_loop": """
@flow
async def main(x: int) -> int:
    total = 0
    for i in range(x):
        if i % 2:
            assert await check(i) and i < 100
        total += await work(i)
    return total
""",
    "walrus_read_in_the_assert": """
@flow
async def main(x: int) -> int:
    assert (seen := await check(x)) or x < 0
    return await work(x)
""",
    "sync": """
@flow
def main(x: int) -> int:
    assert sync_check(x)
    return x + 1
""",
}

RUN = """\
import asyncio, inspect, json, sys
sys.path.insert(0, sys.argv[1])
import {module} as m
result = m.main(3)
if inspect.isawaitable(result):
    result = asyncio.run(result)
print(json.dumps([result, sorted(m.CALLED)]))
"""


def run(directory: Path, module: str, optimized: bool) -> object:
    flags = ["-O"] if optimized else []
    script = RUN.format(module=module)
    done = subprocess.run(
        [sys.executable, *flags, "-c", script, str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", sorted(FLOWS))
@pytest.mark.parametrize("optimized", [False, True])
def test_an_asserted_node_call_runs_when_and_only_when_the_assert_does(
    tmp_path: Path, name: str, optimized: bool
) -> None:
    source = NODES + FLOWS[name]
    (tmp_path / "flow_source.py").write_text(source, encoding="utf-8")
    compilation = compile_file(tmp_path / "flow_source.py")
    assert compilation.output is not None, compilation.diagnostics
    assert "if __debug__:" in compilation.output
    out = tmp_path / "out"
    out.mkdir()
    (out / "flow_source.py").write_text(compilation.output, encoding="utf-8")
    expected = run(tmp_path, "flow_source", optimized)
    assert run(out, "flow_source", optimized) == expected
