"""Processes: objects that compute in one or more of four modes.

=====================  ===========================  =====================
base class             method to implement          called as
=====================  ===========================  =====================
`Process`              `forward(...) -> T`          `p(...)`, `p.forward(...)`
`AsyncProcess`         `async aforward(...) -> T`   `await p.aforward(...)`
`StreamProcess`        `stream(...) -> Iterator`    `for v in p.stream(...)`
`AsyncStreamProcess`   `astream(...) -> AsyncIt.`   `async for v in p.astream(...)`
=====================  ===========================  =====================

A class may implement several modes (`class P(AsyncProcess, Process)`); the
compiler generates exactly such a class for every flow. Fields declared as class
annotations become constructor arguments, as in a dataclass: the bases carry
`typing.dataclass_transform`, and `__init_subclass__` applies
`dataclasses.dataclass` to every subclass, so what the type checker sees is
what runs. Processes compare and hash by identity, like functions.

The helpers `forward`, `aforward`, `stream` and `astream` take a process or any
callable and run it in the asked-for mode. They follow Dachi's helpers, without
two of their defects: `forward` runs an async process or coroutine function
(through `run_sync`) instead of refusing it, and `astream` iterates an async
generator directly instead of awaiting it first.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from inspect import isawaitable
from typing import Any, Generic, ParamSpec, TypeVar, dataclass_transform, overload

from kiln.sync_entry import run_sync

__all__ = [
    "AsyncFunc",
    "AsyncProcess",
    "AsyncStreamProcess",
    "Fielded",
    "Func",
    "Process",
    "StreamProcess",
    "aforward",
    "astream",
    "forward",
    "stream",
]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


@dataclass_transform(
    eq_default=False, field_specifiers=(dataclasses.field, dataclasses.Field)
)
class Fielded:
    """Turns every subclass into a dataclass of its annotated fields.

    `eq=False` keeps identity equality and hashing: a process is a thing that
    runs, not a value, and generated flows are used as dict keys and in sets.
    Pass `kw_only=True` in the class statement to make the fields keyword-only.
    A class that defines its own `__init__` keeps it.
    """

    __slots__ = ()

    def __init_subclass__(cls, *, kw_only: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(cls, eq=False, kw_only=kw_only)


class Process(Fielded, ABC):
    """Synchronous mode: implement `forward`; calling the process calls it."""

    __slots__ = ()

    @abstractmethod
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the result. Subclasses narrow the signature freely."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)


class AsyncProcess(Fielded, ABC):
    """Asynchronous mode: implement `async def aforward`."""

    __slots__ = ()

    @abstractmethod
    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the result without blocking the event loop."""


class StreamProcess(Fielded, ABC):
    """Streaming mode: implement `stream`, usually a generator."""

    __slots__ = ()

    @abstractmethod
    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Yield results one by one."""


class AsyncStreamProcess(Fielded, ABC):
    """Asynchronous streaming mode: implement `astream`, usually an async generator."""

    __slots__ = ()

    @abstractmethod
    def astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Yield results one by one without blocking the event loop.

        Declared without `async` so that an `async def ... yield` override, whose
        call returns the async iterator itself, matches it.
        """


class Func(Process, Generic[R]):
    """A `Process` that calls `f` with bound keyword arguments.

    Keyword arguments given at call time override the bound ones.
    """

    f: Callable[..., R]
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def forward(self, *args: Any, **kwargs: Any) -> R:
        return self.f(*args, **{**self.kwargs, **kwargs})

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self.forward(*args, **kwargs)


class AsyncFunc(AsyncProcess, Generic[R]):
    """An `AsyncProcess` that awaits `f` with bound keyword arguments.

    Keyword arguments given at call time override the bound ones.
    """

    f: Callable[..., Awaitable[R]]
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    async def aforward(self, *args: Any, **kwargs: Any) -> R:
        return await self.f(*args, **{**self.kwargs, **kwargs})


