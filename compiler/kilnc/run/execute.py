"""execute: call a flow's entry method in its process mode, and say how it ended.

Example input: the mode "astream" and a flow's bound `astream` method with
its arguments. Output: an `Outcome` (the result or the error, whether Ctrl-C
interrupted it or stdout's reader went away, when it began and ended), each
of the stream's items handed to `on_item` as it arrives: printed, one per
line, by `print_item`, or collected. A stream whose stdout is closed
(``kiln run ... | head``) stops quietly there, as `yes | head` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from contextlib import aclosing, closing
from typing import Any, Final

from kilnc.cli.closed_output import OutputError
from kilnc.cli.interrupts import run_async
from kilnc.run.output import Outcome, shown


class _OutputClosed(Exception):
    """stdout was closed under a streaming flow (``kiln run ... | head``)."""


def execute(
    mode: str,
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> Outcome:
    began = time.perf_counter()
    result: Any = None
    error: BaseException | None = None
    interrupted = closed = False
    try:
        result = _RUNNERS[mode](method, args, kwargs, on_item)
    except KeyboardInterrupt:
        interrupted = True
    except _OutputClosed:
        closed = True  # stop quietly, as `yes | head` does
    except OutputError:
        raise  # stdout cannot be written (a full disk): one line (closed_output.py)
    except (Exception, asyncio.CancelledError) as exc:
        error = exc
    return Outcome(result, error, interrupted, began, time.perf_counter(), closed)


Runner = Callable[
    [Callable[..., Any], tuple[Any, ...], dict[str, Any], Callable[[Any], object]], Any
]


def _aforward(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> Any:
    return run_async(method(*args, **kwargs))


def _astream(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> None:
    async def drain() -> None:
        async with aclosing(method(*args, **kwargs)) as items:
            async for item in items:
                on_item(item)

    run_async(drain())


def _forward(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> Any:
    return method(*args, **kwargs)


def _stream(
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    on_item: Callable[[Any], object],
) -> None:
    with closing(method(*args, **kwargs)) as items:
        for item in items:
            on_item(item)


_RUNNERS: Final[Mapping[str, Runner]] = {
    "aforward": _aforward,
    "astream": _astream,
    "forward": _forward,
    "stream": _stream,
}


def print_item(item: Any) -> None:
    text = shown(item)
    if text is not None and not print_out(text):
        raise _OutputClosed


def print_out(text: str) -> bool:
    """Print a line to stdout; False when its reader is gone (``kiln run ... | head``).

    The run goes on to its trace and its summary; the console script then
    silences stdout (cli/closed_output.py).
    """
    try:
        print(text, flush=True)
    except BrokenPipeError:
        return False
    return True
