"""closing/aclosing: a loop's stream is closed however the loop ends."""

from __future__ import annotations

import asyncio
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


async def test_a_stream_failing_to_close_does_not_replace_the_cancellation() -> None:
    """The run's caller cancels the loop; the stream's cleanup raises: the
    caller still gets CancelledError, and the cleanup's error is reported."""
    reported: list[object] = []
    asyncio.get_running_loop().set_exception_handler(
        lambda loop, context: reported.append(context["exception"])
    )

    async def tokens() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            raise RuntimeError("failed to clean up")

    async def loop() -> None:
        stream = tokens()
        async with aclosing(stream):
            async for _ in stream:
                await asyncio.sleep(5)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [str(error) for error in reported] == ["failed to clean up"]


def test_a_stream_failing_to_close_does_not_replace_the_loops_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def lines() -> Iterator[str]:
        try:
            yield "a"
            yield "b"
        finally:
            raise RuntimeError("failed to clean up")

    def loop() -> None:
        stream = lines()
        with closing(stream):
            for _ in stream:
                raise KeyboardInterrupt  # Ctrl-C in the loop's body

    with pytest.raises(KeyboardInterrupt):
        loop()
    assert "failed to clean up" in caplog.text
