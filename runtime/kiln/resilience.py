"""Retries and timeouts: how generated code calls a node that has them.

`@node(retries=2, wait=0.5, backoff=2, timeout=10)` compiles to a module-level
`Policy`, given to the node's sites, and the flow's plain call of the node
(`kiln.site_table.plain_call`) is the node bound to it by one of three
helpers, chosen by the node's kind::

    _KILN_POLICY_FETCH = _kiln.Policy("fetch", retries=2, wait=0.5, backoff=2.0,
                                      timeout=10.0, where="flows.py:12")
    _kiln.retrying(_KILN_POLICY_FETCH, fetch)      # async def fetch
    _kiln.retrying_sync(_KILN_POLICY_LOAD, load)   # def load
    _kiln.in_thread(_KILN_POLICY_READ, read)       # @node(thread=True)

They are `call`, `call_sync` and `call_in_thread` with the policy and the node
filled in, typed with a ParamSpec, so mypy checks the arguments of every call
against the node's signature and keeps its return type. (A run that is
limited, cached or observed runs the same attempts through `kiln.sites`.)

A node's `fallback` wraps the helper's call (`kiln.fallbacks`), so the
fallback runs only after the helper gave up.

What leaves a helper is always the original exception object of the last
attempt, with a note (``add_note``) that names the node, the attempts and where
the node was called; it is never wrapped in a kiln exception. Only `Exception`s
are retried: a `CancelledError`, `KeyboardInterrupt` or `SystemExit` leaves at
once, whether it arrives during an attempt or during the wait before the next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, ParamSpec, Protocol, TypeVar, cast

from kiln.errors import OptionError, carried, stopped
from kiln.options import NodeOptions
from kiln.threads import in_own_thread, timed

__all__ = [
    "PLAIN",
    "Gate",
    "Policy",
    "attempts",
    "attempts_sync",
    "call",
    "call_in_thread",
    "call_sync",
    "in_thread",
    "inline",
    "retrying",
    "retrying_sync",
    "waiting",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Policy:
    """How often to attempt one node's calls, how long to wait, what to retry.

    The fields mean what the `@node` options of the same names mean (DESIGN
    §2). `where` is the source location named in the note of a failure, like
    ``"flows.py:12"``. Values are checked as `NodeOptions` checks them, so a
    policy that exists is valid; it raises `OptionError` otherwise.

    `retry_on` may name any exception class, but only `Exception`s are ever
    retried: an interrupt or a cancellation must stop the work, not restart it.
    """

    node: str
    retries: int = 0
    wait: float = 0.0
    backoff: float = 1.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = None
    where: str = ""
    # No retries and no timeout: `call` then just awaits the node.
    _plain: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not self.node.strip():
            raise OptionError(f"node must be a non-empty node name; got {self.node!r}")
        if not isinstance(self.where, str):
            raise OptionError(
                f"where must be a source location like 'flows.py:12', or ''; got {self.where!r}"
            )
        # One set of rules and messages for the decorator and the policy.
        checked = NodeOptions(
            name=self.node,
            retries=self.retries,
            wait=self.wait,
            backoff=self.backoff,
            retry_on=self.retry_on,
            timeout=self.timeout,
        )
        object.__setattr__(self, "wait", checked.wait)
        object.__setattr__(self, "backoff", checked.backoff)
        object.__setattr__(self, "timeout", checked.timeout)
        object.__setattr__(self, "_plain", self.retries == 0 and self.timeout is None)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        if not self.wait:
            return 0.0  # and no `backoff ** retry` to overflow after many retries
        return self.wait * self.backoff ** (retry - 1)


async def call(
    policy: Policy, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """Await ``fn(*args, **kwargs)`` with `policy`'s retries and timeout.

    Each attempt runs under ``asyncio.timeout(policy.timeout)`` when one is set,
    so an attempt that overruns it is cancelled and fails with `TimeoutError`,
    which is retried like any other failure that `retry_on` names. Attempts
    run in the caller's task: cancelling the caller cancels the attempt in
    flight, or the wait before the next one.
    """
    if policy._plain:
        try:
            return await fn(*args, **kwargs)
        except Exception as error:
            _note_failure(policy, error, attempts=1, timed_out=False)
            raise
    return await attempts(policy, fn, args, kwargs)


async def call_in_thread(
    policy: Policy, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run the sync ``fn(*args, **kwargs)`` in a worker thread, with `policy`.

    For ``@node(thread=True)``: each attempt runs in a daemon thread of its own
    (`kiln.threads`: with a copy of the caller's context variables, once one
    of the process's node threads is free, a wait its timeout bounds), and
    the timeout and retries are `call`'s. A thread cannot be killed, so the
    timeout bounds the waiting, not the work: an attempt that times out (or
    whose caller is cancelled) goes on running in the background until `fn`
    returns, its result thrown away, and holds its thread's slot until then.
    """
    work = partial(fn, *args, **kwargs)
    return await attempts(policy, in_own_thread, (work,), {}, threaded=True)


