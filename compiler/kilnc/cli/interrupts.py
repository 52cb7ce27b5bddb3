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

SIGTERM and SIGHUP (`timeout`, `docker stop`, a CI runner's cancel, a closed
terminal) take the same path, unless they were ignored when kiln started
(`nohup`): the temporaries are removed, a run prints its summary so far, and
the exit status is 128 plus the signal's number (143, 129), as a shell reports
a command that the signal ended; the line says which signal it was
(``kiln: interrupted by SIGTERM``). `exit_status` and `message` give them.
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

__all__ = [
    "EXIT_INTERRUPTED",
    "exit_status",
    "ignore_stops",
    "install",
    "message",
    "removed_on_abort",
    "run_async",
    "running",
]

T = TypeVar("T")

EXIT_INTERRUPTED: Final = 128 + signal.SIGINT  # what a command returns when stopped
# Besides Ctrl-C: what `timeout`, `kill`, a supervisor or a closed terminal send.
_STOPS: Final = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)

# Paths to remove when Ctrl-C ends the command: temporary files and directories.
_temporaries: dict[str, None] = {}
# The signal that stopped the command (the first one): SIGINT unless another.
_received: list[int] = []


def _note(signum: int) -> None:
    if not _received:
        _received.append(signum)


def exit_status() -> int:
    """The exit status of a command that was stopped: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + (_received[0] if _received else signal.SIGINT)


def message() -> str:
    """The line that says the command was stopped, and by what unless Ctrl-C."""
    if not _received or _received[0] == signal.SIGINT:
        return "kiln: interrupted"
    return f"kiln: interrupted by {signal.Signals(_received[0]).name}"


def _abort(signum: int, frame: FrameType | None) -> None:
    _note(signum)
    for path in list(_temporaries):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with suppress(OSError):
                os.unlink(path)
    try:
        # not print: the main thread may be inside a print
        os.write(2, f"{message()}\n".encode())
    finally:
        os._exit(exit_status())


def _raising(signum: int) -> Callable[[int, FrameType | None], None]:
    """The handler of `signum` while a flow runs: one that raises KeyboardInterrupt."""
    return signal.default_int_handler if signum == signal.SIGINT else _raise


def _raise(signum: int, frame: FrameType | None) -> None:
    """SIGTERM or SIGHUP while a flow runs: as Ctrl-C there, KeyboardInterrupt."""
    _note(signum)
    raise KeyboardInterrupt


def install(over: Callable[[int, FrameType | None], None] | None = None) -> None:
    """Answer Ctrl-C, SIGTERM and SIGHUP from now on, in place of Python's handling or `over`.

    A no-op for a signal Python does not answer (one ignored: a background job's
    SIGINT, `nohup`'s SIGHUP), and in a thread. `over` is the console script's
    own first handler (entry.py).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGINT)
    if handler is signal.default_int_handler or (over is not None and handler is over):
        signal.signal(signal.SIGINT, _abort)
    for stop in _STOPS:
        if signal.getsignal(stop) is signal.SIG_DFL:
            signal.signal(stop, _abort)


def ignore_stops() -> None:
    """Ignore Ctrl-C, SIGTERM and SIGHUP from now on: the command has answered one."""
    for stop in (signal.SIGINT, *_STOPS):
        signal.signal(stop, signal.SIG_IGN)


@contextmanager
def running() -> Iterator[None]:
    """Inside: Ctrl-C raises KeyboardInterrupt instead of exiting (`run_async` cancels)."""
    answered = [s for s in (signal.SIGINT, *_STOPS) if signal.getsignal(s) is _abort]
    for stop in answered:
        signal.signal(stop, _raising(stop))
    try:
        yield
    finally:
        for stop in answered:
            signal.signal(stop, _abort)


class _Stop:
    """The SIGINT handler of one `run_async`: cancel the task, then interrupt."""

    def __init__(self, loop: asyncio.AbstractEventLoop, grace: float) -> None:
        self.loop = loop
        self.grace = grace
        self.task: asyncio.Task[Any] | None = None
        self.count = 0
        self._timer: threading.Timer | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        _note(signum)
        self.count += 1
        if self.count > 1 or self.task is None or self.task.done():
            raise KeyboardInterrupt
        self.loop.call_soon_threadsafe(self.task.cancel)
        # A loop that does not get to the cancellation (a sync node blocking it) is
        # interrupted where it is, as a second Ctrl-C would.
        self._timer = threading.Timer(
            self.grace, _interrupt, (threading.get_ident(), signum)
        )
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _interrupt(main: int, signum: int) -> None:
    """A second Ctrl-C (`signum`: or SIGTERM), sent to the main thread (`main`).

    A signal, not `_thread.interrupt_main`, which only flags one: a main thread
    waiting in C (a sync entry point's join of the worker thread that runs its
    flow, a lock) sees the flag when the wait ends, which may be never, while a
    signal ends the wait and runs the handler. Windows has no `pthread_kill`.
    """
    if sys.platform == "win32":
        _thread.interrupt_main()
    else:
        signal.pthread_kill(main, signum)


def run_async(main: Coroutine[Any, Any, T], grace: float = 1.0) -> T:
    """`asyncio.run(main)`, where Ctrl-C raises KeyboardInterrupt once the run has stopped."""
    import asyncio  # noqa: PLC0415 - not before install(): see the TYPE_CHECKING import

    answered = [
        s for s in (signal.SIGINT, *_STOPS) if signal.getsignal(s) is _raising(s)
    ]
    if threading.current_thread() is not threading.main_thread() or not answered:
        return asyncio.run(main)  # no Ctrl-C to answer here: Python's own rules
    with asyncio.Runner() as runner:
        stop = _Stop(runner.get_loop(), grace)

        async def tracked() -> T:
            stop.task = asyncio.current_task()
            return await main

        # Before run(): asyncio then keeps out of SIGINT.
        previous = {s: signal.signal(s, stop) for s in answered}
        try:
            return runner.run(tracked())
        except asyncio.CancelledError:
            if stop.count:
                raise KeyboardInterrupt from None
            raise
        finally:
            stop.close()
            for other, handler in previous.items():
                signal.signal(other, handler)


@contextmanager
def removed_on_abort(path: str) -> Iterator[None]:
    """Remove `path` (a file or a directory kiln made) if Ctrl-C ends the command inside."""
    _temporaries[path] = None
    try:
        yield
    finally:
        _temporaries.pop(path, None)
