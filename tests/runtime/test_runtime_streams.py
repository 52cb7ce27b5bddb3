"""iterate: a sync loop over an async stream, outside and inside a running loop."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from kiln import iterate

# An event loop or a stream left unclosed warns when collected: fail on that.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

REQUEST = contextvars.ContextVar("REQUEST", default="none")

# How a stream learns that its consumer stopped, in a loop or not: aclose() at
# the yield of the last item the consumer took (the stream never reads ahead).
STOPPED = ["closed", "finally"]


class Producer:
    """Async generators that log what happened to them."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.produced = 0
        self.threads: set[int] = set()
        self.loops: set[asyncio.AbstractEventLoop] = set()

    async def numbers(self, n: int | None = None) -> AsyncIterator[int]:
        try:
            i = 0
            while n is None or i < n:
                await asyncio.sleep(0)
                self.threads.add(threading.get_ident())
                self.loops.add(asyncio.get_running_loop())
                self.produced += 1
                yield i
                i += 1
        except GeneratorExit:  # aclose() at a yield
            self.log.append("closed")
            raise
        except asyncio.CancelledError:  # stopped while reading an item
            self.log.append("cancelled")
            raise
        finally:
            await asyncio.sleep(0)  # cleanup that awaits runs on the stream's loop
            self.log.append("finally")

    async def failing(self, error: BaseException, after: int) -> AsyncIterator[int]:
        try:
            for i in range(after):
                yield i
            await asyncio.sleep(0)
            raise error
        finally:
            self.log.append("finally")


class Closable:
    """An async iterator that is not a generator but has aclose()."""

    def __init__(self) -> None:
        self.closed = 0
        self.i = 0

    def __aiter__(self) -> Closable:
        return self

    async def __anext__(self) -> int:
        self.i += 1
        return self.i

    async def aclose(self) -> None:
        await asyncio.sleep(0)
        self.closed += 1


def in_a_running_loop(work: Callable[[], Any]) -> Any:
    """Run sync `work` from inside a running event loop, as a notebook cell would."""

    async def main() -> Any:
        return work()

    return asyncio.run(main())


MODES = pytest.mark.parametrize(
    "drive",
    [lambda work: work(), in_a_running_loop],
    ids=["outside-a-loop", "inside-a-loop"],
)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    gc.collect()
    assert threading.active_count() == before


# --- iterating ---------------------------------------------------------------


@MODES
def test_all_items_in_order(drive: Callable[[Callable[[], Any]], Any]) -> None:
    producer = Producer()
    assert drive(lambda: list(iterate(producer.numbers(5)))) == [0, 1, 2, 3, 4]
    assert producer.log == ["finally"]
    (loop,) = producer.loops
    assert loop.is_closed()


def test_outside_a_loop_the_stream_runs_on_a_private_loop_in_this_thread() -> None:
    producer = Producer()
    assert list(iterate(producer.numbers(3))) == [0, 1, 2]
    assert producer.threads == {threading.get_ident()}


async def test_inside_a_loop_the_stream_runs_on_a_worker_thread() -> None:
    producer = Producer()
    assert list(iterate(producer.numbers(3))) == [0, 1, 2]
    assert threading.get_ident() not in producer.threads
    assert asyncio.get_running_loop() not in producer.loops


def test_outside_a_loop_the_threads_current_loop_is_left_alone() -> None:
    policy = asyncio.get_event_loop_policy()
    mine = asyncio.new_event_loop()
    policy.set_event_loop(mine)
    try:
        for _ in iterate(Producer().numbers(2)):
            assert policy.get_event_loop() is mine
        assert policy.get_event_loop() is mine
    finally:
        policy.set_event_loop(None)
        mine.close()


