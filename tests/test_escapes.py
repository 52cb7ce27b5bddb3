"""What a flow's objects can be reached through: each way is ordered as the source runs it.

The shapes a user trying kiln as a new user wrote in LangGraph and streaming
style, each of which once compiled to a flow that computed something else,
silently: the object an awaited value is appended to, read before the call
(`state["messages"].append(await respond(state))`); an item or attribute
added to with `+=` around a call; a bound method handed to a node, wrapped in
a `functools.partial` or returned by one; an argument a node stores inside
another argument; module state a statement of the flow writes and a later
node reads; a lifted call's value changed by the call it is passed to. The
nodes sleep so that running two steps at once would give the other result:
every case fails if kiln overlaps what it must order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType

import pytest

from kiln import Memory
from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
import functools
from collections.abc import Callable
from typing import Any

from kiln import flow, node


@node
async def respond(state: dict[str, Any]) -> str:
    await asyncio.sleep(0.02)
    return f"r{len(state['messages'])}"


@node
async def count(items: list[str]) -> int:
    return len(items)


@node
async def count_messages(state: dict[str, Any]) -> int:
    return len(state["messages"])


@node
async def double(n: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * n


@node
async def stream_tokens(prompt: str, on_token: Callable[[str], None]) -> str:
    for token in prompt.split():
        await asyncio.sleep(0.005)
        on_token(token)
    return prompt


@node
async def later(act: Callable[[], object]) -> int:
    await asyncio.sleep(0.02)
    act()
    return 0


@node
async def store(box: dict[str, Any], items: list[str]) -> int:
    await asyncio.sleep(0.01)
    box["items"] = items
    return 0


@node
async def push(box: dict[str, Any], value: str) -> int:
    await asyncio.sleep(0.02)
    box["items"].append(value)
    return 0


@node
async def appender(items: list[str]) -> Callable[[str], None]:
    return items.append


@node
async def apply(add: Callable[[str], None], value: str) -> int:
    await asyncio.sleep(0.02)
    add(value)
    return 0


@node
async def same(items: list[str]) -> list[str]:
    return items


@node
async def grow(items: list[str]) -> int:
    await asyncio.sleep(0.02)
    items.append("grown")
    return 0


MODE = {"mode": "start"}


@node
async def read_mode() -> str:
    return MODE["mode"]


class Tally:
    total = 1


@flow
async def append_reply(question: str) -> int:
    state: dict[str, Any] = {"messages": [question]}
    state["messages"].append(await respond(state))
    return await count_messages(state)


@flow
async def add_to_item(n: int) -> dict[str, Any]:
    state: dict[str, Any] = {"total": 1, "draft": "v", "log": ["a"]}
    state["total"] += await double(n)
    state["draft"] += str(await double(n))
    state["log"] += [str(await double(n))]
    return state


@flow
async def add_to_attribute(n: int) -> int:
    tally = Tally()
    tally.total += await double(n)
    return tally.total


@flow
async def bound_method(prompt: str) -> tuple[int, str, int]:
    tokens: list[str] = []
    before = await count(tokens)
    text = await stream_tokens(prompt, tokens.append)
    after = await count(tokens)
    return before, text, after


@flow
async def partial_of_a_method(n: int) -> int:
    items: list[str] = []
    await later(functools.partial(items.append, "p"))
    return n + await count(items)


@flow
async def stored_inside(n: int) -> tuple[int, int]:
    box: dict[str, Any] = {}
    items = ["a"]
    await store(box, items)
    first = await count(items)
    await push(box, "b")
    return first, await count(items)


@flow
async def returned_method(n: int) -> int:
    items: list[str] = []
    add = await appender(items)
    await apply(add, "y")
    return n + await count(items)


@flow
async def module_state(n: int) -> str:
    doubled = await double(n)
    MODE["mode"] = f"set after {doubled}"
    return await read_mode()


@flow
async def through_a_value(n: int) -> int:
    items = ["a"]
    await grow(await same(items))
    return n + await count(items)
"""

