"""Single flight: identical calls in flight at once on one event loop run once.

Overlap is arranged with events, never with timing: a computation waits until
the test has seen its waiters join.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiln import run_sync
from kiln.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    shared = Ledger.at(tmp_path / "ledger.db")
    yield shared
    shared.close()


async def node(x: int) -> dict[str, int]:
    return {"x": x}


def sync_node(x: int) -> dict[str, int]:
    return {"x": x}


async def until(condition: Any, what: str) -> None:
    """Wait (generously) until `condition()` holds."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def in_flight(ledger: Ledger) -> int:
    return len(ledger._flights)


async def test_fifty_identical_concurrent_calls_compute_once(ledger: Ledger) -> None:
    computed = 0
    release = asyncio.Event()

    async def compute() -> dict[str, int]:
        nonlocal computed
        computed += 1
        await release.wait()
        return {"x": 1}

    async def one() -> tuple[dict[str, int], bool]:
        return await ledger.call("node", "v1", node, (1,), {}, compute, run="r")

    calls = [asyncio.ensure_future(one()) for _ in range(50)]
    await until(lambda: computed == 1, "the leader")
    await asyncio.sleep(0.05)  # every other call has joined by now (none can compute)
    release.set()
    results = await asyncio.gather(*calls)
    assert computed == 1
    assert all(value == {"x": 1} for value, _ in results)
    assert sorted(hit for _, hit in results) == [False] + [True] * 49
    values = [value for value, _ in results]
    assert len({id(v) for v in values}) == 50, "each waiter gets a value of its own"
    run = ledger.stats().runs[0]
    assert (run.hits, run.misses) == (49, 1)
    assert in_flight(ledger) == 0


