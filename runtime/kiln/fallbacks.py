"""A node's fallback: what answers a call that failed, after its last attempt.

`@node(fallback=cached_page)` makes the flow's plain call of the node
(`kiln.site_table.plain_call`) the node's call (`kiln.resilience`) wrapped by
one of these, chosen by the node's kind::

    falling_back(retrying(policy, fetch), cached_page, "fetch")   # async def fetch
    falling_back_sync(load, cached_rows, "load")                  # def load

so that the fallback runs only after the retries gave up, as
``cached_page(url, error=exc)``; `kiln.site` checks its type against the
node's. A limited, cached or observed run calls it through `fall_back` and
`fall_back_sync` (`kiln.sites`).

What the fallback returns is the call's value. What it raises is the call's
failure, as itself, raised while the node's error is handled (so that error
is its ``__context__``, shown above it in a traceback), with a note that says
which fallback raised, standing in for which node.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import partial
from typing import Any, ParamSpec, TypeVar, cast

from kiln.errors import carried, stopped

__all__ = [
    "fall_back",
    "fall_back_sync",
    "falling_back",
    "falling_back_async",
    "falling_back_sync",
]

P = ParamSpec("P")
R = TypeVar("R")


def falling_back(
    fn: Callable[P, Awaitable[R]], fallback: Callable[..., R], node: str = ""
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn`, whose failure `fallback(*args, error=exc, **kwargs)` answers instead.

    What a compiled flow calls for an async node (or a thread=True one) with a
    sync fallback; the fallback's own failure is the call's, with a note that
    says so (`fall_back`). `node` is the node's name, for that note.
    """
    return cast(
        "Callable[P, Coroutine[Any, Any, R]]",
        partial(_falling_back, fn, fallback, node),
    )


def falling_back_async(
    fn: Callable[P, Awaitable[R]],
    fallback: Callable[..., Awaitable[R]],
    node: str = "",
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`falling_back` with an async fallback, which is awaited."""
    return cast(
        "Callable[P, Coroutine[Any, Any, R]]",
        partial(_falling_back, fn, fallback, node),
    )


def falling_back_sync(
    fn: Callable[P, R], fallback: Callable[..., R], node: str = ""
) -> Callable[P, R]:
    """`falling_back` for a sync node, whose fallback is sync too."""
    return cast("Callable[P, R]", partial(_falling_back_sync, fn, fallback, node))


async def fall_back(
    fallback: Callable[..., Any],
    error: Exception,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    node: str = "",
) -> Any:
    """The fallback's answer to a call that failed with `error`, awaited if it is async.

    Called while `error` is handled, so that what the fallback raises has the
    node's error as its ``__context__``, and a note that the fallback raised it.
    """
    error = cast(Exception, stopped(error))  # a node's StopIteration, not its carrier
    try:
        value = fallback(*args, error=error, **kwargs)
        return await value if inspect.isawaitable(value) else value
    except Exception as failure:
        _note_fallback(cast(Exception, stopped(failure)), error, fallback, node)
        if isinstance(failure, StopIteration):  # it cannot leave this coroutine
            raise carried(failure) from failure
        raise


def fall_back_sync(
    fallback: Callable[..., R],
    error: Exception,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    node: str = "",
) -> R:
    """`fall_back` for a sync node's fallback."""
    error = cast(Exception, stopped(error))
    try:
        return fallback(*args, error=error, **kwargs)
    except Exception as failure:
        _note_fallback(failure, error, fallback, node)
        raise


async def _falling_back(
    fn: Callable[..., Awaitable[R]],
    fallback: Callable[..., Any],
    node: str,
    *args: Any,
    **kwargs: Any,
) -> R:
    try:
        return await fn(*args, **kwargs)
    except Exception as error:
        return cast(R, await fall_back(fallback, error, args, kwargs, node))


def _falling_back_sync(
    fn: Callable[..., R],
    fallback: Callable[..., R],
    node: str,
    *args: Any,
    **kwargs: Any,
) -> R:
    try:
        return fn(*args, **kwargs)
    except Exception as error:
        return fall_back_sync(fallback, error, args, kwargs, node)


def _note_fallback(
    failure: Exception, error: Exception, fallback: Callable[..., Any], node: str
) -> None:
    """Say on `failure` that `fallback`, standing in for a call that failed with `error`,
    raised it: else its traceback and notes would read as the node's own failure."""
    if failure is error:
        return  # the fallback passed the node's error on: its notes say what it is
    name = getattr(fallback, "__name__", None) or repr(fallback)
    which = f"node {node!r}" if node else "a node"
    note = (
        f"kiln: {which} failed ({type(error).__name__}), and its fallback {name!r} "
        "raised this error; the node's error is its __context__"
    )
    if note not in getattr(failure, "__notes__", ()):  # the same object raised again
        failure.add_note(note)
