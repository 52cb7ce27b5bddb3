"""format_module: black, as a library, and CPython's compile of what it returns.

The output must parse and compile; a failure is a bug in kiln, reported as
an internal error rather than written to disk. Black runs once: that its
output is a fixed point (black's `assert_stable`) is checked by the tests, on
every module they compile, where a second pass costs no user anything.
"""

from __future__ import annotations

import black
from black.parsing import InvalidInput

from kilnc.depth import largest_statement, python_limits
from kilnc.writer import MODE


class FormatError(Exception):
    """The emitter produced text black cannot accept: a compiler bug."""


class TooDeep(Exception):
    """A statement CPython compiles in the source, but not inside the compiled module.

    Not a compiler bug: the source sits within a few levels of a limit of
    CPython's (the depth its compiler recurses to, or 100 levels of
    indentation), and the compiled flow puts the statement inside a class, a
    method and a `try`. `line` is the line of the formatted `text` where the
    statement is; `indentation` tells the two limits apart.
    """

    def __init__(self, text: str, line: int, *, indentation: bool = False) -> None:
        super().__init__(f"nested too deeply for Python to compile at line {line}")
        self.text = text
        self.line = line
        self.indentation = indentation


def format_module(text: str) -> str:
    try:
        formatted = black.format_str(text, mode=MODE)
    except InvalidInput as exc:
        raise FormatError(
            f"the generated module does not parse: {exc}\n{text}"
        ) from exc
    try:
        # Compiled, never run: catches what parsing alone accepts (`await` outside async).
        with python_limits():  # as the module will be compiled when it is imported
            compile(formatted, "<generated>", "exec", dont_inherit=True)
    except (RecursionError, MemoryError) as exc:
        raise TooDeep(formatted, largest_statement(formatted)) from exc
    except IndentationError as exc:
        if "too many levels" not in exc.msg:
            raise FormatError(f"the generated module does not compile: {exc}") from exc
        raise TooDeep(formatted, exc.lineno or 1, indentation=True) from exc
    except SyntaxError as exc:
        if "too complex" in exc.msg:  # the parser's own stack, as for the source
            raise TooDeep(
                formatted, exc.lineno or largest_statement(formatted)
            ) from exc
        # Among them "too many statically nested blocks": the emitter keeps to
        # Python's 20, moving a call that would pass it into a function.
        raise FormatError(
            f"the generated module does not compile: {exc}\n{formatted}"
        ) from exc
    return formatted
