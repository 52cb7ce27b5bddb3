"""KLN318: an async stream the flow leaves early, whose cleanup changes what the
flow may read.

Example input::

    async for token in tokens(state):   # its `finally:` sets state["streaming"]
        if token == "stop":
            break
    if state["streaming"]: ...

The compiled flow closes the stream at the `break` (README, "A stream the flow
stops reading is closed at once"), so its `finally` has run at the `if`.
Plain Python leaves an async generator to the event loop's finalizer, which
runs it at the flow's next suspension: the source's `if` sees the stream
still open. The two runs differ only where the cleanup changes something,
which `Effects.cleans_up` finds; the warning names that change.
"""

from __future__ import annotations

import libcst as cst

from kilnc.diagnostics import Code, warning
from kilnc.lower.changes import Changes
from kilnc.lower.report import Reporter
from kilnc.syntax import code
from kilnc.walk import walk

__all__ = ["warn_closed_early"]


def warn_closed_early(node: cst.For, changes: Changes, report: Reporter) -> None:
    """KLN318 for an `async for` over a stream call that its body may leave early
    (`break`, `return`) when the stream's cleanup makes a change."""
    if node.asynchronous is None or not _left_early(node.body):
        return
    cleanup = changes.effects_of(node.iter).cleans_up
    if cleanup is None:
        return
    stream = node.iter.func if isinstance(node.iter, cst.Call) else node.iter
    message = (
        f"the stream of '{code(stream)}' is closed where the flow leaves this loop"
        f" early, so its cleanup ({cleanup.reason}, at {cleanup.span.location()})"
        " runs there; run as plain Python, asyncio runs an async generator's"
        " cleanup later, at the flow's next suspension, after the code right"
        " after the loop"
    )
    hint = (
        "if the code after the loop reads what the cleanup changes, read it in the"
        " loop before leaving, or make the change in the flow after the loop"
    )
    span = report.parsed.span(node.iter)
    report.diagnostics.append(warning(span, Code.CLOSED_STREAM, message, hint))


def _left_early(body: cst.BaseSuite) -> bool:
    finder = _Exits()
    walk(body, finder)
    return finder.found


class _Exits(cst.CSTVisitor):
    """A `break` of this loop, or a `return`: the loop is left with items unread.
    An inner loop's `break` is its own; a `return` in it still leaves."""

    def __init__(self) -> None:
        self.found = False
        self.inner = 0  # loops inside the body around the code visited

    def visit_Break(self, node: cst.Break) -> None:
        self.found |= self.inner == 0

    def visit_Return(self, node: cst.Return) -> None:
        self.found = True

    def visit_For(self, node: cst.For) -> None:
        self.inner += 1

    def leave_For(self, original_node: cst.For) -> None:
        self.inner -= 1

    def visit_While(self, node: cst.While) -> None:
        self.inner += 1

    def leave_While(self, original_node: cst.While) -> None:
        self.inner -= 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False
