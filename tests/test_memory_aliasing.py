"""A value a Memory holds is one object however the flow reaches it, as the source runs it.

kiln orders a Memory's uses by its keys, and the flow's other values by the
names that may hold one object; it once kept the two apart. A list read out
of a Memory (`held = memory["items"]`, a node returning `memory.items`), a
list the flow or a node stored in one (`memory["items"] = items`, `Memory({"items":
items})`), a Memory held by a name kiln did not take for one (`memory if flag
else other`, a loop over `[memory]`, a dict holding it, a list a node keeps
it in), a Memory's local store held as a dict (`memory.local`, by the flow or
in a node, `Memory({}, loc)`),
and a key a node stores another key's value under (`memory.b = memory.a`):
each changed through one side while a node read it through the other, and
the compiled flow overlapped them. Each flow here does that; the nodes sleep
so that overlapping the two gives the other result.
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
from typing import Any

from kiln import Memory, flow, node


@node
async def count(memory: Memory, key: str) -> int:
    await asyncio.sleep(0.02)
    return len(memory[key])


@node
async def fetch(memory: Memory, key: str) -> list[int]:
    return memory[key]


@node
async def keep(memory: Memory, key: str, items: list[int]) -> None:
    memory[key] = items


@node
async def keep_by_setattr(memory: Memory, key: str, items: list[int]) -> None:
    setattr(memory, key, items)


@node
async def grow(memory: Memory) -> None:
    await asyncio.sleep(0.005)
    memory["a"].append(5)


@node
async def alias(memory: Memory) -> None:
    memory.b = memory.a


@node
async def setk(memory: Memory, key: str, value: Any) -> None:
    await asyncio.sleep(0.01)
    memory[key] = value


@node
async def getk(memory: Memory, key: str) -> Any:
    await asyncio.sleep(0.001)
    return memory.get(key)


@node
async def fill(table: dict[str, Any], key: str, value: Any) -> None:
    await asyncio.sleep(0.01)
    table[key] = value


@node
async def fill_view(memory: Memory) -> None:
    view = memory.local
    await asyncio.sleep(0.01)
    view["x"] = 9


@node
async def total(items: list[int]) -> int:
    await asyncio.sleep(0.001)
    return sum(items)


@node
async def push(items: list[int], value: int) -> None:
    await asyncio.sleep(0.001)
    items.append(value)


@node
async def stash(box: list[Any], memory: Memory) -> None:
    box.append(memory)


@node
async def wrap(memory: Memory) -> list[Memory]:
    return [memory]


@node
async def first_k(box: list[Any]) -> Any:
    await asyncio.sleep(0.001)
    return box[0].get("k")


@flow
async def read_into_a_name() -> tuple[int, int]:
    memory = Memory({"items": [1]})
    held = memory["items"]
    n = await count(memory, "items")
    held.append(2)
    return n, await total(held)


@flow
async def attribute_handed_to_a_node() -> int:
    memory = Memory({"items": [1]})
    held = memory.items
    n = await count(memory, "items")
    await push(held, 2)
    return n


@flow
async def returned_by_a_node() -> tuple[int, int]:
    memory = Memory({"items": [1]})
    held = await fetch(memory, "items")
    n = await count(memory, "items")
    held.append(2)
    return n, await total(held)


@flow
async def stored_by_the_flow() -> tuple[int, int]:
    memory = Memory()
    items = [1]
    memory["items"] = items
    n = await count(memory, "items")
    items.append(2)
    return n, await total(items)


@flow
async def stored_by_a_node() -> int:
    memory = Memory()
    items = [1]
    await keep(memory, "items", items)
    n = await count(memory, "items")
    await push(items, 2)
    return n


@flow
async def stored_by_setattr_in_a_node() -> int:
    memory = Memory()
    items = [1]
    await keep_by_setattr(memory, "items", items)
    n = await count(memory, "items")
    await push(items, 2)
    return n


@flow
async def made_over_a_literal() -> tuple[int, int]:
    items = [1]
    memory = Memory({"items": items})
    n = await count(memory, "items")
    items.append(2)
    return n, await total(items)


@flow
async def chosen_by_a_condition(flag: bool) -> Any:
    memory = Memory({"k": 0})
    other = Memory({"k": 1})
    chosen = memory if flag else other
    await setk(memory, "k", 7)
    return await getk(chosen, "k")


@flow
async def a_loop_over_memories() -> list[Any]:
    memory = Memory({"k": 0})
    branch = memory.clone()
    seen = []
    await setk(branch, "k", 7)
    for each in [memory]:
        seen.append(await getk(each, "k"))
    return seen


@flow
async def held_in_a_dict() -> int:
    memory = Memory({"a": [1]})
    box = {"m": memory}
    n = await count(memory, "a")
    await grow(box["m"])
    return n


@flow
async def a_key_stored_under_another() -> int:
    memory = Memory({"a": [1]})
    memory["b"] = memory["a"]
    n = await count(memory, "b")
    await grow(memory)
    return n


@flow
async def a_node_stores_a_key_under_another() -> int:
    memory = Memory({"a": [1]})
    await alias(memory)
    n = await count(memory, "b")
    await grow(memory)
    return n


@flow
async def the_local_view() -> Any:
    memory = Memory({}, {"x": 1})
    view = memory.local
    seen = await getk(memory, "x")
    await fill(view, "x", 9)
    return seen, await getk(memory, "x")


@flow
async def a_node_writes_through_the_local_view() -> Any:
    memory = Memory({}, {"x": 1})
    await fill_view(memory)
    return await getk(memory, "x")


@flow
async def made_over_a_local_dict() -> Any:
    table: dict[str, Any] = {"x": 1}
    memory = Memory({}, table)
    seen = await getk(memory, "x")
    await fill(table, "x", 9)
    return seen, await getk(memory, "x")


@flow
async def two_memories_over_one_dict() -> Any:
    table: dict[str, Any] = {"k": 0}
    first = Memory(table)
    second = Memory(table)
    await setk(first, "k", 5)
    return await getk(second, "k")


@flow
async def kept_whole_by_a_node() -> Any:
    memory = Memory({"k": 0})
    box: list[Any] = []
    await stash(box, memory)
    await setk(memory, "k", 7)
    return await first_k(box)


@flow
async def returned_whole_by_a_node() -> Any:
    memory = Memory({"k": 0})
    held = await wrap(memory)
    await setk(memory, "k", 7)
    return await first_k(held)
"""

