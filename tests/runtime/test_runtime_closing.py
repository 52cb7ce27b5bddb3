"""closing/aclosing: a loop's stream is closed however the loop ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from kiln import aclosing, closing


def test_closing_closes_a_generator_on_break() -> None:
    events: list[str] = []

    def numbers() -> Iterator[int]:
        try:
            yield from range(10)
        finally:
            events.append("closed")

    stream = numbers()
    with closing(stream):
        for value in stream:
            if value == 2:
                break
    assert events == ["closed"]


def test_closing_accepts_an_iterator_without_close() -> None:
    stream = iter([1, 2])
    with closing(stream):
        assert list(stream) == [1, 2]


async def test_aclosing_closes_an_async_generator_on_error() -> None:
    events: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for value in range(10):
                yield value
        finally:
            events.append("closed")

    async def consume(stream: AsyncIterator[int]) -> None:
        async with aclosing(stream):
            async for value in stream:
                if value == 1:
                    raise ValueError("stop")

    with pytest.raises(ValueError, match="stop"):
        await consume(numbers())
    assert events == ["closed"]


async def test_aclosing_accepts_an_iterable_without_aclose() -> None:
    class Plain:
        def __aiter__(self) -> Plain:
            self.left = 2
            return self

        async def __anext__(self) -> int:
            self.left -= 1
            if self.left < 0:
                raise StopAsyncIteration
            return self.left

    stream = Plain()
    async with aclosing(stream):
        assert [v async for v in stream] == [1, 0]
