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

A definition the module keeps as it is (a node's, a helper's: its line map
names only source lines) is the source's tree laid out again, so its twin is
found by walking both trees side by side (`copied_twin`): the column of any
statement or expression in it is the source's, as mypy on the source says. A
line of one with no twin is the source line's code, from its indentation on.

One message is also put in the source's terms: a fan-out ``[await f(x) for x
in xs]`` compiles to ``kiln.fan_out(f, xs)``, where mypy speaks of kiln's
``fan_out`` and of the element call's type; the error is the element call's
argument, as mypy says of the source.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, final

from kilnc.source import Span

Positioned = ast.expr | ast.stmt | ast.arg
POSITIONED: Final = (ast.expr, ast.stmt, ast.arg)
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
        self.tree = ast.parse(text)
        found = [n for n in ast.walk(self.tree) if isinstance(n, ast.expr)]
        self.expressions = sorted(
            found, key=lambda node: (node.lineno, node.col_offset)
        )

    def column(self, line: int, offset: int) -> int:
        """The 1-based character column of a byte offset into `line`."""
        text = self.lines[line - 1] if line <= len(self.lines) else ""
        return len(text.encode("utf-8")[:offset].decode("utf-8", "replace")) + 1

    def span(self, path: str, node: ast.expr | ast.stmt | ast.arg) -> Span:
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
    copied = copied_twin(generated, position, source, origin.line)
    if copied is not None:
        return Pinned(source.span(origin.path, copied), message)
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
    return Pinned(_from_indentation(origin, source), message)


def _from_indentation(origin: Span, source: Expressions) -> Span:
    """A whole source line (a kept definition's) as the span of its code: the
    column where its text starts, not the indentation's 1."""
    whole_line = Span.at(origin.path, origin.line)
    if origin != whole_line or origin.line > len(source.lines):
        return origin
    text = source.lines[origin.line - 1].rstrip()
    start = len(text) - len(text.lstrip())
    if not text.strip():
        return origin
    return Span(origin.path, origin.line, start + 1, origin.line, len(text) + 1)


def copied_twin(
    generated: Expressions, position: tuple[int, int], source: Expressions, line: int
) -> Positioned | None:
    """The node of the source that the generated node mypy points at copies, when
    it is in a definition the module keeps (a node, a helper, a class).

    A kept definition is the source's own, less kiln's decorators and perhaps
    some names, laid out again by black: its tree is the source's. The two are
    walked side by side from the top-level statements holding the error's line
    and its origin's; the outermost node that starts at mypy's column, a
    statement (`Returning Any`) or an expression, gives its twin's place.
    """
    at, column = position
    written = _top_level(generated.tree, at)
    original = _top_level(source.tree, line)
    if written is None or original is None or not _same_statement(written, original):
        return None
    starting = [
        (node, twin)
        for node, twin in _twins(written, original)
        if (node.lineno, node.col_offset + 1) == (at, column)
    ]
    if not starting:
        return None
    return max(starting, key=lambda pair: _extent(pair[0]))[1]


def _top_level(tree: ast.Module, line: int) -> ast.stmt | None:
    for statement in tree.body:
        decorators = getattr(statement, "decorator_list", [])
        start = min([statement.lineno, *(d.lineno for d in decorators)])
        if start <= line <= (statement.end_lineno or statement.lineno):
            return statement
    return None


def _same_statement(written: ast.stmt, original: ast.stmt) -> bool:
    """Whether a generated top-level statement is the copy of a source's: a flow's
    class is no copy of the flow's def."""
    return type(written) is type(original) and getattr(
        written, "name", None
    ) == getattr(original, "name", None)


def _twins(
    written: ast.AST, original: ast.AST
) -> Iterator[tuple[Positioned, Positioned]]:
    """The nodes of two trees of one shape, paired; lists of other lengths (the
    decorators kiln removed) by the elements that print the same."""
    if isinstance(written, POSITIONED) and isinstance(original, POSITIONED):
        yield written, original
    for field in written._fields:
        mine, theirs = getattr(written, field, None), getattr(original, field, None)
        if isinstance(mine, ast.AST) and isinstance(theirs, type(mine)):
            yield from _twins(mine, theirs)
        elif isinstance(mine, list) and isinstance(theirs, list):
            for a, b in _aligned(mine, theirs):
                if isinstance(a, ast.AST) and isinstance(b, type(a)):
                    yield from _twins(a, b)


def _aligned(
    mine: list[object], theirs: list[object]
) -> Iterator[tuple[object, object]]:
    if len(mine) == len(theirs):
        yield from zip(mine, theirs, strict=True)
        return
    dumps = [
        [ast.dump(x) if isinstance(x, ast.AST) else repr(x) for x in side]
        for side in (mine, theirs)
    ]
    matcher = difflib.SequenceMatcher(None, dumps[0], dumps[1], autojunk=False)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            yield mine[block.a + offset], theirs[block.b + offset]


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


def _extent(node: Positioned) -> tuple[int, int]:
    return (node.end_lineno or node.lineno, node.end_col_offset or 0)
