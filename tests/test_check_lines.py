"""`kiln check` finds each type error where mypy on the source would, whatever black did.

black joins a signature or a call the source spread over several lines, splits
a line that is too long, and keeps a collection exploded by its trailing
comma: each changes how many lines the output has above a later flow. A
generated module of many flows, each with one mismatch at a known place and
shaped at random before it (signatures, calls, collections, comments, long
lines), must have every error reported at that place and nowhere else.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from mypy import api

from kilnc.diagnostics import render
from kilnc.pipeline import compile_file
from kilnc.typecheck import typecheck_modules

HEAD = """\
from kiln import flow, node


@node
async def produce(n: int) -> list[str]:
    return [str(i) for i in range(n)]


@node
async def consume(values: list[int], extra: int = 0) -> int:
    return sum(values)
"""

LONG = '"' + "x" * 70 + '"'

# How a flow's `def` is written; {name} is the flow's name.
SIGNATURES = (
    ["async def {name}(n: int) -> int:"],
    ["async def {name}(", "    n: int,", "    m: int = 2,", ") -> int:"],
    ["async def {name}(", "    n: int, m: int = 2", ") -> int:"],
    [
        "async def {name}(",
        "    n: int,  # the count",
        "    m: int = (",
        "        2",
        "    ),",
        ") -> int:",
    ],
    [
        f"async def {{name}}(n: int, m: str = {LONG}, k: tuple[int, ...] = (1, 2)) -> int:"
    ],
    ["# a comment above the def", "async def {name}(n: int,", "  m: int = 2) -> int:"],
)

# What a flow's body does before the mismatch; each binds `values`.
BEFORE = (
    ["    values = await produce(n)"],
    ["    values = await produce(", "        n", "    )"],
    ["    # a comment above", "    values = await produce(n)  # and beside"],
    [
        "    pad = [",
        "        1,",
        "        2",
        "    ]",
        "    values = await produce(len(pad))",
    ],
    [f"    values = await produce(n + len({LONG}) + len({LONG}))"],
    [
        "    pairs = {",
        "        1: 2,",
        "    }",
        "    values = await produce(",
        "        len(pairs),",
        "    )",
    ],
)

# The mismatch: the error belongs at `values`, the argument mypy finds wrong.
MISMATCH = (
    ["    return await consume(values)"],
    ["    total = await consume(", "        values", "    )", "    return total"],
    [
        "    total = 1 + await consume(values, extra=len(" + LONG + "))",
        "    return total",
    ],
    [
        "    total = await consume(",
        "        values,",
        "        extra=3,",
        "    )",
        "    return total",
    ],
)

# A flow without a mismatch between two that have one.
CLEAN = ["    return len(await produce(n))"]


def module(seed: int) -> tuple[str, set[tuple[int, int]]]:
    """A module of flows in shapes drawn from `seed`; where each error belongs."""
    rng = random.Random(seed)
    lines = HEAD.split("\n")
    expected: set[tuple[int, int]] = set()
    for index in range(12):
        lines += ["", "", "@flow"]
        lines += [s.format(name=f"f{index}") for s in rng.choice(SIGNATURES)]
        if rng.random() < 0.25:
            lines += CLEAN
            continue
        lines += rng.choice(BEFORE)
        mismatch = rng.choice(MISMATCH)
        at = next(i for i, line in enumerate(mismatch) if "values" in line)
        column = mismatch[at].index("values", mismatch[at].find("consume(") + 1)
        expected.add((len(lines) + 1 + at, column + 1))
        lines += mismatch
    return "\n".join(lines) + "\n", expected


@pytest.mark.parametrize("seeds", [range(start, start + 4) for start in (0, 4, 8, 12)])
def test_each_error_is_reported_at_its_own_line_and_column(
    tmp_path: Path, seeds: range
) -> None:
    modules, wanted, texts = [], {}, {}
    for seed in seeds:
        source, expected = module(seed)
        path = tmp_path / f"m{seed}.py"
        path.write_text(source, encoding="utf-8")
        compilation = compile_file(path)
        assert compilation.output is not None, compilation.diagnostics
        modules.append((f"m{seed}.py", compilation.output, compilation.line_map))
        wanted[compilation.source.path] = expected
        texts[compilation.source.path] = source
    found = typecheck_modules(modules, [], [tmp_path], texts)
    assert all(
        d.message.startswith('Argument 1 to "consume"')
        and "(mypy: arg-type)" in d.message
        for d in found
    ), found
    got = {
        path: {(d.span.line, d.span.column) for d in found if d.span.path == path}
        for path in wanted
    }
    assert got == wanted


# Flows whose `def` line silences mypy; mypy --strict passes on this source.
SILENCED = """\
from collections.abc import AsyncIterator, Iterator

from kiln import flow, node


@node
def describe(v: object) -> str:
    return repr(v)


@flow
def one(a, b=3):  # type: ignore[no-untyped-def]
    return describe([a, b])


@flow
def spread(  # type: ignore[no-untyped-def]
    a,
    b=3,
):
    return describe([a, b])


@flow
async def bare(a, b=3):  # type: ignore
    return describe([a, b])


@flow
async def items(a, b=3):  # type: ignore[no-untyped-def]
    yield describe([a, b])


@flow
def sync_items(a):  # type: ignore[no-untyped-def]
    yield describe(a)


@flow
def partly(a, b: int = 3) -> str:  # type: ignore[no-untyped-def]
    return describe([a, b])


