"""A node a flow hands on as a value runs without its options: KLN317 says so (trial Q5, 17).

`nums = list(map(parse, raw))` with `@node(retries=3, cache=True) def parse`
compiled, silently, to the same line: `map` calls the plain function, with
no retries, ledger, events or fan-out, as the source's `map` does. The results
agree, but the options the decorator asks for are not there, as for a node
called through a value (test_node_forms.py). Now the node's name is warned
where the flow hands it on: to `map` (with the comprehension to write
instead, which kiln fans out with the node's options), `sorted(key=...)`,
`filter`, `functools.partial`, another node, or kept in a list or a dict.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code, Diagnostic
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

NODES = """
import asyncio
import functools
from collections.abc import Callable

from kiln import flow, node


@node(retries=3, cache=True)
def parse(s: str) -> int:
    return int(s)


@node
def score(s: str) -> int:
    return -len(s)


@node
def keep(s: str) -> bool:
    return len(s) > 1


@node
async def shout(s: str) -> str:
    return s.upper()


@node
def join(a: str, b: str) -> str:
    return a + b


@node
async def apply(fn: Callable[[str], int], s: str) -> int:
    return fn(s)
"""

# Each way to hand a node on, the warning's column's text, and what the note says.
HANDED = {
    "map": (
        "list(map(parse, raw))",
        "parse",
        "`[parse(x) for x in raw]`",
    ),
    "map_of_two": (
        "list(map(join, raw, raw))",
        "join",
        "`[join(x, y) for x, y in zip(raw, raw)]`",
    ),
    "map_of_an_async_node": (
        "len(list(map(shout, [])))",
        "shout",
        "`[await shout(x) for x in []]`",
    ),
    "sorted_key": (
        "sorted(raw, key=score)",
        "score",
        "`keys = [score(x) for x in items]`",
    ),
    "filter": ("list(filter(keep, raw))", "keep", "`[keep(x) for x in items]`"),
    "partial": ("functools.partial(parse, '7').args", "parse", "`parse(...)`"),
    "another_node": ("await apply(parse, '5')", "parse", "`parse(...)`"),
    "a_list": ("len([parse, score])", "parse", "`parse(...)`"),
    "a_dict": ("len({'p': parse})", "parse", "`parse(...)`"),
}


def _source(expression: str) -> str:
    return NODES + textwrap.dedent(f"""

        @flow
        async def main() -> object:
            raw = ["1", "22", "333"]
            value = {expression}
            return value
        """)


def _diagnostics(tmp_path: Path, source: str) -> list[Diagnostic]:
    path = tmp_path / "case.py"
    path.write_text(source, encoding="utf-8")
    return list(compile_file(path).diagnostics)


@pytest.mark.parametrize("case", sorted(HANDED))
def test_a_node_handed_on_as_a_value_is_warned(case: str, tmp_path: Path) -> None:
    expression, name, instead = HANDED[case]
    source = _source(expression)
    found = _diagnostics(tmp_path, source)
    assert not any(d.is_error for d in found), found
    warned = next(d for d in found if d.code is Code.NODE_AS_VALUE)
    line = source.splitlines().index(f"    value = {expression}") + 1
    column = len("    value = ") + expression.index(name) + 1
    assert (warned.span.line, warned.span.column) == (line, column)
    assert warned.message.startswith("flow 'main' ")
    assert f"node '{name}'" in warned.message
    assert "without the node's options, events or overlap" in warned.message
    assert warned.hint is not None
    assert instead in warned.hint
    compiled, reference = compiled_and_source(source, tmp_path / "run")
    assert compiled.main() == asyncio.run(reference.main())  # the source's result


def test_a_node_given_to_asyncio_is_kln312_alone(tmp_path: Path) -> None:
    source = NODES + textwrap.dedent("""

        @flow
        async def main() -> list[str]:
            return list(await asyncio.gather(*map(shout, ["a", "b"])))
        """)
    codes = [d.code for d in _diagnostics(tmp_path, source)]
    assert codes == [Code.ASYNCIO_IDIOM]


def test_a_value_a_warned_call_goes_through_is_warned_once(tmp_path: Path) -> None:
    """`pick = parse if t else score; pick(x)`: the call is warned (through a value),
    not the names of the nodes it may be as well."""
    source = NODES + textwrap.dedent("""

        @flow
        async def main(t: bool) -> int:
            pick = parse if t else score
            table = {"k": keep}
            first = pick("1")
            return first + table.get("k", score)("22")
        """)
    found = [d for d in _diagnostics(tmp_path, source) if d.code is Code.NODE_AS_VALUE]
    assert [d.message.split(",")[0] for d in found] == [
        "flow 'main' calls 'pick'",
        "flow 'main' calls 'table.get(\"k\"",
    ]
