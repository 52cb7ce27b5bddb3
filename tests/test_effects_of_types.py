"""What a method call changes depends on its receiver's type; what consumes an iterator.

A user trial found nodes kiln read as changing nothing, whose calls then
reordered: `q.get()` on a `queue.Queue`, a document class's `replace`, a
pool's `get` (the names of a dict's and a str's read-only methods, on other
types), `islice(it, n)`, `deque(it)`, `",".join(it)`, `[*it]`, and
`print(line, file=buf)`; and one that read `out.append(w)`, `w` an item of
`words`, as a change of `words`. Each case here is one shape of those
classes, read as a function's effects; the last test runs three compiled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent

import pytest

from tests.test_effects import build, effects_of, warnings_of

HEADER = """
import collections
import io
import itertools
import queue
from collections.abc import Iterator
from typing import Any, TypedDict


class Doc:
    def __init__(self, text: str) -> None:
        self.text = text

    def replace(self, old: str, new: str) -> None:
        self.text = self.text.replace(old, new)


class State(TypedDict):
    name: str


class Para:
    text: str
    doc: Doc

    @property
    def words(self) -> list[str]:
        return self.text.split()


class Child(State):
    extra: int


def helper(lists: list[list[int]]) -> None:
    for inner in lists:
        inner.append(1)
"""


@pytest.mark.parametrize(
    ("params", "body", "changed"),
    [
        # Methods named as a builtin's read-only ones, on other types.
        ("doc: Doc", "doc.replace('a', 'b')", {"doc"}),
        ("q: queue.Queue[int]", "q.get()", {"q"}),
        ("pool: Any", "pool.get()", {"pool"}),
        ("pool", "pool.get()", {"pool"}),  # unannotated, no key: no dict's get
        ("state: dict[str, Any]", "state['q'].get()", {"state"}),  # its items: Any
        # The builtin containers' own, which change nothing.
        ("state", "state.get('k')", set()),  # unannotated: read as a dict
        ("state: State", "state.get('name')", set()),
        ("state: Child", "state.copy()", set()),
        ("state: dict[str, list[int]]", "state['k'].copy()", set()),
        ("name: str", "name.replace('a', 'b')", set()),
        ("text: str | None", "text and text.count('a')", set()),
        # The receiver's type through fields, properties, loops and items.
        ("p: Para", "p.text.count('a')", set()),
        ("p: Para | None", "p and p.words.copy()", set()),
        ("p: Para", "p.doc.replace('a', 'b')", {"p"}),
        ("ps: list[Para]", "for one in ps:\n        one.text.split()", set()),
        ("ps: list[Para]", "n = sum(len(q.text.split()) for q in ps)", set()),
        ("ps: list[Para]", "for one in ps:\n        one.doc.replace('a', 'b')", {"ps"}),
        ("qs: dict[str, queue.Queue[int]]", "qs['a'].get()", {"qs"}),
        ("qs: dict[str, list[int]]", "qs['a'].copy()", set()),
        # Iterators consumed.
        ("it: Iterator[str]", "list(itertools.islice(it, 2))", {"it"}),
        ("it: Iterator[str]", "collections.deque(it, maxlen=2)", {"it"}),
        ("it: Iterator[str]", "','.join(it)", {"it"}),
        ("it: Iterator[str]", "[*it]", {"it"}),
        ("it: Iterator[str]", "print(*it)", {"it"}),
        ("it: Iterator[str]", "first, second = it", {"it"}),
        ("it: Iterator[str]", "'a' in it", {"it"}),
        ("words: list[str]", "list(itertools.islice(words, 2))", set()),
        # A defaultdict stores the key a read misses; a dict does not.
        (
            "groups: collections.defaultdict[str, list[int]]",
            "n = len(groups['k'])",
            {"groups"},
        ),
        ("groups: dict[str, list[int]]", "n = len(groups['k'])", set()),
        # Written through a builtin, or a builtin class's method called unbound.
        ("xs: list[str]", "list.append(xs, 's')", {"xs"}),
        ("table: dict[str, int]", "dict.update(table, a=1)", {"table"}),
        ("buf: io.StringIO", "print('line', file=buf)", {"buf"}),
        ("names: dict[str, Any]", "exec('x = 1', names)", {"names"}),
        ("names: dict[str, Any]", "print(names)", set()),
        # A container the body made holds the items it is given, and is no part
        # of them: appending to it changes it alone, changing its items does not.
        (
            "words: list[str]",
            "out = []\n    for w in words:\n        out.append(w)",
            set(),
        ),
        ("rows: list[list[int]]", "out = [*rows[:0]]\n    out.extend(rows)", set()),
        (
            "rows: list[list[int]]",
            "out = []\n    out.extend(rows)\n    out[0].append(1)",
            {"rows"},
        ),
        (
            "rows: list[list[int]]",
            "out = []\n    out += rows\n    for r in out:\n        r.clear()",
            {"rows"},
        ),
        (
            "state: dict[str, Any]",
            "table = {}\n    table['x'] = state\n    table['x']['k'] = 1",
            {"state"},
        ),
        (
            "rows: list[list[int]]",
            "out = []\n    out.append(rows[0])\n    helper(out)",
            {"rows"},
        ),
    ],
)
def test_what_a_method_or_builtin_call_changes(
    params: str, body: str, changed: set[str], tmp_path: Path
) -> None:
    source = HEADER + f"\n\ndef f({params}) -> None:\n    {body}\n"
    effects = effects_of(source, "f", tmp_path)
    assert {name for name, _ in effects.changes} == changed


FLOWS = """
import asyncio
import io
import queue
from collections.abc import Iterator
from itertools import islice