def test_identical_calls_on_two_loops_in_two_threads_each_compute(
    ledger: Ledger,
) -> None:
    """Another loop's flight is never waited for: that loop may be blocked on this one."""
    computed: list[str] = []
    started = threading.Event()
    release = threading.Event()
    results: dict[str, tuple[Any, bool]] = {}

    def computing(who: str) -> Any:
        async def compute() -> dict[str, int]:
            computed.append(who)
            started.set()
            if who == "leader":
                await asyncio.to_thread(release.wait, 30)
            return {"x": 7}

        return compute

    async def leader() -> None:
        results["leader"] = await ledger.call(
            "node", "v1", node, (7,), {}, computing("leader")
        )

    async def other() -> None:
        started.wait(30)
        results["other"] = await ledger.call(
            "node", "v1", node, (7,), {}, computing("other")
        )
        release.set()

    threads = [
        threading.Thread(target=asyncio.run, args=(leader(),)),
        threading.Thread(target=asyncio.run, args=(other(),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {"leader": ({"x": 7}, False), "other": ({"x": 7}, False)}
    assert computed == ["leader", "other"]
    assert ledger.stats().entries == 1, "both stored the one row"
    assert in_flight(ledger) == 0


def test_a_sync_call_on_another_thread_computes_beside_an_async_leader(
    ledger: Ledger,
) -> None:
    computed = []
    started = threading.Event()
    release = threading.Event()
    results: dict[str, tuple[Any, bool]] = {}

    async def compute() -> dict[str, int]:
        computed.append("async")
        started.set()
        await asyncio.to_thread(release.wait, 30)
        return {"x": 3}

    async def leader() -> None:
        results["async"] = await ledger.call("node", "v1", node, (3,), {}, compute)

    def sync_call() -> None:
        started.wait(30)
        results["sync"] = ledger.call_sync(
            "node",
            "v1",
            sync_node,
            (3,),
            {},
            lambda: computed.append("sync") or {"x": 3},
        )
        release.set()

    threads = [
        threading.Thread(target=asyncio.run, args=(leader(),)),
        threading.Thread(target=sync_call),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {"async": ({"x": 3}, False), "sync": ({"x": 3}, False)}
    assert computed == ["async", "sync"]


def test_a_sync_entry_point_run_while_its_loop_has_the_call_in_flight_computes(
    ledger: Ledger,
) -> None:
    """A node calling a compiled flow's sync entry point blocks its loop while
    that flow runs on a worker thread's loop: waiting there for the blocked
    loop's flight would wait forever."""
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        release = asyncio.Event()

        async def compute() -> dict[str, int]:
            await release.wait()
            return {"x": 9}

        leading = asyncio.ensure_future(
            ledger.call("node", "v1", node, (9,), {}, compute)
        )
        await until(lambda: in_flight(ledger) == 1, "the leader")
        outcome["worker"] = run_sync(
            ledger.call("node", "v1", node, (9,), {}, lambda: node(9))
        )
        release.set()
        outcome["loop"] = await leading

    thread = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the worker's call waited for its blocked caller"
    assert outcome == {"worker": ({"x": 9}, False), "loop": ({"x": 9}, False)}


def test_a_sync_call_on_the_leaders_own_thread_computes_instead_of_deadlocking(
    ledger: Ledger,
) -> None:
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        release = asyncio.Event()

        async def compute() -> dict[str, int]:
            await release.wait()
            return {"x": 5}

        leading = asyncio.ensure_future(
            ledger.call("node", "v1", node, (5,), {}, compute)
        )
        await until(lambda: in_flight(ledger) == 1, "the leader")
        # A sync node of the same key on the same loop: it must not wait for `leading`.
        outcome["sync"] = ledger.call_sync(
            "node", "v1", sync_node, (5,), {}, lambda: {"x": 5}
        )
        release.set()
        outcome["async"] = await leading

    thread = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "call_sync deadlocked on its own thread's flight"
    assert outcome == {"sync": ({"x": 5}, False), "async": ({"x": 5}, False)}


async def test_a_failure_is_shared_by_the_waiters_then_retried(ledger: Ledger) -> None:
    computed = 0
    release = asyncio.Event()

    async def failing() -> dict[str, int]:
        nonlocal computed
        computed += 1
        await release.wait()
        raise ValueError("boom")

    calls = [
        asyncio.ensure_future(ledger.call("node", "v1", node, (2,), {}, failing))
        for _ in range(10)
    ]
    await until(lambda: computed == 1, "the leader")
    await asyncio.sleep(0.05)
    release.set()
    errors = await asyncio.gather(*calls, return_exceptions=True)
    assert computed == 1
    assert all(isinstance(e, ValueError) for e in errors)
    assert len({id(e) for e in errors}) == 1, "the same exception object"
    assert ledger.stats().entries == 0

    async def working() -> dict[str, int]:
        nonlocal computed
        computed += 1
        return {"x": 2}

    assert await ledger.call("node", "v1", node, (2,), {}, working) == ({"x": 2}, False)
    assert computed == 2


async def test_a_waiter_takes_over_when_the_leader_is_cancelled(ledger: Ledger) -> None:
    computations: list[str] = []
    started = asyncio.Event()

    def computing(who: str) -> Any:
        async def compute() -> dict[str, int]:
            computations.append(who)
            started.set()
            await asyncio.sleep(0 if who == "waiter" else 60)
            return {"x": 4}

        return compute

    leader = asyncio.ensure_future(
        ledger.call("node", "v1", node, (4,), {}, computing("leader"))
    )
    await started.wait()
    waiter = asyncio.ensure_future(
        ledger.call("node", "v1", node, (4,), {}, computing("waiter"))
    )
    await until(lambda: bool(ledger._flights._open[_only_key(ledger)].waiters), "join")
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await asyncio.wait_for(waiter, 30) == ({"x": 4}, False)
    assert computations == ["leader", "waiter"]
    assert in_flight(ledger) == 0
    assert ledger.stats().entries == 1


async def test_a_cancelled_waiter_leaves_the_flight_alone(ledger: Ledger) -> None:
    release = asyncio.Event()

    async def compute() -> dict[str, int]:
        await release.wait()
        return {"x": 6}

    leader = asyncio.ensure_future(ledger.call("node", "v1", node, (6,), {}, compute))
    await until(lambda: in_flight(ledger) == 1, "the leader")
    waiter = asyncio.ensure_future(ledger.call("node", "v1", node, (6,), {}, compute))
    flight = ledger._flights._open[_only_key(ledger)]
    await until(lambda: bool(flight.waiters), "join")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flight.waiters == []
    release.set()
    assert await leader == ({"x": 6}, False)


async def test_a_leader_cancelled_while_its_result_commits_still_stores_it(
    ledger: Ledger,
) -> None:
    async def compute() -> dict[str, int]:
        return {"x": 8}

    leading = asyncio.ensure_future(ledger.call("node", "v1", node, (8,), {}, compute))
    for _ in range(1000):  # until the leader awaits its commit
        await asyncio.sleep(0)
        if in_flight(ledger) == 1:
            leading.cancel()
            break
    await asyncio.gather(leading, return_exceptions=True)
    ledger.flush()
    assert ledger.stats().entries == 1
    assert in_flight(ledger) == 0


def _only_key(ledger: Ledger) -> bytes:
    for _ in range(2000):
        keys = list(ledger._flights._open)
        if keys:
            (key,) = keys
            return key
        threading.Event().wait(0.005)
    raise AssertionError("no flight")
