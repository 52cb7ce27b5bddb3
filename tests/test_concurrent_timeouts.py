"""Timeouts that fire at once in concurrent calls are each their own call's.

A node call's timeout (`@node(timeout=...)`, or an `asyncio.timeout` in the
node's own code) cancels the task that entered it. kiln took such a
cancellation for one from outside the run and stopped the other calls: two
independent calls with `timeout` and `fallback` that both timed out raised
`CancelledError` instead of both fallbacks, and so did a fan-out of them
(trial L). A scope now hears a cancellation through a child only when the
body awaits that child, and a fan-out's element running in the caller's task
tells the others only once it has had the cancellation, and only if it did
not take it back (a timeout does, turning it into `TimeoutError`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
from kiln import flow, node


def fell_back(delay: float, *, error: Exception) -> str:
    return f"fallback {type(error).__name__}"


@node(timeout=0.05, fallback=fell_back)
async def slow(delay: float) -> str:
    await asyncio.sleep(delay)
    return f"done {delay}"


@node
async def bounded(delay: float) -> str:
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(delay)
    except TimeoutError:
        return "own timeout"
    return f"done {delay}"


@flow
async def two(delay: float) -> list[str]:
    a = await slow(delay)
    b = await slow(delay)
    return [a, b]


@flow
async def fan(delays: list[float]) -> list[str]:
    return [await slow(d) for d in delays]


@flow
async def own(delays: list[float]) -> list[str]:
    return [await bounded(d) for d in delays]


@flow
async def own_two(delay: float) -> list[str]:
    a = await bounded(delay)
    b = await bounded(delay)
    return [a, b]
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    module, _ = compiled_and_source(dedent(FLOWS), Path(tmp_path_factory.mktemp("t")))
    return module


def test_two_calls_that_time_out_at_once_each_fall_back(compiled: ModuleType) -> None:
    assert asyncio.run(compiled.two.aforward(0.3)) == ["fallback TimeoutError"] * 2


@pytest.mark.parametrize(
    ("delays", "expected"),
    [
        ([0.3, 0.3], ["fallback TimeoutError"] * 2),
        ([0.3, 0.3, 0.3], ["fallback TimeoutError"] * 3),
        (
            [0.0, 0.3, 0.3],
            ["done 0.0", "fallback TimeoutError", "fallback TimeoutError"],
        ),
        ([0.3, 0.01], ["fallback TimeoutError", "done 0.01"]),
    ],
)
def test_a_fan_out_of_calls_that_time_out_falls_back_in_each(
    compiled: ModuleType, delays: list[float], expected: list[str]
) -> None:
    assert asyncio.run(compiled.fan.aforward(delays)) == expected


def test_a_node_s_own_timeouts_firing_at_once_are_its_own(compiled: ModuleType) -> None:
    assert asyncio.run(compiled.own.aforward([0.3, 0.3])) == ["own timeout"] * 2
    assert asyncio.run(compiled.own_two.aforward(0.3)) == ["own timeout"] * 2


def test_a_cancellation_from_outside_still_stops_every_call(
    compiled: ModuleType,
) -> None:
    async def cancelled() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.create_task(compiled.own.aforward([0.04, 0.04, 0.04]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return loop.time() - started

    # Well before any element's 0.04 s sleep would have ended on its own.
    assert asyncio.run(cancelled()) < 0.035
