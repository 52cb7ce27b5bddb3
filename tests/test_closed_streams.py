"""KLN318: an async stream the flow leaves early, whose cleanup makes a change.

The compiled flow closes a stream it stops reading at once (README); plain
Python leaves an async generator to the event loop's finalizer, which runs
its `finally:` at the flow's next suspension. Where that cleanup changes what
the flow can read, the two runs differ right after the loop, and kiln warns
at the loop; where it changes nothing the flow can see, or the loop reads the
stream to its end, or the stream is a sync generator (closed at once in both
runs), it does not.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file

HEADER = """
from collections.abc import AsyncIterator, Iterator

from kiln import flow, node
"""


def stream(cleanup: str, *, kind: str = "async", around: str = "finally") -> str:
    """A stream node of `kind` whose `around` clause (of a try around its yield)
    runs `cleanup`."""
    define, returns = (
        ("async def", "AsyncIterator[str]")
        if kind == "async"
        else ("def", "Iterator[str]")
    )
    handler = "finally:" if around == "finally" else f"except {around}:"
    reraise = "" if around == "finally" else "\n        raise"
    return f"""
@node
{define} tokens(state: dict[str, bool]) -> {returns}:
    state["streaming"] = True
    try:
        for word in ["a", "stop", "c"]:
            yield word
    {handler}
        {cleanup}{reraise}
"""


def leaving(loop: str = "async for", leave: str = "break") -> str:
    return f"""
@flow
async def agent(state: dict[str, bool]) -> str:
    {loop} word in tokens(state):
        if word == "stop":
            {leave}
    return "open" if state["streaming"] else "closed"
"""


def closed_warnings(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "case.py"
    path.write_text(HEADER + source, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    (tmp_path / "compiled_case.py").write_text(compilation.output, encoding="utf-8")
    return [d.message for d in compilation.diagnostics if d.code is Code.CLOSED_STREAM]


WARNED = {
    "a_store_in_finally": stream('state["streaming"] = False') + leaving(),
    "a_store_in_except_generator_exit": stream(
        'state["streaming"] = False', around="GeneratorExit"
    )
    + leaving(),
    "a_container_changed": stream("state.update(streaming=False)") + leaving(),
    "a_return_in_the_loop": stream('state["streaming"] = False')
    + leaving(leave='return "stopped"'),
    "a_print": stream('print("closed")') + leaving(),
}

QUIET = {
    "read_to_its_end": stream('state["streaming"] = False') + leaving(leave="continue"),
    "a_cleanup_that_changes_nothing_seen": stream("pass") + leaving(),
    "a_sync_stream": stream('state["streaming"] = False', kind="sync")
    + leaving(loop="for"),
    "a_break_of_an_inner_loop": stream('state["streaming"] = False')
    + """
@flow
async def agent(state: dict[str, bool]) -> str:
    async for word in tokens(state):
        for letter in word:
            break
    return "open" if state["streaming"] else "closed"
""",
}


@pytest.mark.parametrize("case", sorted(WARNED))
def test_a_stream_closed_early_whose_cleanup_changes_something_is_warned(
    case: str, tmp_path: Path
) -> None:
    [message] = closed_warnings(tmp_path, WARNED[case])
    assert message.startswith("the stream of 'tokens' is closed where the flow")
    lines = (HEADER + WARNED[case]).splitlines()
    cleanup = next(n for n, line in enumerate(lines, 1) if "yield" in line) + 2
    assert f"at {tmp_path / 'case.py'}:{cleanup})" in message


@pytest.mark.parametrize("case", sorted(QUIET))
def test_no_warning_where_the_runs_cannot_differ(case: str, tmp_path: Path) -> None:
    assert closed_warnings(tmp_path, QUIET[case]) == []


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_warned_difference_is_the_one_the_runs_show(tmp_path: Path) -> None:
    """What the warning says: compiled, the cleanup has run after the loop;
    plain Python, it has not yet."""
    closed_warnings(tmp_path, WARNED["a_store_in_finally"])
    source = load(tmp_path / "case.py", "closed_streams_source")
    compiled = load(tmp_path / "compiled_case.py", "closed_streams_compiled")
    assert asyncio.run(source.agent({})) == "open"
    assert compiled.agent({}) == "closed"
