"""pinpoint: the source expression a mypy error on a generated module points at.

Example input: mypy's ``Argument 2 to "b" has incompatible type "str"`` at
column 25 of a line of the generated module that the line map says was written
for the statement ``t = await b(s, "three")``, which the source spreads over
flow.py:14-17. Output: flow.py:16:9, the ``"three"`` of the source, where
mypy run on the source would put it, instead of the statement's first line.

Generated code copies the user's expressions: the expression mypy points at,
the outermost that starts at its column, has a twin among the expressions of
the statement it was written for, the same code (compared by `ast.dump`),
matched by its place among the copies of that code. A call site's name may
differ (`a_2`, a site's own name), so an expression that has no twin gives
way to the next one inside it, and a line with none keeps the statement.

One message is also put in the source's terms: a fan-out ``[await f(x) for x
in xs]`` compiles to ``kiln.fan_out(f, xs)``, where mypy speaks of kiln's
``fan_out`` and of the element call's type; the error is the element call's
argument, as mypy says of the source.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

from kilnc.source import Span

_UNNAMED: Final = re.compile(r'^(?P<argument>Argument \d+|Argument "\w+")(?= has )')
_FAN_OUT: Final = re.compile(
    r'^Argument 1 to "fan_out" has incompatible type "Callable\[\[(?P<takes>.*)'
    r'"; expected "Callable\[\[(?P<given>.*)"$'
)


@final
@dataclass(frozen=True, slots=True)
class Pinned:
    span: Span
    message: str


@final
class Expressions:
    """A module's expressions in the order of their positions, parsed once.

    ast counts columns in UTF-8 bytes, as mypy does; a `Span` counts characters.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        found = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.expr)]
        self.expressions = sorted(
            found, key=lambda node: (node.lineno, node.col_offset)
        )

    def column(self, line: int, offset: int) -> int:
        """The 1-based character column of a byte offset into `line`."""
        text = self.lines[line - 1] if line <= len(self.lines) else ""
        return len(text.encode("utf-8")[:offset].decode("utf-8", "replace")) + 1

    def span(self, path: str, node: ast.expr) -> Span:
        end_line = node.end_lineno or node.lineno
        end = (
            node.end_col_offset if node.end_col_offset is not None else node.col_offset
        )
        return Span(
            path,
            node.lineno,
            self.column(node.lineno, node.col_offset),
            end_line,
            self.column(end_line, end),
        )

    def within(self, node: ast.expr, span: Span) -> bool:
        where = self.span(span.path, node)
        start, end = (where.line, where.column), (where.end_line, where.end_column)
        return (span.line, span.column) <= start and end <= (
            span.end_line,
            span.end_column,
        )


def pinpoint(
    origin: Span,
    message: str,
    generated: Expressions | None,
    line_map: Sequence[Span | None],
    position: tuple[int, int],  # mypy's line and column, 1-based, in the generated text
    source: Expressions | None,
) -> Pinned:
    """Where in the source, and in what words, mypy's error at `position` belongs."""
    if generated is None or source is None:
        return Pinned(origin, message)
    written = [
        node
        for node in generated.expressions
        if node.lineno <= len(line_map) and line_map[node.lineno - 1] == origin
    ]
    copies = [node for node in source.expressions if source.within(node, origin)]
    fan_out = _FAN_OUT.match(message)
    if fan_out is not None:
        return _fan_out_element(origin, message, fan_out, source, copies)
    line, column = position
    starting = [
        node for node in written if (node.lineno, node.col_offset + 1) == (line, column)
    ]
    for node in sorted(starting, key=_extent, reverse=True):  # the outermost first
        code = ast.dump(node)
        twins = [copy for copy in copies if ast.dump(copy) == code]
        if twins:
            place = [w for w in written if ast.dump(w) == code].index(node)
            twin = twins[min(place, len(twins) - 1)]
            return Pinned(source.span(origin.path, twin), _named(message, twin, copies))
    return Pinned(origin, message)


def _named(message: str, argument: ast.expr, copies: list[ast.expr]) -> str:
    """mypy's `Argument 2 has incompatible type` as the source's call would have it,
    `Argument 2 to "b" ...`: the generated call is of a site, which has no name."""
    unnamed = _UNNAMED.match(message)
    if unnamed is None:
        return message
    for call in copies:
        if isinstance(call, ast.Call) and any(
            argument is given
            for given in (*call.args, *(keyword.value for keyword in call.keywords))
        ):
            name = ast.unparse(call.func).rsplit(".", 1)[-1]
            return f'{unnamed["argument"]} to "{name}"{message[unnamed.end():]}'
    return message


def _fan_out_element(
    origin: Span,
    message: str,
    found: re.Match[str],
    source: Expressions,
    copies: list[ast.expr],
) -> Pinned:
    """mypy's complaint about `fan_out` as the source's element call's: the item's
    type is not what the node takes."""
    takes, given = _first_type(found["takes"]), _first_type(found["given"])
    # The line map names the element (`await f(x)`) or the whole comprehension.
    calls = [copy for copy in copies if isinstance(copy, ast.Call) and copy.args]
    if not calls or not takes or not given:
        return Pinned(origin, message)
    call = calls[0]
    name = ast.unparse(call.func).rsplit(".", 1)[-1]
    return Pinned(
        source.span(origin.path, call.args[0]),
        f'Argument 1 to "{name}" has incompatible type "{given}"; expected "{takes}"',
    )


def _first_type(text: str) -> str:
    """The first parameter type of a `Callable[[...], ...]` mypy printed, from the
    text after its `[[`: up to the comma or bracket that closes it at depth zero."""
    depth = 0
    for index, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in "],)" and depth == 0:
            return text[:index].strip()
        elif char in "])":
            depth -= 1
    return ""


def _extent(node: ast.expr) -> tuple[int, int]:
    return (node.end_lineno or node.lineno, node.end_col_offset or 0)
