"""Which failure an ordered scope raises: the one the sequential run would raise.

Each participant of `Scope(ordered=True)` has a step, its place in that run;
`gather`, `amap` and `keyed` number their elements by index. Whatever fails
first in time, the failure at the lowest step wins; what comes after a
failure is cancelled at once; what comes before it is awaited.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln import Child, Scope, amap, gather, keyed


async def failure_of(work: Awaitable[object]) -> BaseException:
    try:
        await work
    except Exception as error:
        return error
    raise AssertionError("expected the work to fail")


def others() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


class Failure(Exception):
    """A participant's own failure, told apart by its message."""


async def fail_after(delay: float, error: BaseException) -> None:
    await asyncio.sleep(delay)
    raise error


async def wait_forever(log: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        log.append(f"{name} cancelled")


# --- a scope -------------------------------------------------------------------


async def test_the_earlier_step_wins_though_it_fails_later() -> None:
    early, late = Failure("step 0"), Failure("step 1")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(fail_after(0.05, early), step=0)
            scope.spawn(fail_after(0.0, late), step=1)

    assert await failure_of(scenario()) is early


async def test_a_body_that_starts_at_a_step_wins_over_later_children() -> None:
    """`Scope(ordered=True, step=1)`: the body is at step 1 from the start, as
    after `at_step(1)`, so its failure wins over a child's at step 2, which
    failed first in time and is cancelled by it."""
    body = Failure("step 1")

    async def scenario() -> None:
        async with Scope(ordered=True, step=1) as scope:
            scope.spawn(fail_after(0.0, Failure("step 2")), step=2)
            await asyncio.sleep(0.02)
            raise body

    assert await failure_of(scenario()) is body


def test_a_step_needs_an_ordered_scope() -> None:
    with pytest.raises(TypeError, match="ordered=True"):
        Scope(step=1)


async def test_a_failure_cancels_later_steps_at_once_and_awaits_earlier_ones() -> None:
    log: list[str] = []
    error = Failure("step 1")

    async def earlier() -> None:
        await asyncio.sleep(0.05)
        log.append("step 0 done")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(earlier(), step=0)
            scope.spawn(fail_after(0.01, error), step=1)
            scope.spawn(wait_forever(log, "step 2"), step=2)
            await asyncio.sleep(0.02)
            log.append(f"at 20 ms: {sorted(log)}")

    assert await failure_of(scenario()) is error
    # At 20 ms step 2 was cancelled already (and the body, after every child,
    # too, so it never logged); step 0 ran to its end.
    assert log == ["step 2 cancelled", "step 0 done"]


async def test_a_cancellation_does_not_reach_down_awaits_to_an_earlier_step() -> None:
    """The body awaits a later step's child that awaits an earlier one, which goes on.

    A failure between them stops the body and the later child; asyncio would
    pass the body's cancellation down both awaits to the earlier child, whose
    own failure (the one the sequential run raises) would then never happen.
    """
    early, middle = Failure("step 0"), Failure("step 1")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            first = scope.spawn(fail_after(0.02, early), step=0)
            scope.spawn(fail_after(0.0, middle), step=1)

            async def later() -> None:
                await first

            third = scope.spawn(later(), step=2)
            scope.at_step(3)
            await third

    assert await failure_of(scenario()) is early
    assert not others()


async def test_every_awaiter_of_a_failed_child_gets_the_frames_it_failed_in() -> None:
    """A failure's frames reach the scope and each awaiter, whoever awaits it first.

    The awaiters run after the child failed and before the scope hears of it
    (asyncio's done callbacks come after the steps already scheduled), and
    the first `result()` of a failed task hands its frames to one raiser
    only. A flow's failure note is read from these frames (`kiln.notes`).
    """

    async def fails() -> int:
        raise Failure("here")

    seen: list[list[str]] = []

    async def awaits(child: Child[int]) -> int:
        try:
            return await child
        except Failure as error:
            seen.append(frame_names(error))
            raise

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            failing = scope.spawn(fails(), step=0)
            scope.spawn(awaits(failing), step=1)
            scope.spawn(awaits(failing), step=2)

    with pytest.raises(Failure) as raised:
        await scenario()
    assert len(seen) == 2
    assert all("fails" in names for names in seen), seen
    assert "fails" in frame_names(raised.value)


def frame_names(error: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(error.__traceback__)]


async def test_children_without_steps_are_ordered_as_spawned() -> None:
    first, second = Failure("first spawned"), Failure("second spawned")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(fail_after(0.03, first))
            scope.spawn(fail_after(0.0, second))

    assert await failure_of(scenario()) is first


async def test_waiting_on_an_earlier_child_does_not_cancel_it_with_the_waiter() -> None:
    """Step 2 waits for step 0's result; step 1 fails and cancels step 2.

    Awaiting an asyncio.Task would cancel step 0 along with its waiter, and its
    error, the one the sequential run raises, would be lost.
    """
    early = Failure("step 0")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            zero = scope.spawn(fail_after(0.05, early), step=0)

            async def two() -> None:
                await zero

            scope.spawn(two(), step=2)
            scope.spawn(fail_after(0.01, Failure("step 1")), step=1)

    assert await failure_of(scenario()) is early


@pytest.mark.parametrize("zero_fails", [True, False])
async def test_the_body_waiting_on_an_earlier_child_is_stopped_once_it_is_done(
    zero_fails: bool,
) -> None:
    """Step 1 fails while the body (after both) waits for step 0: the scope
    stops the body when step 0 is done, not before, which would cancel step 0."""
    log: list[str] = []
    early, late = Failure("step 0"), Failure("step 1")

    async def zero() -> str:
        await asyncio.sleep(0.05)
        if zero_fails:
            raise early
        log.append("step 0 done")
        return "zero"

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            first = scope.spawn(zero(), step=0)
            scope.spawn(fail_after(0.01, late), step=1)
            await first
            log.append("the body went on")

    assert await failure_of(scenario()) is (early if zero_fails else late)
    assert log == ([] if zero_fails else ["step 0 done"])


async def test_the_body_at_an_earlier_step_goes_on_after_a_later_failure() -> None:
    log: list[str] = []
    late = Failure("step 2")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(fail_after(0.0, late), step=2)
            scope.at_step(1)
            await asyncio.sleep(0.03)  # the child fails meanwhile
            log.append("step 1 done")
            scope.at_step(3)  # past the failure: cancelled here
            log.append("step 3 ran")

    assert await failure_of(scenario()) is late
    assert log == ["step 1 done"]


async def test_a_body_failure_waits_for_earlier_children_and_cancels_later_ones() -> (
    None
):
    log: list[str] = []
    early = Failure("step 0")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(fail_after(0.03, early), step=0)
            scope.spawn(wait_forever(log, "step 2"), step=2)
            scope.at_step(1)
            await asyncio.sleep(0)
            raise Failure("step 1")

    assert await failure_of(scenario()) is early
    assert log == ["step 2 cancelled"]


async def test_a_body_failure_wins_over_later_children_failing_first() -> None:
    body = Failure("step 1")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(fail_after(0.0, Failure("step 2")), step=2)
            scope.at_step(1)
            await asyncio.sleep(0.02)
            raise body

    assert await failure_of(scenario()) is body


async def test_a_child_that_moves_past_a_known_failure_stops_there() -> None:
    log: list[str] = []
    error = Failure("step 1")

    async def chain(scope: Scope) -> None:
        await asyncio.sleep(0.02)  # step 0: done after step 1 failed
        log.append("step 0 done")
        scope.at_step(2)
        log.append("step 2 ran")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(chain(scope), step=0)
            scope.spawn(fail_after(0.0, error), step=1)

    assert await failure_of(scenario()) is error
    assert log == ["step 0 done"]


async def test_a_child_spawned_past_a_known_failure_never_runs() -> None:
    ran: list[int] = []
    error = Failure("step 1")

    async def record(step: int) -> None:
        ran.append(step)

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(fail_after(0.0, error), step=1)
            scope.at_step(0)
            await asyncio.sleep(0.01)
            scope.spawn(record(0), step=0)  # before the failure: runs
            scope.spawn(record(2), step=2)  # after it: never runs
            await asyncio.sleep(0.01)

    assert await failure_of(scenario()) is error
    assert ran == [0]


# --- fan-outs --------------------------------------------------------------------


async def test_gather_raises_the_lowest_index_that_fails() -> None:
    errors = [Failure(f"element {i}") for i in range(3)]
    delays = [0.04, 0.0, 0.02]
    work = [
        fail_after(delay, error) for delay, error in zip(delays, errors, strict=True)
    ]
    assert await failure_of(gather(work)) is errors[0]


async def test_keyed_elements_are_ordered_by_index() -> None:
    first = Failure("key a")

    async def value(delay: float) -> int:
        await asyncio.sleep(delay)
        return 1

    pairs = [
        keyed("a", fail_after(0.03, first)),
        keyed("b", value(0.0)),
        keyed("c", fail_after(0.0, Failure("key c"))),
    ]
    assert await failure_of(gather(pairs)) is first


async def test_amap_raises_the_lowest_index_that_fails() -> None:
    first = Failure("element 0")

    async def items() -> AsyncIterator[int]:
        for i in range(4):
            yield i

    async def each(i: int) -> int:
        if i == 0:
            await asyncio.sleep(0.03)
            raise first
        raise Failure(f"element {i}")

    assert await failure_of(amap(items(), each)) is first


async def test_amap_an_element_wins_over_the_iterator_failing_after_it() -> None:
    element = Failure("element 0")

    async def items() -> AsyncIterator[int]:
        yield 0
        raise Failure("the iterator, after element 0")

    async def each(i: int) -> int:
        await asyncio.sleep(0.02)
        raise element

    assert await failure_of(amap(items(), each)) is element


# --- properties ------------------------------------------------------------------


CLEANUPS = ("plain", "slow", "raises", "swallows")


@dataclass(frozen=True)
class Spec:
    """A participant: how long it runs, whether it fails, how it takes a cancellation."""

    delay_ms: int
    fails: bool
    cleanup: str


specs = st.builds(
    Spec,
    delay_ms=st.integers(min_value=0, max_value=30),
    fails=st.booleans(),
    cleanup=st.sampled_from(CLEANUPS),
)


async def participant(
    spec: Spec, error: BaseException, log: dict[int, str], key: int
) -> int:
    try:
        await asyncio.sleep(spec.delay_ms / 1000)
    except asyncio.CancelledError:
        log[key] = "cancelled"
        if spec.cleanup == "slow":
            await asyncio.sleep(0.005)
        elif spec.cleanup == "raises":
            raise RuntimeError(f"{key} raised while cancelled") from None
        elif spec.cleanup == "swallows":
            return key
        raise
    if spec.fails:
        log[key] = "failed"
        raise error
    log[key] = "done"
    return key


@settings(max_examples=60, deadline=None)
@given(
    children=st.lists(specs, min_size=1, max_size=7),
    body=specs,
    order=st.randoms(use_true_random=False),
)
def test_a_scope_raises_the_failure_at_the_lowest_step(
    children: list[Spec], body: Spec, order: object
) -> None:
    steps = list(range(len(children) + 1))
    order.shuffle(steps)  # type: ignore[attr-defined]
    body_step = steps.pop()
    spec_at = dict(zip([*steps, body_step], [*children, body], strict=True))
    errors = {step: Failure(f"step {step}") for step in spec_at}
    log: dict[int, str] = {}

    async def run(scope: Scope) -> None:
        for step in steps:
            scope.spawn(participant(spec_at[step], errors[step], log, step), step=step)
        scope.at_step(body_step)
        await participant(body, errors[body_step], log, body_step)

    raised = ordered_outcome(run)
    assert_lowest_failure_won(raised, spec_at, errors, log)


def ordered_outcome(run: Callable[[Scope], Awaitable[None]]) -> BaseException | None:
    """The Failure an ordered scope whose body is `run` raises, if any; the scope
    leaves nothing running."""

    async def scenario() -> BaseException | None:
        async with asyncio.timeout(5):
            try:
                async with Scope(ordered=True) as scope:
                    await run(scope)
            except Failure as error:
                assert not others(), "nothing the scope started is still running"
                return error
        assert not others()
        return None

    return asyncio.run(scenario())


def assert_lowest_failure_won(
    raised: BaseException | None,
    spec_at: dict[int, Spec],
    errors: dict[int, Failure],
    log: dict[int, str],
) -> None:
    winner = min((step for step, spec in spec_at.items() if spec.fails), default=None)
    assert raised is (None if winner is None else errors[winner])
    if winner is not None:
        # Everything before the winner ran to its end: it was waited for.
        assert all(log[step] == "done" for step in log if step < winner)


@settings(max_examples=80, deadline=None)
@given(
    children=st.lists(specs, max_size=4),
    body=st.lists(specs, min_size=1, max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_a_body_running_steps_ahead_still_raises_the_lowest_failure(
    children: list[Spec], body: list[Spec], order: object
) -> None:
    """The body runs its steps in any order, holding the failures of those it
    runs before an earlier one of its own, as compiled flows do."""
    steps = list(range(len(children) + len(body)))
    order.shuffle(steps)  # type: ignore[attr-defined]
    child_steps, body_steps = steps[: len(children)], steps[len(children) :]
    spec_at = dict(zip(steps, [*children, *body], strict=True))
    errors = {step: Failure(f"step {step}") for step in steps}
    log: dict[int, str] = {}

    async def run(scope: Scope) -> None:
        for step in child_steps:
            scope.spawn(participant(spec_at[step], errors[step], log, step), step=step)
        pending = set(body_steps)
        for step in body_steps:  # in shuffled order
            scope.at_step(min(pending))
            work = participant(spec_at[step], errors[step], log, step)
            if step > min(pending):
                with scope.ahead(step):
                    await work
            else:
                await work
            pending.remove(step)

    raised = ordered_outcome(run)
    assert_lowest_failure_won(raised, spec_at, errors, log)


async def test_a_held_failure_is_raised_where_the_body_moves_past_it() -> None:
    log: list[str] = []
    held = Failure("step 2")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.spawn(wait_forever(log, "step 4"), step=4)
            await asyncio.sleep(0)  # the child starts waiting
            scope.at_step(1)
            with scope.ahead(2):
                raise held
            log.append("step 1 ran")  # earlier in the source: it still runs
            scope.at_step(3)
            log.append("step 3 ran")

    assert await failure_of(scenario()) is held
    assert log == ["step 1 ran", "step 4 cancelled"]  # cancelled at once, not run


async def test_an_earlier_failure_wins_over_a_held_one() -> None:
    early = Failure("step 1")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.at_step(1)
            with scope.ahead(2):
                raise Failure("step 2")
            raise early

    assert await failure_of(scenario()) is early


async def test_a_held_failure_leaves_with_the_scope() -> None:
    held = Failure("step 2")

    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.at_step(1)
            with scope.ahead(2):
                raise held

    assert await failure_of(scenario()) is held


@pytest.mark.parametrize("interrupt", [asyncio.CancelledError(), KeyboardInterrupt()])
async def test_ahead_holds_failures_not_cancellation_or_interrupts(
    interrupt: BaseException,
) -> None:
    async def scenario() -> None:
        async with Scope(ordered=True) as scope:
            scope.at_step(1)
            with scope.ahead(2):
                raise interrupt

    with pytest.raises(type(interrupt)) as caught:
        await scenario()
    assert caught.value is interrupt


async def test_ahead_is_for_the_body_of_an_ordered_scope() -> None:
    async with Scope() as unordered:
        with pytest.raises(TypeError, match="ordered"):
            unordered.ahead(1)

    async def child(scope: Scope) -> None:
        with scope.ahead(1):
            pass

    with pytest.raises(RuntimeError, match="body"):
        async with Scope(ordered=True) as scope:
            scope.spawn(child(scope))


@settings(max_examples=80, deadline=None)
@given(
    elements=st.lists(specs, min_size=0, max_size=7),
    broken_at=st.none() | st.integers(min_value=0, max_value=7),
    mapped=st.booleans(),
    bound=st.none() | st.integers(min_value=1, max_value=4),
)
def test_fan_outs_raise_the_failure_at_the_lowest_index(
    elements: list[Spec], broken_at: int | None, mapped: bool, bound: int | None
) -> None:
    """`gather` over an iterable, or `amap` over an iterator, that may break at
    `broken_at`, with all elements running at once or at most `bound`."""
    errors = [Failure(f"element {i}") for i in range(len(elements))]
    broken = Failure("the iteration")
    log: dict[int, str] = {}
    cut = len(elements) if broken_at is None else min(broken_at, len(elements))

    def work(i: int) -> Awaitable[int]:
        return participant(elements[i], errors[i], log, i)

    def produced() -> object:
        for i in range(cut):
            yield work(i)
        if broken_at is not None:
            raise broken

    async def arriving() -> AsyncIterator[int]:
        for i in range(cut):
            await asyncio.sleep(0)
            yield i
        if broken_at is not None:
            raise broken

    async def scenario() -> BaseException | list[int]:
        try:
            async with asyncio.timeout(5):
                if mapped:
                    return await amap(arriving(), work, bound=bound)
                return await gather(produced(), bound=bound)  # type: ignore[arg-type]
        except Failure as error:
            return error
        finally:
            assert not others()

    outcome = asyncio.run(scenario())
    failing = [i for i in range(cut) if elements[i].fails]
    if failing:
        assert outcome is errors[failing[0]]
        assert all(log[i] == "done" for i in range(failing[0]))
    elif broken_at is not None:
        assert outcome is broken
        assert all(log[i] == "done" for i in range(cut))
    else:
        assert outcome == list(range(cut))
