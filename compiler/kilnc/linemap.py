"""map_lines: where each line of the formatted module comes from in the source.

Example input: the emitter's text, in which line 40 (`b = await
_kiln_consume_at_12(a)`) was written for the call at digest.py:12:9, and the
same module after black, where that statement is now lines 52-54. Output: for
each line of black's text, the source span it comes from: lines 52-54 map to
digest.py:12:9.

black only moves code between lines; it keeps the syntax tree. So the two
trees are walked side by side: every node of black's tree takes the origin of
the emitter's line its twin starts on, and as `ast.walk` goes breadth first,
the innermost node covering a line decides for it.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from kilnc.source import Span


def map_lines(
    before: str, origins: Sequence[Span | None], after: str
) -> tuple[Span | None, ...]:
    """The origin of each line of `after`, black's output for `before`."""
    mapped: list[Span | None] = [None] * len(after.split("\n"))
    for written, formatted in zip(
        ast.walk(ast.parse(before)), ast.walk(ast.parse(after)), strict=False
    ):
        if type(written) is not type(formatted):
            break  # black rewrote something here; the lines below keep what they have
        if not isinstance(formatted, ast.stmt | ast.expr | ast.arg) or not isinstance(
            written, ast.stmt | ast.expr | ast.arg
        ):
            continue
        origin = origins[written.lineno - 1] if written.lineno <= len(origins) else None
        if origin is None:
            continue
        end = formatted.end_lineno or formatted.lineno
        for line in range(formatted.lineno, end + 1):
            mapped[line - 1] = origin
    return tuple(mapped)