CASES: list[tuple[str, tuple[object, ...]]] = [
    ("read_into_a_name", ()),
    ("attribute_handed_to_a_node", ()),
    ("returned_by_a_node", ()),
    ("stored_by_the_flow", ()),
    ("stored_by_a_node", ()),
    ("stored_by_setattr_in_a_node", ()),
    ("made_over_a_literal", ()),
    ("chosen_by_a_condition", (True,)),
    ("a_loop_over_memories", ()),
    ("held_in_a_dict", ()),
    ("a_key_stored_under_another", ()),
    ("a_node_stores_a_key_under_another", ()),
    ("the_local_view", ()),
    ("a_node_writes_through_the_local_view", ()),
    ("made_over_a_local_dict", ()),
    ("two_memories_over_one_dict", ()),
    ("kept_whole_by_a_node", ()),
    ("returned_whole_by_a_node", ()),
]


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(FLOWS, tmp_path_factory.mktemp("aliasing"))


@pytest.mark.parametrize(("name", "arguments"), CASES)
def test_a_value_in_a_memory_is_one_object(
    name: str, arguments: tuple[object, ...], flows: tuple[ModuleType, ModuleType]
) -> None:
    compiled, source = flows
    expected = asyncio.run(getattr(source, name)(*arguments))
    assert getattr(compiled, name)(*arguments) == expected
    capped = type(getattr(compiled, name))(concurrency=2)
    assert capped(*arguments) == expected
