"""Observed runs: every node call of a compiled flow is a NodeEvent.

`on_event` sees each call when it starts and when it ends; `record=True`
keeps the events in the instance's Executor. An instance nothing
observes, limits or caches calls its nodes directly: `_kiln_bind` hands back
the very tuple of plain calls.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from kiln import EventStatus, NodeEvent
from tests.test_differential import compiled_and_source

FLOW = """
import asyncio
from kiln import flow, node

FAILURES = {"left": 1}

@node
async def double(x: int) -> int:
    await asyncio.sleep(0.001)
    return 2 * x

@node(retries=2)
def flaky(x: int) -> int:
    if FAILURES["left"] > 0:
        FAILURES["left"] -= 1
        raise ConnectionError("once")
    return x + 1

@node
async def broken(x: int) -> int:
    raise ValueError(f"no {x}")

@flow
async def work(n: int) -> int:
    doubled = [await double(i) for i in range(n)]
    total = flaky(sum(doubled))
    while total < 100:
        total = await double(total)
    return total

@flow
async def fails(x: int) -> int:
    y = await double(x)
    return await broken(y)
"""


def line_of(text: str) -> int:
    """The line of FLOW, as compiled, that holds `text`."""
    lines = dedent(FLOW).splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


@pytest.fixture
def module(tmp_path: Path) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(FLOW), tmp_path)
    return compiled


def test_an_unobserved_run_calls_its_nodes_directly(module: ModuleType) -> None:
    plain = module.work._kiln_calls
    assert module.work._kiln_bind(plain).calls is plain
    assert module.work._kiln_calls[0] is module.double


def test_every_call_is_an_event_passed_through_its_states(module: ModuleType) -> None:
    seen: list[tuple[str, str, EventStatus]] = []

    def on_event(event: NodeEvent) -> None:
        seen.append((event.node, event.site, event.status))

    observed = type(module.work)(on_event=on_event, record=True)
    assert observed(3) == 112  # (0 + 2 + 4) + 1 = 7, doubled until >= 100
    executor = observed.executor
    events = list(executor.pile)
    assert [e.node for e in events] == ["double"] * 3 + ["flaky"] + ["double"] * 4
    assert all(e.status is EventStatus.COMPLETED for e in events)
    assert len(seen) == 2 * len(events)  # when each starts, and when it ends
    for event in events:
        statuses = [s for n, site, s in seen if (n, site) == (event.node, event.site)]
        assert statuses[:1] == [EventStatus.PROCESSING]
        assert event.started is not None
        assert event.ended is not None
        assert event.ended >= event.started
    flaky = next(e for e in events if e.node == "flaky")
    assert flaky.attempts == 2
    loop_calls = [
        e for e in events if e.site.endswith(f":{line_of('await double(total)')}")
    ]
    assert [e.visit for e in loop_calls] == [1, 2, 3, 4]
    fan_out = [e for e in events if e.site.endswith(f":{line_of('doubled = [')}")]
    assert sorted(e.visit for e in fan_out) == [1, 2, 3]
    assert len({e.run for e in events}) == 1
    assert executor.status_counts()[EventStatus.COMPLETED] == len(events)


def test_a_failed_call_is_a_failed_event_with_its_error(module: ModuleType) -> None:
    observed = type(module.fails)(record=True)
    with pytest.raises(ValueError, match="no 10"):
        observed(5)
    events = list(observed.executor.pile)
    assert [(e.node, e.status) for e in events] == [
        ("double", EventStatus.COMPLETED),
        ("broken", EventStatus.FAILED),
    ]
    assert isinstance(events[1].error, ValueError)
    assert list(observed.executor.failed_events) == [events[1]]


def test_cancelled_calls_are_cancelled_events(tmp_path: Path) -> None:
    compiled, _ = compiled_and_source(
        dedent("""
            import asyncio
            from kiln import flow, node

            @node
            async def sleepy(x: float) -> float:
                await asyncio.sleep(x)
                return x

            @flow
            async def slow(n: int) -> list[float]:
                return [await sleepy(10.0) for _ in range(n)]
            """),
        tmp_path,
    )
    observed = type(compiled.slow)(record=True)

    async def cancel() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await observed.aforward(3)

    asyncio.run(cancel())
    assert [e.status for e in observed.executor.pile] == [EventStatus.CANCELLED] * 3


def test_runs_are_numbered_and_recorded_together(module: ModuleType) -> None:
    observed = type(module.work)(record=True)
    observed(3)
    observed(3)
    runs = [e.run for e in observed.executor.pile]
    assert len(set(runs)) == 2
    assert runs == sorted(runs)


STREAMS = """
import asyncio
from collections.abc import AsyncIterator, Iterator
from kiln import flow, node

@node
async def tokens(text: str) -> AsyncIterator[str]:
    for word in text.split():
        await asyncio.sleep(0)
        if word == "bad":
            raise ValueError("a bad word")
        yield word

@node
def lines(text: str) -> Iterator[str]:
    yield from text.splitlines()

@node
async def count(words: AsyncIterator[str]) -> int:
    return len([w async for w in words])

@flow
async def words(text: str) -> list[str]:
    found = []
    async for token in tokens(text):
        found.append(token)
    for line in lines(text):
        found.append(line)
        break
    return found

@flow
async def passed_on(text: str) -> int:
    return await count(tokens(text))

@flow
async def endless(text: str) -> int:
    n = 0
    async for token in tokens(text):
        n += len(token)
        await asyncio.sleep(10)
    return n
