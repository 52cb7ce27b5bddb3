"""Processes: the four modes, fields as constructor arguments, helpers, Func."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kiln import (
    AsyncFunc,
    AsyncProcess,
    AsyncStreamProcess,
    Func,
    Process,
    StreamProcess,
    aforward,
    astream,
    forward,
    stream,
)

# --- the four modes ------------------------------------------------------------


class Add(Process):
    def forward(self, a: int, b: int) -> int:
        return a + b


class Fetch(AsyncProcess):
    url: str

    async def aforward(self, query: str) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"query": query, "url": self.url}


class Numbers(StreamProcess):
    def stream(self, start: int, end: int) -> Iterator[int]:
        yield from range(start, end)


class Tokens(AsyncStreamProcess):
    """Dachi's own example: astream as an async generator."""

    async def astream(self, prompt: str) -> AsyncIterator[str]:
        for token in prompt.split():
            await asyncio.sleep(0)
            yield token


class Flexible(AsyncProcess, Process):
    def forward(self, x: int) -> int:
        return x * 2

    async def aforward(self, x: int) -> int:
        return x * 3


class Everything(Process, AsyncProcess, StreamProcess, AsyncStreamProcess):
    scale: int = 1

    def forward(self, x: int) -> int:
        return x * self.scale

    async def aforward(self, x: int) -> int:
        return -x * self.scale

    def stream(self, x: int) -> Iterator[int]:
        yield from range(x)

    async def astream(self, x: int) -> AsyncIterator[int]:
        for i in range(x):
            yield -i


def test_process_call_is_forward() -> None:
    adder = Add()
    assert adder(5, 3) == 8
    assert adder.forward(5, 3) == 8


async def test_async_process() -> None:
    fetcher = Fetch(url="https://example.invalid")
    assert await fetcher.aforward("q") == {
        "query": "q",
        "url": "https://example.invalid",
    }


async def test_stream_and_async_stream_processes() -> None:
    assert list(Numbers().stream(0, 3)) == [0, 1, 2]
    assert [token async for token in Tokens().astream("Hello world !")] == [
        "Hello",
        "world",
        "!",
    ]


async def test_a_class_may_implement_several_modes() -> None:
    flexible = Flexible()
    assert flexible(5) == 10
    assert await flexible.aforward(5) == 15
    every = Everything(scale=2)
    assert every(3) == 6
    assert await every.aforward(3) == -6
    assert list(every.stream(3)) == [0, 1, 2]
    assert [v async for v in every.astream(3)] == [0, -1, -2]
    for base in (Process, AsyncProcess, StreamProcess, AsyncStreamProcess):
        assert isinstance(every, base)


def test_abstract_modes_must_be_implemented() -> None:
    class NoForward(Process):
        pass

    class HalfDone(AsyncProcess, Process):
        def forward(self) -> None:
            return None

    with pytest.raises(TypeError, match="forward"):
        NoForward()  # type: ignore[abstract]
    with pytest.raises(TypeError, match="aforward"):
        HalfDone()  # type: ignore[abstract]


# --- fields --------------------------------------------------------------------


class Filter(Process):
    column: str
    threshold: float = 0.0
    seen: list[str] = dataclasses.field(default_factory=list)

    def forward(self, rows: list[dict[str, float]]) -> list[dict[str, float]]:
        self.seen.append(self.column)
        return [row for row in rows if row[self.column] >= self.threshold]


def test_annotated_fields_become_constructor_arguments() -> None:
    by_keyword = Filter(column="price", threshold=100.0)
    by_position = Filter("price", 100.0)
    assert by_keyword.column == by_position.column == "price"
    assert by_keyword([{"price": 150.0}, {"price": 50.0}]) == [{"price": 150.0}]
    assert Filter("x").threshold == 0.0
    assert Filter("x").seen is not Filter("x").seen  # default_factory works
    assert repr(by_keyword) == "Filter(column='price', threshold=100.0, seen=['price'])"
    assert dataclasses.is_dataclass(by_keyword)
    with pytest.raises(TypeError):
        Filter()  # type: ignore[call-arg]


