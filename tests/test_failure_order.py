"""Which error a compiled flow raises, and what cancelling it gives the caller.

The source run, one call at a time, raises the first failing call in source
order; the compiled flow runs the calls concurrently and must raise the same
error, whichever fails first in time: between tasks, between a task and a
step main runs in place, across the steps of a chained task, and among the
elements of a fan-out. A caller who cancels a run gets CancelledError, whatever
the node calls raise while they unwind.
"""

from __future__ import annotations

import _thread
import asyncio
import re
import signal
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kiln import Memory
from kilnc.pipeline import compile_file
from tests.flowgen import flows, plain_run_without_failures
from tests.test_differential import load

RUNS = 5  # the outcome must not depend on how the calls interleave


def build(source: str, tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    """The compiled module and the source module of `source`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "generated_flow.py"
    path.write_text(dedent(source), encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, [d.message for d in compilation.diagnostics]
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    return load(out), load(path)


def failure_of(work: Awaitable[Any]) -> BaseException:
    async def run() -> BaseException:
        try:
            await work
        except Exception as error:
            assert not others(), "nothing the flow started is still running"
            return error
        raise AssertionError("expected the flow to fail")

    return asyncio.run(run())


def others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


NODES = """
import asyncio
from kiln import flow, node

@node
async def fails(tag: str, delay: float) -> str:
    await asyncio.sleep(delay)
    raise ValueError(tag)

@node
async def wait(tag: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return tag

@node
def fails_now(tag: str) -> str:
    raise ValueError(tag)
"""


def test_the_earlier_of_two_independent_calls_wins_though_it_fails_later(
    tmp_path: Path,
) -> None:
    compiled, source = build(
        NODES + """
@flow
async def both() -> str:
    a = await fails("first in source", 0.05)
    b = await fails("second in source", 0.0)
    return a + b
""",
        tmp_path,
    )
    assert str(failure_of(source.both())) == "first in source"
    for _ in range(RUNS):
        caught = failure_of(compiled.both.aforward())
        assert str(caught) == "first in source"
        assert any("'fails'" in note for note in caught.__notes__)  # the note stays
    with pytest.raises(ValueError, match="first in source"):
        compiled.both()  # the sync entry point


def test_a_task_wins_over_main_failing_in_place_while_it_runs(tmp_path: Path) -> None:
    """Main runs `w` and `b` in its own coroutine while `a` runs as a task: main
    fails first, and must wait for `a` to know whether it fails too."""
    compiled, _ = build(
        NODES + """
@flow
async def both() -> str:
    a = await fails("task", 0.05)
    w = await wait("in place", 0.01)
    b = fails_now(w)
    return a + b
""",
        tmp_path,
    )
    for _ in range(RUNS):
        assert str(failure_of(compiled.both.aforward())) == "task"


def test_main_wins_over_a_later_task_that_fails_first(tmp_path: Path) -> None:
    compiled, _ = build(
        NODES + """
@flow
async def both() -> str:
    a = await wait("a", 0.0)
    b = await fails("main, in place", 0.05)
    c = await fails("a later task", 0.0)
    return a + b + c
""",
        tmp_path,
    )
    for _ in range(RUNS):
        assert str(failure_of(compiled.both.aforward())) == "main, in place"


def test_a_chained_task_is_weighed_at_the_step_it_is_at(tmp_path: Path) -> None:
    """The chain `a -> c` is one task; `b`, between its steps in source order,
    fails later in time than `c` and still wins."""
    compiled, source = build(
        NODES + """
@flow
async def chains() -> str:
    a = await wait("a", 0.0)
    b = await fails("b, between the chain's steps", 0.05)
    c = await fails("c, the chain's second step", 0.0)
    d = await wait(b, 0.0)
    return c + d
""",
        tmp_path,
    )
    expected = str(failure_of(source.chains()))
    assert expected == "b, between the chain's steps"
    for _ in range(RUNS):
        assert str(failure_of(compiled.chains.aforward())) == expected


def test_main_runs_its_own_steps_in_source_order(tmp_path: Path) -> None:
    """`parse` waits for `fetch`; `other` needs nothing. Run in place ahead of
    `parse`, `other` would fail first and `parse`'s error would never be raised."""
    compiled, source = build(
        NODES + """
@flow
async def ahead() -> tuple[str, str, str]:
    page = await wait("page", 0.05)
    n = fails_now(page)
    o = await fails("other", 0.0)
    return n, o, page
""",
        tmp_path,
    )
    assert str(failure_of(source.ahead())) == "page"
    for _ in range(RUNS):
        assert str(failure_of(compiled.ahead.aforward())) == "page"


def test_a_chain_is_not_held_back_past_a_later_step_of_main(tmp_path: Path) -> None:
    """`n3` needs the loop's `v2`: the chain `v1 = n1(x)` -> `n3(v1, v2)` as one
    task would start after the loop, and the loop's failure would win."""
    compiled, source = build(
        NODES + """
@flow
async def late() -> str:
    v1 = fails_now("first in source")
    v2 = "x"
    for k in range(1):
        v2 = fails_now("in the loop")
    return await wait(v1 + v2, 0.0)
""",
        tmp_path,
    )
    assert str(failure_of(source.late())) == "first in source"
    for _ in range(RUNS):
        assert str(failure_of(compiled.late.aforward())) == "first in source"


EARLY_NODES = """
@node
async def pair(a: str, b: str) -> tuple[str, str]:
    await asyncio.sleep(0)
    return a, b

@node
def same(*values: str) -> str:
    return "".join(values)

@node
async def lines(n: int) -> AsyncIterator[str]:
    for i in range(n):
        await asyncio.sleep(0)
        yield str(i)
"""


@pytest.mark.parametrize(
    "body",
    [
        # `one`'s task waits for `pair`'s: its spawn was put off until main
        # awaited that, past `five`, which main ran while nothing held it.
        """
    a, b = await pair(x, x)
    a = same(a, b)
    one = await wait(a, 0.0)
    two = same(x)
    three = same(x)
    four = fails_now(one)
    five = fails_now("other")
    six = same(x)
    if len(a) % 2 == 0:
        eight = same(x)
    else:
        eight = x
    return two + three + four + five + six + eight
""",
        # `pair`'s task, run in place once no other task was left, left main
        # running `five` ahead of `four`, which had waited for it.
        """
    a, b = await pair(x, x)
    a = same(a, b)
    one = same(x)
    two = same(x)
    four = fails_now(a)
    five = fails_now("other")
    six = same(x)
    if len(a) % 2 == 0:
        eight = await wait(five, 0.0)
    else:
        eight = five
    return one + two + four + six + eight
""",
        # `one`, run ahead to start the task that copies it, failed: the copy
        # of the name it left unbound raised in main, before `lines`' turn.
        """
    c = await wait(x, 0.0)
    d = c + c
    joined = same(*[same(d, k) async for k in lines(len(x) % 4)])
    one = fails_now("first in source")
    two = same(x)
    three = same(x)
    four, one = await pair(one, two)
    four = same(four, one)
    return joined + three + four
""",
    ],
)
def test_a_step_main_runs_early_never_raises_before_an_earlier_one(
    body: str, tmp_path: Path
) -> None:
    """Found by `test_random_flows_raise_what_their_source_raises`: the source
    raises the first failing call in source order, and so must the compiled
    flow, however main orders the calls that need no waiting."""
    source = NODES + "from collections.abc import AsyncIterator\n" + EARLY_NODES
    compiled, reference = build(
        source + "\n@flow\nasync def early(x: str) -> str:" + body, tmp_path
    )
    expected = str(failure_of(reference.early("ab")))
    for _ in range(RUNS):
        assert str(failure_of(compiled.early.aforward("ab"))) == expected


def test_later_calls_are_cancelled_at_once_and_earlier_ones_awaited(
    tmp_path: Path,
) -> None:
    compiled, _ = build(
        NODES + """
events: list[str] = []

@node
async def slow(tag: str) -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        events.append(f"cancelled {tag}")
        raise
    return tag

@flow
async def mixed() -> str:
    a = await wait("earlier", 0.1)
    b = await fails("the failure", 0.01)
    c = await slow("later")
    return a + b + c
""",
        tmp_path,
    )
    start = time.perf_counter()
    assert str(failure_of(compiled.mixed.aforward())) == "the failure"
    elapsed = time.perf_counter() - start
    assert 0.09 < elapsed < 2  # waited for `earlier`, not for `later`'s 5 s
    assert compiled.events == ["cancelled later"]


@pytest.mark.parametrize(
    "fan_out",
    [
        "[await fails(f'element {i}', 0.05 - 0.01 * i) for i in range(4)]",
        "{i: await fails(f'element {i}', 0.05 - 0.01 * i) for i in range(4)}",
        "[await fails(await wait(f'element {i}', 0.0), 0.05 - 0.01 * i) for i in range(4)]",
        "[await fails(f'element {i}', 0.05 - 0.01 * i) async for i in numbers(4)]",
    ],
    ids=["list", "dict", "element_of_two_calls", "async_for"],
)
def test_a_fan_out_raises_its_lowest_failing_element(
    fan_out: str, tmp_path: Path
) -> None:
    compiled, source = build(
        NODES + f"""
from collections.abc import AsyncIterator

@node
async def numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i

@flow
async def many() -> object:
    return {fan_out}
""",
        tmp_path,
    )
    assert str(failure_of(source.many())) == "element 0"
    for _ in range(RUNS):
        assert str(failure_of(compiled.many.aforward())) == "element 0"


@pytest.mark.parametrize(
    "element",
    [
        "await fails(await wait(f'element {i}', 0.0), 0.01)",
        "await fails(f'element {i}', 0.01)",
    ],
    ids=["two_calls", "one_call"],
)
def test_a_fan_out_element_wins_over_a_later_clause_that_raises(
    element: str, tmp_path: Path
) -> None:
    """The `if` clause breaks at item 2; the source ran element 0 first."""
    compiled, source = build(
        NODES + f"""
def keep(i: int) -> bool:
    if i == 2:
        raise KeyError("the clause")
    return True

@flow
async def many() -> list[str]:
    return [{element} for i in range(4) if keep(i)]
""",
        tmp_path,
    )
    assert str(failure_of(source.many())) == "element 0"
    for _ in range(RUNS):
        assert str(failure_of(compiled.many.aforward())) == "element 0"


# --- cancellation ------------------------------------------------------------------


CANCELLED = NODES + """
events: list[str] = []

@node
async def cleans_up(how: str) -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # cleanup that takes time
        events.append(f"{how} cleaned up")
        if how == "raises":
            raise RuntimeError("raised while cleaning up") from None
        if how == "swallows":
            return "swallowed"
        raise
    return how

@flow
async def run(how: str) -> str:
    a = await fails("fails 50 ms in", 0.05)
    b = await cleans_up(how)
    return a + b
"""


@pytest.mark.parametrize("how", ["re-raises", "raises", "swallows"])
def test_cancelling_a_run_gives_cancelled_error_whatever_siblings_raise(
    how: str, tmp_path: Path
) -> None:
    compiled, _ = build(CANCELLED, tmp_path)

    async def main() -> None:
        task = asyncio.create_task(compiled.run.aforward(how))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not others()

    asyncio.run(main())
    assert compiled.events == [f"{how} cleaned up"]


def test_ctrl_c_in_the_sync_entry_point_is_a_keyboard_interrupt(tmp_path: Path) -> None:
    """asyncio.run cancels the flow on Ctrl-C and raises KeyboardInterrupt if
    it ends cancelled; the cleanup's own error must not take its place."""
    compiled, _ = build(CANCELLED, tmp_path)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    timer = threading.Timer(0.01, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            compiled.run("raises")
    finally:
        timer.cancel()
    assert compiled.events == ["raises cleaned up"]


def test_cancelling_the_consumer_of_a_streaming_flow_gives_cancelled_error(
    tmp_path: Path,
) -> None:
    compiled, _ = build(
        CANCELLED + """
from collections.abc import AsyncIterator

@flow
async def produce() -> AsyncIterator[str]:
    yield "first"
    a = await fails("fails 50 ms in", 0.05)
    b = await cleans_up("raises")
    yield a + b
""",
        tmp_path,
    )

    async def consume() -> list[str]:
        return [item async for item in compiled.produce.astream()]

    async def main() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not others()

    asyncio.run(main())
    assert compiled.events == ["raises cleaned up"]


def test_cancelling_a_loop_over_a_stream_that_fails_to_close_gives_cancelled_error(
    tmp_path: Path,
) -> None:
    compiled, _ = build(
        NODES + """
from collections.abc import AsyncIterator

@node
async def tokens(n: int) -> AsyncIterator[int]:
    try:
        for i in range(n):
            yield i
    finally:
        raise RuntimeError("the stream failed to clean up")

@flow
async def loop(n: int) -> str:
    total = ""
    async for t in tokens(n):
        total += await wait(str(t), 5)
    return total
""",
        tmp_path,
    )
    reported: list[object] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: reported.append(context["exception"])
        )
        task = asyncio.create_task(compiled.loop.aforward(3))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not others()

    asyncio.run(main())
    assert [str(error) for error in reported] == ["the stream failed to clean up"]


# --- the property: random flows with calls that fail --------------------------------


@settings(max_examples=20, deadline=None)
@given(source=flows(broken=True), x=st.integers(min_value=-50, max_value=50))
def test_random_flows_raise_what_their_source_raises(
    source: str, x: int, tmp_path_factory: Any
) -> None:
    compiled, reference = build(source, tmp_path_factory.mktemp("flow"))
    expected = outcome(
        plain_run_without_failures(reference).main(x, Memory({"log": []}))
    )
    event("the source raised" if isinstance(expected, str) else "the source returned")
    assert outcome(compiled.main.aforward(x, Memory({"log": []}))) == expected


@settings(max_examples=25, deadline=None)
@given(source=flows(broken=True), x=st.integers(min_value=-50, max_value=50))
def test_random_flows_note_the_calls_their_source_failed_in(
    source: str, x: int, tmp_path_factory: Any
) -> None:
    """A failure names each flow call it left, at the line the source run left it.

    The source run's traceback holds, for each flow it left, a frame at the
    line of the call that failed (a subflow's call, then the subflow's own);
    the compiled run's notes name the same lines: the one handler of each
    flow's body finds them from its tables of lines (`kiln.notes`).
    """
    compiled, reference = build(source, tmp_path_factory.mktemp("flow"))
    left = failure_or_none(
        plain_run_without_failures(reference).main(x, Memory({"log": []}))
    )
    event("the source raised" if left is not None else "the source returned")
    if left is None:
        return
    error = failure_or_none(compiled.main.aforward(x, Memory({"log": []})))
    assert error is not None
    called = [
        int(match[2])
        for note in getattr(error, "__notes__", [])
        if (match := NOTE.fullmatch(note)) is not None
    ]
    assert called == flow_lines(left, reference), getattr(error, "__notes__", [])


CACHED_TWICE = """
import asyncio
from kiln import flow, node

@node(cache=True)
async def q(key: str) -> int:
    await asyncio.sleep(0.02)
    raise ValueError(f"no {key}")

@flow
async def main(k: str) -> int:
    a = await q(k)
    b = await q(k)
    c = await q(k)
    return a + b + c
"""


def test_identical_cached_calls_note_the_call_their_source_failed_in(
    tmp_path: Path,
) -> None:
    # Single flight hands one computation's error, the same object, to the
    # identical calls waiting for it; whichever of them computed, the note
    # names the first call, where the source fails.
    compiled, reference = build(CACHED_TWICE, tmp_path)
    left = failure_or_none(reference.main("z"))
    assert left is not None
    for run in range(RUNS):
        flow = type(compiled.main)(ledger=tmp_path / f"l{run}.db")
        error = failure_or_none(flow.aforward("z"))
        assert type(error) is ValueError
        called = [
            int(match[2])
            for note in getattr(error, "__notes__", [])
            if (match := NOTE.fullmatch(note)) is not None
        ]
        assert called == flow_lines(left, reference), error.__notes__


NOTE = re.compile(
    r"kiln: (?:node|flow) '\w+' failed; defined at \S+:\d+, called at (\S+):(\d+)"
)


def failure_or_none(run: Awaitable[Any]) -> Exception | None:
    async def main() -> Exception | None:
        try:
            await run
        except Exception as error:
            return error
        return None

    return asyncio.run(main())


def flow_lines(error: BaseException, module: ModuleType) -> list[int]:
    """The line each flow of `module` was at when `error` left it, innermost first."""
    flows = {"main", "sub"}
    lines: list[int] = []
    entry = error.__traceback__
    while entry is not None:
        code = entry.tb_frame.f_code
        if (
            code.co_filename == module.__file__
            and code.co_qualname.split(".")[0] in flows
        ):
            if code.co_name in flows:  # a flow's own frame: a run of it
                lines.append(entry.tb_lineno)
            else:  # a comprehension of the flow's, on the line of its statement
                lines[-1] = entry.tb_lineno
        entry = entry.tb_next
    return lines[::-1]


def outcome(run: Awaitable[Any]) -> object:
    """The flow's result, or the error it raised (a `Broken` call's, naming it)."""

    async def main() -> object:
        try:
            return await run
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        finally:
            assert not others()

    return asyncio.run(main())
