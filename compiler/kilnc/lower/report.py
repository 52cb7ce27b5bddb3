"""Lowering's diagnostics, asyncio wrapped around node calls said once, and what
to write instead of each construct outside the flow language.

Example input: `a, b = await asyncio.gather(fetch(x), fetch(y))`. Output:
one KLN114 at `asyncio.gather(...)` saying what to write instead (idioms.py),
and nothing at the node calls inside it, which would otherwise each be
reported as not awaited: the advice to await them gives code that fails in
the source too.
"""

from __future__ import annotations

from typing import Final

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import ParsedModule
from kilnc.ir import Resolver
from kilnc.lower.idioms import find_idioms
from kilnc.source import Span

# A `try` moved into a plain function the flow calls would call the node there
# as the plain function, without its options (KLN317): the options do its work.
_KEEP_OPTIONS: Final = (
    "handle the error inside a node, or around the flow's call; for the node's "
    "own failure, give it `fallback=` (a value in its place) and `retry_on=` "
    "(the errors it retries): a plain function that calls it in a `try` calls it "
    "without its options"
)

# What to write instead of each construct outside the flow language.
UNSUPPORTED: Final[dict[type[cst.CSTNode], tuple[str, str]]] = {
    cst.Try: ("'try' in a flow", _KEEP_OPTIONS),
    cst.TryStar: ("'try' in a flow", _KEEP_OPTIONS),
    cst.With: ("'with' in a flow", "open the resource inside a node"),
    cst.FunctionDef: ("a nested function in a flow", "define it at module level"),
    cst.ClassDef: ("a nested class in a flow", "define it at module level"),
    cst.Global: (
        "'global' in a flow",
        "pass the value in and return it, or use kiln.Memory",
    ),
    cst.Nonlocal: ("'nonlocal' in a flow", "pass the value in and return it"),
    cst.Import: ("'import' in a flow", "import it at module level"),
    cst.ImportFrom: ("'import' in a flow", "import it at module level"),
}


class Reporter:
    """The diagnostics of one flow's lowering, in the order they were found."""

    def __init__(self, parsed: ParsedModule, resolve: Resolver) -> None:
        self.parsed = parsed
        self.resolve = resolve
        self.diagnostics: list[Diagnostic] = []
        self._excused: list[Span] = []  # asyncio idioms reported, with all inside

    def asyncio_idioms(self, node: cst.CSTNode) -> bool:
        """Report asyncio wrapped around node calls; whether there was any.

        The node calls inside are not reported again (as not awaited, say):
        the advice to await them would give code that fails in the source too.
        """
        found = find_idioms(node, self.parsed.qualified_names, self.resolve)
        for idiom in found:
            self.report(idiom.node, Code.ASYNCIO_IDIOM, idiom.message, idiom.hint)
            self._excused.append(self.parsed.span(idiom.node))
        return bool(found)

    def report(
        self, node: cst.CSTNode, code: Code, message: str, hint: str | None = None
    ) -> None:
        span = self.parsed.span(node)
        if code is not Code.ASYNCIO_IDIOM and any(
            _within(span, excused) for excused in self._excused
        ):
            return
        self.diagnostics.append(error(span, code, message, hint))

    def unsupported(self, node: cst.CSTNode) -> None:
        """A construct outside the flow language: what to write instead."""
        what, instead = UNSUPPORTED.get(
            type(node), (f"'{type(node).__name__}'", "move it into a node")
        )
        message = f"{what} is not part of the flow language"
        self.report(node, Code.UNSUPPORTED, message, instead)


def _within(span: Span, outer: Span) -> bool:
    return (
        span.path == outer.path
        and (outer.line, outer.column) <= (span.line, span.column)
        and (span.end_line, span.end_column) <= (outer.end_line, outer.end_column)
    )
