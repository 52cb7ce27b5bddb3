"""A flow's own read of module state waits for the steps before it, as the source does.

`await warm(key); hit = CACHE[key]`: `warm` fills the module's dict, and the
source reads it after. kiln once spawned `warm` and read the dict at once,
so the compiled flow raised KeyError (or saw the old value) every time. A
read of a module-level value that code may change (a dict, a class's
attribute, a name some function declares `global`, through a project
helper, or in a node call's arguments) now keeps its place; a read of a
constant (a number, an Enum member) costs nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
from enum import Enum

from kiln import flow, node

CACHE: dict[str, str] = {}
LIMIT = 3
MODE = "draft"


class Config:
    mode = "draft"


class Grade(Enum):
    GOOD = "good"


@node
async def warm(key: str) -> None:
    await asyncio.sleep(0.02)
    CACHE[key] = key.upper()
    Config.mode = "final"


@node
async def switch(mode: str) -> None:
    global MODE
    await asyncio.sleep(0.02)
    MODE = mode


@node
async def show(text: str) -> str:
    return f"<{text}>"


@node
async def slow(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


def current() -> str:
    return Config.mode


@flow
async def item(key: str) -> str:
    await warm(key)
    hit = CACHE[key]
    return await show(hit)


@flow
async def size(key: str) -> str:
    await warm(key)
    n = len(CACHE)
    return await show(str(n))


@flow
async def class_attribute(key: str) -> str:
    await warm(key)
    mode = Config.mode
    return await show(mode)


@flow
async def through_a_helper(key: str) -> str:
    await warm(key)
    mode = current()
    return await show(mode)


@flow
async def in_the_arguments(key: str) -> str:
    await warm(key)
    return await show(Config.mode + CACHE[key])


@flow
async def rebound_global(mode: str) -> str:
    await switch(mode)
    return await show(MODE)


@flow
async def in_a_test(key: str) -> str:
    await warm(key)
    if key in CACHE:
        return await show("cached")
    return await show("missing")


@flow
async def constants(x: int) -> tuple[int, str]:
    a = await slow(x)
    b = await show(str(LIMIT) + Grade.GOOD.value)
    return a, b
"""

CASES = [
    ("item", ("k",)),
    ("size", ("k",)),
    ("class_attribute", ("k",)),
    ("through_a_helper", ("k",)),
    ("in_the_arguments", ("k",)),
    ("rebound_global", ("final",)),
    ("in_a_test", ("k",)),
    ("constants", (2,)),
]


def reset(module: ModuleType) -> None:
    for name, value in (("CACHE", {}), ("MODE", "draft")):
        if hasattr(module, name):  # the compiled module keeps what its flows use
            setattr(module, name, value)
    if hasattr(module, "Config"):
        module.Config.mode = "draft"


@pytest.mark.parametrize(("name", "args"), CASES)
def test_a_read_of_module_state_sees_what_the_steps_before_it_did(
    name: str, args: tuple[object, ...], tmp_path: Path
) -> None:
    compiled, source = compiled_and_source(FLOWS, tmp_path)
    reset(source)
    expected = asyncio.run(getattr(source, name)(*args))
    reset(compiled)
    assert getattr(compiled, name)(*args) == expected


def test_the_warning_names_the_read_and_constants_cost_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.py"
    path.write_text(FLOWS, encoding="utf-8")
    warned = {
        d.span.line: d.message
        for d in compile_file(path).diagnostics
        if d.code is Code.EFFECT_ORDER
    }
    lines = FLOWS.splitlines()
    hit = lines.index("    return await show(hit)") + 1
    # `hit` is module state's too (a node that reaches module state may change
    # it): either reason orders `show` after `warm`, and the warning names one.
    assert "'show' waits for 'warm'" in warned[hit], warned
    assert "reads CACHE" in warned[hit] or "reaches module state" in warned[hit]
    helper = lines.index(
        "    return await show(mode)", lines.index("    mode = current()")
    )
    assert "calls current, which reads Config.mode" in warned[helper + 1], warned
    # A number and an Enum member never change: `show` overlaps `slow`.
    constants = lines.index("    b = await show(str(LIMIT) + Grade.GOOD.value)") + 1
    assert constants not in warned, warned


