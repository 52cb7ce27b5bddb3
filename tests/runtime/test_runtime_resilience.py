"""Policy, call, call_sync, call_in_thread: retries, waits, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import pickle
import threading
import time
from typing import Any

import pytest

from kiln import KilnError, OptionError, Policy, call, call_in_thread, call_sync

REQUEST = contextvars.ContextVar("REQUEST", default="none")


class Stop(BaseException):
    """A BaseException that is not an Exception, like KeyboardInterrupt."""


class Flaky:
    """A node that fails `failures` times (a new error each time), then returns."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.attempts = 0
        self.raised: list[Exception] = []

    def step(self, value: str) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            self.raised.append(self.error(f"attempt {self.attempts}"))
            raise self.raised[-1]
        return value.upper()

    async def node(self, value: str) -> str:
        return self.step(value)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the seconds that call and call_sync ask to wait, without waiting."""
    requested: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        requested.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(time, "sleep", requested.append)
    return requested


# --- Policy -------------------------------------------------------------------


def test_a_policy_is_a_frozen_value_with_normalised_seconds() -> None:
    policy = Policy("fetch", retries=2, wait=1, backoff=2, timeout=3, where="f.py:1")
    assert (policy.wait, policy.backoff, policy.timeout) == (1.0, 2.0, 3.0)
    assert isinstance(policy.wait, float)
    assert policy == Policy(
        "fetch", retries=2, wait=1.0, backoff=2.0, timeout=3.0, where="f.py:1"
    )
    assert hash(policy) == hash(dataclasses.replace(policy))
    assert pickle.loads(pickle.dumps(policy)) == policy
    assert "_plain" not in repr(policy)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.retries = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"node": ""}, "node must be a non-empty"),
        ({"node": None}, "node must be a non-empty"),
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"retries": True}, "retries must be an integer >= 0"),
        ({"wait": -0.5}, "wait must be a finite number"),
        ({"backoff": 0.5}, "backoff must be a finite number >= 1"),
        ({"retry_on": ()}, "retry_on must be a non-empty tuple"),
        ({"retry_on": (ValueError, "x")}, "retry_on must be a non-empty tuple"),
        ({"timeout": 0}, "timeout must be a finite number of seconds > 0"),
        ({"timeout": float("inf")}, "timeout must be a finite number"),
        ({"where": 12}, "where must be a source location"),
    ],
)
def test_bad_policies_are_refused(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"node": "fetch", **options}
    with pytest.raises(OptionError, match=message) as caught:
        Policy(**arguments)
    assert isinstance(caught.value, KilnError)
    assert isinstance(caught.value, ValueError)


def test_delays_grow_by_backoff() -> None:
    policy = Policy("n", retries=4, wait=0.5, backoff=2)
    assert [policy.delay(k) for k in range(1, 5)] == [0.5, 1.0, 2.0, 4.0]
    assert Policy("n", wait=0.25).delay(3) == 0.25
    # No wait: no power of backoff, which would overflow after many retries.
    assert Policy("n", retries=5000, backoff=10).delay(5000) == 0.0


# --- call: retries ------------------------------------------------------------


async def test_a_node_failing_k_times_succeeds_with_k_retries(
    waits: list[float],
) -> None:
    flaky = Flaky(failures=3)
    assert await call(Policy("fetch", retries=3), flaky.node, "ok") == "OK"
    assert flaky.attempts == 4
    assert not any(hasattr(error, "__notes__") for error in flaky.raised)


async def test_giving_up_raises_the_last_error_itself_with_a_note(
    waits: list[float],
) -> None:
    flaky = Flaky(failures=3)
    policy = Policy("fetch", retries=2, where="flows.py:12")
    with pytest.raises(ConnectionError) as caught:
        await call(policy, flaky.node, "ok")
    assert flaky.attempts == 3
    assert caught.value is flaky.raised[-1]
    assert caught.value.__notes__ == [
        "kiln: node 'fetch' failed after 3 attempts (retries=2), at flows.py:12"
    ]
    # Earlier attempts' errors are neither chained to it nor noted.
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None
    assert not any(hasattr(error, "__notes__") for error in flaky.raised[:-1])


async def test_without_retries_the_note_says_one_attempt() -> None:
    flaky = Flaky(failures=1)
    with pytest.raises(ConnectionError) as caught:
        await call(Policy("fetch"), flaky.node, "ok")
    assert caught.value.__notes__ == [
        "kiln: node 'fetch' failed after 1 attempt (retries=0)"
    ]


async def test_retry_on_filters_what_is_retried(waits: list[float]) -> None:
    flaky = Flaky(failures=5, error=KeyError)
    policy = Policy("fetch", retries=3, retry_on=(ConnectionError, TimeoutError))
    with pytest.raises(KeyError) as caught:
        await call(policy, flaky.node, "ok")
    assert flaky.attempts == 1
    assert waits == []
    assert caught.value.__notes__ == [
        "kiln: node 'fetch' failed after 1 attempt (retries=3); "
        "KeyError is not in its retry_on"
    ]


async def test_a_retried_error_then_an_unretried_one_stops_there(
    waits: list[float],
) -> None:
    errors: list[Exception] = [ConnectionError("first"), ValueError("second")]

    async def node() -> None:
        raise errors.pop(0)

    with pytest.raises(ValueError, match="second") as caught:
        await call(Policy("n", retries=5, retry_on=(ConnectionError,)), node)
    assert caught.value.__notes__ == [
        "kiln: node 'n' failed after 2 attempts (retries=5); "
        "ValueError is not in its retry_on"
    ]


async def test_waits_grow_by_backoff_before_each_retry(waits: list[float]) -> None:
    flaky = Flaky(failures=3)
    policy = Policy("fetch", retries=3, wait=0.5, backoff=3)
    assert await call(policy, flaky.node, "ok") == "OK"
    assert waits == [0.5, 1.5, 4.5]


async def test_waits_really_wait() -> None:
    flaky = Flaky(failures=2)
    started = time.perf_counter()
    await call(Policy("fetch", retries=2, wait=0.05, backoff=2), flaky.node, "ok")
    assert time.perf_counter() - started >= 0.15


async def test_arguments_and_keywords_reach_the_node() -> None:
    async def node(a: int, b: int, *, scale: int = 1) -> int:
        return (a - b) * scale

    policy = Policy("n", retries=1)
    assert await call(policy, node, 5, 2, scale=10) == 30
    assert await call(Policy("n"), node, b=1, a=3) == 2


async def test_attempts_run_in_the_callers_task_without_new_tasks() -> None:
    seen: list[asyncio.Task[Any] | None] = []

    async def node() -> int:
        seen.append(asyncio.current_task())
        return len(asyncio.all_tasks())

    for policy in (Policy("n"), Policy("n", retries=2, timeout=5)):
        assert await call(policy, node) == 1
    assert seen == [asyncio.current_task()] * 2


# --- call: timeouts -----------------------------------------------------------


async def test_a_timeout_stops_a_slow_attempt_with_timeout_error() -> None:
    log: list[str] = []

    async def slow() -> str:
        try:
            await asyncio.sleep(0.5)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        return "late"

    started = time.perf_counter()
    with pytest.raises(TimeoutError) as caught:
        await call(Policy("slow", timeout=0.05, where="f.py:3"), slow)
    assert time.perf_counter() - started < 0.3
    assert log == ["cancelled"]
    assert caught.value.__notes__ == [
        "kiln: node 'slow' failed after 1 attempt (retries=0), at f.py:3; "
        "the last attempt exceeded its timeout of 0.05s"
    ]


async def test_each_attempt_has_its_own_timeout() -> None:
    attempts = 0

    async def slow() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.5)

    started = time.perf_counter()
    with pytest.raises(TimeoutError) as caught:
        await call(Policy("slow", retries=2, timeout=0.05), slow)
    assert time.perf_counter() - started < 0.4
    assert attempts == 3
    assert "failed after 3 attempts" in caught.value.__notes__[0]


async def test_a_timed_out_attempt_is_retried_and_can_succeed() -> None:
    delays = [0.5, 0.0]

    async def sometimes_slow() -> str:
        await asyncio.sleep(delays.pop(0))
        return "done"

    assert await call(Policy("n", retries=1, timeout=0.05), sometimes_slow) == "done"


async def test_a_timeout_is_not_retried_unless_retry_on_names_it() -> None:
    attempts = 0

    async def slow() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.5)

    policy = Policy("slow", retries=3, timeout=0.02, retry_on=(ConnectionError,))
    with pytest.raises(TimeoutError):
        await call(policy, slow)
    assert attempts == 1


async def test_a_nodes_own_timeout_error_does_not_claim_the_policys() -> None:
    async def node() -> None:
        raise TimeoutError("from the node")

    with pytest.raises(TimeoutError) as caught:
        await call(Policy("n", timeout=5), node)
    assert caught.value.__notes__ == [
        "kiln: node 'n' failed after 1 attempt (retries=0)"
    ]


# --- call: cancellation and BaseExceptions ------------------------------------


async def test_cancelling_the_caller_cancels_the_attempt_and_is_not_retried() -> None:
    log: list[str] = []
    started = asyncio.Event()

    async def node() -> None:
        log.append("attempt")
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    policy = Policy("n", retries=3, retry_on=(BaseException,), timeout=5)
    task = asyncio.create_task(call(policy, node))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    assert log == ["attempt", "cancelled", "finally"]
    assert not hasattr(caught.value, "__notes__")
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_the_caller_during_the_wait_stops_at_once() -> None:
    flaky = Flaky(failures=10)
    task = asyncio.create_task(call(Policy("n", retries=5, wait=30), flaky.node, "x"))
    while flaky.attempts == 0:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)  # now in the 30 s wait
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 0.1
    assert flaky.attempts == 1
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.mark.parametrize("error", [Stop("stop"), KeyboardInterrupt(), SystemExit(3)])
async def test_base_exceptions_are_never_retried_nor_noted(
    error: BaseException,
) -> None:
    attempts = 0

    async def node() -> None:
        nonlocal attempts
        attempts += 1
        raise error

    for policy in (
        Policy("n", retries=3, retry_on=(BaseException,)),
        Policy("n", retries=3, retry_on=(BaseException,), timeout=5),
    ):
        attempts = 0
        with pytest.raises(type(error)) as caught:
            await call(policy, node)
        assert caught.value is error
        assert attempts == 1
        assert not hasattr(error, "__notes__")


# --- call_sync ----------------------------------------------------------------


def test_call_sync_retries_and_gives_up_like_call(waits: list[float]) -> None:
    assert call_sync(Policy("load", retries=2), Flaky(failures=2).step, "ok") == "OK"
    assert waits == [0.0, 0.0]  # time.sleep(0): no wait asked for
    waits.clear()
    flaky = Flaky(failures=3)
    policy = Policy("load", retries=2, wait=0.5, backoff=2, where="flows.py:4")
    with pytest.raises(ConnectionError) as caught:
        call_sync(policy, flaky.step, "ok")
    assert caught.value is flaky.raised[-1]
    assert caught.value.__context__ is None
    assert caught.value.__notes__ == [
        "kiln: node 'load' failed after 3 attempts (retries=2), at flows.py:4"
    ]
    assert waits == [0.5, 1.0]


def test_call_sync_filters_with_retry_on_and_passes_base_exceptions(
    waits: list[float],
) -> None:
    flaky = Flaky(failures=5, error=KeyError)
    with pytest.raises(KeyError):
        call_sync(Policy("load", retries=3, retry_on=(OSError,)), flaky.step, "ok")
    assert flaky.attempts == 1

    attempts = 0

    def interrupted() -> None:
        nonlocal attempts
        attempts += 1
        raise Stop

    with pytest.raises(Stop):
        call_sync(Policy("load", retries=3, retry_on=(BaseException,)), interrupted)
    assert attempts == 1
    assert waits == []


def test_call_sync_refuses_a_timeout_it_cannot_enforce() -> None:
    called: list[int] = []
    with pytest.raises(ValueError, match=r"thread=True") as caught:
        call_sync(Policy("load", timeout=1), called.append, 1)
    assert isinstance(caught.value, OptionError)
    assert called == []


# --- call_in_thread -----------------------------------------------------------


async def test_call_in_thread_runs_each_attempt_in_a_worker_thread(
    waits: list[float],
) -> None:
    threads: list[int] = []
    flaky = Flaky(failures=2)

    def node(value: str) -> str:
        threads.append(threading.get_ident())
        return flaky.step(value)

    assert await call_in_thread(Policy("read", retries=2, wait=0.1), node, "ok") == "OK"
    assert len(threads) == 3
    assert threading.get_ident() not in threads
    assert waits == [0.1, 0.1]


async def test_call_in_thread_gives_up_with_the_original_error(
    waits: list[float],
) -> None:
    flaky = Flaky(failures=3)
    with pytest.raises(ConnectionError) as caught:
        await call_in_thread(Policy("read", retries=1), flaky.step, "ok")
    assert caught.value is flaky.raised[-1]
    assert caught.value.__notes__ == [
        "kiln: node 'read' failed after 2 attempts (retries=1)"
    ]

    with pytest.raises(KeyError):
        await call_in_thread(Policy("read"), {}.__getitem__, "missing")


async def test_call_in_thread_copies_context_variables() -> None:
    token = REQUEST.set("request 7")
    try:
        assert await call_in_thread(Policy("read"), REQUEST.get) == "request 7"
    finally:
        REQUEST.reset(token)


async def test_call_in_thread_times_out_the_wait_not_the_thread() -> None:
    release = threading.Event()
    finished = threading.Event()

    def blocking() -> str:
        release.wait(5)
        finished.set()
        return "late"

    started = time.perf_counter()
    with pytest.raises(TimeoutError) as caught:
        await call_in_thread(Policy("read", retries=1, timeout=0.05), blocking)
    assert time.perf_counter() - started < 0.4
    assert "failed after 2 attempts" in caught.value.__notes__[0]
    assert "timeout of 0.05s" in caught.value.__notes__[0]
    assert not finished.is_set()  # still running in the background
    release.set()
    await asyncio.to_thread(finished.wait, 5)


async def test_cancelling_call_in_thread_stops_waiting_at_once() -> None:
    release = threading.Event()
    entered = threading.Event()

    def blocking() -> None:
        entered.set()
        release.wait(5)

    task = asyncio.create_task(call_in_thread(Policy("read", retries=3), blocking))
    await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
