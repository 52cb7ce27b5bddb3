"""A Memory read by name or whole is ordered after the writes of its keys.

`getattr(memory, key)` and `hasattr(memory, key)` read the key as
`memory[key]` does; `repr(memory)`, `f"{memory}"`, `copy.deepcopy(memory)`
and `json.dumps` of its store read every key. kiln read none of them, so a
node doing so ran before the node that wrote the key, and the compiled flow
raised `AttributeError` or printed an empty store where the source did not
(trial L).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent

import pytest

from kiln import Memory
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
import copy

from kiln import Memory, flow, node


@node
async def setter(memory: Memory, key: str) -> None:
    await asyncio.sleep(0.03)
    memory[key] = 1


@node
async def by_getattr(memory: Memory, key: str) -> int:
    value: int = getattr(memory, key)
    return value


@node
async def by_hasattr(memory: Memory, key: str) -> bool:
    return hasattr(memory, key)


@node
async def by_repr(memory: Memory) -> str:
    return repr(memory)


@node
async def by_format(memory: Memory) -> str:
    return f"{memory}"


@node
async def by_copy(memory: Memory) -> str:
    return repr(copy.deepcopy(memory))


@flow
async def read_getattr(memory: Memory, key: str) -> int:
    await setter(memory, key)
    return await by_getattr(memory, key)


@flow
async def read_hasattr(memory: Memory, key: str) -> bool:
    await setter(memory, key)
    return await by_hasattr(memory, key)


@flow
async def read_whole(memory: Memory, key: str) -> list[str]:
    await setter(memory, key)
    a = await by_repr(memory)
    b = await by_format(memory)
    c = await by_copy(memory)
    return [a, b, c]
"""


@pytest.mark.parametrize("flow", ["read_getattr", "read_hasattr", "read_whole"])
def test_a_memory_read_by_name_or_whole_waits_for_the_write(
    flow: str, tmp_path: Path
) -> None:
    compiled, source = compiled_and_source(dedent(FLOWS), tmp_path)
    expected = asyncio.run(getattr(source, flow)(Memory({}), "p"))
    assert asyncio.run(getattr(compiled, flow).aforward(Memory({}), "p")) == expected
