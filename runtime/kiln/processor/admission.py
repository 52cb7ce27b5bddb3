"""The admission gate under every `Processor`: a sliding window of starts and a cap.

A call is admitted the moment both allow it:

- the window (`capacity` starts per `refresh` seconds): at most `capacity`
  admissions in any `refresh` seconds, counted over their start times;
- the cap (`limit`): at most `limit` admitted calls not yet released.

Waiters are admitted in FIFO order. Nothing polls: a waiter is woken by the
`release()` that frees its slot, or by a timer set for the exact moment the
oldest start leaves the window.

The gate is shared across threads and event loops (two `asyncio.run` calls in
two threads holding one `Limit`): its state is guarded by a `threading.Lock`,
and a waiter on another loop is woken with `call_soon_threadsafe`. asyncio's
own Semaphore and Queue bind to one loop and cannot do that.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from time import monotonic
from typing import Final, final

__all__ = ["Admission", "Waiter", "wake"]

_NOT_BLOCKED: Final = -1.0  # what _blocked_for says when a call may start now


@final
class Waiter:
    """A place in the line: the task waiting for admission, and its grant."""

    __slots__ = ("future", "granted", "loop", "start")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.granted = False
        self.start = 0.0


class Admission:
    """Admits calls under a sliding start window and a cap on calls in flight.

    `capacity` and `refresh` are the window (`refresh` None: no window);
    `limit` is the cap (None: no cap). `acquire()` waits for admission and
    `release()` ends an admitted call. For a caller that may take an
    admission back, the steps are apart: `_admit()` admits at once or puts
    the caller in line, `_wait()` waits for its turn, `_withdraw()` undoes an
    admission as if the call never started.
    """

    __slots__ = (
        "_capacity",
        "_in_flight",
        "_limit",
        "_lock",
        "_refresh",
        "_starts",
        "_timer_due",
        "_timer_owner",
        "_waiters",
    )

    def __init__(self, capacity: int, refresh: float | None, limit: int | None) -> None:
        if refresh is None and limit is None:
            raise ValueError(
                "an Admission needs a window (refresh), a cap (limit) or both"
            )
        self._capacity = capacity
        self._refresh = refresh
        self._limit = limit
        self._lock = threading.Lock()
        self._starts: deque[float] = (
            deque()
        )  # monotonic times of the starts in the window
        self._in_flight = 0
        self._waiters: deque[Waiter] = deque()
        self._timer_due: float | None = None  # when the armed window timer fires
        self._timer_owner: Waiter | None = None  # the head waiter it was armed for

    async def acquire(self) -> None:
        """Wait until a call may start, in FIFO order with every other caller.

        With free capacity and nobody in line it returns without yielding to
        the loop. Cancelled while waiting, it leaves the line; cancelled at the
        moment it was admitted, it hands the admission on.
        """
        ticket = self._admit()
        if type(ticket) is Waiter:
            await self._wait(ticket)

    def release(self) -> None:
        """End a call that `acquire()` admitted; its slot goes to the next in line."""
        # Explicit acquire/release of the lock: `with` costs half again as much,
        # and these are the hot paths of every limited call.
        self._lock.acquire()
        try:
            if self._in_flight == 0:
                raise RuntimeError(
                    "release() without a matching acquire(): every release must follow "
                    "one acquire() that returned"
                )
            self._in_flight -= 1
            if not self._waiters:
                return
            granted = self._dispatch()
        finally:
            self._lock.release()
        self._wake_all(granted)

    # --- the steps of an admission ------------------------------------------------------

    def _admit(self) -> float | Waiter:
        """Admit now (the start time) or join the line (a waiter for `_wait`)."""
        self._lock.acquire()
        try:
            # The fast path, _window_has_room written out: once per limited call.
            limit, refresh = self._limit, self._refresh
            if not self._waiters and (limit is None or self._in_flight < limit):
                if refresh is None:
                    self._in_flight += 1
                    return 0.0  # no window, so no start time to keep
                now, starts = monotonic(), self._starts
                horizon = now - refresh
                while starts and starts[0] <= horizon:
                    starts.popleft()
                if len(starts) < self._capacity:
                    self._in_flight += 1
                    starts.append(now)
                    return now
            waiter = Waiter(asyncio.get_running_loop())
            self._waiters.append(waiter)
            # A new head needs the window timer armed (or, should the window have
            # freed since the check above, its admission at once).
            granted = self._dispatch() if len(self._waiters) == 1 else []
        finally:
            self._lock.release()
        self._wake_all(granted)
        return waiter

    async def _wait(self, waiter: Waiter) -> float:
        """Wait for `waiter`'s admission and return its start time."""
        try:
            await waiter.future
        except BaseException:
            self._abandon(waiter)
            raise
        return waiter.start

    def _withdraw(self, start: float) -> None:
        """Undo the admission that started at `start`: its start leaves the window."""
        with self._lock:
            self._in_flight -= 1
            self._forget_start(start)
            granted = self._dispatch()
        self._wake_all(granted)

    def _free(self) -> int:
        """How many calls could be admitted right now, waiters aside."""
        with self._lock:
            free = math.inf if self._limit is None else self._limit - self._in_flight
            if self._refresh is not None:
                self._window_has_room(monotonic(), self._refresh)  # drops old starts
                free = min(free, self._capacity - len(self._starts))
            return max(0, int(free))

    # --- under the lock -----------------------------------------------------------------

    def _window_has_room(self, now: float, refresh: float) -> bool:
        """Drop the starts that left the window by `now`; is there room for one more?"""
        starts, horizon = self._starts, now - refresh
        while starts and starts[0] <= horizon:
            starts.popleft()
        return len(starts) < self._capacity

    def _blocked_for(self, now: float) -> float:
        """_NOT_BLOCKED if a call may start at `now`, else the seconds until it may.

        inf means the cap blocks it, and only a release can let it start.
        """
        if self._limit is not None and self._in_flight >= self._limit:
            return math.inf
        if self._refresh is not None and not self._window_has_room(now, self._refresh):
            return self._starts[0] + self._refresh - now
        return _NOT_BLOCKED

    def _forget_start(self, start: float) -> None:
        if self._refresh is not None and start in self._starts:
            self._starts.remove(start)

    def _dispatch(self) -> list[Waiter]:
        """Admit waiters from the head while the gate allows; arm the timer for the next."""
        granted: list[Waiter] = []
        waiters = self._waiters
        while waiters:
            now = monotonic()
            blocked = self._blocked_for(now)
            if blocked != _NOT_BLOCKED:
                # Blocked by the cap, a release dispatches again; by the window, a timer.
                if blocked != math.inf:
                    self._arm_timer(waiters[0], now + blocked)
                break
            waiter = waiters.popleft()
            waiter.granted, waiter.start = True, now
            self._in_flight += 1
            if self._refresh is not None:
                self._starts.append(now)
            granted.append(waiter)
        return granted

    def _arm_timer(self, head: Waiter, due: float) -> None:
        if (
            self._timer_owner is head
            and self._timer_due is not None
            and self._timer_due <= due
        ):
            return
        self._timer_owner, self._timer_due = head, due
        # The timer runs on the head's loop, which runs while the head waits. A
        # timer that outlives its purpose only dispatches once more: harmless.
        if _running_loop() is head.loop:
            head.loop.call_later(due - monotonic(), self._on_timer)
        else:
            try:
                head.loop.call_soon_threadsafe(self._arm_on_own_loop, head.loop, due)
            except RuntimeError:  # its loop has closed; the waiter is being abandoned
                self._timer_owner = self._timer_due = None

    def _arm_on_own_loop(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        loop.call_later(due - monotonic(), self._on_timer)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer_owner = self._timer_due = None
            granted = self._dispatch()
        self._wake_all(granted)

    def _abandon(self, waiter: Waiter) -> None:
        with self._lock:
            if waiter.granted:
                # Admitted at the moment it was cancelled: the admission goes on.
                self._in_flight -= 1
                self._forget_start(waiter.start)
            else:
                self._waiters.remove(waiter)
            if self._timer_owner is waiter:
                self._timer_owner = self._timer_due = None
            granted = self._dispatch()
        self._wake_all(granted)

    # --- outside the lock ---------------------------------------------------------------

    def _wake_all(self, granted: list[Waiter]) -> None:
        for waiter in granted:
            if not wake(waiter.future):
                # Its loop has closed, so it can never run: the admission goes on.
                self._abandon(waiter)


def wake(future: asyncio.Future[None]) -> bool:
    """Resolve `future` from any thread; False if its loop has closed."""
    loop = future.get_loop()
    if _running_loop() is loop:
        _resolve(future)
        return True
    try:
        loop.call_soon_threadsafe(_resolve, future)
    except RuntimeError:
        return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    # asyncio's own accessor: None outside a running loop, where get_running_loop raises.
    return asyncio._get_running_loop()
