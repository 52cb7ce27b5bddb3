"""`kiln check` finds each type error at its own source line, whatever black did.

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

# The mismatch: its first line is where the error belongs, at the `await`.
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
        expected.add((len(lines) + 1, mismatch[0].index("await consume(") + 1))
        lines += mismatch
    return "\n".join(lines) + "\n", expected


@pytest.mark.parametrize("seeds", [range(start, start + 4) for start in (0, 4, 8, 12)])
def test_each_error_is_reported_at_its_own_line_and_column(
    tmp_path: Path, seeds: range
) -> None:
    modules, wanted = [], {}
    for seed in seeds:
        source, expected = module(seed)
        path = tmp_path / f"m{seed}.py"
        path.write_text(source, encoding="utf-8")
        compilation = compile_file(path)
        assert compilation.output is not None, compilation.diagnostics
        modules.append((f"m{seed}.py", compilation.output, compilation.line_map))
        wanted[compilation.source.path] = expected
    found = typecheck_modules(modules, [], [tmp_path])
    assert all("(mypy: arg-type)" in d.message for d in found), found
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