@flow
def defaulted(
    a: int,
    b: int = "3",  # type: ignore[assignment]
) -> str:
    return describe([a, b])
"""


def test_a_type_ignore_on_the_def_line_silences_the_methods_made_from_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "silenced.py"
    path.write_text(SILENCED, encoding="utf-8")
    source_check = typecheck_modules([("silenced.py", SILENCED, ())], [], [tmp_path])
    assert source_check == [], "the source itself must pass mypy --strict"
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    found = typecheck_modules(
        [("silenced.py", compilation.output, compilation.line_map)], [], [tmp_path]
    )
    assert found == []


# Nodes for flows whose one type error is in an argument, of shapes a user writes.
NODES = """\
from kiln import flow, node


@node
async def take(s: str) -> int:
    return len(s)


@node
async def pair(s: str, n: int) -> str:
    return s * n


@node
async def keyed(s: str, *, times: int = 1) -> str:
    return s * times


@node
async def ints(n: int) -> list[int]:
    return list(range(n))
"""

# Each binds `x` with one argument of the wrong type; the flow takes `s: str, n: int`.
WRONG = (
    ["    x = await take(n)"],
    ["    x = await pair(", "        s,", "        s,", "    )"],
    ["    x = await keyed(s, times=s)"],
    ["    x = await keyed(", "        s,", "        times=s,", "    )"],
    ["    x = [await take(v) for v in await ints(n)]"],
    ["    x = [await pair(v, n) for v in range(n)]"],
    ["    x = [await pair(s, v) for v in [s, s]]"],
    ["    x = await take(await pair(s, s))"],
    ["    if n > 1:", "        x = await take(n)", "    else:", "        x = 0"],
    ["    y = await take(s)", "    x = [await pair(s, s) for _ in range(y)]"],
)


def _mypy_on(path: Path) -> set[tuple[int, int, str]]:
    """mypy --strict's errors on a source: line, column and message."""
    stdout, _, _ = api.run(
        ["--strict", "--show-column-numbers", "--no-error-summary", str(path)]
    )
    found = set()
    for line in stdout.splitlines():
        where, _, said = line.partition(": error: ")
        if said:
            _, number, column = where.rsplit(":", 2)
            found.add((int(number), int(column), said.rsplit("  [", 1)[0]))
    return found


@pytest.mark.parametrize("seed", range(3))
def test_kiln_check_says_what_mypy_says_of_the_source_and_where(
    tmp_path: Path, seed: int
) -> None:
    """Every error kiln finds in generated code is the one mypy finds in the
    source, in its words, at its line and column: the argument, not the call or
    statement, and the node's name, not kiln's fan-out's."""
    rng = random.Random(seed)
    lines = NODES.split("\n")
    for index, wrong in enumerate(rng.sample(WRONG, len(WRONG))):
        lines += ["", "", "@flow", f"async def f{index}(s: str, n: int) -> object:"]
        lines += [*wrong, "    return x"]
    source = "\n".join(lines) + "\n"
    path = tmp_path / f"wrong{seed}.py"
    path.write_text(source, encoding="utf-8")
    expected = _mypy_on(path)
    assert len(expected) == len(WRONG), expected
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    name = compilation.source.path
    found = typecheck_modules(
        [(f"out{seed}.py", compilation.output, compilation.line_map)],
        [],
        [tmp_path],
        {name: source},
    )
    got = {
        (d.span.line, d.span.column, d.message.rsplit(" (mypy: ", 1)[0]) for d in found
    }
    assert got == expected


# Code the compiled module copies as it is: nodes, helpers, a class, a constant,
# with type errors at statements and expressions, some in code black lays out
# again (a call spread over lines it joins, a line too long it splits).
COPIED = """\
import functools

from kiln import flow, node

LIMIT: int = "3"


def helper(a: int, b: str) -> str:
    return b * a


class Box:
    def size(self) -> int:
        return "big"


@node(retries=1)
async def parse(raw: str) -> int:
    value: int = raw.strip()
    return value


@functools.cache
@node
def render(n: int) -> str:
    if n > 0:
        return "pos" + n
    total = helper(
        "n",
        n,
    )
    return total + helper(n, "a really long argument that black keeps on a line", n)


@flow
async def go(raw: str) -> str:
    n = await parse(raw)
    return render(n + LIMIT + Box().size())
"""


def test_an_error_in_copied_code_is_at_the_source_s_line_and_column(
    tmp_path: Path,
) -> None:
    """mypy's column for each error inside a node, helper or class the module
    copies, on a statement (`Returning Any`) or an expression, however black
    laid the copy out; and the excerpt's caret under that column."""
    path = tmp_path / "copied.py"
    path.write_text(COPIED, encoding="utf-8")
    expected = _mypy_on(path)
    assert len(expected) >= 8, expected
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    assert "value: int = raw.strip()" in compilation.output
    found = typecheck_modules(
        [("copied_out.py", compilation.output, compilation.line_map)],
        [],
        [tmp_path],
        {compilation.source.path: COPIED},
    )
    got = {
        (d.span.line, d.span.column, d.message.rsplit(" (mypy: ", 1)[0]) for d in found
    }
    assert got == expected
    for diagnostic in found:
        _, _excerpt, caret, *_ = render(diagnostic, compilation.source).split("\n")
        line = COPIED.split("\n")[diagnostic.span.line - 1]
        indent = len(line) - len(line.lstrip())
        assert caret.index("^") - 4 + indent == diagnostic.span.column - 1, caret
