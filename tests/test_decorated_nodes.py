"""A node your own decorator wraps may return any awaitable (trial Q5, finding 15).

`@node @logged async def search`, with `logged` typed `Callable[[str],
Awaitable[str]] -> Callable[[str], Awaitable[str]]`, is how an async decorator
is typed: the compiled module failed `mypy --strict` (`Scope.spawn` took a
coroutine alone), and `kiln check` showed kiln's own names at the user's lines.
A decorator that returns another awaitable (`asyncio.ensure_future(fn(q))`)
crashed the compiled flow, "a coroutine was expected", where the source ran.
Now a task the scope spawns may be any awaitable: the call's value, awaited.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kiln import Scope
from kilnc.pipeline import compile_file
from tests.test_typecheck import mypy_strict

HEADER = """
import asyncio
from collections.abc import Awaitable, Callable

from kiln import flow, node

CALLS: list[str] = []


def logged(fn: Callable[[str], Awaitable[str]]) -> Callable[[str], Awaitable[str]]:
    async def wrapper(q: str) -> str:
        CALLS.append(q)
        return await fn(q)

    return wrapper


def eager(fn: Callable[[str], Awaitable[str]]) -> Callable[[str], Awaitable[str]]:
    def wrapper(q: str) -> Awaitable[str]:
        return asyncio.ensure_future(fn(q))

    return wrapper
"""
# How the node is wrapped, and the options it is given.
WRAPPED = {
    "a_typed_async_decorator": ("@logged", "@node"),
    "a_future": ("@eager", "@node"),
    "a_future_retried": ("@eager", "@node(retries=2)"),
    "a_future_cached": ("@eager", "@node(cache=True)"),
}
BODY = """
{options}
{wrapper}
async def search(q: str) -> str:
    await asyncio.sleep(0.01)
    return q * 2


@flow
async def main() -> str:
    a = await search("a")
    b = await search("b")
    each = [await search(x) for x in ["c", "d"]]
    return a + b + "".join(each)
"""

RUNNER = """
import asyncio, importlib, sys
sys.path.insert(0, sys.argv[1])
module = importlib.import_module(sys.argv[2])
if sys.argv[3] == "source":
    print(asyncio.run(module.main()))
else:
    events = []
    observed = module.Main(on_event=events.append)
    print(module.main(), observed(), bool(events))
"""


def _run(directory: Path, module: str, how: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(directory), module, how],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=directory,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


@pytest.mark.parametrize("case", sorted(WRAPPED))
def test_a_node_wrapped_by_a_decorator_runs_and_type_checks(
    case: str, tmp_path: Path
) -> None:
    wrapper, options = WRAPPED[case]
    source = tmp_path / "agent.py"
    source.write_text(
        HEADER + textwrap.dedent(BODY).format(options=options, wrapper=wrapper),
        encoding="utf-8",
    )
    mypy_strict([source])
    compilation = compile_file(source)
    assert compilation.output is not None, compilation.diagnostics
    compiled = tmp_path / "compiled_agent.py"
    compiled.write_text(compilation.output, encoding="utf-8")
    assert "scope.spawn(search(" in compilation.output  # the call is the task
    mypy_strict([compiled])
    expected = _run(tmp_path, "agent", "source")
    assert expected == "aabbccdd"
    assert _run(tmp_path, "compiled_agent", "compiled") == f"{expected} {expected} True"


class _Ready:
    """An awaitable that is no coroutine, as a user's decorator may return."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __await__(self):  # type: ignore[no-untyped-def]
        yield from asyncio.sleep(0).__await__()
        return self.value


def test_a_scope_spawns_any_awaitable() -> None:
    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        loop.call_soon(future.set_result, "future")
        async with Scope(ordered=True) as scope:
            children = [
                scope.spawn(future, step=0),
                scope.spawn(asyncio.ensure_future(asyncio.sleep(0, "task")), step=1),
                scope.spawn(_Ready("ready"), step=2),
            ]
        return [await child for child in children]

    assert asyncio.run(run()) == ["future", "task", "ready"]


def test_a_scope_refuses_what_is_not_awaitable() -> None:
    async def run() -> None:
        async with Scope() as scope:
            scope.spawn(42)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="expected an awaitable; got 42"):
        asyncio.run(run())
