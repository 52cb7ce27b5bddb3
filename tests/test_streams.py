"""Streams in compiled flows: pipelined fan-outs, streaming flows, closing, failures.

Each test compiles a small source with kiln and runs the source as plain Python
too; the source run is the reference, and the compiled results must equal it.
Order and overlap are asserted with events recorded in a module-level trace,
never with timing:

- a fan-out over an async stream node (``[await work(t) async for t in
  tokens(n)]``) starts its first element before the stream ends, runs its
  elements concurrently, and keeps source order in its result;
- a streaming flow (``async def f(...) -> AsyncIterator[T]`` that yields) is
  iterated through ``astream``, through ``stream`` from sync code, and through
  ``stream`` inside a running event loop, and through the runtime's ``astream``
  and ``stream`` helpers;
- a consumer that stops early closes the producer: the stream node's
  ``finally`` runs;
- an exception raised in the stream reaches the consumer as the original
  object, however it iterates;
- a sync streaming flow (``def f(...) -> Iterator[T]`` that yields) works
  through ``stream`` and ``astream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest

import kiln
from tests.probes import library_module
from tests.test_differential import compiled_and_source


def build(source: str, tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(dedent(source), tmp_path)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


# --- a fan-out fed by an async stream ----------------------------------------------------

PIPELINE = """
import asyncio
from collections.abc import AsyncIterator
from kiln import flow, node
import watch

@node
async def tokens(n: int) -> AsyncIterator[int]:
    try:
        for t in range(n):
            watch.trace.append(f"yield {t}")
            yield t
            await watch.until(t)
        watch.trace.append("stream end")
    finally:
        watch.trace.append("stream closed")

@node
async def work(t: int, n: int) -> int:
    watch.trace.append(f"start {t}")
    watch.start(t)
    if t == 0:
        await watch.until(n - 1)  # the first element finishes last
    await asyncio.sleep(0)
    watch.trace.append(f"end {t}")
    return t * t

@flow
async def squares(n: int) -> list[int]:
    return [await work(t, n) async for t in tokens(n)]
"""

# What the pipeline's calls are watched with: a library kiln does not read, so
# its calls leave the elements concurrent (a stream that read what elements
# change in the project's own module state would keep them in order).
WATCH = """
import asyncio

trace: list[str] = []
# Each element's start, as events.
started = [asyncio.Event() for _ in range(10)]


def start(t: int) -> None:
    started[t].set()


async def until(t: int) -> None:
    # Yield to the event loop until element `t` has started, or give up: in a
    # plain run, one call at a time, it may never start.
    for _ in range(200):
        if started[t].is_set():
            return
        await asyncio.sleep(0)


def reset() -> None:
    trace.clear()
    for event in started:
        event.clear()
"""


def test_fan_out_over_a_stream_starts_before_the_stream_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = library_module(tmp_path, monkeypatch, "watch", WATCH)
    compiled, source = build(PIPELINE, tmp_path / "project")
    n = 5
    expected = asyncio.run(source.squares(n))
    assert expected == [t * t for t in range(n)]  # results in source order

    watch.reset()
    assert compiled.squares(n) == expected
    trace = watch.trace
    assert trace.index("start 0") < trace.index("stream end"), trace
    # Elements overlap: the last one started while the first was still running ...
    assert trace.index(f"start {n - 1}") < trace.index("end 0"), trace
    # ... and finished first, yet the result keeps source order.
    assert trace.index(f"end {n - 1}") < trace.index("end 0"), trace
    assert "stream closed" in trace

    watch.reset()
    assert asyncio.run(compiled.squares.aforward(n)) == expected
    assert (
        asyncio.run(compiled.squares.aforward(0))
        == asyncio.run(source.squares(0))
        == []
    )


# --- streaming flows ---------------------------------------------------------------------

STREAMING = """
import asyncio
from collections.abc import AsyncIterator, Iterator
from kiln import flow, node

trace: list[str] = []
raised: list[Exception] = []

class Broken(Exception):
    pass

@node
async def words(text: str) -> AsyncIterator[str]:
    try:
        for word in text.split():
            if word == "boom":
                error = Broken(f"stream broke at {word!r}")
                raised.append(error)
                raise error
            await asyncio.sleep(0)
            trace.append(f"produced {word}")
            yield word
    finally:
        trace.append("words closed")

@node
async def shout(word: str) -> str:
    return word.upper()

@node
def lines(text: str) -> Iterator[str]:
    try:
        for line in text.split(","):
            trace.append(f"line {line}")
            yield line.strip()
    finally:
        trace.append("lines closed")

@node
def number(index: int, line: str) -> str:
    return f"{index}: {line}"