@overload
def forward(f: AsyncProcess, /, *args: Any, **kwargs: Any) -> Any: ...
@overload
def forward(
    f: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
) -> T: ...
@overload
def forward(f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...
def forward(f: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run `f` synchronously, whatever its mode.

    A `Process` runs its `forward`; an `AsyncProcess` (that is not also a
    `Process`) or a callable returning an awaitable runs through `run_sync`,
    which works inside a running event loop too.
    """
    if isinstance(f, Process):
        return f.forward(*args, **kwargs)
    if isinstance(f, AsyncProcess):
        return run_sync(f.aforward(*args, **kwargs))
    result = f(*args, **kwargs)
    if isinstance(result, Coroutine):
        return run_sync(result)
    if isawaitable(result):
        return run_sync(_awaited(result))
    return result


@overload
async def aforward(f: AsyncProcess | Process, /, *args: Any, **kwargs: Any) -> Any: ...
@overload
async def aforward(
    f: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> T: ...
@overload
async def aforward(f: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...
async def aforward(f: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run `f` asynchronously, whatever its mode.

    An `AsyncProcess` is awaited; a `Process` runs its `forward` in place; a
    callable is called, and its result awaited when it is awaitable.
    """
    if isinstance(f, AsyncProcess):
        return await f.aforward(*args, **kwargs)
    if isinstance(f, Process):
        return f.forward(*args, **kwargs)
    result = f(*args, **kwargs)
    if isawaitable(result):
        return await result
    return result


@overload
def stream(f: StreamProcess, /, *args: Any, **kwargs: Any) -> Iterator[Any]: ...
@overload
def stream(
    f: Callable[P, Iterable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> Iterator[T]: ...
def stream(f: Any, /, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Iterate `f`: a `StreamProcess`'s `stream`, or what a callable returns."""
    if isinstance(f, StreamProcess):
        return f.stream(*args, **kwargs)
    if isinstance(f, AsyncStreamProcess):
        raise TypeError(
            f"{type(f).__name__} streams asynchronously only: "
            "iterate it with `async for v in astream(...)`, or implement stream()"
        )
    return iter(f(*args, **kwargs))


@overload
def astream(
    f: AsyncStreamProcess | StreamProcess, /, *args: Any, **kwargs: Any
) -> AsyncIterator[Any]: ...
@overload
def astream(
    f: Callable[P, AsyncIterable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> AsyncIterator[T]: ...
@overload
def astream(
    f: Callable[P, Awaitable[AsyncIterable[T]]], /, *args: P.args, **kwargs: P.kwargs
) -> AsyncIterator[T]: ...
@overload
def astream(
    f: Callable[P, Awaitable[Iterable[T]]], /, *args: P.args, **kwargs: P.kwargs
) -> AsyncIterator[T]: ...
@overload
def astream(
    f: Callable[P, Iterable[T]], /, *args: P.args, **kwargs: P.kwargs
) -> AsyncIterator[T]: ...
def astream(f: Any, /, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
    """Iterate `f` asynchronously, whatever its mode: `async for v in astream(f, x)`.

    An async iterator (an `AsyncStreamProcess`'s `astream`, an async generator
    function's call) is returned as it is, never awaited, so closing it closes
    the source. A sync iterator, or an awaitable of either, is adapted.
    """
    source: object
    if isinstance(f, AsyncStreamProcess):
        source = f.astream(*args, **kwargs)
    elif isinstance(f, StreamProcess):
        source = f.stream(*args, **kwargs)
    else:
        source = f(*args, **kwargs)
    if isinstance(source, AsyncIterator):
        return source
    if isinstance(source, AsyncIterable):
        return aiter(source)
    if isawaitable(source):
        return _after_awaiting(source)
    if isinstance(source, Iterable):
        return _from_sync(iter(source))
    raise TypeError(f"astream() needs a stream; {f!r} returned {source!r}")


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _after_awaiting(awaitable: Awaitable[Any]) -> AsyncIterator[Any]:
    source = await awaitable
    iterator = (
        aiter(source) if isinstance(source, AsyncIterable) else _from_sync(iter(source))
    )
    try:
        async for value in iterator:
            yield value
    finally:
        # Our consumer closing us must close the source, as it would unwrapped.
        if hasattr(iterator, "aclose"):
            await iterator.aclose()


async def _from_sync(iterator: Iterator[T]) -> AsyncIterator[T]:
    try:
        for value in iterator:
            yield value
    finally:
        if hasattr(iterator, "close"):
            iterator.close()