def test_a_process_without_fields_takes_no_arguments() -> None:
    assert repr(Add()) == "Add()"
    with pytest.raises(TypeError):
        Add(1)  # type: ignore[call-arg]


def test_processes_compare_and_hash_by_identity() -> None:
    first, second = Filter("a"), Filter("a")
    assert first != second
    assert first == first  # noqa: PLR0124
    assert len({first, second, first}) == 2


def test_fields_are_inherited_and_extended() -> None:
    class Base(Process):
        a: int

        def forward(self) -> int:
            return self.a

    class Child(Base):
        b: str = "b"

    child = Child(1, "x")
    assert (child.a, child.b, child()) == (1, "x", 1)


def test_fields_of_several_bases_combine() -> None:
    class Named(AsyncProcess):
        name: str

        async def aforward(self) -> str:
            return self.name

    class Counted(Process):
        count: int

        def forward(self) -> int:
            return self.count

    class Both(Named, Counted):
        pass

    both = Both(count=2, name="n")
    assert (both.name, both.count, both()) == ("n", 2, 2)


def test_keyword_only_fields_on_request() -> None:
    class WithDefault(Process):
        a: int = 1

        def forward(self) -> int:
            return self.a

    # A required field after a defaulted one needs kw_only, as in dataclasses.
    class Required(WithDefault, kw_only=True):
        b: int

    assert Required(b=2).b == 2
    with pytest.raises(TypeError):
        Required(1, 2)  # type: ignore[call-arg]


def test_a_class_with_its_own_init_keeps_it() -> None:
    class Custom(Process):
        value: int

        def __init__(self, raw: str) -> None:
            self.value = int(raw)

        def forward(self) -> int:
            return self.value

    assert Custom("7")() == 7


# --- helpers: forward ------------------------------------------------------------


def test_forward_on_processes_and_sync_callables() -> None:
    assert forward(Add(), 3, 5) == 8
    assert forward(Flexible(), 5) == 10  # a sync process prefers forward
    assert forward(lambda x: x * 2, 5) == 10
    assert forward(max, 1, 4, 2) == 4


async def fetch_value(x: int, *, plus: int = 0) -> int:
    await asyncio.sleep(0)
    return x + plus


def test_forward_runs_async_processes_and_callables() -> None:
    """Dachi's forward() refuses these; kiln runs them through run_sync."""
    assert forward(Fetch(url="u"), "q") == {"query": "q", "url": "u"}
    assert forward(fetch_value, 1, plus=2) == 3
    assert forward(functools.partial(fetch_value, 4)) == 4


async def test_forward_on_async_work_inside_a_running_loop() -> None:
    # A notebook or an async web handler: the sync helper must still work.
    assert forward(fetch_value, 1, plus=1) == 2
    assert forward(Fetch(url="u"), "q")["query"] == "q"


def test_forward_awaits_other_awaitables() -> None:
    class Ready:
        def __await__(self) -> Iterator[None]:
            return asyncio.sleep(0, result=None).__await__()

    assert forward(Ready) is None


def test_forward_passes_exceptions_through() -> None:
    error = ValueError("bad")

    async def fail() -> None:
        raise error

    with pytest.raises(ValueError, match="bad") as caught:
        forward(fail)
    assert caught.value is error
    # As `asyncio.run` leaves it: no "no running event loop" in front of it.
    assert caught.value.__context__ is None


# --- helpers: aforward -----------------------------------------------------------


async def test_aforward_on_every_kind() -> None:
    assert await aforward(Fetch(url="u"), "q") == {"query": "q", "url": "u"}
    assert await aforward(Add(), 1, 2) == 3
    assert await aforward(Flexible(), 5) == 15  # an async process prefers aforward
    assert await aforward(fetch_value, 1, plus=1) == 2
    assert await aforward(lambda x: x + 1, 5) == 6
    assert await aforward(functools.partial(fetch_value, 2)) == 2


# --- helpers: stream and astream ------------------------------------------------