CASES = [
    ("append_reply", ("hi",)),
    ("add_to_item", (5,)),
    ("add_to_attribute", (5,)),
    ("bound_method", ("a b c",)),
    ("partial_of_a_method", (1,)),
    ("stored_inside", (1,)),
    ("returned_method", (1,)),
    ("module_state", (4,)),
    ("through_a_value", (1,)),
]


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(FLOWS, tmp_path_factory.mktemp("escapes"))


@pytest.mark.parametrize(("name", "args"), CASES)
def test_the_compiled_flow_computes_what_its_source_does(
    name: str, args: tuple[object, ...], flows: tuple[ModuleType, ModuleType]
) -> None:
    compiled, source = flows
    source.MODE["mode"] = "start"
    expected = asyncio.run(getattr(source, name)(*args))
    compiled.MODE["mode"] = "start"
    assert getattr(compiled, name)(*args) == expected
    compiled.MODE["mode"] = "start"
    capped = type(getattr(compiled, name))(concurrency=2)
    assert asyncio.run(capped.aforward(*args)) == expected


def test_the_warnings_name_the_source_not_kilns_temporaries(tmp_path: Path) -> None:
    path = tmp_path / "escapes.py"
    path.write_text(FLOWS, encoding="utf-8")
    compilation = compile_file(path)
    warned = [d.message for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER]
    assert warned
    assert not [message for message in warned if "_kiln" in message]
    assert any('calls state["messages"].append' in message for message in warned)


def test_a_generator_that_awaits_is_refused_as_the_source_fails_on_it(
    tmp_path: Path,
) -> None:
    """`sum(await f(x) for x in xs)` is an async generator: the source raises TypeError."""
    path = tmp_path / "awaiting.py"
    path.write_text(
        "from kiln import flow, node\n\n\n"
        "@node\nasync def f(x: int) -> int:\n    return x\n\n\n"
        "@flow\nasync def total(xs: list[int]) -> int:\n"
        "    return sum(await f(x) for x in xs)\n",
        encoding="utf-8",
    )
    compilation = compile_file(path)
    assert compilation.output is None
    [error] = [d for d in compilation.diagnostics if d.code is Code.FAN_OUT_SHAPE]
    assert (error.span.line, error.span.column) == (11, 16)
    assert "async generator" in error.message


MEMORY_FLOWS = """
import asyncio

from kiln import Memory, flow, node


@node
async def local_write(memory: Memory, key: str, value: int) -> None:
    await asyncio.sleep(0.01)
    memory.local[key] = value


@node
async def set_key(memory: Memory, key: str, value: int) -> None:
    await asyncio.sleep(0.01)
    memory[key] = value


@node
async def get_key(memory: Memory, key: str) -> int:
    return int(memory[key])


@flow
async def clone_in_a_list(memory: Memory) -> int:
    branches = [memory.clone(), memory.clone()]
    await local_write(branches[0], "z", 7)
    return await get_key(branches[0], "z")


@flow
async def clones_in_a_loop(memory: Memory) -> list[int]:
    branches = [memory.clone(), memory.clone()]
    keys = ["a", "b"]
    for branch, key in zip(branches, keys):
        await set_key(branch, key, 7)
    return [await get_key(branch, key) for branch, key in zip(branches, keys)]


@flow
async def read_back_through_the_original(memory: Memory) -> int:
    branches = [memory.clone({"topic": t}) for t in ("a", "b")]
    await set_key(branches[0], "section", 7)
    return await get_key(memory, "section")


@flow
async def reduced_after_a_loop_of_branches(memory: Memory) -> int:
    branches = [memory.clone()]
    for branch in branches:
        await set_key(branch, "section", 7)
    return await get_key(memory, "section")
"""


