"""Cancelling a run cancels everything it started at once, not one call after another.

Each call here takes a second to unwind from its cancellation (closing a
connection, say). A caller who cancels must see every call cancelled before
any has finished unwinding, so the run ends after about one cleanup, and no
call goes on to an outside effect it would have had after the cancel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from kiln import Scope, fan_out, gather

CLEANUP = 1.0  # seconds each call takes to unwind


async def stubborn(log: list[str], name: str) -> int:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        log.append(f"cancelled {name}")
        await asyncio.sleep(CLEANUP)
        log.append(f"cleaned {name}")
        raise
    return 0


async def charge(log: list[str]) -> int:
    """An outside effect half a second in: a payment, a write."""
    await asyncio.sleep(0.5)
    log.append("charged")
    return 1


def cancel_soon(work: Coroutine[Any, Any, object]) -> float:
    """Run until `work` is cancelled 0.1 s in and has ended; the seconds it took to end."""

    async def main() -> float:
        task = asyncio.ensure_future(work)
        await asyncio.sleep(0.1)
        began = time.monotonic()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return time.monotonic() - began
        raise AssertionError("the run was not cancelled")

    return asyncio.run(main())


def all_cancelled_before_any_cleaned(log: list[str], count: int) -> bool:
    cancelled = [i for i, entry in enumerate(log) if entry.startswith("cancelled")]
    cleaned = [i for i, entry in enumerate(log) if entry.startswith("cleaned")]
    return len(cancelled) == len(cleaned) == count and max(cancelled) < min(cleaned)


def test_a_fan_out_s_elements_are_cancelled_together() -> None:
    log: list[str] = []

    async def run() -> object:
        return await fan_out(lambda i: stubborn(log, str(i)), range(4))

    took = cancel_soon(run())
    assert all_cancelled_before_any_cleaned(log, 4), log
    assert took < 3 * CLEANUP  # one cleanup, not four one after another


def test_gather_s_elements_are_cancelled_together() -> None:
    log: list[str] = []

    async def run() -> object:
        return await gather(stubborn(log, str(i)) for i in range(3))

    took = cancel_soon(run())
    assert all_cancelled_before_any_cleaned(log, 3), log
    assert took < 2.5 * CLEANUP


def test_the_body_awaiting_a_task_has_every_task_cancelled_at_once() -> None:
    log: list[str] = []

    async def run() -> object:
        async with Scope(ordered=True) as scope:
            charged = scope.spawn(charge(log), step=0)
            slow = scope.spawn(stubborn(log, "slow"), step=1)
            return [await slow, await charged]

    cancel_soon(run())
    assert log == ["cancelled slow", "cleaned slow"]  # never "charged"


def test_a_fan_out_beside_a_task_has_both_cancelled_at_once() -> None:
    log: list[str] = []

    async def run() -> object:
        async with Scope(ordered=True) as scope:
            charged = scope.spawn(charge(log), step=0)
            slow = await fan_out(lambda i: stubborn(log, str(i)), range(2))
            return [await charged, slow]

    cancel_soon(run())
    assert "charged" not in log, log
    assert all_cancelled_before_any_cleaned(log, 2), log
