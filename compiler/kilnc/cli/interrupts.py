"""Ctrl-C in the `kiln` command: one line, exit status 130, never a traceback.

Python answers Ctrl-C by raising KeyboardInterrupt wherever the main thread
happens to be, and while kiln imports its libraries or the user's module,
compiles, or writes a file, that can be anywhere: inside a class body (where
Python wraps it in a RuntimeError), in a `finally`, in a library that catches
it. So the command answers it itself (`install`, called first thing by the
console script): it removes the temporary files and directories it made
(`removed_on_abort`), prints ``kiln: interrupted`` and exits 130 at once.

While a flow runs (`running`, `run_async`) Ctrl-C stops the run instead, so
that `kiln run` can print the summary so far: the first cancels the flow's
task, as `asyncio.run` does; and when the event loop does not get to it
within a second (a sync node blocking the loop), or at a second Ctrl-C,
KeyboardInterrupt is raised in the main thread, wherever it is, waiting in C
too (a node's call of a flow's sync entry point, which waits for its worker
thread).

    phase                                Ctrl-C
    ----------------------------------   ------------------------------------------
    start, import, compile, write        temporaries removed, "kiln: interrupted", 130
    kiln run: the flow's own run         the run cancelled (or interrupted), its
                                         summary printed, 130
    a command called as a function       untouched (tests, embedding)
"""

from __future__ import annotations

import _thread
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, TypeVar

# asyncio is imported by run_async, not here: install() comes first, and a Ctrl-C
# while asyncio is imported would go unanswered.
if TYPE_CHECKING:
    import asyncio

__all__ = ["EXIT_INTERRUPTED", "install", "removed_on_abort", "run_async", "running"]

T = TypeVar("T")

EXIT_INTERRUPTED: Final = 130
_MESSAGE: Final = b"kiln: interrupted\n"

# Paths to remove when Ctrl-C ends the command: temporary files and directories.
_temporaries: dict[str, None] = {}


def _abort(signum: int, frame: FrameType | None) -> None:
    for path in list(_temporaries):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with suppress(OSError):
                os.unlink(path)
    try:
        os.write(2, _MESSAGE)  # not print: the main thread may be inside a print
    finally:
        os._exit(EXIT_INTERRUPTED)


def install(over: Callable[[int, FrameType | None], None] | None = None) -> None:
    """Answer Ctrl-C from now on, in place of Python's handler or `over`.

    A no-op where Python does not answer it (SIGINT ignored, a thread). `over`
    is the console script's own first handler (entry.py).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    if handler is signal.default_int_handler or (over is not None and handler is over):
        signal.signal(signal.SIGINT, _abort)


@contextmanager
def running() -> Iterator[None]:
    """Inside: Ctrl-C raises KeyboardInterrupt instead of exiting (`run_async` cancels)."""
    if signal.getsignal(signal.SIGINT) is not _abort:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, _abort)


class _Stop:
    """The SIGINT handler of one `run_async`: cancel the task, then interrupt."""

    def __init__(self, loop: asyncio.AbstractEventLoop, grace: float) -> None:
        self.loop = loop
        self.grace = grace
        self.task: asyncio.Task[Any] | None = None
        self.count = 0
        self._timer: threading.Timer | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count > 1 or self.task is None or self.task.done():
            raise KeyboardInterrupt
        self.loop.call_soon_threadsafe(self.task.cancel)
        # A loop that does not get to the cancellation (a sync node blocking it) is
        # interrupted where it is, as a second Ctrl-C would.
        self._timer = threading.Timer(self.grace, _interrupt, (threading.get_ident(),))
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _interrupt(main: int) -> None:
    """A second Ctrl-C, sent to the main thread (`main`, whose ident it is).

    A signal, not `_thread.interrupt_main`, which only flags one: a main thread
    waiting in C (a sync entry point's join of the worker thread that runs its
    flow, a lock) sees the flag when the wait ends, which may be never, while a
    signal ends the wait and runs the handler. Windows has no `pthread_kill`.
    """
    if sys.platform == "win32":
        _thread.interrupt_main()
    else:
        signal.pthread_kill(main, signal.SIGINT)


def run_async(main: Coroutine[Any, Any, T], grace: float = 1.0) -> T:
    """`asyncio.run(main)`, where Ctrl-C raises KeyboardInterrupt once the run has stopped."""
    import asyncio  # noqa: PLC0415 - not before install(): see the TYPE_CHECKING import

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        return asyncio.run(main)  # no Ctrl-C to answer here: Python's own rules
    with asyncio.Runner() as runner:
        stop = _Stop(runner.get_loop(), grace)

        async def tracked() -> T:
            stop.task = asyncio.current_task()
            return await main

        signal.signal(signal.SIGINT, stop)  # before run(): asyncio then keeps out
        try:
            return runner.run(tracked())
        except asyncio.CancelledError:
            if stop.count:
                raise KeyboardInterrupt from None
            raise
        finally:
            stop.close()
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def removed_on_abort(path: str) -> Iterator[None]:
    """Remove `path` (a file or a directory kiln made) if Ctrl-C ends the command inside."""
    _temporaries[path] = None
    try:
        yield
    finally:
        _temporaries.pop(path, None)
