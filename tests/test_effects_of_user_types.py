"""The builtin tables describe the builtin types only; the actual object beats its annotation.

A fourth user trial found compiled flows that computed something else, in two
classes. Class A: kiln read a project class named as a builtin or
standard-library type (`Counter`, `Path`, `Match`) as that type, and a
method named as a builtin's read-only one (`get`, `count`, `format`,
`replace`) as read-only or fresh whatever its receiver was, so calls that
change a user's object overlapped. Class B: kiln trusted a node's annotation
over the object a flow passes it: a `defaultdict` passed as `dict` or
`Mapping` stores the key a read misses, and a `Sequence` a node returns may
be a part of what it was given. Each case here is one shape of those
classes: read as a function's effects, or compiled and run against its source
with timings that expose a reorder.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from textwrap import dedent

import pytest

from tests.test_effects import build, effects_of, warnings_of

# Names of the tables' types and methods, each used for a project class of its own.
TYPE_NAMES = ["Counter", "Path", "Match", "Decimal", "deque", "date", "UUID", "Pattern"]
METHOD_NAMES = ["get", "count", "replace", "format", "copy", "split", "keys"]


def _user_class(name: str) -> str:
    methods = "".join(
        f"\n    def {method}(self, *args: object) -> list[str]:"
        "\n        self.items.append('x')\n        return self.items\n"
        for method in METHOD_NAMES
    )
    return (
        f"class {name}:\n    def __init__(self) -> None:\n"
        f"        self.items: list[str] = []\n        self.n = 0\n{methods}"
    )


@pytest.mark.parametrize("type_name", TYPE_NAMES)
@pytest.mark.parametrize("method", [*METHOD_NAMES, "n = 1"])
def test_a_project_class_named_as_a_library_type_is_the_project_s(
    type_name: str, method: str, tmp_path: Path
) -> None:
    """`c.count()` of a project `Counter` may change `c`: it is no collections.Counter."""
    body = f"x.{method}" if " " in method else f"x.{method}()"
    source = f"{_user_class(type_name)}\n\ndef f(x: {type_name}) -> None:\n    {body}\n"
    effects = effects_of(source, "f", tmp_path)
    assert {name for name, _ in effects.changes} == {"x"}


@pytest.mark.parametrize("type_name", ["Counter", "Path", "Match", "deque"])
def test_a_class_imported_from_the_project_is_the_project_s(
    type_name: str, tmp_path: Path
) -> None:
    (tmp_path / "shapes.py").write_text(_user_class(type_name), encoding="utf-8")
    source = f"from shapes import {type_name}\n\ndef f(x: {type_name}) -> None:\n"
    source += "    x.count()\n"
    effects = effects_of(source, "f", tmp_path)
    assert {name for name, _ in effects.changes} == {"x"}


@pytest.mark.parametrize(
    ("header", "params", "body"),
    [
        ("from collections import Counter", "x: Counter[str]", "x.most_common(2)"),
        ("import collections", "x: collections.Counter[str]", "x.copy()"),
        ("from collections import deque", "x: deque[str]", "x.count('a')"),
        ("import pathlib", "x: pathlib.Path", "x.joinpath('a')"),
        ("from pathlib import Path", "x: Path", "x.n = 1"),
        ("import re", "x: re.Match[str]", "x.group(1)"),
        ("from typing import Match", "x: Match[str]", "x.group(1)"),
        ("import datetime", "x: datetime.date", "x.replace(year=1)"),
        ("from decimal import Decimal", "x: Decimal", "x.as_integer_ratio()"),
    ],
)
def test_the_library_s_own_types_keep_their_tables(
    header: str, params: str, body: str, tmp_path: Path
) -> None:
    source = f"{header}\n\ndef f({params}) -> None:\n    {body}\n"
    assert effects_of(source, "f", tmp_path).changes == ()


@pytest.mark.parametrize(
    ("params", "body", "shared"),
    [
        # A module's function is no method, whatever its name.
        ("s: State", "return dataclasses.replace(s, step=1)", {"s"}),
        ("s: State", "return copy.copy(s)", {"s"}),
        # A project class's method named as a str's may return what it holds.
        ("t: Template", "return t.format(x='a')", {"t"}),
        ("t: Template", "return t.split()", {"t"}),
        ("t: Template", "return t.replace('a', 'b')", {"t"}),
        ("t: Template", "return t.count()", {"t"}),
        # A str's own methods make a new value.
        ("name: str", "return name.replace('a', 'b')", set()),
        ("names: list[str]", "return ','.join(names).split()", set()),
    ],
)
def test_what_a_method_result_shares_depends_on_its_receiver(
    params: str, body: str, shared: set[str], tmp_path: Path
) -> None:
    source = f"""
import copy
import dataclasses
from dataclasses import dataclass, field


