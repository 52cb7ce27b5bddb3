"""`subflow`: a flow of another module, compiled or not, in the shape compiled flows call.

A compiled flow calls a flow of its own module through that flow's instance
(``await inner.aforward(x)``). A flow imported from another module is compiled
when that module was compiled too, and is its source function when it was not
(its module is imported as written, and `@flow` returns the function as it
is); the compiler cannot tell which, since it compiles one module at a time.
The generated module therefore calls an imported flow through
``_kiln.subflow(imported)``: the compiled instance itself, or the source
function behind the same method, so the call site reads the same either way::

    _kiln_sites = (
        _kiln.site(_kiln.subflow(summarize_all), "summarize_all", ..., kind="flow"),
    )
    ...
    report = await _kiln_summarize_all.aforward(pages)

A source flow runs as plain Python, which is the reference semantics: the
result is the same, without the concurrency, limits or events of a compiled
one.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import FunctionType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, final, overload

if TYPE_CHECKING:  # kiln.calls adapts source flows with `subflow`
    from kiln.calls import Flow

__all__ = ["SourceAsyncStream", "SourceFlow", "SourceStream", "SourceValue", "subflow"]

P = ParamSpec("P")
T = TypeVar("T")
FlowT = TypeVar("FlowT", bound="Flow")


@final
class SourceFlow(Generic[P, T]):
    """An `async def` source flow, called as a compiled one: ``await f.aforward(...)``."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[P, Coroutine[Any, Any, T]]) -> None:
        self.function = function

    async def aforward(self, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.function(*args, **kwargs)


@final
class SourceAsyncStream(Generic[P, T]):
    """An async generator source flow: ``async for item in f.astream(...)``."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[P, AsyncIterator[T]]) -> None:
        self.function = function

    def astream(self, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        return self.function(*args, **kwargs)


@final
class SourceStream(Generic[P, T]):
    """A generator source flow: ``for item in f.stream(...)``."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[P, Iterator[T]]) -> None:
        self.function = function

    def stream(self, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self.function(*args, **kwargs)


@final
class SourceValue(Generic[P, T]):
    """A plain source flow: ``f(...)``, as a compiled sync flow is called; or
    ``await f.aforward(...)``, as a compiled flow calls a sync subflow whose
    body awaits (it runs in the caller's loop, as the source's call would)."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[P, T]) -> None:
        self.function = function

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.function(*args, **kwargs)

    async def aforward(self, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.function(*args, **kwargs)


@overload
def subflow(flow: FlowT) -> FlowT: ...


@overload
def subflow(  # type: ignore[overload-overlap]
    flow: Callable[P, Coroutine[Any, Any, T]],
) -> SourceFlow[P, T]: ...


@overload
def subflow(  # type: ignore[overload-overlap]
    flow: Callable[P, AsyncIterator[T]],
) -> SourceAsyncStream[P, T]: ...


@overload
def subflow(  # type: ignore[overload-overlap]
    flow: Callable[P, Iterator[T]],
) -> SourceStream[P, T]: ...


@overload
def subflow(flow: Callable[P, T]) -> SourceValue[P, T]: ...


def subflow(flow: Any) -> Any:
    """A source flow's function in a compiled flow's shape; a compiled flow as it is."""
    if not isinstance(flow, FunctionType):
        return flow
    if inspect.iscoroutinefunction(flow):
        return SourceFlow(flow)
    if inspect.isasyncgenfunction(flow):
        return SourceAsyncStream(flow)
    if inspect.isgeneratorfunction(flow):
        return SourceStream(flow)
    return SourceValue(flow)
