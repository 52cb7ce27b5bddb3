"""format_module: black, as a library, with the checks black runs on itself.

The output must parse, and formatting it again must change nothing
(black's `assert_stable`); either failure is a bug in kiln, reported as an
internal error rather than written to disk.
"""

from __future__ import annotations

import black
from black.mode import TargetVersion
from black.parsing import InvalidInput

MODE = black.Mode(target_versions={TargetVersion.PY311})


class FormatError(Exception):
    """The emitter produced text black cannot accept: a compiler bug."""


class TooDeep(Exception):
    """The generated module nests blocks deeper than Python compiles (20).

    Not a compiler bug: the flow's own nesting plus the blocks each call needs
    (its `try`, a task's `async def`) passes the limit. `line` is the line of
    the formatted `text` Python stopped at.
    """

    def __init__(self, text: str, line: int) -> None:
        super().__init__(f"too many statically nested blocks at line {line}")
        self.text = text
        self.line = line


def format_module(text: str) -> str:
    try:
        formatted = black.format_str(text, mode=MODE)
    except InvalidInput as exc:
        raise FormatError(
            f"the generated module does not parse: {exc}\n{text}"
        ) from exc
    if black.format_str(formatted, mode=MODE) != formatted:
        raise FormatError("black does not reach a fixed point on the generated module")
    try:
        # Compiled, never run: catches what parsing alone accepts (`await` outside async).
        compile(formatted, "<generated>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        if "nested" in exc.msg:
            raise TooDeep(formatted, exc.lineno or 1) from exc
        raise FormatError(
            f"the generated module does not compile: {exc}\n{formatted}"
        ) from exc
    return formatted
