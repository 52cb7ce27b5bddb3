"""KLN111: a node with `retries` that may change what it is passed is warned about.

A failed attempt's change stays and the next attempt makes it again (the
trial's `acc.append(x)` then a transient failure gave `[2, 5, 5]`, a value no
run of the source gives), so every call of such a node gets a located warning:
in the flow, in a fan-out's element and in a nested block. A retried node that
changes nothing it is passed, or a changing node without retries, gets none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import kiln, write

NODES = """
from kiln import flow, node


@node(retries=2)
async def add(acc: list[int], x: int) -> int:
    acc.append(x)
    return len(acc)


@node(retries=2)
async def count(acc: list[int]) -> int:
    return len(acc)


@node
async def plain(acc: list[int], x: int) -> int:
    acc.append(x)
    return len(acc)
"""

WARNED = {
    "a call": "    n = await add(acc, x)\n    return [n, *acc]",
    "a fan-out": "    ns = [await add(acc, y) for y in range(x)]\n    return ns + acc",
    "a branch": "    if x:\n        await add(acc, x)\n    return acc",
    "a loop": "    for y in range(x):\n        await add(acc, y)\n    return acc",
}
QUIET = {
    "a retried reader": "    n = await count(acc)\n    return [n]",
    "a changer without retries": "    n = await plain(acc, x)\n    return [n, *acc]",
}


def compile_flow(tmp_path: Path, body: str, *extra: str) -> tuple[int, str]:
    source = NODES + (
        "\n\n@flow\nasync def g(x: int) -> list[int]:\n"
        f"    acc: list[int] = []\n{body}\n"
    )
    write(tmp_path / "f.py", source)
    result = kiln("compile", "f.py", "-o", "build", *extra, cwd=tmp_path)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("body", WARNED.values(), ids=list(WARNED))
def test_a_retried_node_that_changes_its_argument_is_warned_about(
    tmp_path: Path, body: str
) -> None:
    code, output = compile_flow(tmp_path, body)
    assert code == 0, output
    assert "warning: node 'add' has retries=2 and may change what it is passed" in (
        output
    )
    assert "(acc: " in output
    assert "acc.append)" in output
    assert "[KLN111]" in output
    code, output = compile_flow(tmp_path, body, "--warnings-as-errors")
    assert code == 1
    assert "error: node 'add' has retries=2" in output


@pytest.mark.parametrize("body", QUIET.values(), ids=list(QUIET))
def test_no_warning_without_both_a_change_and_retries(
    tmp_path: Path, body: str
) -> None:
    code, output = compile_flow(tmp_path, body)
    assert code == 0, output
    assert "KLN111" not in output


CLIENT = """
from dataclasses import dataclass, field

from kiln import flow, node


@dataclass
class State:
    history: list[str] = field(default_factory=list)


class Client:
    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[list[str]] = []

    async def chat(self, history: list[str]) -> str:
        self.calls += 1  # changes the client, keeps nothing it is given
        return str(len(history))

    async def remember(self, history: list[str]) -> str:
        self.seen.append(history)  # keeps what it is given
        return str(len(history))


CLIENT = Client()


@node
async def llm(state: State) -> str:
    return await CLIENT.{method}(state.history)


@node(retries=1)
async def reset(x: str) -> str:
    CLIENT.calls = 0
    return x


@flow
async def main() -> list[str]:
    state = State()
    a = await llm(state)
    return [a, await reset(a)]
"""


@pytest.mark.parametrize(("method", "warned"), [("chat", False), ("remember", True)])
def test_a_value_reaches_module_state_only_where_code_keeps_it(
    tmp_path: Path, method: str, warned: bool
) -> None:
    """A method of a module-level client that changes the client but keeps
    nothing it is given does not put its argument in module state, so a later
    retried node that changes the client changes nothing the flow passed it
    (trial Q5: a KLN111 on every retried node of an agent's loop); one that
    keeps its argument (`self.seen.append(history)`) does."""
    write(tmp_path / "f.py", CLIENT.replace("{method}", method))
    result = kiln("compile", "f.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("[KLN111]" in result.stdout + result.stderr) is warned
