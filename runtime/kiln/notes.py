"""The note a failure gets: which call of the flow's source it left, and where.

A compiled flow's body has one handler, not one per call: the `with` that
binds its calls (`Flow._kiln_bind` gives a `Bound`)::

    async def aforward(self, root: str) -> str:
        with self._kiln_bind(self._kiln_sites) as (load, summarize):
            text = load(root)
            return await summarize(text)

Each `Site` lists the lines of the body, counted from its ``def``, whose
statements make its call (`Site.lines`, written by the compiler after black).
On a failure, `Bound.__exit__` walks the traceback down from the body's
frame, through the frames of the functions nested in it (the tasks, the
fan-out elements) and the lines that spawned its tasks (`Scope.spawn` keeps
them), and the innermost line that a site lists names the call that failed:

    kiln: node 'summarize' failed; defined at digest.py:14, called at digest.py:21

Until a call fails, the handler costs the two calls of a `with` per run.

An error of the run's `on_event` hook is the hook's, not the call's: it
leaves with a note of its own (`hook_note`), and none that blames the node:

    kiln: on_event raised on the 'completed' event of node 'charge', called at
    pay.py:19 (the hook's error, not the node's)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Final, Generic, TypeVar, final

from kiln.errors import converted, left

if TYPE_CHECKING:
    from kiln.events import NodeEvent
    from kiln.site_table import Site

__all__ = ["Bound", "failure_note", "from_hook", "hook_note"]

_HOOK: Final = "kiln: on_event raised on the "

C = TypeVar("C", bound=tuple[object, ...])  # a site table, typed as its calls

# By flow class: the sites each line of its body calls, relative to the body's `def`.
_LINES: weakref.WeakKeyDictionary[type, Mapping[int, tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)


@final
class Bound(Generic[C]):
    """A run's calls, for the `with` around its flow's body; it notes a failure.

    `kind` is the flow's class and `sites` its sites. Holding nothing of one
    run, a `Bound` of a class's plain calls serves every run of it. A body
    nested too deep for one more block takes `calls` without the `with`.
    """

    __slots__ = ("_kind", "_sites", "calls", "release")

    def __init__(self, kind: type, sites: Sequence[Site], calls: C) -> None:
        self._kind = kind
        self._sites = sites
        self.calls = calls
        # Called as the body leaves: a binder takes the run back for its next one.
        self.release: Callable[[], object] | None = None

    def __enter__(self) -> C:
        return self.calls

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # None, not bool: the body's exception always goes on, and mypy must
        # know it, or a `return` inside the `with` is a missing return to it.
        if isinstance(error, Exception) and not from_hook(error):
            note = failure_note(self._kind, self._sites, traceback)
            # A StopIteration turned RuntimeError has it too: the sync entry
            # point of a flow written as a `def` raises it (`kiln.run_sync`).
            for noted in (error, converted(error)):
                # An exception object raised again (a module's constant, say) has it.
                if (
                    noted is None
                    or note is None
                    or note in getattr(noted, "__notes__", ())
                ):
                    continue
                noted.add_note(note)
            if traceback is not None:
                left(error, traceback.tb_frame.f_code)
        if self.release is not None:
            self.release()


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
    failed = _ranked(failed, sites, traceback)
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


def hook_note(event: NodeEvent) -> str:
    """The note on an error the run's `on_event` raised when told of `event`."""
    return (
        f"{_HOOK}{event.status.value!r} event of node {event.node!r}, "
        f"called at {event.site} (the hook's error, not the node's)"
    )


def from_hook(error: BaseException) -> bool:
    """Whether `error` was raised by a run's `on_event` (it has its `hook_note`)."""
    notes = getattr(error, "__notes__", ())
    return any(isinstance(note, str) and note.startswith(_HOOK) for note in notes)


def _lines_of(sites: Sequence[Site]) -> Mapping[int, tuple[int, ...]]:
    lines: dict[int, tuple[int, ...]] = {}
    for index, site in enumerate(sites):
        for line in site.lines:
            lines[line] = (*lines.get(line, ()), index)
    return lines


def _failed_call(
    traceback: TracebackType, lines: Mapping[int, tuple[int, ...]]
) -> tuple[int, ...] | None:
    """The sites of the innermost line of this run of the body that a site lists,
    and that called on from there.

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
        # The last entry raised in the line itself, before any call was made
        # (`g("x" + q)` with a number q): that is no call's failure.
        if _within(code, body, nested) and entry.tb_next is not None:
            found = lines.get(entry.tb_lineno - body.co_firstlineno, found)
        entry = entry.tb_next
    return found


def _ranked(
    failed: tuple[int, ...], sites: Sequence[Site], traceback: TracebackType
) -> tuple[int, ...]:
    """The sites of one line that may have raised; the one that did, alone.

    A line may make two calls: `consume(_kiln_rows_value)` calls `consume` and
    runs the stream `rows` it iterates; `fan_out(double, _kiln_rows_value)` too.
    The call whose function's frame is innermost in the traceback raised. When
    none of theirs is there (a timeout raised by the runtime), a stream did not
    raise: its generator's frame would be.
    """
    if len(failed) < 2:
        return failed
    depth: dict[CodeType, int] = {}  # by code, how deep its innermost frame is
    entry: TracebackType | None = traceback
    level = 0
    while entry is not None:
        level += 1
        depth[entry.tb_frame.f_code] = level
        entry = entry.tb_next
    ran = [
        (max(found), index)
        for index in failed
        if (found := [depth[c] for c in _codes(sites[index].fn) if c in depth])
    ]
    if ran:
        return (max(ran)[1],)
    others = tuple(i for i in failed if sites[i].kind not in ("stream", "astream"))
    return others or failed


def _codes(fn: object) -> list[CodeType]:
    """The code a call of `fn` runs: its function's, unwrapped, or a compiled
    flow's methods'."""
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    code = getattr(fn, "__code__", None)
    if isinstance(code, CodeType):
        return [code]
    return [
        method.__code__
        for method in vars(type(fn)).values()
        if isinstance(getattr(method, "__code__", None), CodeType)
    ]


def _within(code: CodeType, body: CodeType, nested: str) -> bool:
    return code is body or (
        code.co_filename == body.co_filename and code.co_qualname.startswith(nested)
    )
