"""Fan-outs over a space of element behaviours behave as the sequential loop does.

Each element is a small script drawn by Hypothesis: so many `asyncio.sleep(0)`
ticks, then return, raise its own `ValueError`, or cancel itself (raise
CancelledError, or await a future someone cancelled). The reference is the
sequential loop ``[await aw for aw in aws]``: the lowest-index failure is
raised as itself, the elements before it run to their end, nothing past it is
read. On top of that, every fan-out must keep to its bound, read its input as
lazily as documented, and leave nothing behind: no element still running, no
task pending, no cancellation request on the caller, nothing reported to the
event loop's exception handler, no warning (a coroutine never awaited).

The fan-outs: `kiln.gather` unbounded and bounded, `kiln.pool.bounded` sharing
a `kiln.cap.Cap` with holders outside it, and a compiled ``@flow(concurrency=N)``
whose list comprehension compiles to `kiln.fan_out`. Structure only, never
wall-clock times: every wait is a tick of the event loop.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeVar
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kiln import gather
from kiln.cap import Cap
from kiln.pool import bounded
from tests.test_differential import compiled_and_source

T = TypeVar("T")

End = Literal["return", "raise", "cancel", "cancel_future"]
Shape = Literal["list", "generator", "broken"]
Fate = Literal["returned", "raised", "cancelled itself", "cancelled"]

# What an element that ends as scripted has done, as the probe records it.
FATE_OF: dict[End, Fate] = {
    "return": "returned",
    "raise": "raised",
    "cancel": "cancelled itself",
    "cancel_future": "cancelled itself",
}


@dataclass(frozen=True)
class Script:
    """One element: `ticks` suspensions (`asyncio.sleep(0)`), then its `end`."""

    ticks: int
    end: End


@dataclass(frozen=True)
class Case:
    """A fan-out: its elements, how its input is given, and its bound.

    `shape` "list" gives the awaitables in a list; "generator" makes each as
    it is read; "broken" is a generator that raises instead of giving the
    element at `broken_at` (which is then the number of elements it gives).
    """

    scripts: tuple[Script, ...]
    shape: Shape
    broken_at: int
    bound: int | None

    @property
    def produced(self) -> int:
        """How many elements the input gives before it ends or breaks."""
        return self.broken_at if self.shape == "broken" else len(self.scripts)


def value(index: int) -> int:
    return 10 * index + 7


# --- the reference: the sequential loop -------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What ``[await aw for aw in aws]`` does with a case.

    `stop`: the items it reads, which are also the elements it runs, each to
    its scripted end; `failure`: what it raises (None: it returns `values`);
    `failing`: the index of the element whose failure it raises.
    """

    values: list[int] | None
    stop: int
    failure: Literal["value", "cancelled", "iteration"] | None
    failing: int | None


def sequential(case: Case) -> Expected:
    for index, script in enumerate(case.scripts[: case.produced]):
        if script.end == "raise":
            return Expected(None, index + 1, "value", index)
        if script.end in ("cancel", "cancel_future"):
            return Expected(None, index + 1, "cancelled", index)
    if case.shape == "broken":
        return Expected(None, case.produced, "iteration", None)
    return Expected(
        [value(i) for i in range(len(case.scripts))], len(case.scripts), None, None
    )


# --- the probe: elements and inputs that record what the fan-out does with them -----