@flow
async def loud(text: str) -> AsyncIterator[str]:
    async for word in words(text):
        yield await shout(word)
    yield "done"

@flow
def numbered(text: str) -> Iterator[str]:
    for index, line in enumerate(lines(text)):
        yield number(index, line)
"""

TEXT = "the quick brown fox"
# Longer than any buffer a stream might be read into ahead of its consumer.
LONG = " ".join(f"w{i}" for i in range(27))


def through_astream(compiled: ModuleType, text: str) -> list[str]:
    return asyncio.run(collect(compiled.loud.astream(text)))


def through_stream(compiled: ModuleType, text: str) -> list[str]:
    return list(compiled.loud.stream(text))


def through_stream_in_a_loop(compiled: ModuleType, text: str) -> list[str]:
    async def handler() -> list[str]:  # a notebook cell, an async web handler
        return list(compiled.loud.stream(text))

    return asyncio.run(handler())


def through_astream_helper(compiled: ModuleType, text: str) -> list[str]:
    return asyncio.run(collect(kiln.astream(compiled.loud, text)))


def through_stream_helper(compiled: ModuleType, text: str) -> list[str]:
    return list(kiln.stream(compiled.loud, text))


WAYS: dict[str, Callable[[ModuleType, str], list[str]]] = {
    "astream": through_astream,
    "stream": through_stream,
    "stream_in_a_loop": through_stream_in_a_loop,
    "kiln.astream": through_astream_helper,
    "kiln.stream": through_stream_helper,
}


@pytest.mark.parametrize("way", WAYS)
def test_a_streaming_flow_yields_what_its_source_yields(
    tmp_path: Path, way: str
) -> None:
    compiled, source = build(STREAMING, tmp_path)
    expected = asyncio.run(collect(source.loud(TEXT)))
    assert expected == ["THE", "QUICK", "BROWN", "FOX", "done"]
    assert WAYS[way](compiled, TEXT) == expected
    assert compiled.trace[-1] == "words closed"
    assert asyncio.run(collect(source.loud(""))) == WAYS[way](compiled, "") == ["done"]


def take_two_astream(compiled: ModuleType) -> list[str]:
    async def consume() -> list[str]:
        taken: list[str] = []
        async with contextlib.aclosing(compiled.loud.astream(LONG)) as stream:
            async for word in stream:
                taken.append(word)
                if len(taken) == 2:
                    break
        return taken

    return asyncio.run(consume())


def take_two_stream_close(compiled: ModuleType) -> list[str]:
    stream = compiled.loud.stream(LONG)
    taken = [next(stream), next(stream)]
    stream.close()
    return taken


def take_two_stream_break(compiled: ModuleType) -> list[str]:
    taken: list[str] = []
    for word in compiled.loud.stream(LONG):  # the iterator is dropped after break
        taken.append(word)
        if len(taken) == 2:
            break
    gc.collect()
    return taken


def take_two_stream_in_a_loop(compiled: ModuleType) -> list[str]:
    async def handler() -> list[str]:
        with contextlib.closing(compiled.loud.stream(LONG)) as stream:
            return [next(stream), next(stream)]

    return asyncio.run(handler())


EARLY = {
    "astream": take_two_astream,
    "stream_close": take_two_stream_close,
    "stream_break": take_two_stream_break,
    "stream_in_a_loop": take_two_stream_in_a_loop,
}


def produced(trace: list[str]) -> list[str]:
    return [event for event in trace if event.startswith("produced")]


@pytest.mark.parametrize("way", EARLY)
def test_stopping_early_closes_the_producer(tmp_path: Path, way: str) -> None:
    compiled, source = build(STREAMING, tmp_path)

    async def take_two() -> list[str]:  # the source, as `async for` consumes it
        taken: list[str] = []
        async with contextlib.aclosing(source.loud(LONG)) as stream:
            async for word in stream:
                taken.append(word)
                if len(taken) == 2:
                    break
        return taken

    assert EARLY[way](compiled) == asyncio.run(take_two()) == ["W0", "W1"]
    assert "words closed" in compiled.trace  # the stream node's finally ran
    # The stream ran for the items taken only, however it was consumed (inside a
    # running loop too): the side effects of later items never happened.
    assert produced(compiled.trace) == produced(source.trace)


@pytest.mark.parametrize("way", WAYS)
def test_an_error_in_the_stream_is_the_original_object(
    tmp_path: Path, way: str
) -> None:
    compiled, source = build(STREAMING, tmp_path)
    text = "one two boom three"
    with pytest.raises(source.Broken, match="stream broke at 'boom'"):
        asyncio.run(collect(source.loud(text)))
    with pytest.raises(compiled.Broken) as caught:
        WAYS[way](compiled, text)
    assert caught.value is compiled.raised[-1]
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert compiled.trace[-1] == "words closed"
    assert "produced three" not in compiled.trace


def test_an_error_reaches_the_consumer_after_the_items_before_it(
    tmp_path: Path,
) -> None:
    compiled, _ = build(STREAMING, tmp_path)
    stream = compiled.loud.stream("one two boom three")
    assert [next(stream), next(stream)] == ["ONE", "TWO"]
    with pytest.raises(compiled.Broken):
        next(stream)


SYNC_WAYS: dict[str, Callable[[ModuleType, str], list[str]]] = {
    "stream": lambda m, text: list(m.numbered.stream(text)),
    "call": lambda m, text: list(m.numbered(text)),
    "astream": lambda m, text: asyncio.run(collect(m.numbered.astream(text))),
    "stream_in_a_loop": lambda m, text: asyncio.run(
        _in_a_loop(m.numbered.stream, text)
    ),
    "kiln.stream": lambda m, text: list(kiln.stream(m.numbered, text)),
    "kiln.astream": lambda m, text: asyncio.run(
        collect(kiln.astream(m.numbered, text))
    ),
}


async def _in_a_loop(stream: Callable[[str], Iterator[str]], text: str) -> list[str]:
    return list(stream(text))


@pytest.mark.parametrize("way", SYNC_WAYS)
def test_a_sync_streaming_flow(tmp_path: Path, way: str) -> None:
    compiled, source = build(STREAMING, tmp_path)
    text = "alpha, beta ,gamma"
    expected = list(source.numbered(text))
    assert expected == ["0: alpha", "1: beta", "2: gamma"]
    assert SYNC_WAYS[way](compiled, text) == expected
    assert compiled.trace[-1] == "lines closed"


def test_a_sync_streaming_flow_stopped_early_closes_its_stream(tmp_path: Path) -> None:
    compiled, _ = build(STREAMING, tmp_path)
    stream = compiled.numbered.stream("a, b, c")
    assert next(stream) == "0: a"
    stream.close()
    assert compiled.trace == ["line a", "lines closed"]


CAPPED_SYNC_STREAM = """
from collections.abc import Iterator