@MODES
def test_each_next_reads_one_item_and_never_one_ahead(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    # As `async for` runs the stream: its side effects happen when an item is
    # asked for, so a consumer that stops never causes those of later items.
    producer = Producer()

    def work() -> list[int]:
        items = iterate(producer.numbers())  # endless
        produced = []
        time.sleep(0.05)  # nothing is read before the first next()
        produced.append(producer.produced)
        for _ in range(3):
            next(items)
            time.sleep(0.05)  # a slow consumer: the producer waits for it
            produced.append(producer.produced)
        items.close()  # type: ignore[attr-defined]
        return produced

    assert drive(work) == [0, 1, 2, 3]
    assert producer.log == STOPPED


@MODES
def test_context_variables_are_the_consumers_and_stay_consistent(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    async def tagged() -> AsyncIterator[str]:
        token = REQUEST.set("inside")  # reset across a yield: one Context throughout
        try:
            yield REQUEST.get()
            yield REQUEST.get()
        finally:
            REQUEST.reset(token)

    async def seen() -> AsyncIterator[str]:
        yield REQUEST.get()

    def work() -> tuple[list[str], list[str], str]:
        token = REQUEST.set("consumer")
        try:
            return list(iterate(seen())), list(iterate(tagged())), REQUEST.get()
        finally:
            REQUEST.reset(token)

    assert drive(work) == (["consumer"], ["inside", "inside"], "consumer")


@MODES
def test_each_step_takes_in_what_the_consumer_set_since_the_last(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    """As a generator's body sees its consumer's sets at every next(); what the
    stream keeps set itself stays, and never reaches the consumer."""
    own = contextvars.ContextVar("own", default="unset")

    async def seen() -> AsyncIterator[str]:
        own.set("the stream's")
        for _ in range(3):
            await asyncio.sleep(0)
            yield f"{REQUEST.get()} {own.get()}"

    def work() -> tuple[list[str], str]:
        token = REQUEST.set("first")
        try:
            items = []
            for item in iterate(seen()):
                items.append(item)
                REQUEST.set(f"after {len(items)}")
            return items, own.get()
        finally:
            REQUEST.reset(token)

    assert drive(work) == (
        ["first the stream's", "after 1 the stream's", "after 2 the stream's"],
        "unset",
    )


# --- errors ------------------------------------------------------------------


@MODES
def test_a_stream_error_reaches_the_consumer_as_itself(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    producer = Producer()
    error = LookupError("missing")
    error.add_note("a note")
    got: list[int] = []

    def work() -> None:
        for item in iterate(producer.failing(error, after=2)):
            got.append(item)

    with pytest.raises(LookupError) as caught:
        drive(work)
    assert caught.value is error
    assert caught.value.__notes__ == ["a note"]
    assert got == [0, 1]
    assert producer.log == ["finally"]


@MODES
def test_a_base_exception_from_the_stream_reaches_the_consumer(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    class Stop(BaseException):
        pass

    producer = Producer()
    with pytest.raises(Stop):
        drive(lambda: list(iterate(producer.failing(Stop(), after=1))))


def test_inside_a_loop_the_error_keeps_its_own_context() -> None:
    producer = Producer()
    error = ValueError("bad")

    def work() -> None:
        try:
            raise KeyError("handled by the consumer")
        except KeyError:
            list(iterate(producer.failing(error, after=0)))

    with pytest.raises(ValueError, match="bad"):
        in_a_running_loop(work)
    assert error.__context__ is None


# --- stopping early ----------------------------------------------------------


@MODES
def test_close_closes_the_stream_on_its_loop(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    producer = Producer()

    def work() -> list[int]:
        items = iterate(producer.numbers())
        taken = [next(items), next(items)]
        items.close()  # type: ignore[attr-defined]
        assert producer.log == STOPPED
        with pytest.raises(StopIteration):
            next(items)
        return taken

    assert drive(work) == [0, 1]
    (loop,) = producer.loops
    assert loop.is_closed()


@MODES
def test_break_closes_the_stream(drive: Callable[[Callable[[], Any]], Any]) -> None:
    producer = Producer()

    def work() -> list[str]:
        for item in iterate(producer.numbers()):
            if item == 2:
                break
        return list(producer.log)  # the generator is gone with the loop

    assert drive(work) == STOPPED


@MODES
def test_an_error_in_the_loop_body_closes_the_stream(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    producer = Producer()

    def work() -> None:
        for item in iterate(producer.numbers()):
            if item == 1:
                raise RuntimeError("consumer failed")

    with pytest.raises(RuntimeError, match="consumer failed"):
        drive(work)
    gc.collect()
    assert producer.log == STOPPED


@MODES
def test_an_iterator_with_aclose_is_closed(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    source = Closable()

    def work() -> list[int]:
        items = iterate(source)
        taken = [next(items), next(items)]
        items.close()  # type: ignore[attr-defined]
        return taken

    assert drive(work) == [1, 2]
    assert source.closed == 1


@MODES
@pytest.mark.parametrize("awaits", [False, True], ids=["at-a-yield", "at-an-await"])
def test_an_error_while_stopping_is_raised_by_close(
    drive: Callable[[Callable[[], Any]], Any], awaits: bool
) -> None:
    async def stubborn() -> AsyncIterator[int]:
        try:
            for i in range(80):
                if awaits:
                    await asyncio.sleep(0)
                yield i
        finally:
            raise OSError("cleanup failed")

    def work() -> None:
        items = iterate(stubborn())
        next(items)
        items.close()  # type: ignore[attr-defined]

    with pytest.raises(OSError, match="cleanup failed"):
        drive(work)


@MODES
def test_an_error_past_the_last_item_taken_is_never_reached(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    # The consumer stops after one item: the stream, which would fail after
    # the second, is closed at its first yield.
    log: list[str] = []

    async def short() -> AsyncIterator[int]:
        try:
            yield 1
            log.append("second")
            yield 2
            raise OSError("after the end")
        finally:
            log.append("finally")

    def work() -> None:
        items = iterate(short())
        assert next(items) == 1
        time.sleep(0.05)
        items.close()  # type: ignore[attr-defined]

    drive(work)
    assert log == ["finally"]


@MODES
def test_closing_before_the_first_item_starts_nothing(
    drive: Callable[[Callable[[], Any]], Any],
) -> None:
    producer = Producer()

    def work() -> None:
        iterate(producer.numbers()).close()  # type: ignore[attr-defined]

    drive(work)
    gc.collect()
    assert producer.produced == 0


class Interrupted(Exception):
    """What a signal handler raises in a consumer blocked in next()."""


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted


async def test_inside_a_loop_an_interrupted_next_stops_the_read_in_flight() -> None:
    # A consumer interrupted (Ctrl-C, say) while it waits for an item: the
    # stream, which is reading that item, is cancelled where it awaits.
    log: list[str] = []
    reading = threading.Event()

    async def waits_forever() -> AsyncIterator[int]:
        try:
            yield 0
            reading.set()
            await asyncio.Event().wait()
            yield 1
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    items = iterate(waits_forever())
    assert next(items) == 0
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            next(items)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert reading.is_set()
    assert log == ["cancelled", "finally"]


def test_started_outside_a_loop_then_resumed_and_closed_inside_one() -> None:
    producer = Producer()
    items = iterate(producer.numbers())
    assert next(items) == 0

    def more() -> list[int]:
        taken = [next(items), next(items)]
        items.close()  # type: ignore[attr-defined]
        return taken

    assert in_a_running_loop(more) == [1, 2]
    assert producer.log == ["closed", "finally"]
    assert len(producer.loops) == 1  # the same private loop throughout