"""


@pytest.fixture
def streams(tmp_path: Path) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(STREAMS), tmp_path)
    return compiled


def test_a_stream_node_call_is_an_event_from_its_first_item_to_its_end(
    streams: ModuleType,
) -> None:
    seen: list[tuple[str, EventStatus]] = []
    observed = type(streams.words)(
        record=True, on_event=lambda e: seen.append((e.node, e.status))
    )
    assert observed("a b\nc") == ["a", "b", "c", "a b"]
    assert seen == [
        ("tokens", EventStatus.PROCESSING),
        ("tokens", EventStatus.COMPLETED),
        ("lines", EventStatus.PROCESSING),
        ("lines", EventStatus.COMPLETED),  # closed by the loop's break
    ]
    for event in observed.executor.pile:
        assert event.started is not None
        assert event.ended is not None
        assert event.ended >= event.started
    # Passed on to a node, a stream's call ends when that node has read it.
    passed = type(streams.passed_on)(record=True)
    assert passed("x y z") == 3
    assert [(e.node, e.status) for e in passed.executor.pile] == [
        ("tokens", EventStatus.COMPLETED),
        ("count", EventStatus.COMPLETED),
    ]


def test_a_stream_that_fails_or_is_cancelled_says_so(streams: ModuleType) -> None:
    observed = type(streams.words)(record=True)
    with pytest.raises(ValueError, match="a bad word"):
        observed("ok bad")
    (failed,) = observed.executor.pile
    assert (failed.node, failed.status) == ("tokens", EventStatus.FAILED)
    assert isinstance(failed.error, ValueError)

    endless = type(streams.endless)(record=True)

    async def cancel() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await endless.aforward("a b")

    asyncio.run(cancel())
    assert [e.status for e in endless.executor.pile] == [EventStatus.CANCELLED]


def test_an_unobserved_stream_call_is_the_node_s_own_generator(
    streams: ModuleType,
) -> None:
    plain = streams.words._kiln_calls
    assert streams.words._kiln_bind(plain).calls is plain
    assert plain == (streams.tokens, streams.lines)


def test_a_fan_out_stops_at_an_element_that_fails_before_it_waits(
    tmp_path: Path,
) -> None:
    """As the source's loop: no event, and no call, for the elements after it."""
    compiled, source = compiled_and_source(
        dedent("""
            from kiln import flow, node

            @node
            async def check(x: int) -> int:
                if x == 2:
                    raise ValueError(x)
                return x

            @flow
            async def checks(n: int) -> list[int]:
                return [await check(x) for x in range(n)]

            @flow(concurrency=2)
            async def capped_checks(n: int) -> list[int]:
                return [await check(x) for x in range(n)]
            """),
        tmp_path,
    )
    with pytest.raises(ValueError, match="2"):
        asyncio.run(source.checks(5))
    for name in ("checks", "capped_checks"):
        seen: list[tuple[int, EventStatus]] = []
        observed = type(getattr(compiled, name))(
            on_event=lambda event, seen=seen: seen.append((event.visit, event.status))
        )
        with pytest.raises(ValueError, match="2"):
            observed(5)
        processing, completed = EventStatus.PROCESSING, EventStatus.COMPLETED
        assert seen == [
            (1, processing),
            (1, completed),
            (2, processing),
            (2, completed),
            (3, processing),
            (3, EventStatus.FAILED),
        ], name


KEYWORDS = """
import asyncio
from kiln import flow, node

@node
async def scaled(x: int, by: int = 1) -> int:
    await asyncio.sleep(0)
    return x * by

@flow
async def both(x: int) -> int:
    a = await scaled(x)
    b = await scaled(x, by=3)
    c = await scaled(**{"x": a, "by": b})
    return a + b + c
"""


@pytest.fixture
def keywords(tmp_path: Path) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(KEYWORDS), tmp_path)
    return compiled


def test_calls_with_and_without_keywords_are_events_of_an_on_event_run(
    keywords: ModuleType,
) -> None:
    seen: list[NodeEvent] = []
    observed = type(keywords.both)(on_event=seen.append)
    assert observed(2) == 2 + 6 + 12
    ended = list({id(event): event for event in seen}.values())  # each seen twice
    assert len(seen) == 2 * len(ended)
    assert [(e.visit, e.status) for e in ended] == [(1, EventStatus.COMPLETED)] * 3
    for event in ended:
        # Every field is set, as NodeEvent's own __init__ sets them.
        assert (event.attempts, event.cache_hit, event.error) == (1, False, None)
        assert event.response is None
        assert event.started is not None
        assert event.ended is not None
        assert event.started <= event.ended
        assert abs(event.created_at - time.time()) < 60
    assert len({e.id for e in ended}) == 3


def test_runs_of_one_instance_have_their_own_numbers_and_visits(
    module: ModuleType,
) -> None:
    """Sequential, concurrent and failed runs: a run that ended is begun afresh."""
    seen: list[NodeEvent] = []
    observed = type(module.work)(on_event=seen.append)
    failing = type(module.fails)(on_event=seen.append)

    async def runs() -> None:
        assert await observed.aforward(3) == 112
        assert await observed.aforward(3) == 112
        with pytest.raises(ValueError, match="no 10"):
            await failing.aforward(5)
        with pytest.raises(ValueError, match="no 10"):
            await failing.aforward(5)
        assert (
            await asyncio.gather(*(observed.aforward(3) for _ in range(3))) == [112] * 3
        )

    asyncio.run(runs())
    by_run: dict[int, list[NodeEvent]] = {}
    for event in {id(event): event for event in seen}.values():  # each seen twice
        by_run.setdefault(event.run, []).append(event)
    assert len(by_run) == 7
    loop_line = line_of("await double(total)")
    for events in by_run.values():
        loop_calls = [e.visit for e in events if e.site.endswith(f":{loop_line}")]
        assert loop_calls in ([1, 2, 3, 4], [])
        assert len({(e.site, e.visit) for e in events}) == len(events)
