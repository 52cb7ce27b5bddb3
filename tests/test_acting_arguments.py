"""A node call's argument that does more than read runs where the source runs it.

`a = await f(random.random()); b = await f(random.random())`: the source
draws for `a` first. kiln once ran the first call as a task whose coroutine
evaluated its argument when it first ran, after the flow had gone on to draw
for `b`: the draws came out swapped every time, and so did prints in a
helper the arguments call, and clock readings. Such an argument is now a
step of its own (`_kiln_operand = random.random()`), which keeps its place
as the statement would, with a KLN311 saying what waits for it; so does an
argument that changes a value of the flow's (`next(it)`, `xs.pop()`), and
the call is then ordered by what it does itself. Arguments that only read
the flow's values still leave their calls concurrent.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
import logging
import random
import time

from kiln import flow, node

LOG = logging.getLogger("acting")


@node
async def f(x: object) -> str:
    await asyncio.sleep(0.01)
    print("f", x)
    return str(x)


@node
async def later(x: object, *, tag: str = "") -> str:
    await asyncio.sleep(0.03)
    print("later", x, tag)
    return f"{tag}{x}"


@node
async def join(parts: list[str]) -> str:
    return "+".join(parts)


def loud(text: str) -> str:
    print("loud", text)
    return text


@flow
async def draws(seed: int) -> list[str]:
    random.seed(seed)
    a = await f(round(random.random(), 6))
    b = await f(round(random.random(), 6))
    return [a, b]


@flow
async def helpers() -> str:
    a = await later(loud("one"))
    b = await f(loud("two"))
    return a + b


@flow
async def keywords() -> str:
    a = await later("x", tag=loud("first"))
    b = await later("y", tag=loud("second"))
    return a + b


@flow
async def clocks() -> bool:
    a = await later(time.perf_counter_ns())
    b = await f(time.perf_counter_ns())
    return int(a) < int(b)


@flow
async def nested(seed: int) -> str:
    random.seed(seed)
    first = await f(random.randint(0, 10**6))
    return await join([first, await later(random.randint(0, 10**6))])


@flow
async def logged() -> str:
    a = await later(loud("a"))
    LOG.warning("between")
    b = await f(loud("b"))
    return a + b


@flow
async def advanced(xs: list[int]) -> list[str]:
    it = iter(xs)
    a = await later(next(it))
    b = await f(next(it))
    c = await later(xs.pop(), tag=str(len(xs)))
    return [a, b, c, str(xs)]


@flow
async def pure(xs: list[int]) -> str:
    a = await later(len(xs))
    b = await later(sum(xs))
    return a + b
"""

# What a run shows: its value and what it printed, in order; a clock's readings
# differ between runs, and two calls that overlap print in either order.
SHOWN = {"clocks": "value", "pure": "unordered"}
CASES = [
    ("draws", (7,)),
    ("helpers", ()),
    ("keywords", ()),
    ("clocks", ()),
    ("nested", (3,)),
    ("logged", ()),
    ("advanced", ([1, 2, 3],)),
    ("pure", ([1, 2, 3],)),
]


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(FLOWS, tmp_path_factory.mktemp("acting"))


