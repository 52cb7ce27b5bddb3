"""run_sync: one sync entry point, inside or outside a running event loop."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kiln import run_sync
from kiln.sync_entry import loopless

REQUEST = contextvars.ContextVar("REQUEST", default="none")


async def describe() -> tuple[int, asyncio.AbstractEventLoop, str]:
    await asyncio.sleep(0)
    return threading.get_ident(), asyncio.get_running_loop(), REQUEST.get()


async def fail(error: BaseException) -> None:
    await asyncio.sleep(0)
    raise error


def test_outside_a_loop_it_is_asyncio_run() -> None:
    thread, _, _ = run_sync(describe())
    assert thread == threading.get_ident()


def test_outside_a_loop_errors_leave_as_themselves() -> None:
    error = ValueError("bad")
    error.add_note("a note")
    with pytest.raises(ValueError, match="bad") as caught:
        run_sync(fail(error))
    assert caught.value is error
    assert caught.value.__notes__ == ["a note"]


async def test_inside_a_running_loop_it_runs_on_a_worker_thread() -> None:
    threads_before = threading.active_count()
    thread, loop, _ = run_sync(describe())
    assert thread != threading.get_ident()
    assert loop is not asyncio.get_running_loop()  # never scheduled onto our own loop
    assert loop.is_closed()
    assert threading.active_count() == threads_before  # the worker is gone


async def test_inside_a_running_loop_errors_leave_as_themselves() -> None:
    error = LookupError("missing")
    error.add_note("a note")
    with pytest.raises(LookupError, match="missing") as caught:
        run_sync(fail(error))
    assert caught.value is error
    assert caught.value.__notes__ == ["a note"]
    assert caught.value.__context__ is None


async def test_the_callers_context_variables_are_copied_in_not_out() -> None:
    async def change() -> str:
        seen = REQUEST.get()
        REQUEST.set("changed inside")
        return seen

    token = REQUEST.set("request 7")
    try:
        assert run_sync(describe())[2] == "request 7"
        assert run_sync(change()) == "request 7"
        assert REQUEST.get() == "request 7"
    finally:
        REQUEST.reset(token)


async def test_nested_sync_entry_points_inside_a_loop() -> None:
    async def inner() -> int:
        await asyncio.sleep(0)
        return 1

    async def outer() -> int:
        # Sync code (a flow called as f(...)) inside the worker's own loop.
        return run_sync(inner()) + 1

    assert run_sync(outer()) == 2


async def test_the_caller_loop_is_blocked_not_deadlocked() -> None:
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)

    background = asyncio.create_task(ticker())
    assert run_sync(asyncio.sleep(0.01, result="done")) == "done"
    assert ticks == []  # the caller's loop waited, as a sync call must
    await background
    assert ticks == [0, 1, 2]


def test_from_a_plain_thread_while_another_thread_runs_a_loop() -> None:
    results: list[Any] = []

    def in_thread() -> None:
        results.append(run_sync(asyncio.sleep(0, result="from thread")))

    async def main() -> None:
        worker = threading.Thread(target=in_thread)
        worker.start()
        while worker.is_alive():
            await asyncio.sleep(0.001)
        worker.join()

    asyncio.run(main())
    assert results == ["from thread"]


def test_an_interrupt_while_waiting_cancels_the_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C in the caller's thread must not leave the worker's coroutine running."""
    log: list[str] = []
    started = threading.Event()

    class InterruptedWait(threading.Event):
        interrupted = False

        def wait(self, timeout: float | None = None) -> bool:
            if not InterruptedWait.interrupted:
                InterruptedWait.interrupted = True
                started.wait()
                raise KeyboardInterrupt
            return super().wait(timeout)

    async def work() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            log.append("work finally")

    async def main() -> None:
        # The worker's own event only: Thread.start waits on an Event too.
        worker = SimpleNamespace(Thread=threading.Thread, Event=InterruptedWait)
        monkeypatch.setattr("kiln.sync_entry.threading", worker)
        with pytest.raises(KeyboardInterrupt):
            run_sync(work())

    asyncio.run(main())
    assert log == ["work finally"]


def test_an_interrupt_as_the_work_ends_is_still_the_interrupt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C that lands once the worker's loop has closed: KeyboardInterrupt, no
    RuntimeError from cancelling on the closed loop."""

    class LateInterrupt(threading.Event):
        interrupted = False

        def wait(self, timeout: float | None = None) -> bool:
            done = super().wait(timeout)
            if not LateInterrupt.interrupted:
                LateInterrupt.interrupted = True
                raise KeyboardInterrupt
            return done

    async def main() -> None:
        worker = SimpleNamespace(Thread=threading.Thread, Event=LateInterrupt)
        monkeypatch.setattr("kiln.sync_entry.threading", worker)
        with pytest.raises(KeyboardInterrupt):
            run_sync(asyncio.sleep(0))

    asyncio.run(main())


INTERRUPTED_IN_A_LOOP = """
import asyncio, os, signal, sys, threading
from kiln import run_sync
from kiln.sync_entry import loopless

async def hold(path):
    try:
        await asyncio.sleep(5)
    finally:
        await asyncio.shield(asyncio.sleep(0.2))  # an async cleanup, a lease released
        with open(path, "a") as f:
            f.write("cleaned up")

async def handler():  # a notebook cell, a web handler: a loop without asyncio.run's
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        run_sync(hold(sys.argv[1]))
    except KeyboardInterrupt:
        print("cleaned up" if os.path.exists(sys.argv[1]) else "still running")

asyncio.new_event_loop().run_until_complete(handler())
"""


def test_ctrl_c_returns_once_the_work_has_unwound(tmp_path: Path) -> None:
    """A real SIGINT, in a loop that does not handle it: on Python 3.11 a join()
    it interrupts marks the thread stopped, and the caller got KeyboardInterrupt
    before the work's `finally` ran, which never ran at exit (trial N)."""
    marker = tmp_path / "cleanup"
    ran = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IN_A_LOOP, str(marker)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.stdout == "cleaned up\n", ran.stderr


def test_outside_a_loop_it_leaves_the_thread_s_current_loop_set() -> None:
    """A script that set a loop for its thread uses it after the call too."""
    seen: list[object] = []

    def script() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            run_sync(asyncio.sleep(0))
            seen.append(asyncio.get_event_loop() is loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=script)
    thread.start()
    thread.join()
    assert seen == [True]


async def test_a_loopless_call_sees_no_running_loop_and_may_run_its_own() -> None:
    async def inner() -> str:
        await asyncio.sleep(0)
        return "ran"

    def sync_client() -> tuple[bool, str]:
        return asyncio._get_running_loop() is None, asyncio.run(inner())

    loop = asyncio.get_running_loop()
    assert loopless(sync_client)() == (True, "ran")
    assert asyncio.get_running_loop() is loop  # set again after the call