from kiln import flow, node


@node(thread=True)
def square(x: int) -> int:
    return x * x


@node
async def increment(x: int) -> int:
    return x + 1


@flow
def squares(n: int) -> Iterator[int]:
    for i in range(n):
        yield square(i)


@flow
async def outer(n: int) -> list[int]:
    out: list[int] = []
    for v in squares(n):
        out.append(await increment(v))
    return out


@flow
async def fanned(n: int) -> list[int]:
    return [await increment(v) for v in squares(n)]
"""


@pytest.mark.parametrize("name", ["outer", "fanned"])
@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_capped_run_iterating_a_sync_streaming_subflow_finishes(
    name: str, concurrency: int, tmp_path: Path
) -> None:
    # The stream runs in a thread of its own, with its own event loop: waiting
    # there for the enclosing run's cap, which only its own loop frees, hung.
    _, source = compiled_and_source(CAPPED_SYNC_STREAM, tmp_path)
    script = tmp_path / "capped.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from out import *\n"
        f"flow = type({name})(concurrency={concurrency})\n"
        "print(flow(4))\n",
        encoding="utf-8",
    )
    ran = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(asyncio.run(getattr(source, name)(4)))


CLOSED_AT_ONCE = """
import asyncio
from collections.abc import AsyncIterator

from kiln import flow, node

LOG: list[str] = []


@node
async def events(n: int) -> AsyncIterator[str]:
    try:
        for i in range(n):
            await asyncio.sleep(0)
            yield f"ev{i}"
    finally:
        LOG.append("events: finally")


@flow
async def take_two(n: int) -> list[str]:
    got: list[str] = []
    async for e in events(n):
        got.append(e)
        if len(got) == 2:
            break
    LOG.append("flow: after the loop")
    return got
"""


def test_a_stream_the_flow_stops_reading_is_closed_before_its_next_statement(
    tmp_path: Path,
) -> None:
    """README, Decisions: the compiled flow closes an async stream where it stops
    reading it; the source leaves it to the loop's finalizer (trial Q9 §5)."""
    compiled, source = build(CLOSED_AT_ONCE, tmp_path)
    assert compiled.take_two(5) == ["ev0", "ev1"]
    assert compiled.LOG == ["events: finally", "flow: after the loop"]

    async def run_source() -> list[str]:
        got = await source.take_two(5)
        source.LOG.append("caller: next statement")
        await asyncio.sleep(0.01)
        return got

    assert asyncio.run(run_source()) == ["ev0", "ev1"]
    assert source.LOG == [
        "flow: after the loop",
        "caller: next statement",
        "events: finally",
    ]
