"""black_stable lays a site table out exactly as black does, whatever its sites hold."""

from __future__ import annotations

import ast
import keyword

import black
from hypothesis import given, settings
from hypothesis import strategies as st

from kilnc.black_stable import black_stable, black_string
from kilnc.writer import MODE

NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,40}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)
# Strings as the emitter writes them, with `repr`: quotes of both kinds,
# backslashes, control and non-ASCII characters in them.
TEXTS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9_./:' -]{0,60}", fullmatch=True),
    st.text(st.sampled_from("ab '\"\\\n\t\x00é€😀"), max_size=12),
).map(repr)
LINES = st.lists(st.integers(0, 100_000), min_size=1, max_size=40).map(
    lambda numbers: (
        f"({', '.join(map(str, numbers))},)"
        if len(numbers) == 1
        else f"({', '.join(map(str, numbers))})"
    )
)
CLASSES = st.lists(NAMES, min_size=1, max_size=6).map(
    lambda names: f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"
)


@st.composite
def sites(draw: st.DrawFn) -> str:
    """One `_kiln.site(...)` call as the emitter writes it, on one line."""
    called = draw(NAMES)
    if draw(st.booleans()):
        called = f"_kiln.subflow({called})"
    fields = [called, draw(TEXTS), draw(TEXTS), draw(TEXTS)]
    if draw(st.booleans()):
        fields.append(draw(LINES))
    optional = {
        "kind": TEXTS,
        "policy": NAMES.map(str.upper),
        "cache": TEXTS,
        "classes": CLASSES,
        "fallback": NAMES,
        "changes": TEXTS,
    }
    for option, values in optional.items():
        if draw(st.booleans()):
            fields.append(f"{option}={draw(values)}")
    return f"_kiln.site({', '.join(fields)})"


@settings(max_examples=150, deadline=None)
@given(st.lists(sites(), min_size=1, max_size=4), st.integers(0, 2))
def test_a_table_is_laid_out_as_black_lays_it_out(table: list[str], depth: int) -> None:
    # As the emitter writes a table, a site a line with a trailing comma, in a
    # class body (or two) for its indentation.
    indent = "    " * depth
    classes = "".join(f"{'    ' * level}class A{level}:\n" for level in range(depth))
    written = "".join(f"{indent}    {site},\n" for site in table)
    text = f"{classes}{indent}_kiln_sites = (\n{written}{indent})\n"
    [statement] = [
        node.value
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple)
    ]
    laid_out = black_stable("_kiln_sites = ", statement, indent)
    expected = black.format_str(text, mode=MODE).split("\n")
    assert laid_out == expected[depth:-1]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(st.sampled_from("'\"\\ab\n"))))
def test_a_string_is_written_as_black_writes_its_repr(value: str) -> None:
    # An argument: alone in a module, a string would be its docstring.
    written = black.format_str(f"f({value!r})\n", mode=MODE)
    assert written.replace("\n", "") in (
        f"f({black_string(value)})",
        f"f(    {black_string(value)})",  # split at the bracket: one line too long
    )