def shown(name: str, run: Callable[[], object]) -> tuple[object, list[str]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        value = run()
    lines = out.getvalue().splitlines()
    how = SHOWN.get(name)
    return value, [] if how == "value" else sorted(lines) if how else lines


@pytest.mark.parametrize(("name", "args"), CASES)
def test_the_compiled_flow_acts_in_the_source_order(
    modules: tuple[ModuleType, ModuleType], name: str, args: tuple[object, ...]
) -> None:
    compiled, source = modules
    # Each run is given arguments of its own: some flows change them.
    run = getattr(source, name)(*copy.deepcopy(args))
    expected = shown(name, lambda: asyncio.run(run))
    for _ in range(3):
        flow = partial(getattr(compiled, name), *copy.deepcopy(args))
        assert shown(name, flow) == expected


def test_an_acting_argument_is_a_step_of_its_own_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "acting.py"
    path.write_text(FLOWS, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    assert "_kiln_operand = round(random.random(), 6)" in compilation.output
    warned = {
        d.span.line for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER
    }
    source_lines = FLOWS.splitlines()
    assert any("f(round(random.random(), 6))" in source_lines[n - 1] for n in warned)


def test_arguments_that_only_read_leave_their_calls_concurrent(tmp_path: Path) -> None:
    path = tmp_path / "acting.py"
    path.write_text(FLOWS, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    body = compilation.output.split("class Pure(")[1]
    assert "scope.spawn(" in body
    assert "_kiln_operand" not in body


ITEMS = """
import asyncio

from kiln import flow, node


@node
async def f(x: int) -> int:
    await asyncio.sleep(0.02)
    return x + 1


@node
async def grow(x: list[int]) -> int:
    await asyncio.sleep(0.02)
    x.append(0)
    return len(x)


@flow
async def popped(n: int) -> tuple[int, int, list[int]]:
    xs = [1, 2, 3]
    a = await f(xs.pop())
    b = await f(xs.pop())
    return a, b, xs


@flow
async def drawn(n: int) -> tuple[int, int]:
    xs = [1, 2]
    it = iter(xs)
    a = await f(next(it))
    b = await f(next(it))
    return a, b


@flow
async def popped_lists(n: int) -> tuple[int, int]:
    xss = [[n], [n + 1]]
    a = await grow(xss.pop())
    b = await grow(xss.pop())
    return a, b
"""


@pytest.mark.parametrize(
    ("name", "waits"),
    [("popped", False), ("drawn", False), ("popped_lists", True)],
)
def test_an_item_taken_from_a_container_shares_nothing_when_items_never_change(
    tmp_path: Path, name: str, waits: bool
) -> None:
    """`f(xs.pop())` then `f(xs.pop())` with `xs = [1, 2, 3]`: the first call
    holds an int, which the second pop cannot change, so the calls overlap;
    popped lists are the container's objects still, so their calls wait."""
    compiled, source = compiled_and_source(ITEMS, tmp_path)
    for _ in range(3):
        assert getattr(compiled, name)(5) == asyncio.run(getattr(source, name)(5))
    compilation = compile_file(tmp_path / "generated_flow.py")
    lines = ITEMS.splitlines()
    warned = {
        lines[d.span.line - 1].strip()
        for d in compilation.diagnostics
        if d.code is Code.EFFECT_ORDER
    }
    body = ITEMS.split(f"async def {name}(")[1].split("@flow", maxsplit=1)[0]
    second = next(
        line.strip() for line in reversed(body.splitlines()) if "b = " in line
    )
    assert (second in warned) is waits, warned


ITEMS_OF_A_TYPED_LIST = """
import asyncio

from kiln import flow, node


@node
async def other(x: int) -> int:
    await asyncio.sleep(0.01)
    return -x


@node
async def step(acc: list[int], x: int) -> bool:
    await asyncio.sleep(0.01)
    acc.append(x)
    return len(acc) > 2


@flow
async def early(xs: list[int]) -> tuple[list[int], int]:
    acc: list[int] = []
    total = 0
    for x in xs:
        o = await other(x)
        if await step(acc, x):
            break
        total += o
    return acc, total
"""


def test_an_item_of_a_list_of_ints_shares_nothing_with_what_holds_it(
    tmp_path: Path,
) -> None:
    """`x` of `for x in xs`, `xs: list[int]`, is an int: `step` appending it to
    `acc` orders nothing against `other(x)` (trial L: KLN311 said `acc` "may
    hold what 'x' holds")."""
    path = tmp_path / "early.py"
    path.write_text(ITEMS_OF_A_TYPED_LIST, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    assert [
        d.message for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER
    ] == []
    compiled, source = compiled_and_source(ITEMS_OF_A_TYPED_LIST, tmp_path / "run")
    expected = asyncio.run(source.early([1, 2, 3, 4]))
    assert asyncio.run(compiled.early.aforward([1, 2, 3, 4])) == expected