def test_stream_on_processes_generators_and_iterables() -> None:
    def gen() -> Iterator[int]:
        yield 1
        yield 2

    assert list(stream(Numbers(), 0, 3)) == [0, 1, 2]
    assert list(stream(gen)) == [1, 2]
    assert list(stream(lambda n: [n] * n, 2)) == [2, 2]
    assert list(stream(Everything(), 2)) == [0, 1]
    iterator = stream(lambda: (1, 2))
    assert next(iterator) == 1  # an iterator, not just an iterable


def test_stream_refuses_an_async_only_stream_with_advice() -> None:
    with pytest.raises(TypeError, match="async for v in astream"):
        stream(Tokens(), "a b")  # type: ignore[call-overload]


async def test_astream_iterates_an_async_generator_without_awaiting_it() -> None:
    """Dachi's astream() does `async for v in await f.astream(...)`: a TypeError here."""
    assert [v async for v in astream(Tokens(), "a b c")] == ["a", "b", "c"]
    assert [v async for v in astream(Everything(), 3)] == [0, -1, -2]  # prefers astream
    source = Tokens().astream("x")
    assert astream(lambda: source) is source  # returned as it is, never wrapped


async def test_astream_adapts_sync_streams_and_async_callables() -> None:
    async def agen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def later(n: int) -> AsyncIterator[int]:
        return agen(n)

    async def later_list(n: int) -> list[int]:
        return list(range(n))

    def gen(n: int) -> Iterator[int]:
        yield from range(n)

    assert [v async for v in astream(Numbers(), 0, 2)] == [0, 1]
    assert [v async for v in astream(agen, 3)] == [0, 1, 2]
    assert [v async for v in astream(later, 2)] == [0, 1]
    assert [v async for v in astream(later_list, 2)] == [0, 1]
    assert [v async for v in astream(gen, 2)] == [0, 1]
    assert [v async for v in astream(lambda: [7, 8])] == [7, 8]


async def test_astream_rejects_what_is_not_a_stream() -> None:
    with pytest.raises(TypeError, match="astream\\(\\) needs a stream"):
        astream(lambda: 3)  # type: ignore[call-overload]


async def test_closing_an_adapted_stream_closes_its_source() -> None:
    closed: list[str] = []

    def gen() -> Iterator[int]:
        try:
            yield from range(10)
        finally:
            closed.append("sync")

    async def agen() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            closed.append("async")

    async def later() -> AsyncIterator[int]:
        return agen()

    for source in (gen, later):
        adapted = astream(source)
        assert await anext(adapted) == 0
        await adapted.aclose()  # type: ignore[attr-defined]
    assert closed == ["sync", "async"]


# --- Func and AsyncFunc ----------------------------------------------------------


def multiply(x: int, factor: int = 1) -> int:
    return x * factor


def test_func_binds_keyword_arguments() -> None:
    proc = Func(multiply, kwargs={"factor": 3})
    assert proc(5) == 15
    assert proc.forward(5) == 15
    assert proc(5, factor=4) == 20  # call-time kwargs override bound ones
    assert Func(f=multiply)(5) == 5
    assert isinstance(proc, Process)
    assert forward(proc, 2) == 6
    assert repr(Func(multiply)).startswith("Func(f=<function multiply")


async def test_async_func_binds_keyword_arguments() -> None:
    proc = AsyncFunc(fetch_value, kwargs={"plus": 10})
    assert await proc.aforward(1) == 11
    assert await proc.aforward(1, plus=1) == 2
    assert await aforward(proc, 2) == 12
    assert isinstance(proc, AsyncProcess)
    assert not isinstance(proc, Process)


def test_async_func_through_the_sync_helper() -> None:
    assert forward(AsyncFunc(fetch_value, kwargs={"plus": 1}), 1) == 2


def test_func_default_kwargs_are_not_shared() -> None:
    first, second = Func(multiply), Func(multiply)
    assert first.kwargs == {}
    assert first.kwargs is not second.kwargs


def test_forward_of_async_work_from_a_plain_thread() -> None:
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(forward(fetch_value, 2, plus=3))
    )
    worker.start()
    worker.join()
    assert results == [5]
