"""Source files as the compiler sees them: decoded text, lines, and spans.

A `Span` is where something is in a file, 1-based for lines and columns as
mypy prints them. Columns count characters of the decoded line, so a
byte-order mark, CRLF line ends or tabs never shift a diagnostic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import final


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

    @staticmethod
    def from_bytes(path: str, module: str, data: bytes) -> SourceFile:
        text = data.decode("utf-8-sig", errors="replace")
        return SourceFile(path, module, text, hashlib.sha256(data).hexdigest())

    def line(self, number: int) -> str:
        """The text of 1-based line `number`, without its line end."""
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


def display_path(path: Path) -> str:
    """The path as a user typed it: relative to the working directory when under it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()