@dataclass
class State:
    step: int = 0
    log: list[str] = field(default_factory=list)


class Template:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def format(self, **kw: str) -> list[str]:
        return self.parts

    def split(self) -> list[str]:
        return self.parts

    def replace(self, a: str, b: str) -> list[str]:
        return self.parts

    def count(self) -> list[str]:
        return self.parts


def f({params}) -> object:
    {body}
"""
    assert effects_of(source, "f", tmp_path).returns == shared


# --- compiled and run -----------------------------------------------------------------

FLOWS = """
import asyncio
import collections
import dataclasses
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kiln import flow, node


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def count(self) -> int:
        self.n += 1
        return self.n


class Path:
    def __init__(self) -> None:
        self.stops: list[str] = []


class Match:
    def __init__(self) -> None:
        self.score = 0


class Inbox:
    def __init__(self, items: list[str]) -> None:
        self.items = items

    def get(self, default: str) -> str:
        return self.items.pop(0) if self.items else default

    def copy(self) -> str:
        return self.get("-")

    def keys(self) -> str:
        return self.get("-")


class Template:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def format(self, **kw: str) -> list[str]:
        self.parts.append(kw["x"])
        return self.parts


@dataclass
class State:
    step: int = 0
    log: list[str] = field(default_factory=list)


