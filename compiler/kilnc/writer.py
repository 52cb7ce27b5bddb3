"""The only producer of generated text: lines, indentation, and fresh names.

Like pegen's and CPython's cases generator writers: `line()` appends one line
at the current indentation, `with indent():` nests, `code()` adds a fragment
libcst rendered (one or many lines) at the current indentation.

Every line also records where in the source it comes from (`with at(span):`),
so `kiln check` can report a type error in generated code at the flow's line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final

import black
from black.mode import TargetVersion
from black.strings import str_width

from kilnc.ir import RESERVED_PREFIX
from kilnc.source import Span, string_lines

# How black lays out what the writer writes (`format_module`, `place_site_lines`).
MODE = black.Mode(target_versions={TargetVersion.PY311})


def _after_form_feed(line: str) -> str:
    """The line without the form feeds in its indentation, and what comes before them.

    Python (and libcst) count a line's indentation from the last form feed in
    it; the writer indents the line itself, and black refuses a form feed there.
    """
    code = line.lstrip(" \t\x0c")
    lead = line[: len(line) - len(code)]
    return lead[lead.rfind("\x0c") + 1 :] + code


LINE_LENGTH: Final = 88  # black's default, which kiln formats with


class Writer:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._origins: list[Span | None] = []
        self._origin: Span | None = None
        self._depth = 0

    def line(self, text: str = "") -> None:
        """`text` at the current indentation; a line break in it (a signature
        libcst rendered over several lines) starts a line of the same origin."""
        self._lines.append(f"{'    ' * self._depth}{text}" if text else "")
        # One origin per line of text(): an origin short would shift every later one.
        self._origins.extend([self._origin] * (text.count("\n") + 1))

    def code(self, text: str, origins: Sequence[Span | None] = ()) -> None:
        """Lines of `text`; `origins` gives each its own source position, if known.

        A line that goes on a string literal begun above it is the string's
        text: written as it is, neither indented nor stripped.
        """
        text = text.strip("\n")
        across = string_lines(text)
        # Python breaks lines only at \n (and \r\n): splitlines() would also break
        # at \x1c-\x1e, \x85 and \u2028 inside a string literal.
        for index, line in enumerate(text.split("\n")):
            number = index + 1
            with self.at(origins[index] if index < len(origins) else None):
                if number - 1 in across:  # begins inside a literal: its text
                    self._lines.append(line if number in across else line.rstrip())
                    self._origins.append(self._origin)
                else:
                    self.line(
                        _after_form_feed(line if number in across else line.rstrip())
                    )

    @contextmanager
    def at(self, origin: Span | None) -> Iterator[None]:
        """Lines written inside come from `origin` (None keeps the enclosing one)."""
        outer = self._origin
        self._origin = origin or outer
        try:
            yield
        finally:
            self._origin = outer

    def origins(self) -> tuple[Span | None, ...]:
        """Where each line of `text()` comes from in the source."""
        return tuple(self._origins)

    @contextmanager
    def indent(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def fits(self, text: str, deeper: int = 0) -> bool:
        """Whether `text`, `deeper` levels in from here, stays on one line under black
        (which counts a wide character, CJK or most emoji, as two columns)."""
        return 4 * (self._depth + deeper) + str_width(text) <= LINE_LENGTH

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


class Names:
    """Fresh identifiers under kiln's reserved prefix, unique within one function."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._taken = set(taken)
        # By stem and separator, the number the last search for a free name ended
        # at: names are only ever taken, so the next free one is never below it,
        # and a flow of 2,000 sites of one node is not 2,000 searches from 1.
        self._counts: dict[tuple[str, str], int] = {}

    def fresh(self, base: str) -> str:
        return self._numbered(f"{RESERVED_PREFIX}_{base}", "_")

    def own(self, base: str) -> str:
        """`base` itself, unless a user name takes it: then a fresh, prefixed name."""
        if base in self._taken:
            return self.fresh(base)
        self._taken.add(base)
        return base

    def plain(self, base: str) -> str:
        """A fresh name without the prefix, for module-level classes users see."""
        return self._numbered(base, "")

    def local(self, base: str) -> str:
        """A fresh name without the prefix, for locals: `base`, `base_2`, ..."""
        return self._numbered(base, "_")

    def _numbered(self, base: str, separator: str) -> str:
        count = self._counts.get((base, separator), 1)
        name = base if count == 1 else f"{base}{separator}{count}"
        while name in self._taken:
            count += 1
            name = f"{base}{separator}{count}"
        self._counts[base, separator] = count
        self._taken.add(name)
        return name
