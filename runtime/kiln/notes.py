"""The note a failure gets: which call of the flow's source it left, and where.

A compiled flow's body has one handler, not one per call::

    async def aforward(self, root: str) -> str:
        (_kiln_load, _kiln_summarize) = self._kiln_bind(self._kiln_sites)
        try:
            text = _kiln_load(root)
            return await _kiln_summarize(text)
        except Exception as error:
            self._kiln_note(error)
            raise

Each `Site` lists the lines of the body, counted from its ``def``, whose
statements make its call (`Site.lines`, written by the compiler after black).
The handler walks the traceback down from the body's frame, through the
frames of the functions nested in it (the tasks, the fan-out elements), and
the innermost line that a site lists names the call that failed:

    kiln: node 'summarize' failed; defined at digest.py:14, called at digest.py:21

Nothing runs until a call fails: a `try` costs nothing in CPython 3.11 until
something raises.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from types import CodeType, TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiln.site_table import Site

__all__ = ["failure_note"]

# By flow class: the sites each line of its body calls, relative to the body's `def`.
_LINES: weakref.WeakKeyDictionary[type, Mapping[int, tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)


def failure_note(
    kind: type, sites: Sequence[Site], traceback: TracebackType | None
) -> str | None:
    """The note for a failure of `kind`'s body, or None when no call of it failed.

    `traceback` starts at the body's own frame (the frame whose handler asks).
    """
    if traceback is None:
        return None
    lines = _LINES.get(kind)
    if lines is None:
        lines = _LINES[kind] = _lines_of(sites)
    failed = _failed_call(traceback, lines)
    if failed is None:
        return None
    first = sites[failed[0]]
    if first.kind == "ask":  # a question answers, or suspends the run as itself
        return None
    what = "flow" if first.kind == "flow" else "node"
    others = sorted({sites[index].node for index in failed[1:]} - {first.node})
    inside = ", ".join(repr(other) for other in others)
    also = f" (or one of {inside} inside it)" if others else ""
    return (
        f"kiln: {what} {first.node!r}{also} failed; "
        f"defined at {first.defined}, called at {first.where}"
    )


def _lines_of(sites: Sequence[Site]) -> Mapping[int, tuple[int, ...]]:
    lines: dict[int, tuple[int, ...]] = {}
    for index, site in enumerate(sites):
        for line in site.lines:
            lines[line] = (*lines.get(line, ()), index)
    return lines


def _failed_call(
    traceback: TracebackType, lines: Mapping[int, tuple[int, ...]]
) -> tuple[int, ...] | None:
    """The sites of the innermost line of this run of the body that a site lists.

    A frame belongs to the run when it runs the body's code or a function
    nested in it, up to another frame running the body's code: a flow that calls itself
    notes its own call there, and the inner run has noted its own.
    """
    body = traceback.tb_frame.f_code
    nested = f"{body.co_qualname}.<locals>."
    found = None
    entry: TracebackType | None = traceback
    while entry is not None:
        code = entry.tb_frame.f_code
        if code is body and entry.tb_frame is not traceback.tb_frame:
            break  # another run of the body: a recursive call's, noted there
        if _within(code, body, nested):
            found = lines.get(entry.tb_lineno - body.co_firstlineno, found)
        entry = entry.tb_next
    return found


def _within(code: CodeType, body: CodeType, nested: str) -> bool:
    return code is body or (
        code.co_filename == body.co_filename and code.co_qualname.startswith(nested)
    )
