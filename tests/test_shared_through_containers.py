"""What a flow puts into a container, the container shares; reads of the world stay put.

A second user trial found compiled flows that computed something else:
`state["messages"] = history` then `state["messages"].append(q)` (the append
ran before an earlier reader of `history`), tools kept in a dict and called
by a node (`{"remember": nb.remember}`), a clock read or a file read moved
past the node before it, and `del raw` moved into a task, where it raised
UnboundLocalError. Each flow here is one shape of those classes; each must
compute what its source computes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
import os
import time
from collections.abc import Callable

from kiln import flow, node


class Notebook:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def remember(self, text: str) -> str:
        self.notes.append(text)
        return f"noted {len(self.notes)}"


class Registry:
    def __init__(self) -> None:
        self.tools: dict[str, Callable[[str], str]] = {}

    def add(self, name: str, tool: Callable[[str], str]) -> None:
        self.tools[name] = tool


@node
async def load(n: int) -> list[str]:
    await asyncio.sleep(0.01)
    return [str(i) for i in range(n)]


@node
async def count(items: list[str], delay: float) -> int:
    await asyncio.sleep(delay)
    return len(items)


@node
async def notes(nb: Notebook, delay: float) -> int:
    await asyncio.sleep(delay)
    return len(nb.notes)


@node
async def run_tool(tools: dict[str, Callable[[str], str]], name: str, arg: str) -> str:
    await asyncio.sleep(0.03)
    return tools[name](arg)


@node
async def call_registered(registry: Registry, name: str, arg: str) -> str:
    await asyncio.sleep(0.03)
    return registry.tools[name](arg)


@node
async def write(path: str, text: str) -> None:
    await asyncio.sleep(0.02)
    with open(path, "w") as file:
        file.write(text)


@node
async def slow(text: str) -> str:
    await asyncio.sleep(0.03)
    return text.upper()


@flow
async def stored_then_appended(n: int) -> tuple[int, int]:
    history = await load(n)
    state: dict[str, list[str]] = {}
    state["messages"] = history
    before = await count(history, 0.03)
    state["messages"].append("more")
    after = await count(history, 0.0)
    return before, after


@flow
async def appended_then_changed(n: int) -> tuple[int, int]:
    history = await load(n)
    threads: list[list[str]] = []
    threads.append(history)
    before = await count(history, 0.03)
    threads[0].append("more")
    after = await count(history, 0.0)
    return before, after


@flow
async def tools_in_a_dict(nb: Notebook) -> tuple[str, int, str]:
    tools: dict[str, Callable[[str], str]] = {"remember": nb.remember}
    a = await run_tool(tools, "remember", "x")
    n = await notes(nb, 0.0)
    b = await run_tool(tools, "remember", "y")
    return a, n, b


@flow
async def tools_in_a_registry(nb: Notebook) -> tuple[str, int]:
    registry = Registry()
    registry.add("remember", nb.remember)
    a = await call_registered(registry, "remember", "x")
    n = await notes(nb, 0.0)
    return a, n


@flow
async def timed(text: str) -> tuple[str, bool]:
    start = time.perf_counter()
    answer = await slow(text)
    took = time.perf_counter() - start
    return answer, took >= 0.03


@flow
async def file_read_after_write(path: str) -> int:
    await write(path, "hello world")
    size = os.path.getsize(path)
    return size + len(await slow(str(size)))


@flow
async def deleted_name(n: int) -> tuple[int, int]:
    rows = raw = await load(n)
    other = await load(n + 1)
    del raw
    by_key = {k: await count([k], 0.0) for k in other}
    total = sum([await count([r], 0.0) for r in rows])
    return total, len(by_key)
"""

CASES = [
    "stored_then_appended",
    "appended_then_changed",
    "tools_in_a_dict",
    "tools_in_a_registry",
    "timed",
    "file_read_after_write",
    "deleted_name",
]


@pytest.mark.parametrize("name", CASES)
def test_the_compiled_flow_computes_what_the_source_does(
    name: str, tmp_path: Path
) -> None:
    compiled, source = compiled_and_source(FLOWS, tmp_path)

    def arguments(module: ModuleType) -> tuple[object, ...]:
        if name.startswith("tools"):
            return (module.Notebook(),)
        if name == "timed":
            return ("hi",)
        if name == "file_read_after_write":
            return (str(tmp_path / f"{module is compiled}.txt"),)
        return (3,)

    expected_args = arguments(source)
    expected = asyncio.run(getattr(source, name)(*expected_args))
    given = arguments(compiled)
    assert getattr(compiled, name)(*given) == expected
    if name.startswith("tools"):  # the notebook's own record, in the source's order
        assert given[0].notes == expected_args[0].notes  # type: ignore[attr-defined]


DELETED_APART = """
import asyncio
from kiln import flow, node

LOG: list[str] = []


@node
async def f(a: int) -> int:
    LOG.append(f"start {a}")
    await asyncio.sleep(0.02)
    LOG.append(f"end {a}")
    return a * 2


@flow
async def apart(x: int) -> str:
    d = {"k": 1}
    d["k"] += await f(x)
    t = 0
    del t
    t = await f(1)
    counts = {"k": 0}
    for i in range(2):
        counts["k"] = i + 2
    return repr(d) + repr(t) + repr(counts)
"""


def test_a_deleted_name_orders_only_what_uses_the_name(tmp_path: Path) -> None:
    """`del t` stays in the flow's own frame, ordered by `t` alone: the call
    after it does not wait for the unrelated call before it (trial Q7), and a
    number stored in a dict shares nothing with the loop that made it."""
    path = tmp_path / "apart.py"
    path.write_text(DELETED_APART, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    assert [d.message for d in compilation.diagnostics] == []
    compiled, source = compiled_and_source(DELETED_APART, tmp_path / "run")
    assert compiled.apart(3) == asyncio.run(source.apart(3))
    assert sorted(compiled.LOG[:2]) == ["start 1", "start 3"]  # the calls overlap