SETTINGS_MODULE = """
import asyncio

from kiln import node

SETTINGS: dict[str, str] = {"mode": "draft"}


@node
async def configure(mode: str) -> None:
    await asyncio.sleep(0.02)
    SETTINGS["mode"] = mode


def mode_now() -> str:
    return SETTINGS["mode"]
"""

FLOWS_MODULE = """
from kiln import flow, node

from app import settings
from app.settings import SETTINGS, configure, mode_now


@node
async def show(text: str) -> str:
    return f"<{text}>"


@flow
async def imported_name(mode: str) -> str:
    await configure(mode)
    return await show(SETTINGS["mode"])


@flow
async def module_attribute(mode: str) -> str:
    await configure(mode)
    seen = settings.SETTINGS["mode"]
    return await show(seen)


@flow
async def imported_helper(mode: str) -> str:
    await configure(mode)
    seen = mode_now()
    return await show(seen)
"""


def test_state_another_module_holds_is_read_in_place(tmp_path: Path) -> None:
    """The compiled flows import `app.settings` itself (it has no flow), so the
    state is one dict, which `configure` fills before the flow reads it."""
    for name, text in {
        "app/__init__.py": "",
        "app/settings.py": SETTINGS_MODULE,
        "app/flows.py": FLOWS_MODULE,
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    compiled = compile_file(tmp_path / "app" / "flows.py")
    assert compiled.output is not None, compiled.diagnostics
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "flows.py").write_text(compiled.output, encoding="utf-8")
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/build']\n"
        "import flows\n"
        "from app import settings\n"
        "for name in ('imported_name', 'module_attribute', 'imported_helper'):\n"
        "    settings.SETTINGS['mode'] = 'draft'\n"
        "    print(getattr(flows, name)('final'))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["<final>"] * 3


def test_a_value_the_flow_reads_from_module_state_is_ordered_after_nodes_that_change_it(
    tmp_path: Path,
) -> None:
    """`hit = CACHE["k"]` is the list module state holds: `refill` appends to it,
    so `size(hit)` waits for `refill`, as the source runs them."""
    source = """
import asyncio
from kiln import flow, node

CACHE: dict[str, list[int]] = {"k": []}


@node
async def refill() -> None:
    await asyncio.sleep(0.02)
    for v in CACHE.values():
        v.append(2)


@node
async def size(xs: list[int]) -> int:
    return len(xs)


@flow
async def f() -> int:
    CACHE["k"] = []
    hit = CACHE["k"]
    await refill()
    return await size(hit)
"""
    compiled, plain = compiled_and_source(source, tmp_path)
    assert asyncio.run(plain.f()) == 1
    for _ in range(3):
        assert asyncio.run(compiled.f.aforward()) == 1


FRESH = """
import asyncio
import json
import os

from kiln import flow, node


@node
async def touch(x: int) -> int:
    await asyncio.sleep(os.urandom(1)[0] / 100_000)  # a node that calls a module
    return x


@flow
async def fresh(n: int) -> int:
    values = json.loads(f"[{n}, {n + 1}]")
    a = await touch(values[0])
    b = await touch(values[1])
    return a + b
"""


def test_a_value_a_module_function_makes_is_not_module_state(tmp_path: Path) -> None:
    """`json.loads(...)`, `random.random()`, `np.zeros(3)`: a function of an imported
    module makes a value of the flow's own, which a node that calls a module of
    its own cannot change; the two calls given it overlap, and nothing warns."""
    path = tmp_path / "fresh.py"
    path.write_text(FRESH, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    assert [d.message for d in compilation.diagnostics] == []
    assert "scope.spawn(" in compilation.output
    compiled, source = compiled_and_source(FRESH, tmp_path / "run")
    assert compiled.fresh(4) == asyncio.run(source.fresh(4)) == 9
