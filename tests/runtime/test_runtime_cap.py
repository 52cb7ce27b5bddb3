"""A run's concurrency cap: the Semaphore's FIFO admission, taken without awaiting."""

from __future__ import annotations

import asyncio

from kiln.cap import Cap


async def test_take_answers_at_once_while_a_slot_is_free() -> None:
    cap = Cap(2)
    assert cap.take()
    assert cap.take()
    assert not cap.take()
    cap.release()
    assert cap.take()


async def test_a_newcomer_does_not_pass_a_waiter() -> None:
    cap = Cap(1)
    assert cap.take()
    order: list[str] = []

    async def holder(name: str) -> None:
        await cap.acquire()
        order.append(name)
        cap.release()

    first = asyncio.ensure_future(holder("first"))
    await asyncio.sleep(0)
    cap.release()  # the slot goes to the waiter, not to take()
    assert not cap.take()
    await first
    assert order == ["first"]
    assert cap.take()


async def test_waiters_are_admitted_in_the_order_they_came() -> None:
    cap = Cap(1)
    assert cap.take()
    order: list[int] = []

    async def holder(index: int) -> None:
        await cap.acquire()
        order.append(index)
        await asyncio.sleep(0)
        cap.release()

    waiting = [asyncio.ensure_future(holder(i)) for i in range(5)]
    await asyncio.sleep(0)
    cap.release()
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2, 3, 4]


async def test_a_waiter_cancelled_as_it_is_admitted_passes_the_slot_on() -> None:
    cap = Cap(1)
    assert cap.take()
    admitted: list[str] = []

    async def holder(name: str) -> None:
        await cap.acquire()
        admitted.append(name)
        cap.release()

    first = asyncio.ensure_future(holder("first"))
    second = asyncio.ensure_future(holder("second"))
    await asyncio.sleep(0)
    cap.release()  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it runs again
    await asyncio.gather(first, second, return_exceptions=True)
    assert admitted == ["second"]
    assert cap.take()
    assert not cap.take()


async def test_a_cancelled_waiter_does_not_hold_back_a_newcomer() -> None:
    cap = Cap(1)
    assert cap.take()
    waiter = asyncio.ensure_future(cap.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    cap.release()
    assert cap.take()
