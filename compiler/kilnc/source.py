"""Source files as the compiler sees them: decoded text, lines, and spans.

A `Span` is where something is in a file, 1-based for lines and columns as
mypy prints them. Columns count characters of the decoded line, so a
byte-order mark, CRLF line ends or tabs never shift a diagnostic.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import final

LINE_END = re.compile(r"\r\n|\r|\n")


@final
@dataclass(frozen=True, slots=True)
class Span:
    """A range in a source file: 1-based line and column, end exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def at(path: str, line: int, column: int = 1) -> Span:
        return Span(path, line, column, line, column + 1)

    def location(self) -> str:
        return f"{self.path}:{self.line}"


@final
@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file read from disk (or given in a test), decoded once."""

    path: str  # as diagnostics show it
    module: str  # dotted module name relative to the project root
    text: str  # decoded, byte-order mark removed, line ends as written
    digest: str  # sha256 of the bytes, for the generated header
    lines: tuple[
        str, ...
    ]  # split where Python ends lines: \n, \r\n, \r and nothing else

    @staticmethod
    def from_bytes(path: str, module: str, data: bytes) -> SourceFile:
        text = data.decode("utf-8-sig", errors="replace")
        lines = tuple(LINE_END.split(text))
        return SourceFile(path, module, text, hashlib.sha256(data).hexdigest(), lines)

    def line(self, number: int) -> str:
        """The text of 1-based line `number`, without its line end."""
        return self.lines[number - 1] if 0 < number <= len(self.lines) else ""

    def column(self, line: int, column: int) -> int:
        """libcst's 0-based column as a 0-based character index into the line.

        Python resets indentation at a form feed, and libcst counts the line's
        leading whitespace from the last form feed in it; a diagnostic's column
        counts every character.
        """
        text = self.line(line)
        lead = len(text) - len(text.lstrip(" \t\x0c"))
        return column + text.rfind("\x0c", 0, lead) + 1


def display_path(path: Path) -> str:
    """The path as a user typed it: relative to the working directory when under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


@functools.lru_cache(maxsize=8)
def comment_lines(text: str) -> frozenset[int]:
    """The lines of `text` that hold a comment and nothing else (from 1)."""
    found: set[int] = set()
    code_lines: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                found.add(token.start[0])
            elif token.type not in _LAYOUT:
                code_lines.update(range(token.start[0], token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        return frozenset()  # a source Python would not compile has no lines to keep
    return frozenset(found - code_lines)


_LAYOUT = frozenset(
    {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT}
)


def string_lines(text: str) -> frozenset[int]:
    """The lines of `text` (from 1) that a string literal runs across the end of.

    What such a line has after the literal's opening quotes is the string's
    text, and what the next line has before its closing quotes too.
    """
    across: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in _STRING_PARTS and token.end[0] > token.start[0]:
                across.update(range(token.start[0], token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        # A fragment that is not whole statements: no literal runs across its lines.
        return frozenset()
    return frozenset(across)


# A string's tokens: 3.12 splits an f-string into parts, and its text is the middle.
_STRING_PARTS = frozenset(
    {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
)
