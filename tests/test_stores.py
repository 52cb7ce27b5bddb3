"""A node's value stored into an item or an attribute changes what holds it, as the source runs it.

`state["draft"] = await write(state)` is LangGraph's every line: the store
changes `state`, so a later node given `state` must see it. kiln once made the
call the step and the store part of it, read but not written, and a later
reader overlapped the call and saw `state` without the draft. Each flow here
stores a node's value through another shape of target and then hands the
holder (or an alias of it) to a node; the nodes sleep so that overlapping the
reader with the store gives the other result.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from types import ModuleType

import pytest

from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
from dataclasses import dataclass, field
from typing import Any

from kiln import flow, node


@dataclass
class Box:
    count: int = 0
    items: list[list[int]] = field(default_factory=lambda: [[0]])


@node
async def slow(x: int) -> int:
    await asyncio.sleep(0.02)
    return x + 1


@node
async def slow_list(x: int) -> list[int]:
    await asyncio.sleep(0.02)
    return [x, x]


@node
async def keys(d: dict[str, Any]) -> list[str]:
    return sorted(d)


@node
async def peek(box: Box) -> int:
    return box.count


@node
async def listed(xs: list[Any]) -> list[Any]:
    return list(xs)


@node(thread=True)
def slow_sync(x: int) -> int:
    import time

    time.sleep(0.02)
    return x + 1


@node(thread=True)
def keys_sync(d: dict[str, Any]) -> list[str]:
    return sorted(d)


@flow
async def item(state: dict[str, Any]) -> list[str]:
    state["a"] = await slow(1)
    state["b"] = await slow(state["a"])
    return await keys(state)


@flow
async def item_of_a_local(names: list[str]) -> list[str]:
    d: dict[str, Any] = {}
    for name in names:
        d[name] = await slow(1)
    return await keys(d)


@flow
async def attribute(box: Box) -> int:
    box.count = await slow(1)
    return await peek(box)


@flow
async def attribute_of_a_local(n: int) -> int:
    box = Box()
    box.count = await slow(n)
    return await peek(box)


@flow
async def through_an_alias(box: Box) -> int:
    other = box
    other.count = await slow(3)
    return await peek(box)


@flow
async def annotated(state: dict[str, Any]) -> list[str]:
    state["a"]: int = await slow(1)
    return await keys(state)


@flow
async def unpacked_into_items(state: dict[str, Any]) -> list[str]:
    state["a"], n = await slow_list(1)
    return await keys(state) + [str(n)]


@flow
async def slice_of_a_list(xs: list[int]) -> list[int]:
    xs[:] = await slow_list(5)
    return await listed(xs)


@flow
async def nested_item(box: Box) -> list[int]:
    box.items[0][0] = await slow(5)
    return await listed(box.items[0])


@flow
def sync_flow(state: dict[str, Any]) -> list[str]:
    state["a"] = slow_sync(1)
    return keys_sync(state)
"""

CASES: list[tuple[str, Callable[[ModuleType], tuple[object, ...]]]] = [
    ("item", lambda m: ({},)),
    ("item_of_a_local", lambda m: (["x", "y"],)),
    ("attribute", lambda m: (m.Box(),)),
    ("attribute_of_a_local", lambda m: (2,)),
    ("through_an_alias", lambda m: (m.Box(),)),
    ("annotated", lambda m: ({},)),
    ("unpacked_into_items", lambda m: ({},)),
    ("slice_of_a_list", lambda m: ([1],)),
    ("nested_item", lambda m: (m.Box(),)),
    ("sync_flow", lambda m: ({},)),
]


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(FLOWS, tmp_path_factory.mktemp("stores"))


@pytest.mark.parametrize(("name", "arguments"), CASES)
def test_a_reader_after_a_store_sees_it(
    name: str,
    arguments: Callable[[ModuleType], tuple[object, ...]],
    flows: tuple[ModuleType, ModuleType],
) -> None:
    compiled, source = flows  # each run is given new arguments: the flows change them
    reference = getattr(source, name)
    expected = reference(*arguments(source))
    if inspect.iscoroutine(expected):
        expected = asyncio.run(expected)
    assert getattr(compiled, name)(*arguments(compiled)) == expected
    capped = type(getattr(compiled, name))(concurrency=2)
    assert capped(*arguments(compiled)) == expected
