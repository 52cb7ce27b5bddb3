"""A streaming flow asked for its items from more than one task.

A compiled streaming flow is an async generator. Its items may be asked for
from a task per item: `kiln.iterate` drives a sync stream one `__anext__`
per step of its own loop, `asyncio.wait_for(agen.__anext__(), t)` wraps each
in a task, and a sync flow that reads a sync streaming subflow and stops
early closes it from another task. A scope is bound to the task of its body,
so none may be open at a `yield`: a trial (Q9) found one open there when a
call after the `yield` started ahead of a plain statement, and the next item
raised `RuntimeError: at_step() is called by a scope's body or its children`,
or a consumer that stopped early got a bare CancelledError.

Each case runs the source and the compiled module in one fresh interpreter
and compares what every way of reading the stream gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.pipeline import compile_file

SOURCE = """
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

from kiln import flow, node


@node
async def fetch_rows(page: int) -> list[str]:
    await asyncio.sleep(0.01)
    return [f"row{page}.{i}" for i in range(2)]


@node(thread=True)
def render(page: int) -> str:
    time.sleep(0.01)
    return f"<page {page}>"


@flow
async def export(page: int) -> AsyncIterator[str]:
    yield "header"
    big = False
    if page > 100:
        big = True
    rows = await fetch_rows(page)
    yield ",".join(rows) + (" (big)" if big else "")
    for n in range(2):
        if n > 5:
            big = True
        more = await fetch_rows(page + n)
        yield more[0]


@flow
def report(page: int) -> Iterator[str]:
    yield "title"
    if page % 2 == 0:
        pass
    html = render(page)
    yield html


@flow
def summary(page: int) -> list[str]:
    out: list[str] = []
    for part in report(page):
        out.append(part)
    return out


@flow
def title_then_render(page: int) -> str:
    title = ""
    for part in report(page):
        title = part
        break
    return title + render(page + 1)
"""

RUNNER = """
import asyncio, importlib, json, sys
sys.path.insert(0, sys.argv[1])
source, compiled = (importlib.import_module(name) for name in ("flows", "compiled"))


async def item_by_item(stream):
    items = []
    while True:
        try:
            items.append(await asyncio.wait_for(stream.__anext__(), 5))
        except StopAsyncIteration:
            return items


async def collect(stream):
    return [item async for item in stream]


def outcome(thunk):
    try:
        return ["value", thunk()]
    except BaseException as error:
        return ["raised", type(error).__name__, str(error)]


ways = {
    "a task per item": (
        lambda m: asyncio.run(item_by_item(m.export(1))),
        lambda m: asyncio.run(item_by_item(m.export.astream(1))),
    ),
    "the sync iterator": (
        lambda m: asyncio.run(collect(m.export(1))),
        lambda m: list(m.export.stream(1)),
    ),
    "a sync streaming flow": (lambda m: list(m.report(1)), lambda m: list(m.report(1))),
    "a sync flow reading it": (lambda m: m.summary(2), lambda m: m.summary(2)),
    "a sync flow that stops early": (
        lambda m: m.title_then_render(3),
        lambda m: m.title_then_render(3),
    ),
}
print(json.dumps({
    way: [outcome(lambda: plain(source)), outcome(lambda: built(compiled))]
    for way, (plain, built) in ways.items()
}))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[object]]:
    directory = tmp_path_factory.mktemp("streams")
    source = directory / "flows.py"
    source.write_text(textwrap.dedent(SOURCE), encoding="utf-8")
    compilation = compile_file(source)
    assert compilation.output is not None, compilation.diagnostics
    (directory / "compiled.py").write_text(compilation.output, encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    found: dict[str, list[object]] = json.loads(ran.stdout)
    return found


WAYS = [
    "a task per item",
    "the sync iterator",
    "a sync streaming flow",
    "a sync flow reading it",
    "a sync flow that stops early",
]


@pytest.mark.parametrize("way", WAYS)
def test_a_stream_read_from_other_tasks_gives_the_source_s_items(
    way: str, outcomes: dict[str, list[object]]
) -> None:
    source, compiled = outcomes[way]
    assert source[0] == "value", source
    assert compiled == source


def test_no_scope_is_open_at_a_yield(tmp_path: Path) -> None:
    """The shape the trial found: a call after a `yield` started ahead of a plain
    statement. The scope opens after the `yield` and closes before the next."""
    source = tmp_path / "flows.py"
    source.write_text(textwrap.dedent(SOURCE), encoding="utf-8")
    output = compile_file(source).output
    assert output is not None
    for line_number, line in enumerate(output.splitlines()):
        if line.lstrip().startswith("yield "):
            indent = len(line) - len(line.lstrip())
            opened = [
                above
                for above in output.splitlines()[:line_number]
                if "async with _kiln.Scope(" in above
                and len(above) - len(above.lstrip()) < indent
            ]
            # Every scope above a yield was closed (dedented past) before it.
            assert not opened or all(
                _closed_before(output.splitlines(), scope_line, line_number)
                for scope_line in opened
            ), line


def _closed_before(lines: list[str], scope_line: str, yield_at: int) -> bool:
    start = lines.index(scope_line)
    depth = len(scope_line) - len(scope_line.lstrip())
    return any(
        line.strip() and len(line) - len(line.lstrip()) <= depth
        for line in lines[start + 1 : yield_at]
    )
