"""The `kiln` console script: Ctrl-C answered before anything heavy is imported.

Importing the compiler (libcst, black, mypy, rich) takes a noticeable part of
a second, and a Ctrl-C in it would print a traceback from deep inside an
import. So the script's module is this small one: it answers Ctrl-C before
its first import that costs anything, hands it to `interrupts.install`, makes
stdout and stderr write what they cannot encode as escapes instead of
raising, and only then imports the command. It also
answers a stdout whose reader went away (closed_output.py), wherever the
command was writing, and flushes the streams before it returns, so that no
write is left for Python's exit to fail at.
"""

# Python loaded these two before running the script: answering Ctrl-C from here
# on costs no import, so no import below can be cut by a traceback. (`signal`
# would import enum first, and typeshed has no stub for its C half; nor does
# this module import __future__.)
import _signal  # type: ignore[import-not-found]
import os


def _interrupted_while_starting(signum: int, frame: object) -> None:
    os.write(2, b"kiln: interrupted\n")
    os._exit(130)


if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)

import contextlib  # noqa: E402 - after Ctrl-C is answered
import io  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from kilnc.cli import interrupts  # noqa: E402
from kilnc.cli.closed_output import (  # noqa: E402
    cannot_write,
    flush_streams,
    guarded,
    reader_gone,
)


def main() -> int:
    interrupts.install(over=_interrupted_while_starting)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            # A lone surrogate in a result, or a terminal that cannot show a character.
            stream.reconfigure(errors="backslashreplace")
    # A write that fails (a full disk) raises OutputError, wherever the command writes.
    sys.stdout, sys.stderr = guarded(sys.stdout), guarded(sys.stderr)
    try:
        status = _command()
    except BrokenPipeError:
        return reader_gone()
    except OSError as error:  # OutputError: main reports the command's own errors
        return cannot_write(error)
    if status == interrupts.EXIT_INTERRUPTED:
        # Answered: more Ctrl-C (or SIGTERM) while the streams flush changes nothing.
        interrupts.ignore_stops()
        # Interrupted: do not wait at exit for threads a run left blocked (a
        # thread=True node), as Python's shutdown would.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(interrupts.exit_status())  # 130 for Ctrl-C, 143 for SIGTERM
    if threading.active_count() == 1:
        # The command is done and nothing is left to wait for: Python's own
        # shutdown, which frees what the command made, gives Ctrl-C back to
        # the default handler part way, and a Ctrl-C there would kill the
        # process by SIGINT after its work was done.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status


def _command() -> int:
    """The command's status; its output flushed (also after --help's SystemExit)."""
    from kilnc.cli.main import (  # noqa: PLC0415 - after Ctrl-C is answered
        main as command,
    )

    try:
        return command()
    except KeyboardInterrupt:
        # A further Ctrl-C while the command was answering the first one.
        return interrupts.EXIT_INTERRUPTED
    finally:
        flush_streams()
