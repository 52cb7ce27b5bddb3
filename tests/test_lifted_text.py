"""An f-string's `=` shows the expression the source wrote, not the temporary kiln lifts it into.

`f"{await h(x)=}"` is Python's debugging shorthand: the text of the
expression, `=`, then the value's repr (or its format, with a format spec, or
its conversion). kiln lifts the call into a step and formats its value, so it
writes the text out itself, whitespace and all, as Python would show it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.test_differential import compiled_and_source

FLOWS = """
from kiln import flow, node


@node
async def h(x: int) -> int:
    return x * 3


@node
async def label(x: int) -> str:
    return f"n{x}"


@flow
async def shown(x: int) -> tuple[str, ...]:
    plain = f"{await h(x)=}"
    spaced = f"{ await h(x) = }"
    specified = f"{await h(x)=:>5}"
    converted = f"{await label(x)=!s} and {x=}"
    braces = f"{ {'k': await h(x)}['k']=}"
    return plain, spaced, specified, converted, braces
"""


def test_the_debug_specifier_shows_the_source_expression(tmp_path: Path) -> None:
    compiled, source = compiled_and_source(FLOWS, tmp_path)
    expected = asyncio.run(source.shown(2))
    assert expected[0] == "await h(x)=6"
    assert compiled.shown(2) == expected
