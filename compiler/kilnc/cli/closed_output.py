"""A reader that stops reading (``kiln ledger stats | head -1``): no complaint, exit 141.

When the program reading kiln's stdout exits early, the next write to the pipe
fails with BrokenPipeError: wherever the command happens to be printing, or,
for output still in Python's buffer, in the flush at interpreter exit, where
Python prints "Exception ignored ... BrokenPipeError" and exits 120. So the
console script (entry.py) flushes the streams itself before it returns,
and answers BrokenPipeError from anywhere in the command with `reader_gone`:
a stream whose pipe is closed is pointed at /dev/null, so that nothing Python
still holds fails again, and the exit status is 141, what a shell reports for
a command that SIGPIPE ended (`yes | head -1`): the output was cut short.

    the write that fails                   what the command does
    ------------------------------------   ------------------------------------------
    any command's, or argparse's --help,   stops there, says nothing, exits 141
      or the flush of buffered output
    kiln run: a stream's item, the         stops the stream, writes the trace,
      result, the --json document            prints the summary on stderr, exits 141
    kiln run ... 2>&1 | head: stderr's     as the first row: nothing more is printed
    kiln compile, kiln graph: a            goes on (the stream to /dev/null),
      diagnostic or a progress line          writes its files whole, exits 141

Any other error of a write to stdout or stderr (``kiln compile --dump plan >
/dev/full``: no space left) is said in one line on stderr, exit 1
(`cannot_write`): wherever the command was writing, not only in that last
flush (under ``PYTHONUNBUFFERED=1``, as in many containers, every print
writes at once). So the console script puts `guarded` streams in `sys`,
whose failing writes raise `OutputError`, which the command lets through to
it as it lets BrokenPipeError through (kiln's own bugs it reports itself).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Final, TextIO, cast, final

__all__ = [
    "EXIT_READER_GONE",
    "OutputError",
    "cannot_write",
    "finishing",
    "flush_streams",
    "guarded",
    "reader_gone",
    "writing",
]

EXIT_READER_GONE: Final = 128 + 13  # as a shell reports a command that SIGPIPE ended
EXIT_ERRORS: Final = 1


class OutputError(OSError):
    """A write to stdout or stderr failed (a full disk, a device error): not kiln's bug."""


@contextmanager
def writing() -> Iterator[None]:
    """Inside: a failed write to stdout or stderr raises OutputError (BrokenPipeError as is)."""
    try:
        yield
    except (BrokenPipeError, OutputError):
        raise
    except OSError as error:
        raise OutputError(error.errno, error.strerror) from error


class _Guarded:
    """stdout or stderr, whose failing writes and flushes raise OutputError;
    everything else is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            with writing():
                return self._stream.write(text)
        except (BrokenPipeError, OutputError) as error:
            _defer(error, self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            with writing():
                self._stream.flush()
        except (BrokenPipeError, OutputError) as error:
            _defer(error, self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@final
class _Finishing:
    """How many `finishing` blocks are open, and the first failed write inside them."""

    depth = 0
    failed: OSError | None = None


def _defer(error: OSError, stream: TextIO) -> None:
    """Raise `error`, unless a `finishing` block is open: then silence the stream."""
    if not _Finishing.depth:
        raise error
    _Finishing.failed = _Finishing.failed or error
    _to_devnull(stream)
    with suppress(OSError, ValueError):
        stream.flush()  # what the failed write left in the buffer goes there too


@contextmanager
def finishing() -> Iterator[None]:
    """Inside, a failed write to stdout or stderr does not stop the command.

    For a command that writes files and says what it does on the way (`kiln
    compile`, `kiln graph -o`): a reader gone from its diagnostics (``kiln
    compile 2>&1 | head -1``) or a full disk under them must not leave its
    outputs half written. The stream is pointed at /dev/null, the command
    goes on, and the failure is raised when the block ends: exit 141 for a
    reader gone, one line and exit 1 for another error.
    """
    _Finishing.depth += 1
    try:
        yield
    finally:
        _Finishing.depth -= 1
        failed, _Finishing.failed = _Finishing.failed, None
    if failed is not None:
        raise failed


def guarded(stream: TextIO) -> TextIO:
    """`stream` whose failing writes raise `OutputError` (None, a closed one, stays None)."""
    if stream is None or isinstance(stream, _Guarded):
        return stream
    return cast(TextIO, _Guarded(stream))


def flush_streams() -> None:
    """Flush stdout and stderr now, where a closed pipe raises, rather than at exit.

    A stream closed before kiln started (``kiln compile >&-``) is None in `sys`,
    and print() writes nothing to it: there is nothing to flush.
    """
    for stream in _streams():
        stream.flush()


def reader_gone() -> int:
    """Silence each stream whose reader went away; the exit status that says so."""
    _silence_failing()
    return EXIT_READER_GONE


def cannot_write(error: OSError) -> int:
    """The output could not be written (a full disk): said on stderr, if it can be."""
    with suppress(OSError, ValueError):
        print(
            f"kiln: error: cannot write the output: {error.strerror}", file=sys.stderr
        )
    _silence_failing()
    return EXIT_ERRORS


def _streams() -> list[TextIO]:
    return [stream for stream in (sys.stdout, sys.stderr) if stream is not None]


def _silence_failing() -> None:
    for stream in _streams():
        try:
            stream.flush()  # what is still buffered, or nothing: raises only when it fails
        except (OSError, ValueError):
            _to_devnull(stream)


def _to_devnull(stream: TextIO) -> None:
    with suppress(OSError, ValueError):  # not a file descriptor (a test's capture)
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, stream.fileno())
        os.close(descriptor)