from kiln import flow, node


@node
async def batch(it: Iterator[str], n: int, delay: float) -> list[str]:
    await asyncio.sleep(delay)
    return list(islice(it, n))


@flow
async def batches(words: list[str]) -> tuple[list[str], list[str]]:
    it = iter(words)
    first = await batch(it, 2, 0.03)
    second = await batch(it, 2, 0.0)
    return first, second


@node
async def take(q: queue.Queue[str], delay: float) -> str:
    await asyncio.sleep(delay)
    return q.get()


@flow
async def taken(words: list[str]) -> tuple[str, str]:
    q: queue.Queue[str] = queue.Queue()
    for word in words:
        q.put(word)
    a = await take(q, 0.03)
    b = await take(q, 0.0)
    return a, b


@node
async def line(buf: io.StringIO, text: str, delay: float) -> None:
    await asyncio.sleep(delay)
    print(text, file=buf)


@flow
async def lines(title: str) -> str:
    buf = io.StringIO()
    await line(buf, title, 0.03)
    await line(buf, "body", 0.0)
    return buf.getvalue()
"""


@pytest.mark.parametrize("name", ["batches", "taken", "lines"])
def test_the_compiled_flow_keeps_the_order_of_the_calls(
    name: str, tmp_path: Path
) -> None:
    compiled, source = build(dedent(FLOWS), tmp_path)
    args = ("title",) if name == "lines" else (["a", "b", "c", "d"],)
    expected = asyncio.run(getattr(source, name)(*args))
    assert getattr(compiled, name)(*args) == expected


def test_a_statement_that_only_reads_costs_no_overlap(tmp_path: Path) -> None:
    """`list(zip(xs, values))` changes neither: the call after it overlaps the
    fan-out, where kiln once held it back as if the statement changed `xs`."""
    source = """
    from kiln import flow, node


    @node
    async def f(x: int) -> int:
        return x + 1


    @flow
    async def pairs(xs: list[int]) -> tuple[list[tuple[int, int]], int]:
        z = list(zip(xs, [await f(x) for x in xs]))
        y = await f(len(xs))
        return z, y
    """
    assert warnings_of(source, tmp_path) == []


def test_the_warnings_name_the_parameter_and_the_operator(tmp_path: Path) -> None:
    """A Memory made over the caller's dict is ordered by the dict's name, not by
    a local that happens to share it; `|=` is said as `|=`."""
    source = """
    from typing import Any

    from kiln import Memory, flow, node


    @node
    async def put(memory: Memory, key: str, value: Any) -> None:
        memory[key] = value


    @node
    async def read(store: dict[str, Any], key: str) -> Any:
        return store.get(key)


    @node
    async def merge(table: dict[str, int], more: dict[str, int]) -> None:
        table |= more


    @flow
    async def over_store(store: dict[str, Any]) -> tuple[Any, Any]:
        memory = Memory(store)
        before = await read(store, "x")
        await put(memory, "x", 5)
        after = await read(store, "x")
        return before, after


    @flow
    async def merged(table: dict[str, int]) -> int:
        await merge(table, {"a": 1})
        return await read(table, "a")
    """
    messages = [message for _, message in warnings_of(source, tmp_path)]
    made_over = "'put' may change 'store': it writes the key 'x' of the Memory made"
    assert any(made_over in m for m in messages), messages
    assert not any("'after'" in m for m in messages), messages
    assert any("in place (|=)" in m for m in messages), messages