@dataclass
class Probe:
    """The elements and the input of one run of a case, and what happened to them."""

    case: Case
    errors: list[ValueError] = field(init=False)
    iteration_error: RuntimeError = field(init=False)
    now: int = 0  # elements in flight now
    most: int = 0  # and at most
    outside: int = 0  # holders of a shared cap outside the fan-out, now
    most_holders: int = 0  # elements in flight and outside holders, at most
    started: int = 0
    ended: int = 0
    reads: int = 0  # items the input gave out
    in_flight_at_reads: list[int] = field(default_factory=list)
    reads_at_first_failure: int | None = None  # when the first failure happened
    fates: dict[int, Fate] = field(default_factory=dict)
    coroutines: list[Coroutine[Any, Any, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.errors = [
            ValueError(f"element {index}") for index in range(len(self.case.scripts))
        ]
        self.iteration_error = RuntimeError(f"the input broke at {self.case.broken_at}")

    def _failing(self) -> None:
        if self.reads_at_first_failure is None:
            self.reads_at_first_failure = self.reads

    async def element(self, index: int) -> int:
        script = self.case.scripts[index]
        self.started += 1
        self.now += 1
        self.most = max(self.most, self.now)
        self.most_holders = max(self.most_holders, self.now + self.outside)
        try:
            for _ in range(script.ticks):
                await asyncio.sleep(0)
            self.fates[index] = FATE_OF[script.end]
            if script.end == "raise":
                self._failing()
                raise self.errors[index]
            if script.end == "cancel":
                self._failing()
                raise asyncio.CancelledError(f"element {index} cancels itself")
            if script.end == "cancel_future":
                self._failing()
                cancelled: asyncio.Future[None] = (
                    asyncio.get_running_loop().create_future()
                )
                cancelled.cancel()
                await cancelled  # someone else's cancelled future: CancelledError
            return value(index)
        except asyncio.CancelledError:
            self.fates.setdefault(index, "cancelled")  # cancelled from outside
            raise
        finally:
            self.now -= 1
            self.ended += 1

    def items(self, count: int | None = None) -> Iterator[int]:
        """The indexes of the elements, each recorded as it is read; "broken" raises."""
        assert count in (None, len(self.case.scripts))
        for index in range(self.case.produced):
            self.reads += 1
            self.in_flight_at_reads.append(self.now)
            yield index
        if self.case.shape == "broken":
            self._failing()
            raise self.iteration_error

    def awaitables(self) -> Iterable[Awaitable[int]]:
        """The elements for `gather`, in the case's shape."""
        if self.case.shape == "list":
            self.coroutines = [
                self.element(index) for index in range(len(self.case.scripts))
            ]
            return list(self.coroutines)
        return (self.element(index) for index in self.items())

    def unclosed(self) -> list[int]:
        """The listed coroutines neither run to their end nor closed."""
        return [
            index
            for index, coroutine in enumerate(self.coroutines)
            if inspect.getcoroutinestate(coroutine) != inspect.CORO_CLOSED
        ]


# --- running a fan-out, and what it left behind -----------------------------------


@dataclass
class Observed:
    """How a fan-out ended, and what was still going on in the caller as it did."""

    outcome: list[int] | BaseException
    leftover: set[asyncio.Task[Any]]
    cancelling: int  # cancellation requests left on the caller's task


async def observe(fan_out: Callable[[], Awaitable[list[int]]]) -> Observed:
    before = asyncio.all_tasks()
    caller = asyncio.current_task()
    assert caller is not None
    outcome: list[int] | BaseException
    try:
        outcome = await fan_out()
    except (Exception, asyncio.CancelledError) as error:
        outcome = error
    return Observed(outcome, asyncio.all_tasks() - before, caller.cancelling())


def run_clean(main: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, list[str]]:
    """`main()` in a fresh event loop, and what the loop's exception handler and the
    warnings saw: a task exception never retrieved, a coroutine never awaited."""
    reported: list[str] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(f"{context.get('message')}: {context.get('exception')!r}")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with asyncio.Runner() as runner:
            runner.get_loop().set_exception_handler(handler)
            result = runner.run(main())
        gc.collect()  # what only a cycle holds: a failed task, an unawaited coroutine
    return result, reported + [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.fixture(scope="module", autouse=True)
def _young_heap() -> Iterator[None]:
    """Freeze what exists before the module runs: each example's `gc.collect()` then
    looks at that example's objects only, and costs microseconds, not milliseconds."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# --- the checks ---------------------------------------------------------------------


def described(case: Case, probe: Probe, observed: Observed) -> str:
    return (
        f"\n  case: {case}\n  outcome: {observed.outcome!r}\n  fates: {probe.fates}"
        f"\n  reads: {probe.reads} (in flight at each: {probe.in_flight_at_reads},"
        f" at the first failure: {probe.reads_at_first_failure})"
    )


def check_outcome(case: Case, probe: Probe, observed: Observed) -> None:
    """The sequential loop's result, or its failure as the same object; and every
    element before the failing one (and the failing one) ran to its scripted end."""
    expected = sequential(case)
    outcome = observed.outcome
    about = described(case, probe, observed)
    if expected.failure is None:
        assert outcome == expected.values, about
    elif expected.failure == "value":
        assert expected.failing is not None
        assert outcome is probe.errors[expected.failing], about
    elif expected.failure == "iteration":
        assert outcome is probe.iteration_error, about
    else:
        assert isinstance(outcome, asyncio.CancelledError), about
    for index in range(expected.stop):
        assert (
            probe.fates.get(index) == FATE_OF[case.scripts[index].end]
        ), f"element {index} did not run to its end{about}"


def check_reads(
    case: Case, probe: Probe, observed: Observed, bound: int | None
) -> None:
    """A bounded fan-out reads an item only into a free worker, and nothing after the
    first failure; an unbounded one reads as the sequential loop until an element
    waits, and then everything at once."""
    if case.shape == "list":
        return
    about = described(case, probe, observed)
    if bound is not None:
        assert all(now < bound for now in probe.in_flight_at_reads), about
        if probe.reads_at_first_failure is None:
            assert probe.reads == case.produced, about
        else:
            assert probe.reads == probe.reads_at_first_failure, about
        return
    expected = sequential(case)
    if all(script.ticks == 0 for script in case.scripts[: expected.stop]):
        assert probe.reads == expected.stop, about
    else:
        assert probe.reads == case.produced, about


def check_clean(
    case: Case, probe: Probe, observed: Observed, problems: list[str]
) -> None:
    """Nothing the fan-out started still runs; nothing went unretrieved or unawaited."""
    about = described(case, probe, observed)
    assert probe.started == probe.ended, f"elements still running{about}"
    assert observed.leftover == set(), about
    assert observed.cancelling == 0, f"a cancellation request left on the caller{about}"
    assert problems == [], about
    assert probe.unclosed() == [], f"listed coroutines never awaited nor closed{about}"


def check_bound(
    case: Case, probe: Probe, observed: Observed, bound: int | None
) -> None:
    if bound is not None:
        assert probe.most <= bound, described(case, probe, observed)


def run_gather(case: Case) -> tuple[Probe, Observed, list[str]]:
    probe = Probe(case)
    observed, problems = run_clean(
        lambda: observe(lambda: gather(probe.awaitables(), bound=case.bound))
    )
    return probe, observed, problems


# --- the space ----------------------------------------------------------------------

RETURN_OR_RAISE: tuple[End, ...] = ("return", "return", "raise")
ANY_END: tuple[End, ...] = ("return", "return", "raise", "cancel", "cancel_future")
SHAPES: tuple[Shape, ...] = ("list", "generator", "broken")
BOUNDS = st.sampled_from([None, 1, 2, 3, 100])


@st.composite
def cases(
    draw: st.DrawFn,
    ends: tuple[End, ...],
    bounds: st.SearchStrategy[int | None],
    shapes: tuple[Shape, ...] = SHAPES,
) -> Case:
    script = st.builds(Script, ticks=st.integers(0, 4), end=st.sampled_from(ends))
    scripts = tuple(draw(st.lists(script, max_size=8)))
    shape = draw(st.sampled_from(shapes))
    broken_at = (
        draw(st.integers(0, len(scripts))) if shape == "broken" else len(scripts)
    )
    return Case(scripts, shape, broken_at, draw(bounds))


def c(ticks: int, end: End = "return") -> Script:
    return Script(ticks, end)


# Minimal failing examples, found by Hypothesis and checked minimal by enumerating
# every case of up to 3 elements and 3 ticks, kept as explicit examples: a test
# that fails on them fails at once, the same way in every run.
#
# Regressions: these failed with kiln/pool.py before 0ac3cbb, whose worker told
# the scope its step once per element as it finished one (`me.step = index + 1`)
# and read its next item at `len(results)`, further on when other workers had
# read items meanwhile: the step its next failure was weighed by was stale.
# Worker A finishes element 0 (step 1) and reads element 2, which fails at once
# at step 1; worker B's element 1 then fails at step 1 too, and a tie loses.
STALE_STEP_TIE = Case((c(1), c(1, "raise"), c(0, "raise")), "list", 3, 2)
# The same with the input's failure: A asks for item 2, which raises at step 1.
STALE_STEP_INPUT = Case((c(1), c(1, "raise")), "broken", 2, 2)
# A stale step below the step of an earlier element in flight cancelled it:
# element 3 (worker A, step 1) fails and the scope cancels worker B (step 2)
# in the middle of element 2, which was to fail first.
STALE_STEP_CANCELS = Case((c(2), c(0), c(3, "raise"), c(0, "raise")), "list", 4, 2)
# ... or which was to return: the input's failure cancelled an element before it.
STALE_STEP_CANCELS_BEFORE_INPUT = Case((c(2), c(0), c(3)), "broken", 3, 2)
#
# Failing at 0ac3cbb: an element's own CancelledError ends its task cancelled,
# which `Scope._on_done` does not count as a failure at the element's step
# (neither ranked against later failures nor cutting the steps after it): a
# later failure, an element's or the input's, is raised in place of the
# CancelledError the sequential loop raises. Unbounded (`kiln.run._rest`, the
# element a task after the first that waits) and bounded (`kiln.pool.bounded`).
OWN_CANCEL_THEN_FAILURE = Case((c(1), c(0, "cancel"), c(0, "raise")), "list", 3, None)
OWN_CANCEL_THEN_INPUT = Case((c(1), c(0, "cancel")), "broken", 2, None)
OWN_CANCEL_THEN_FAILURE_BOUNDED = Case((c(1, "cancel"), c(0, "raise")), "list", 2, 2)
OWN_CANCEL_THEN_INPUT_BOUNDED = Case((c(1, "cancel"),), "broken", 1, 2)


def generated(case: Case) -> Case:
    """The case with its input a generator, for a flow's ``items(n)``."""
    shape: Shape = "generator" if case.shape == "list" else case.shape
    return Case(case.scripts, shape, case.broken_at, case.bound)


# --- gather -------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(case=cases(ANY_END, BOUNDS))
def test_gather_keeps_its_bound_reads_as_documented_and_leaves_nothing_behind(
    case: Case,
) -> None:
    """At most `bound` elements in flight; a bounded fan-out reads only into a free
    worker and nothing after the first failure, an unbounded one as the sequential
    loop until an element waits; an element that cancels itself makes the fan-out
    raise, never return a list with a hole; when it returns or raises, no element
    runs, no task is pending, nothing was left unretrieved or unawaited."""
    probe, observed, problems = run_gather(case)
    if "cancelled itself" in probe.fates.values():
        assert isinstance(observed.outcome, BaseException), described(
            case, probe, observed
        )
    check_bound(case, probe, observed, case.bound)
    check_reads(case, probe, observed, case.bound)
    check_clean(case, probe, observed, problems)


@settings(max_examples=200, deadline=None)
@given(case=cases(RETURN_OR_RAISE, BOUNDS))
@example(case=STALE_STEP_TIE)
@example(case=STALE_STEP_INPUT)
@example(case=STALE_STEP_CANCELS)
@example(case=STALE_STEP_CANCELS_BEFORE_INPUT)
def test_gather_is_the_sequential_loop_over_returns_and_raises(case: Case) -> None:
    """The sequential loop's list, or its failure as the same object, every element
    before the failing one run to its end."""
    probe, observed, _ = run_gather(case)
    check_outcome(case, probe, observed)


@settings(max_examples=200, deadline=None)
@given(case=cases(ANY_END, BOUNDS))
@example(case=OWN_CANCEL_THEN_FAILURE)
@example(case=OWN_CANCEL_THEN_INPUT)
@example(case=OWN_CANCEL_THEN_FAILURE_BOUNDED)
@example(case=OWN_CANCEL_THEN_INPUT_BOUNDED)
def test_gather_is_the_sequential_loop_with_elements_that_cancel_themselves(
    case: Case,
) -> None:
    """The sequential loop stops at an element's CancelledError as at any failure:
    the fan-out raises CancelledError unless an earlier element's failure wins."""
    probe, observed, _ = run_gather(case)
    check_outcome(case, probe, observed)


# --- bounded, sharing a cap -------------------------------------------------------


@dataclass(frozen=True)
class CapCase:
    """A `bounded` fan-out under a cap of `capacity` (as many workers, as `fan_out`
    runs one), and holders outside it, each taking the cap for some rounds of
    (ticks before it asks, ticks it holds)."""

    case: Case
    capacity: int
    outsiders: tuple[tuple[tuple[int, int], ...], ...]


@st.composite
def cap_cases(draw: st.DrawFn) -> CapCase:
    capacity = draw(st.integers(1, 3))
    case = draw(cases(RETURN_OR_RAISE, st.just(capacity)))
    rounds = st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=3
    )
    outsiders = draw(st.lists(rounds.map(tuple), max_size=3))
    return CapCase(case, capacity, tuple(outsiders))


@dataclass
class Shared:
    """What a fan-out sharing its cap did, and what the outside holders saw."""

    probe: Probe
    observed: Observed
    problems: list[str]
    waits: list[int]  # elements started while each outside holder waited
    free_after: bool  # every slot free once all is done


def run_shared(shared: CapCase) -> Shared:
    case, capacity = shared.case, shared.capacity
    probe = Probe(case)
    waits: list[int] = []
    cap = Cap(capacity)

    async def outside(rounds: tuple[tuple[int, int], ...]) -> None:
        for before, hold in rounds:
            for _ in range(before):
                await asyncio.sleep(0)
            started = probe.started
            if not cap.take():
                await cap.acquire()
            waits.append(probe.started - started)
            probe.outside += 1
            probe.most_holders = max(probe.most_holders, probe.now + probe.outside)
            try:
                for _ in range(hold):
                    await asyncio.sleep(0)
            finally:
                probe.outside -= 1
                cap.release()

    def items() -> Iterator[int]:
        return iter(range(len(case.scripts))) if case.shape == "list" else probe.items()

    async def main() -> tuple[Observed, bool]:
        outsiders = [
            asyncio.create_task(outside(rounds)) for rounds in shared.outsiders
        ]
        observed = await observe(
            lambda: bounded(probe.element, items(), [], capacity, cap)
        )
        await asyncio.gather(*outsiders)
        taken = [cap.take() for _ in range(capacity + 1)]
        for _ in range(capacity):
            cap.release()
        return observed, taken == [True] * capacity + [False]

    (observed, free_after), problems = run_clean(main)
    return Shared(probe, observed, problems, waits, free_after)


# Regressions, failing before 0ac3cbb: a worker that waited for its slot
# (`await slots.acquire()`, before its first item, or after handing its slot
# over between two elements) read its next item without looking at `stopped`
# again: an element failed while it waited, and it read, and ran, one more.
# Only a cap someone else holds makes a worker wait.
# Worker B waits for the slot the outside holder took; A's element 0 fails and
# hands B its slot; B reads item 1.
CAP_FIRST_SLOT = CapCase(
    Case((c(1, "raise"), c(0)), "generator", 2, 2), 2, (((1, 1),),)
)
# Worker A hands its slot over to the outside holder after element 0 and waits
# for it back; B's element 1 fails meanwhile; A reads item 2.
CAP_HANDED_OVER = CapCase(
    Case((c(2), c(2, "raise"), c(0)), "generator", 3, 2), 2, (((2, 0),),)
)


@settings(max_examples=120, deadline=None)
@given(shared=cap_cases())
def test_a_bounded_fan_out_shares_its_cap_and_starves_no_one(shared: CapCase) -> None:
    """No more holders than the cap, elements and outside holders together; an
    outside holder that waits for the cap waits for no more element starts than
    there are workers (each hands its slot over once its element is done, rather
    than keep it to the fan-out's end); at the end every slot is free; and the
    fan-out keeps its bound and leaves nothing behind."""
    case, capacity = shared.case, shared.capacity
    run = run_shared(shared)
    probe, observed = run.probe, run.observed
    about = described(case, probe, observed) + f"\n  outside waits: {run.waits}"
    assert probe.most_holders <= capacity, about
    assert all(started <= capacity for started in run.waits), about
    assert run.free_after, about
    check_bound(case, probe, observed, capacity)
    check_clean(case, probe, observed, run.problems)


@settings(max_examples=100, deadline=None)
@given(shared=cap_cases())
@example(shared=CAP_FIRST_SLOT)
@example(shared=CAP_HANDED_OVER)
def test_a_bounded_fan_out_sharing_its_cap_reads_nothing_after_a_failure(
    shared: CapCase,
) -> None:
    """An item is read only into a free worker, and none after the first failure,
    however long the workers wait for the cap."""
    run = run_shared(shared)
    check_reads(shared.case, run.probe, run.observed, shared.capacity)


@settings(max_examples=100, deadline=None)
@given(shared=cap_cases())
@example(shared=CapCase(STALE_STEP_TIE, 2, ()))
@example(shared=CapCase(STALE_STEP_INPUT, 2, (((0, 1),),)))
def test_a_bounded_fan_out_sharing_its_cap_is_the_sequential_loop(
    shared: CapCase,
) -> None:
    """Outside holders change when elements run, never what the fan-out returns
    or raises: the sequential loop's."""
    run = run_shared(shared)
    check_outcome(shared.case, run.probe, run.observed)


# --- a compiled flow: `fan_out` under the run's cap -----------------------------------

FLOW = """
from collections.abc import Iterator
from typing import Any

from kiln import flow, node

probe: list[Any] = [None]  # the test's Probe


@node
async def work(x: int) -> int:
    return await probe[0].element(x)


def items(n: int) -> Iterator[int]:
    return probe[0].items(n)


@flow(concurrency=2)
async def capped(n: int) -> list[int]:
    return [await work(x) for x in items(n)]
"""


@pytest.fixture(scope="module")
def flow_modules(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ModuleType, ModuleType]:
    directory: Path = tmp_path_factory.mktemp("fan_out_space")
    compiled, source = compiled_and_source(FLOW, directory)
    assert "_kiln.fan_out(work, items(n))" in (directory / "out.py").read_text()
    return compiled, source


def run_compiled(compiled: ModuleType, case: Case) -> tuple[Probe, Observed, list[str]]:
    """The compiled flow's run of `case`, checked to go through the pool with the
    run's cap (`fan_out`'s capped path)."""
    assert case.bound is not None
    probe = Probe(case)
    compiled.probe[0] = probe
    instance = type(compiled.capped)(concurrency=case.bound)
    with mock.patch("kiln.run.bounded", wraps=bounded) as pool:
        observed, problems = run_clean(
            lambda: observe(lambda: instance.aforward(len(case.scripts)))
        )
    call = pool.call_args
    assert call is not None, "the capped fan-out did not go through kiln.pool.bounded"
    cap = call.kwargs.get("cap", call.args[4] if len(call.args) > 4 else None)
    assert isinstance(cap, Cap), "the capped fan-out did not pass the run's cap"
    return probe, observed, problems


COMPILED_CASES = cases(
    RETURN_OR_RAISE, st.integers(1, 3), shapes=("generator", "broken")
)


@settings(max_examples=80, deadline=None)
@given(case=COMPILED_CASES)
def test_a_compiled_capped_fan_out_keeps_to_its_cap(
    flow_modules: tuple[ModuleType, ModuleType], case: Case
) -> None:
    """``[await work(x) for x in items(n)]`` under ``@flow(concurrency=N)``: the
    workers of `kiln.pool.bounded` holding the run's cap, at most N calls in
    flight, an item read only into a free worker and none after a failure, and
    nothing left behind."""
    probe, observed, problems = run_compiled(flow_modules[0], case)
    check_bound(case, probe, observed, case.bound)
    check_reads(case, probe, observed, case.bound)
    check_clean(case, probe, observed, problems)


@settings(max_examples=60, deadline=None)
@given(case=COMPILED_CASES)
@example(case=generated(STALE_STEP_TIE))
@example(case=STALE_STEP_INPUT)
def test_a_compiled_capped_fan_out_is_its_source(
    flow_modules: tuple[ModuleType, ModuleType], case: Case
) -> None:
    """The source's result, or its failure: the same exception of the same element."""
    compiled, source = flow_modules
    reference = Probe(case)
    source.probe[0] = reference
    expected, _ = run_clean(lambda: observe(lambda: source.capped(len(case.scripts))))
    probe, observed, _ = run_compiled(compiled, case)
    about = described(case, probe, observed)
    if isinstance(expected.outcome, BaseException):
        assert type(observed.outcome) is type(expected.outcome), about
        assert str(observed.outcome) == str(expected.outcome), about
    else:
        assert observed.outcome == expected.outcome, about
    check_outcome(case, probe, observed)