def call_sync(
    policy: Policy, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """Call the sync ``fn(*args, **kwargs)`` with `policy`'s retries.

    Waits between attempts with `time.sleep`. Nothing can interrupt a sync
    function from the outside, so a policy with a timeout is refused
    (`OptionError`, a `ValueError`): such a node needs ``thread=True``.
    """
    if policy.timeout is not None:
        raise OptionError(
            f"node {policy.node!r} has timeout={policy.timeout:g}, but nothing can stop "
            "a sync function midway; mark it @node(thread=True) to bound the wait for "
            "it in a worker thread (call_in_thread), or drop the timeout"
        )
    return attempts_sync(policy, fn, args, kwargs)


def retrying(
    policy: Policy, fn: Callable[P, Awaitable[R]]
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn` with `policy`: what a compiled flow calls for a resilient async node."""
    return cast("Callable[P, Coroutine[Any, Any, R]]", partial(call, policy, fn))


def retrying_sync(policy: Policy, fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` with `policy`'s retries: what a compiled flow calls for a resilient sync node."""
    return cast("Callable[P, R]", partial(call_sync, policy, fn))


def in_thread(
    policy: Policy, fn: Callable[P, R]
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn` in a worker thread, with `policy`: a compiled flow's call of a thread=True node."""
    return cast(
        "Callable[P, Coroutine[Any, Any, R]]", partial(call_in_thread, policy, fn)
    )


def waiting(policy: Policy, fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn` with `policy`, each attempt in the event loop as a sync node runs, and
    the waits between them awaited: a sync node's retries block nothing else."""
    return retrying(policy, partial(inline, fn))


async def inline(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn` called in the event loop, as a coroutine: one attempt of a sync node
    whose retries wait (`waiting`, a site of kind "waiting"). A StopIteration
    leaves as its carrier (`kiln.errors.carried`), which `attempts` sees through."""
    try:
        return fn(*args, **kwargs)
    except StopIteration as stop:
        raise carried(stop) from stop


# --- the retry loop, one per colour -----------------------------------------------------


class Gate(Protocol):
    """What an attempt passes before it runs: a limit group's Processor, a Semaphore."""

    async def acquire(self) -> Any: ...
    def release(self) -> None: ...


#: The policy of a node that has none: one attempt, no timeout, and a failure
#: that leaves without a note, as it would uncompiled.
PLAIN: Final = Policy("node")


async def attempts(
    policy: Policy,
    fn: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    gates: tuple[Gate, ...] = (),
    started: Callable[[int], object] | None = None,
    *,
    threaded: bool = False,
    thread_node: bool = False,
) -> R:
    """Await ``fn(*args, **kwargs)`` attempt after attempt, as `policy` says.

    The one retry loop of async calls: `call`, `call_in_thread`, and the
    calls of a limited, cached or observed run (`kiln.sites`). Each attempt
    first passes `gates` (acquired in order; released after the attempt,
    before the wait for the next, and those held when a cancellation comes
    while waiting for the next), then tells the per-attempt hook `started`
    its number, then runs under the policy's timeout, which bounds the
    attempt and not its wait for capacity.

    `threaded` says that `fn` runs the node in a thread of its own, which
    may outlive the attempt: it is called as ``fn(held, *args, **kwargs)``
    and its thread releases the gates `held` as it ends, and the slot of
    the process's node threads it waits for inside the attempt (`kiln.threads`).
    `thread_node` (implied by `threaded`) says that the attempt runs a
    thread node, here or by a backend: its thread is let go when the timeout
    ends the attempt, and waited for when anything else cancels it (`timed`).
    """
    timeout = policy.timeout
    tries = 0
    while True:
        tries += 1
        held = 0  # gates acquired: a cancellation while waiting frees those
        try:
            for gate in gates:
                await gate.acquire()
                held += 1
            if started is not None:
                started(tries)
            if threaded:
                handed, held = gates[:held], 0
                attempt = fn(handed, *args, **kwargs)
            else:
                attempt = fn(*args, **kwargs)
            # Without a timeout, no Timeout: most calls have none, and a
            # fan-out of a million pays for each.
            deadline = None if timeout is None else asyncio.timeout(timeout)
            try:
                if deadline is None:
                    return await attempt
                if not (threaded or thread_node):
                    async with deadline:
                        return await attempt
                with timed(deadline):
                    async with deadline:
                        return await attempt
            except Exception as error:
                expired = deadline is not None and deadline.expired()
                if not _retry_or_note(policy, error, tries, timed_out=expired):
                    raise
        finally:
            for gate in reversed(gates[:held]):
                gate.release()
        await asyncio.sleep(policy.delay(tries))


def attempts_sync(
    policy: Policy,
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    started: Callable[[int], object] | None = None,
) -> R:
    """Call ``fn(*args, **kwargs)`` attempt after attempt, as `policy` says (no timeout).

    The one retry loop of sync calls, `attempts`' twin: a sync function cannot
    be awaited nor stopped midway, so it passes no gate and has no timeout,
    and it waits between attempts with `time.sleep`.
    """
    tries = 0
    while True:
        tries += 1
        if started is not None:
            started(tries)
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            if not _retry_or_note(policy, error, tries, timed_out=False):
                raise
        # Outside the except block: the next failure must not chain this one.
        time.sleep(policy.delay(tries))


def _retry_or_note(
    policy: Policy, error: Exception, attempts: int, *, timed_out: bool
) -> bool:
    """True if `error` is retried; otherwise note on it that the node gave up.

    A node's StopIteration, which leaves the coroutines as a RuntimeError
    (`kiln.errors.carried`), is retried as itself, and noted on both.
    """
    if attempts <= policy.retries and isinstance(stopped(error), policy.retry_on):
        return True
    if policy is PLAIN:
        return False  # no note: the node fails as it would uncompiled
    _note_failure(policy, error, attempts=attempts, timed_out=timed_out)
    return False


def _note_failure(
    policy: Policy, error: Exception, *, attempts: int, timed_out: bool
) -> None:
    node_error = stopped(error)  # a StopIteration, on its carrier too
    note = (
        f"kiln: node {policy.node!r} failed after {attempts} "
        f"{'attempt' if attempts == 1 else 'attempts'} (retries={policy.retries})"
    )
    if policy.where:
        note += f", at {policy.where}"
    if attempts <= policy.retries:  # given up early: the error is not one it retries
        note += f"; {type(node_error).__name__} is not in its retry_on"
    if timed_out:
        # asyncio's TimeoutError has no message of its own.
        note += f"; the last attempt exceeded its timeout of {policy.timeout:g}s"
    for noted in {id(error): error, id(node_error): node_error}.values():
        if note not in getattr(noted, "__notes__", ()):  # the same object raised again
            noted.add_note(note)
