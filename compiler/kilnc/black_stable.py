"""black_stable: a statement of calls, tuples and leaves laid out as black lays it out.

Example input: the prefix ``_kiln_sites = ``, the expression of a site table
(a tuple of `_kiln.site(...)` calls whose leaves are names, attributes, strings
and numbers) and the indentation of the class body. Output: the statement's
lines, exactly as `black.format_str` would write them: on one line when it
fits in black's 88 columns, else at the last bracket with the contents on one
line when they fit (the arguments of a call, or a one-tuple), else one element
a line, each laid out the same way at the next indentation, with a trailing
comma.

`place_site_lines` writes a table again after black ran, once the lines of the
flow's body are known; formatting it with black a second time cost as much as
the whole module did. These are the only layouts black chooses for such a
statement; tests/test_black_stable.py holds the two to the same text.

A leaf keeps the text it has in `source` (black's, with its quotes), or is
written with `repr` when it has none, as the line numbers this pass adds.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Final

LINE_LENGTH: Final = 88  # black's default, which kiln formats with
STEP: Final = "    "


def black_stable(prefix: str, table: ast.Tuple, source: str, indent: str) -> list[str]:
    """The lines of ``prefix + table`` at `indent`, as black writes them.

    The table was written one element a line with a trailing comma, which
    black keeps (its magic trailing comma) unless the table is a one-tuple.
    """
    # Offsets into the source are in bytes of UTF-8 (`ast`'s), and looked up per
    # leaf: `ast.get_source_segment` would split the whole source each time.
    lines = [line.encode() for line in source.split("\n")]
    if len(table.elts) < 2:
        return _laid_out(prefix, table, "", indent, lines)
    laid_out = [f"{indent}{prefix}("]
    for element in table.elts:
        laid_out += _laid_out("", element, ",", indent + STEP, lines)
    laid_out.append(f"{indent})")
    return laid_out


def _laid_out(
    prefix: str, value: ast.expr, suffix: str, indent: str, source: Sequence[bytes]
) -> list[str]:
    flat = f"{indent}{prefix}{_flat(value, source)}{suffix}"
    if len(flat) <= LINE_LENGTH:
        return [flat]
    brackets = _brackets(value, source)
    if brackets is None:
        return [flat]  # nothing black could split: a long leaf stays long
    opening, elements, closing = brackets
    head = f"{indent}{prefix}{opening}"
    tail = f"{indent}{closing}{suffix}"
    inner = indent + STEP
    body = f"{inner}{_joined(value, elements, source)}"
    # A display of two or more (not the arguments of a call) black always
    # splits one element a line, once it splits it at all.
    display = isinstance(value, ast.Tuple) and len(elements) > 1
    if len(body) <= LINE_LENGTH and not display:
        return [head, body, tail]
    lines = [head]
    for label, element in elements:
        lines += _laid_out(label, element, ",", inner, source)
    lines.append(tail)
    return lines


Element = tuple[str, ast.expr]  # a keyword's ``name=`` (or ""), and its value


def _brackets(
    value: ast.expr, source: Sequence[bytes]
) -> tuple[str, list[Element], str] | None:
    if isinstance(value, ast.Call):
        elements: list[Element] = [("", arg) for arg in value.args]
        elements += [(f"{kw.arg}=", kw.value) for kw in value.keywords]
        return f"{_flat(value.func, source)}(", elements, ")"
    if isinstance(value, ast.Tuple) and value.elts:
        return "(", [("", element) for element in value.elts], ")"
    return None


def _joined(value: ast.expr, elements: list[Element], source: Sequence[bytes]) -> str:
    """The elements on one line, as between `value`'s brackets: a one-tuple's with its comma."""
    text = ", ".join(f"{label}{_flat(element, source)}" for label, element in elements)
    one_tuple = isinstance(value, ast.Tuple) and len(elements) == 1
    return f"{text}," if one_tuple else text


def _flat(value: ast.expr, source: Sequence[bytes]) -> str:
    """`value` on one line: black's text of each leaf, joined as black joins them."""
    brackets = _brackets(value, source)
    if brackets is not None:
        opening, elements, closing = brackets
        return f"{opening}{_joined(value, elements, source)}{closing}"
    if isinstance(value, ast.Tuple):
        return "()"
    if isinstance(value, ast.Attribute):
        return f"{_flat(value.value, source)}.{value.attr}"
    if isinstance(value, ast.Name):
        return value.id
    assert isinstance(value, ast.Constant), f"not a leaf of a site: {ast.dump(value)}"
    line: int | None = getattr(value, "lineno", None)  # None: added by this pass
    if line is None:
        return repr(value.value)
    assert value.end_lineno == line, "black writes a string of a site on one line"
    return source[line - 1][value.col_offset : value.end_col_offset].decode()
