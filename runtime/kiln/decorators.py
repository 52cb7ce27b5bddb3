"""`@node` and `@flow`: transparent markers that the compiler reads.

Both decorators return the very function they are given, unchanged, with its
validated options attached as an attribute. So the source module runs as plain
Python, one call at a time (the reference semantics a compiled flow must
reproduce), tests can call a node directly, and type checkers see the
function's exact type. All the scheduling, retrying and limiting is done by the
code that `kiln compile` generates, which drops these decorators.

Both forms are accepted::

    @node
    def load(path: str) -> str: ...

    @node(retries=3, timeout=30)
    async def fetch(url: str) -> bytes: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, TypeVar, overload

from kiln.errors import OptionError
from kiln.options import FlowOptions, Limit, NodeOptions

__all__ = [
    "FLOW_ATTRIBUTE",
    "NODE_ATTRIBUTE",
    "FlowOptions",
    "Limit",
    "NodeOptions",
    "flow",
    "node",
]

F = TypeVar("F", bound=Callable[..., Any])
Options = TypeVar("Options", NodeOptions, FlowOptions)

NODE_ATTRIBUTE: Final = "__kiln_node__"
FLOW_ATTRIBUTE: Final = "__kiln_flow__"


@overload
def node(fn: F, /) -> F: ...


@overload
def node(
    *,
    name: str | None = None,
    retries: int = 0,
    wait: float = 0.0,
    backoff: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    timeout: float | None = None,
    fallback: Callable[..., Any] | None = None,
    limit: str | None = None,
    cache: bool = False,
    thread: bool = False,
    max_visits: int | None = None,
    local: bool = False,
) -> Callable[[F], F]: ...


def node(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    wait: float = 0.0,
    backoff: float = 1.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    timeout: float | None = None,
    fallback: Callable[..., Any] | None = None,
    limit: str | None = None,
    cache: bool = False,
    thread: bool = False,
    max_visits: int | None = None,
    local: bool = False,
) -> F | Callable[[F], F]:
    """Mark a function as a node of a flow; return it unchanged.

    The options are validated here, at decoration time, and raise
    `OptionError` with what to write instead.
    """
    options = NodeOptions(
        name=name,
        retries=retries,
        wait=wait,
        backoff=backoff,
        retry_on=retry_on,
        timeout=timeout,
        fallback=fallback,
        limit=limit,
        cache=cache,
        thread=thread,
        max_visits=max_visits,
        local=local,
    )

    def mark(target: F) -> F:
        _check_target(target, "node")
        named = _named(options, target, "node")
        if named.thread and _is_async(target):
            raise OptionError(
                f"thread=True applies to sync nodes, and {_describe(target)} is async: "
                "it already runs without blocking the event loop; drop thread=True"
            )
        return _attach(target, NODE_ATTRIBUTE, named)

    return mark if fn is None else mark(fn)


@overload
def flow(fn: F, /) -> F: ...


@overload
def flow(
    *,
    name: str | None = None,
    max_visits: int = 5,
    limits: Mapping[str, Limit] | None = None,
    concurrency: int | None = None,
) -> Callable[[F], F]: ...


def flow(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    max_visits: int = 5,
    limits: Mapping[str, Limit] | None = None,
    concurrency: int | None = None,
) -> F | Callable[[F], F]:
    """Mark a function as a flow that wires nodes together; return it unchanged.

    The options are validated here, at decoration time, and raise
    `OptionError` with what to write instead.
    """
    options = FlowOptions(
        name=name, max_visits=max_visits, limits=limits, concurrency=concurrency
    )

    def mark(target: F) -> F:
        _check_target(target, "flow")
        return _attach(target, FLOW_ATTRIBUTE, _named(options, target, "flow"))

    return mark if fn is None else mark(fn)


def _check_target(target: object, kind: str) -> None:
    if isinstance(target, str):
        # `@node("fetch")`: the name was passed where the function goes.
        raise TypeError(
            f"@{kind} takes options by keyword: write @{kind}(name={target!r})"
        )
    if not callable(target):
        raise TypeError(f"@{kind} decorates a function; got {target!r}")
    other = FLOW_ATTRIBUTE if kind == "node" else NODE_ATTRIBUTE
    if hasattr(target, other):
        raise OptionError(
            f"{_describe(target)} is already marked as a {'flow' if kind == 'node' else 'node'}; "
            "a function is either a node or a flow, so keep one of the two decorators"
        )


def _named(options: Options, target: Callable[..., Any], kind: str) -> Options:
    """Fill in the function's name, the default of the `name` option."""
    if options.name is not None:
        return options
    name = getattr(target, "__name__", None)
    if not isinstance(name, str):
        raise OptionError(
            f"{_describe(target)} has no __name__; pass @{kind}(name=...)"
        )
    return replace(options, name=name)


def _attach(target: F, attribute: str, options: NodeOptions | FlowOptions) -> F:
    try:
        setattr(target, attribute, options)
    except AttributeError:
        # Builtins and bound methods take no new attributes.
        raise TypeError(
            f"@{'node' if attribute == NODE_ATTRIBUTE else 'flow'} needs a function "
            f"defined with def or async def; got {_describe(target)}"
        ) from None
    return target


def _is_async(target: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def _describe(target: object) -> str:
    return str(getattr(target, "__qualname__", None) or repr(target))
