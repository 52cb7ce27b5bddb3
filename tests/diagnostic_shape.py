"""Reading diagnostics back out of the `kiln` command's output (DESIGN.md §4.7).

Each diagnostic is printed in mypy's shape::

    path:line:col: error: message  [KLNnnn]
        <the source line, indentation removed>
        <spaces>^~~~
    path:line:col: note: hint

`parse_report` finds the headers and their excerpt and caret lines;
`assert_caret_under_column` checks that the caret stands under the character
the column names, tabs expanded, with the source split into lines as Python
splits it (only at \\n, \\r\\n and \\r).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kilnc.diagnostics import EXCERPT_KEPT
from kilnc.terminal import printable

HEADER = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|warning): "
    r"(?P<message>\S.*?)  \[(?P<code>KLN\d{3})\]$"
)
EXCERPT_INDENT = "    "


@dataclass(frozen=True)
class Reported:
    path: str
    line: int
    column: int
    severity: str
    message: str
    code: str
    excerpt: str | None  # the excerpt line as printed, or None when there was none
    caret: str | None


def python_lines(text: str) -> list[str]:
    """The lines of a source as Python's tokenizer counts them."""
    return re.split(r"\r\n|\r|\n", text)


def parse_report(output: str) -> list[Reported]:
    lines = output.splitlines()
    found: list[Reported] = []
    for index, text in enumerate(lines):
        match = HEADER.match(text)
        if match is None:
            continue
        excerpt = caret = None
        following = lines[index + 1 : index + 3]
        if len(following) == 2 and re.fullmatch(r" *\^~*", following[1]):
            excerpt, caret = following
        found.append(
            Reported(
                match["path"],
                int(match["line"]),
                int(match["column"]),
                match["severity"],
                match["message"],
                match["code"],
                excerpt,
                caret,
            )
        )
    return found


def assert_caret_under_column(reported: Reported, source_text: str) -> None:
    """The excerpt is the reported line and the caret is under the reported column."""
    lines = python_lines(source_text)
    assert 1 <= reported.line <= len(lines), reported
    raw = lines[reported.line - 1]
    assert 1 <= reported.column <= len(raw) + 1, (reported, raw)
    assert reported.excerpt is not None, f"no excerpt for {reported}"
    assert reported.caret is not None
    # Control characters are printed as escapes (kilnc.terminal), so is the excerpt.
    expanded = shown_line(raw)
    shown = expanded.lstrip()
    indent = len(expanded) - len(shown)
    assert reported.excerpt == EXCERPT_INDENT + shown, (reported.excerpt, raw)
    prefix = shown_line(raw[: reported.column - 1])
    caret_at = reported.caret.index("^")
    assert caret_at == len(EXCERPT_INDENT) + len(prefix) - indent, (reported, raw)
    if reported.column <= len(raw) and raw[reported.column - 1] != "\t":
        # the character the column names is the one printed above the caret
        first = shown_line(raw[reported.column - 1])[0]
        assert reported.excerpt[caret_at] == first, (reported, raw)


def shown_line(text: str) -> str:
    """A source line as an excerpt shows it: controls escaped, tabs expanded."""
    return printable(text, EXCERPT_KEPT).expandtabs()
