"""black_stable: a statement of calls, tuples and leaves laid out as black lays it out.

Example input: the prefix ``_kiln_sites = ``, the expression of a site table
(a tuple of `_kiln.site(...)` calls whose leaves are names, attributes,
strings, numbers and booleans) and the indentation of the class body. Output: the statement's
lines, exactly as `black.format_str` would write them: on one line when it
fits in black's 88 columns, else at the last bracket with the contents on one
line when they fit (the arguments of a call, or a one-tuple), else one element
a line, each laid out the same way at the next indentation, with a trailing
comma.

black never sees a site table: `place_site_lines` writes each into black's
text of the rest of the module, once the lines of the flow's body are known.
At 500 sites, black took more time over the table than over all the rest.
These are the only layouts black chooses for such a statement;
tests/test_black_stable.py holds the two to the same text.

A leaf is written as black writes its `repr`: a string in double quotes
unless they would need more escapes than its own (`black_string`). A line's
length is black's too: its width in columns (`black.strings.str_width`).
"""

from __future__ import annotations

import ast
from typing import Final

# Columns as black counts them: a wide character (CJK, most emoji) takes two.
from black.strings import str_width

from kilnc.writer import LINE_LENGTH

STEP: Final = "    "


def black_stable(prefix: str, table: ast.Tuple, indent: str) -> list[str]:
    """The lines of ``prefix + table`` at `indent`, as black writes them.

    The table is written one element a line with a trailing comma, which
    black keeps (its magic trailing comma) unless the table is a one-tuple.
    """
    if len(table.elts) < 2:
        return _laid_out(prefix, table, "", indent)
    laid_out = [f"{indent}{prefix}("]
    for element in table.elts:
        laid_out += _laid_out("", element, ",", indent + STEP)
    laid_out.append(f"{indent})")
    return laid_out


def black_string(value: str) -> str:
    """The literal of `value` as black writes `repr(value)`.

    `repr` quotes with ' unless the text holds a ' and no ". Black turns '
    into " where that needs no more escapes: unless the text holds more "
    than '.
    """
    literal = repr(value)
    if literal[0] == '"' or value.count('"') > value.count("'"):
        return literal
    # In the quotes of repr every ' is escaped and no " is.
    body = literal[1:-1].replace("\\'", "'").replace('"', '\\"')
    return f'"{body}"'


def _laid_out(prefix: str, value: ast.expr, suffix: str, indent: str) -> list[str]:
    flat = f"{indent}{prefix}{_flat(value)}{suffix}"
    if str_width(flat) <= LINE_LENGTH:
        return [flat]
    brackets = _brackets(value)
    if brackets is None:
        return [flat]  # nothing black could split: a long leaf stays long
    opening, elements, closing = brackets
    head = f"{indent}{prefix}{opening}"
    tail = f"{indent}{closing}{suffix}"
    inner = indent + STEP
    body = f"{inner}{_joined(value, elements)}"
    # A display of two or more (not the arguments of a call) black always
    # splits one element a line, once it splits it at all.
    display = isinstance(value, ast.Tuple) and len(elements) > 1
    if str_width(body) <= LINE_LENGTH and not display:
        return [head, body, tail]
    lines = [head]
    for label, element in elements:
        lines += _laid_out(label, element, ",", inner)
    lines.append(tail)
    return lines


Element = tuple[str, ast.expr]  # a keyword's ``name=`` (or ""), and its value


def _brackets(value: ast.expr) -> tuple[str, list[Element], str] | None:
    if isinstance(value, ast.Call):
        elements: list[Element] = [("", arg) for arg in value.args]
        elements += [(f"{kw.arg}=", kw.value) for kw in value.keywords]
        return f"{_flat(value.func)}(", elements, ")"
    if isinstance(value, ast.Tuple) and value.elts:
        return "(", [("", element) for element in value.elts], ")"
    return None


def _joined(value: ast.expr, elements: list[Element]) -> str:
    """The elements on one line, as between `value`'s brackets: a one-tuple's with its comma."""
    text = ", ".join(f"{label}{_flat(element)}" for label, element in elements)
    one_tuple = isinstance(value, ast.Tuple) and len(elements) == 1
    return f"{text}," if one_tuple else text


def _flat(value: ast.expr) -> str:
    """`value` on one line: black's text of each leaf, joined as black joins them."""
    brackets = _brackets(value)
    if brackets is not None:
        opening, elements, closing = brackets
        return f"{opening}{_joined(value, elements)}{closing}"
    if isinstance(value, ast.Tuple):
        return "()"
    if isinstance(value, ast.Attribute):
        return f"{_flat(value.value)}.{value.attr}"
    if isinstance(value, ast.Name):
        return value.id
    assert isinstance(value, ast.Constant), f"not a leaf of a site: {ast.dump(value)}"
    if isinstance(value.value, str):
        return black_string(value.value)
    return repr(value.value)