@node
async def tick(c: Counter, label: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return f"{label}={c.count()}"


@flow
async def ticks() -> list[str]:
    c = Counter()
    a = await tick(c, "a", 0.03)
    b = await tick(c, "b", 0.0)
    return [a, b]


@node
async def visit(p: Path, stop: str, delay: float) -> None:
    await asyncio.sleep(delay)
    p.stops.append(stop)


@node
async def route(p: Path) -> str:
    return ">".join(p.stops)


@flow
async def routes() -> str:
    p = Path()
    await visit(p, "home", 0.03)
    return await route(p)


@node
async def goal(m: Match, delay: float) -> None:
    await asyncio.sleep(delay)
    m.score += 1


@node
async def score(m: Match) -> int:
    return m.score


@flow
async def matches() -> int:
    m = Match()
    await goal(m, 0.03)
    return await score(m)


@node
async def pending(inbox: Inbox) -> int:
    await asyncio.sleep(0.03)
    return len(inbox.items)


@flow
async def inline_get() -> tuple[int, str, int]:
    inbox = Inbox(["m1", "m2", "m3"])
    a = await pending(inbox)
    m = inbox.get("-")
    b = await pending(inbox)
    return a, m, b


@flow
async def inline_copy() -> tuple[int, str, int]:
    inbox = Inbox(["m1", "m2", "m3"])
    a = await pending(inbox)
    m = inbox.copy()
    b = await pending(inbox)
    return a, m, b


@flow
async def inline_keys() -> tuple[int, str, int]:
    inbox: Inbox = Inbox(["m1", "m2", "m3"])
    a = await pending(inbox)
    m = inbox.keys()
    b = await pending(inbox)
    return a, m, b


@node
async def take(inbox, default: str, delay: float) -> str:  # type: ignore[no-untyped-def]
    await asyncio.sleep(delay)
    return inbox.get(default)


def take_via(inbox, default):  # type: ignore[no-untyped-def]
    return inbox.get(default)


@node
async def take_through(inbox, delay: float) -> str:  # type: ignore[no-untyped-def]
    await asyncio.sleep(delay)
    return take_via(inbox, "-")


@flow
async def untyped_takes() -> list[str]:
    inbox = Inbox(["m1", "m2", "m3"])
    a = await take(inbox, "-", 0.03)
    b = await take(inbox, "-", 0.0)
    return [a, b]


@flow
async def untyped_takes_through() -> list[str]:
    inbox = Inbox(["m1", "m2", "m3"])
    a = await take_through(inbox, 0.03)
    b = await take_through(inbox, 0.0)
    return [a, b]


@node
async def advance(s: State) -> State:
    return dataclasses.replace(s, step=s.step + 1)


@node
async def note(s: State) -> None:
    await asyncio.sleep(0.03)
    s.log.append(f"s{s.step}")


@node
async def size(s: State) -> int:
    return len(s.log)


@flow
async def replaced() -> int:
    s0 = State()
    s1 = await advance(s0)
    await note(s1)
    return await size(s0)


@node
async def render(t: Template, x: str) -> list[str]:
    return t.format(x=x)


@node
async def extend(parts: list[str]) -> None:
    await asyncio.sleep(0.03)
    parts.append("!")


@node
async def part_count(t: Template) -> int:
    return len(t.parts)


@flow
async def formatted() -> int:
    t = Template()
    p = await render(t, "a")
    await extend(p)
    return await part_count(t)


@node
async def touch(index: dict[str, list[str]], key: str) -> int:
    await asyncio.sleep(0.03)
    return len(index[key])


@node
async def touch_mapping(index: Mapping[str, list[str]], key: str) -> int:
    await asyncio.sleep(0.03)
    return len(index[key])


@node
async def touch_untyped(index, key):  # type: ignore[no-untyped-def]
    await asyncio.sleep(0.03)
    return len(index[key])


def first_of(index: dict[str, list[str]], key: str) -> int:
    return len(index[key])


@node
async def touch_through(index: dict[str, list[str]], key: str) -> int:
    await asyncio.sleep(0.03)
    return first_of(index, key)


@node
async def listed(index: Mapping[str, Any]) -> list[str]:
    return sorted(index)


@flow
async def made_default() -> tuple[int, list[str]]:
    index = defaultdict(list)
    n = await touch(index, "tools")
    return n, await listed(index)


@flow
async def made_collections_default() -> tuple[int, list[str]]:
    index = collections.defaultdict(list)
    n = await touch_mapping(index, "tools")
    return n, await listed(index)


@flow
async def annotated_default() -> tuple[int, list[str]]:
    index: defaultdict[str, list[str]] = defaultdict(list)
    n = await touch_untyped(index, "tools")
    return n, await listed(index)


@flow
async def default_through() -> tuple[int, list[str]]:
    index: defaultdict[str, list[str]] = defaultdict(list)
    n = await touch_through(index, "tools")
    return n, await listed(index)


@flow
async def default_parameter(
    index: defaultdict[str, list[str]],
) -> tuple[int, list[str]]:
    n = await touch(index, "tools")
    return n, await listed(index)


@node
async def history(state: dict[str, list[str]]) -> Sequence[str]:
    return state["msgs"]


@node
async def history_mapping(state: dict[str, list[str]]) -> Mapping[str, Sequence[str]]:
    return state


@node
async def history_collection(state: dict[str, list[str]]) -> Collection[str]:
    return state["msgs"]


@node
async def add(state: dict[str, list[str]], m: str) -> None:
    await asyncio.sleep(0.03)
    state["msgs"].append(m)


@node
async def length(h: Collection[Any]) -> int:
    return len(h)


@node
async def inner_length(h: Mapping[str, Sequence[str]]) -> int:
    return len(h["msgs"])


@flow
async def viewed() -> int:
    state: dict[str, list[str]] = {"msgs": []}
    h = await history(state)
    await add(state, "x")
    return await length(h)


@flow
async def viewed_mapping() -> int:
    state: dict[str, list[str]] = {"msgs": []}
    h = await history_mapping(state)
    await add(state, "x")
    return await inner_length(h)


@flow
async def viewed_collection() -> int:
    state: dict[str, list[str]] = {"msgs": []}
    h = await history_collection(state)
    await add(state, "x")
    return await length(h)
"""

FLOW_NAMES = [
    "ticks",
    "routes",
    "matches",
    "inline_get",
    "inline_copy",
    "inline_keys",
    "untyped_takes",
    "untyped_takes_through",
    "replaced",
    "formatted",
    "made_default",
    "made_collections_default",
    "annotated_default",
    "default_through",
    "viewed",
    "viewed_mapping",
    "viewed_collection",
]


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    return build(FLOWS, tmp_path_factory.mktemp("user_types"))


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_the_compiled_flow_computes_what_its_source_does(
    name: str, flows: tuple[object, object]
) -> None:
    compiled, source = flows
    expected = asyncio.run(getattr(source, name)())
    assert getattr(compiled, name)() == expected


def test_a_defaultdict_parameter_of_the_flow_is_one_too(
    flows: tuple[object, object],
) -> None:
    compiled, source = flows
    expected = asyncio.run(source.default_parameter(defaultdict(list)))  # type: ignore[attr-defined]
    assert compiled.default_parameter(defaultdict(list)) == expected  # type: ignore[attr-defined]


def test_a_dict_s_item_reads_and_an_untyped_dict_s_get_cost_no_overlap(
    tmp_path: Path,
) -> None:
    """What a dict is passed, or a value of unknown type, reads as a dict: the
    second call of each pair overlaps the first, as it did before."""
    source = """
    import asyncio
    from typing import Any

    from kiln import flow, node


    @node
    async def touch(index: dict[str, list[str]], key: str) -> int:
        await asyncio.sleep(0.01)
        return len(index[key])


    @node
    async def look(state, key):  # type: ignore[no-untyped-def]
        return state.get(key)


    @flow
    async def reads(index: dict[str, list[str]]) -> tuple[int, int]:
        a = await touch(index, "a")
        b = await touch(index, "b")
        return a, b


    @flow
    async def gets(state: dict[str, Any]) -> tuple[Any, Any, Any]:
        made = {"k": 1}
        a = await look(state, "k")
        b = await look(made, "k")
        c = await look(state, "k")
        return a, b, c
    """
    assert warnings_of(dedent(source), tmp_path) == []
