"""`@node`, `@flow` and `ask`: transparent markers that the compiler reads.

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

from kiln.errors import DurableRunError, OptionError
from kiln.node_kinds import node_kind_problems
from kiln.options import NODE_RULES, FlowOptions, Limit, NodeOptions

__all__ = [
    "FLOW_ATTRIBUTE",
    "NODE_ATTRIBUTE",
    "FlowOptions",
    "Limit",
    "NodeOptions",
    "ask",
    "flow",
    "node",
]

T = TypeVar("T")
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
        _check_kind(named, target)
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


@overload
async def ask(question: str, expected: type[T], payload: object = None) -> T: ...


@overload  # a type form that is not a class: Literal[...], a union
async def ask(question: str, expected: object, payload: object = None) -> Any: ...


async def ask(question: str, expected: object, payload: object = None) -> Any:
    """A question to a person, asked by a durable run of a compiled flow.

    ``ok = await ask("review", bool, draft)`` in a flow body: the compiler
    makes it a call site whose answer, of type `expected`, comes from the
    run's journal; while there is none the run stops with `kiln.Suspended`.
    A flow's source run (plain Python) has no run to suspend, so here it raises.
    """
    raise DurableRunError(
        f"ask({question!r}, ...) suspends a durable run of a compiled flow, so it "
        "needs one: compile the flow (`kiln compile`) and run it with a run id, "
        "F(run_id='...')(...), or `kiln run PATH:FLOW --run-id ID`"
    )


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


def _check_kind(options: NodeOptions, target: Callable[..., Any]) -> None:
    """The rules between the options and the function, as `kiln compile` applies them."""
    given = {name: getattr(options, name) for name in NODE_RULES}
    problems = node_kind_problems(
        given,
        is_async=_is_async(target),
        streams=inspect.isgeneratorfunction(target)
        or inspect.isasyncgenfunction(target),
        parameters=_parameters(target),
        fallback_async=options.fallback is not None
        and inspect.iscoroutinefunction(inspect.unwrap(options.fallback)),
    )
    if problems:
        first = problems[0]
        raise OptionError(f"{_describe(target)}: {first.message}; {first.hint}")
    if options.fallback is not None and not _beside(options.fallback, target):
        raise OptionError(
            f"{_describe(target)}: fallback must be {NODE_RULES['fallback'].requirement}, "
            f"which kiln reads with it; got {options.fallback!r}"
        )


def _beside(fallback: Callable[..., Any], target: Callable[..., Any]) -> bool:
    """Whether `fallback` is a function defined with def where `target` is defined.

    The compiler reads the fallback's definition from the node's module, so it
    must be a `def` (or an `async def`) of the same scope, not a lambda, a
    class or another module's function. A decorator that keeps the function as
    `__wrapped__` (functools.wraps, lru_cache) is seen through.
    """
    function = inspect.unwrap(fallback)
    if not inspect.isfunction(function) or function.__name__ == "<lambda>":
        return False
    scope = getattr(target, "__qualname__", "").rpartition(".")[0]
    return (
        function.__module__ == getattr(target, "__module__", None)
        and function.__qualname__.rpartition(".")[0] == scope
    )


def _parameters(target: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(target).parameters)
    except (TypeError, ValueError):  # a builtin without a signature: no names to clash
        return []


def _is_async(target: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def _describe(target: object) -> str:
    return str(getattr(target, "__qualname__", None) or repr(target))
