"""Room for deep sources: the passes run where Python's own limits do not stop them first.

Example input: a flow returning `x + x + ... + x` (1,000 terms), or 199 nested
calls `f(f(f(...)))`. CPython compiles both, but libcst's visitors and black
recurse once or more per level of the expression, and Python's default limit
of 1,000 frames stops them long before. `run_deep(compile_it)` runs the passes
on a thread of their own with a large stack and a high recursion limit, so
whatever CPython compiles, the passes can walk.

What CPython itself compiles is still decided under the limit a plain run of
the source has: `python_limits()` puts the original limit back around the
checks that ask CPython (`compile()` of the source and of the output), so a
source is refused exactly when `python flow.py` would refuse it.
"""

from __future__ import annotations

import io
import sys
import threading
import tokenize
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Final, TypeVar

T = TypeVar("T")

# Frames the passes may use: each level of a source expression costs libcst and
# black a few dozen, and CPython's compiler stops at about 3,000 levels.
RECURSION: Final = 250_000
STACK: Final = 1024 * 1024 * 1024  # bytes of (reserved, mostly untouched) C stack
PLAIN_RUN_LIMIT: Final = 1000  # sys.getrecursionlimit() in a fresh `python flow.py`

_lock = threading.Lock()  # the recursion limit and the thread stack size are global
_original: list[int] = []  # the limit in force before the outermost run_deep
_here = threading.local()  # `deep` is set on the thread run_deep made


def run_deep(work: Callable[[], T]) -> T:
    """`work()` on a thread with a large stack and a high recursion limit."""
    if getattr(_here, "deep", False):  # already there: there is room here
        return work()
    with _lock:
        outcome: list[T] = []
        failure: list[BaseException] = []

        def target() -> None:
            _here.deep = True
            try:
                outcome.append(work())
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)

        _original.append(sys.getrecursionlimit())
        size = threading.stack_size()
        try:
            sys.setrecursionlimit(max(RECURSION, _original[0]))
            thread = threading.Thread(target=target, name="kilnc", daemon=True)
            threading.stack_size(STACK)  # read when the thread starts
            thread.start()
            threading.stack_size(size)
            thread.join()
        finally:
            threading.stack_size(size)
            sys.setrecursionlimit(_original.pop())
        if failure:
            raise failure[0]
        return outcome[0]


@contextmanager
def python_limits() -> Iterator[None]:
    """The recursion limit of a plain run of the source, for asking CPython what it compiles.

    CPython's compiler may recurse (3.11: three times) as deep as the frames left
    under the limit, so the frames of the passes themselves are added back: the
    answer is the one `python flow.py` gets.
    """
    raised = sys.getrecursionlimit()
    # Python's default, not this process's: a test runner or a caller that
    # raised its own limit must not change what kiln says CPython accepts.
    sys.setrecursionlimit(PLAIN_RUN_LIMIT + _frames())
    try:
        yield
    finally:
        sys.setrecursionlimit(raised)


def _frames() -> int:
    frame: FrameType | None = sys._getframe()
    count = 0
    while frame is not None:
        count += 1
        frame = frame.f_back
    return count


def largest_statement(text: str) -> int:
    """The first line of the logical line with the most tokens: where the depth is.

    Python's recursion limit gives no position; the tokenizer is linear and
    still works, and the statement that overflowed the parser is the biggest.
    """
    best_line, best_count = 1, 0
    start, count = 1, 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if count == 0:
                start = token.start[0]
            count += 1
            if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if count > best_count:
                    best_line, best_count = start, count
                count = 0
    except (tokenize.TokenError, SyntaxError):
        pass
    return best_line
