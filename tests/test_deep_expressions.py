"""Long expressions CPython compiles are compiled, drawn and run, never a crash.

A prompt built of 1,500 string pieces joined by `+` at module level, or a sum
of 1,500 terms in a flow, is a tree 1,500 levels deep: CPython compiles it, and
kiln's passes run where its own recursion does not stop them first (depth.py).
Two steps ran outside that room and crashed with RecursionError, an internal
error (trial Q6): the import walk of an output tree (`kiln compile`, `check`,
`run`) and the drawing (`kiln graph`).
"""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import kiln, write

TERMS = 1500


def source() -> str:
    prompt = " + ".join(f'"rule {i}. "' for i in range(TERMS))
    total = " + ".join("1" for _ in range(TERMS))
    return f"""
from kiln import flow, node

PROMPT = {prompt}


@node
async def size(text: str) -> int:
    return len(text)


@flow
async def main(x: int) -> int:
    y = x + {total}
    return y + await size(PROMPT)
"""


def test_a_long_expression_compiles_draws_and_runs(tmp_path: Path) -> None:
    write(tmp_path / "deep.py", source())
    compiled = kiln("compile", "deep.py", "-o", "out", cwd=tmp_path)
    assert compiled.returncode == 0, compiled
    drawn = kiln("graph", "deep.py", cwd=tmp_path)
    assert drawn.returncode == 0, drawn
    assert "internal error" not in drawn.stderr
    ran = kiln("run", "deep.py", "x=1", cwd=tmp_path)
    assert ran.returncode == 0, ran
    expected = 1 + TERMS + len("".join(f"rule {i}. " for i in range(TERMS)))
    assert str(expected) in ran.stdout
