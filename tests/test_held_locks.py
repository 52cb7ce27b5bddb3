"""A lock one node acquires and the next releases keeps their order.

`begin_batch` does `_LOCK.acquire()`, `commit_batch` does `_LOCK.release()`
(the first call waits longer, so a missing order shows in every run):
the source releases what it acquired; the compiled flow ran the two thread
nodes at once and released first, `RuntimeError: release unlocked lock`
(trial Q10 §15). A lock's `acquire` and `release` called as methods now
change it; `with LOCK:`, which pairs them inside one call, still reads it,
and nodes that guard their work so overlap.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

SOURCE = """
import asyncio
import threading
import time

from kiln import flow, node

_LOCK = threading.Lock()
_GATE = threading.Semaphore(1)
_ALOCK = asyncio.Lock()
SHARED: list[str] = []


@node(thread=True)
def begin_batch(name: str) -> str:
    time.sleep(0.05)
    _LOCK.acquire()
    return name


@node(thread=True)
def commit_batch(name: str) -> str:
    _LOCK.release()
    return name


@node(thread=True)
def take(name: str) -> str:
    time.sleep(0.05)
    _GATE.acquire()
    return name


@node(thread=True)
def give(name: str) -> str:
    _GATE.release()
    return name


@node
async def abegin(name: str) -> str:
    await asyncio.sleep(0.05)
    await _ALOCK.acquire()
    return name


@node
async def aend(name: str) -> str:
    _ALOCK.release()
    return name


@node(thread=True)
def guarded(name: str) -> str:
    with _LOCK:
        SHARED.append(name)
    return name


@flow
def batch(name: str) -> str:
    a = begin_batch(name)
    b = commit_batch(name)
    c = take(name)
    d = give(name)
    return a + b + c + d + str(_LOCK.locked())


@flow
async def abatch(name: str) -> str:
    a = await abegin(name)
    b = await aend(name)
    return a + b + str(_ALOCK.locked())


@flow
def both_guarded(name: str) -> list[str]:
    return [guarded(name), guarded(name + "!")]
"""


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(SOURCE, tmp_path_factory.mktemp("locks"))


def test_a_lock_held_from_one_node_to_the_next_keeps_their_order(
    modules: tuple[ModuleType, ModuleType],
) -> None:
    compiled, source = modules
    assert compiled.batch("w") == source.batch("w") == "wwwwFalse"


def test_an_asyncio_lock_held_across_nodes_keeps_their_order(
    modules: tuple[ModuleType, ModuleType],
) -> None:
    compiled, source = modules
    assert compiled.abatch("w") == asyncio.run(source.abatch("w")) == "wwFalse"


def test_a_lock_taken_with_with_still_overlaps(tmp_path: Path) -> None:
    path = tmp_path / "locks.py"
    path.write_text(SOURCE, encoding="utf-8")
    compilation = compile_file(path)
    warned = {
        d.span.line for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER
    }
    lines = SOURCE.splitlines()
    assert lines.index("    b = commit_batch(name)") + 1 in warned
    both = lines.index('    return [guarded(name), guarded(name + "!")]') + 1
    assert both not in warned