@pytest.mark.parametrize(
    "name",
    [
        "clone_in_a_list",
        "clones_in_a_loop",
        "read_back_through_the_original",
        "reduced_after_a_loop_of_branches",
    ],
)
def test_a_memory_reached_through_a_container_is_ordered_by_its_holder(
    name: str, tmp_path: Path
) -> None:
    """BrainyFlow's list of clones, one per branch: a node that writes keys of a
    Memory kiln cannot name changes what holds it."""
    compiled, source = compiled_and_source(MEMORY_FLOWS, tmp_path)
    expected = asyncio.run(getattr(source, name)(Memory({})))
    assert getattr(compiled, name)(Memory({})) == expected


FAILING_FLOWS = """
import asyncio
from dataclasses import dataclass

from kiln import flow, node


@dataclass
class Account:
    balance: int


@node
async def slow_fail(n: int) -> int:
    await asyncio.sleep(0.02)
    raise LookupError(f"slow {n}")


@node
async def append_to(log: list[str], entry: str) -> int:
    log.append(entry)
    return len(log)


@node
async def deposit(account: Account, amount: int) -> int:
    account.balance += amount
    return account.balance


@flow
async def effect_after_a_failure(log: list[str]) -> int:
    first = await slow_fail(1)
    count = await append_to(log, "after the failure")
    return first + count


@flow
async def deposit_after_a_failure(account: Account, n: int) -> int:
    checked = await slow_fail(n)
    if n > 0:
        await deposit(account, 100)
    return checked
"""


def test_what_the_caller_passed_in_is_left_as_the_failing_source_leaves_it(
    tmp_path: Path,
) -> None:
    """A step that changes a parameter's object waits for every step before it: one
    of them failing ends the flow before the change, as in the source."""
    compiled, source = compiled_and_source(FAILING_FLOWS, tmp_path)
    runs = [
        (source.Account, lambda name, *args: asyncio.run(getattr(source, name)(*args))),
        (compiled.Account, lambda name, *args: getattr(compiled, name)(*args)),
    ]
    for account_class, run in runs:
        log: list[str] = []
        with pytest.raises(LookupError, match="slow 1"):
            run("effect_after_a_failure", log)
        assert log == []
        account = account_class(3)
        with pytest.raises(LookupError, match="slow 2"):
            run("deposit_after_a_failure", account, 2)
        assert account.balance == 3


WRAPPED = """
import asyncio
from typing import Any

from kiln import Memory, flow, node


@node
async def poke(store: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)
    store["a"] = 1


@node
async def get_key(memory: Memory, key: str) -> int:
    return int(memory[key])


@node
async def set_key(memory: Memory, key: str, value: int) -> None:
    await asyncio.sleep(0.01)
    memory[key] = value


@node
async def size(store: dict[str, Any]) -> int:
    return len(store)


@flow
async def memory_over_a_dict(store: dict[str, Any]) -> int:
    memory = Memory(store)
    await poke(store)
    return await get_key(memory, "a")


@flow
async def dict_under_a_memory(store: dict[str, Any]) -> int:
    memory = Memory(store)
    await set_key(memory, "b", 2)
    return await size(store)
"""


@pytest.mark.parametrize("name", ["memory_over_a_dict", "dict_under_a_memory"])
def test_a_memory_made_over_a_dict_is_that_dict(name: str, tmp_path: Path) -> None:
    """`Memory(store)`: its global store is `store`'s object, so changing one is
    writing the other, in both directions."""
    compiled, source = compiled_and_source(WRAPPED, tmp_path)
    assert getattr(compiled, name)({}) == asyncio.run(getattr(source, name)({}))


def test_the_warning_names_the_memory_key_written_over_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "wrapped.py"
    path.write_text(WRAPPED, encoding="utf-8")
    warned = [
        d.message for d in compile_file(path).diagnostics if d.code is Code.EFFECT_ORDER
    ]
    assert any(
        "'set_key' may change 'store': it writes the key 'b' of the Memory made "
        "over it" in message
        for message in warned
    ), warned
    assert not [message for message in warned if "@g:" in message]
