"""Fault injection: nodes that fail, hang, or misbehave while being cancelled.

Each test compiles a small flow and injects one fault; the flow must fail
the way DESIGN §5 promises (the error the source run would raise, as
itself, with its notes; the calls after it cancelled; nothing left running)
or recover as its options say.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from kiln import VisitLimitError
from tests.test_differential import compiled_and_source


def build(source: str, tmp_path: Path) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(source), tmp_path)
    return compiled


FAILS_K_TIMES = """
from kiln import flow, node

calls: list[int] = []

@node(retries=RETRIES)
async def shaky(x: int) -> int:
    calls.append(x)
    if len(calls) <= 2:
        raise ConnectionError(f"attempt {len(calls)}")
    return x * 10

@flow
async def run(x: int) -> int:
    return await shaky(x)
"""


def test_a_node_failing_twice_succeeds_with_two_retries(tmp_path: Path) -> None:
    compiled = build(FAILS_K_TIMES.replace("RETRIES", "2"), tmp_path)
    assert compiled.run(4) == 40
    assert compiled.calls == [4, 4, 4]


def test_with_one_retry_the_original_error_leaves_with_its_notes(
    tmp_path: Path,
) -> None:
    compiled = build(FAILS_K_TIMES.replace("RETRIES", "1"), tmp_path)
    with pytest.raises(ConnectionError, match="attempt 2") as caught:
        compiled.run(4)
    notes = caught.value.__notes__
    assert any("'shaky'" in n and "2 attempts" in n for n in notes), notes
    assert any("called at" in n for n in notes), notes


def test_an_exception_object_raised_again_is_noted_once(tmp_path: Path) -> None:
    compiled = build(
        """
        from kiln import flow, node

        REFUSED = PermissionError("refused")

        @node(retries=1, retry_on=(ConnectionError,))
        async def guarded(x: int) -> int:
            raise REFUSED

        @flow
        async def run(x: int) -> int:
            return await guarded(x)
        """,
        tmp_path,
    )
    for _ in range(3):
        with pytest.raises(PermissionError):
            compiled.run(1)
    notes = compiled.REFUSED.__notes__
    assert len(notes) == len(set(notes)) == 2, notes


def test_a_hanging_node_times_out_per_attempt(tmp_path: Path) -> None:
    compiled = build(
        """
        import asyncio
        from kiln import flow, node

        @node(timeout=0.05)
        async def hang() -> None:
            await asyncio.sleep(0.5)

        @flow
        async def run() -> None:
            await hang()
        """,
        tmp_path,
    )
    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        compiled.run()
    assert time.perf_counter() - start < 0.3


RAISES_WHILE_CANCELLED = """
import asyncio
from kiln import flow, node

events: list[str] = []

@node
async def stubborn() -> int:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        events.append("stubborn cancelled")
        raise RuntimeError("cleanup failed") from None
    return 1

@node
async def hangs() -> int:
    try:
        await asyncio.sleep(5)
    finally:
        events.append("hangs stopped")
    return 2

@node
async def broken() -> int:
    await asyncio.sleep(0.02)
    raise ValueError("the real failure")

@flow
async def run() -> int:
    c = await broken()
    a = await stubborn()
    b = await hangs()
    return a + b + c
"""


def test_a_failure_wins_over_errors_raised_by_the_calls_it_cancels(
    tmp_path: Path,
) -> None:
    compiled = build(RAISES_WHILE_CANCELLED, tmp_path)

    async def main() -> None:
        start = time.perf_counter()
        with pytest.raises(ValueError, match="the real failure") as caught:
            await compiled.run.aforward()
        assert not isinstance(caught.value, BaseExceptionGroup)
        assert time.perf_counter() - start < 1
        assert {
            t for t in asyncio.all_tasks() if t is not asyncio.current_task()
        } == set()

    asyncio.run(main())
    assert sorted(compiled.events) == ["hangs stopped", "stubborn cancelled"]


def test_a_failing_fallback_raises_its_own_error_with_the_node_note(
    tmp_path: Path,
) -> None:
    compiled = build(
        """
        from kiln import flow, node

        def rescue(x: int, *, error: Exception) -> int:
            raise LookupError(f"no backup for {x} after {type(error).__name__}")

        @node(fallback=rescue)
        async def fetch(x: int) -> int:
            raise KeyError(x)

        @flow
        async def run(x: int) -> int:
            return await fetch(x)
        """,
        tmp_path,
    )
    with pytest.raises(LookupError, match="no backup for 3 after KeyError") as caught:
        compiled.run(3)
    assert any("'fetch'" in note for note in caught.value.__notes__)


FALLBACKS_THAT_FAIL = """
from kiln import flow, node

def rescue(x: int, *, error: Exception) -> int:
    raise LookupError(f"no backup for {x}")

async def rescue_later(x: int, *, error: Exception) -> int:
    raise LookupError(f"no backup for {x}")

def passes_on(x: int, *, error: Exception) -> int:
    raise error

@node(retries=1, fallback=rescue)
async def fetch(x: int) -> int:
    raise ConnectionError(x)

@node(fallback=rescue_later)
async def fetch_later(x: int) -> int:
    raise ConnectionError(x)

@node(retries=1, fallback=rescue)
def load(x: int) -> int:
    raise ConnectionError(x)

@node(thread=True, fallback=rescue)
def read(x: int) -> int:
    raise ConnectionError(x)

@node(fallback=passes_on)
async def declined(x: int) -> int:
    raise ConnectionError(x)

@flow
async def fetch_flow(x: int) -> int:
    return await fetch(x)

@flow
async def fetch_later_flow(x: int) -> int:
    return await fetch_later(x)

@flow
def load_flow(x: int) -> int:
    return load(x)

@flow
async def read_flow(x: int) -> int:
    return read(x)

@flow
async def declined_flow(x: int) -> int:
    return await declined(x)
"""


@pytest.fixture(scope="module")
def failing_fallbacks(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return build(FALLBACKS_THAT_FAIL, tmp_path_factory.mktemp("fallbacks"))


@pytest.mark.parametrize(
    ("node", "fallback"),
    [
        ("fetch", "rescue"),
        ("fetch_later", "rescue_later"),
        ("load", "rescue"),
        ("read", "rescue"),
    ],
)
@pytest.mark.parametrize("observed", [False, True])
def test_a_failing_fallback_s_error_says_the_fallback_raised_it_for_the_node(
    failing_fallbacks: ModuleType, node: str, fallback: str, observed: bool
) -> None:
    flow = getattr(failing_fallbacks, f"{node}_flow")
    if observed:  # the configured run's calls, not the module's plain ones
        flow = type(flow)(record=True)
    with pytest.raises(LookupError, match="no backup for 3") as caught:
        flow(3)
    assert caught.value.__notes__[0] == (
        f"kiln: node {node!r} failed (ConnectionError), and its fallback {fallback!r} "
        "raised this error; the node's error is its __context__"
    )
    # Shown above it, as "During handling of the above exception, another ...".
    assert isinstance(caught.value.__context__, ConnectionError)
    assert caught.value.__cause__ is None


def test_a_fallback_that_raises_the_node_s_error_again_adds_no_note_of_its_own(
    failing_fallbacks: ModuleType,
) -> None:
    with pytest.raises(ConnectionError) as caught:
        failing_fallbacks.declined_flow(3)
    assert not any("fallback" in note for note in caught.value.__notes__)


def test_cancelling_during_the_wait_between_attempts_stops_at_once(
    tmp_path: Path,
) -> None:
    compiled = build(
        """
        from kiln import flow, node

        attempts: list[int] = []

        @node(retries=5, wait=10)
        async def flaky() -> int:
            attempts.append(1)
            raise ConnectionError("down")

        @flow
        async def run() -> int:
            return await flaky()
        """,
        tmp_path,
    )

    async def main() -> None:
        task = asyncio.create_task(compiled.run.aforward())
        await asyncio.sleep(0.05)  # the first attempt failed; the 10 s wait began
        start = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.perf_counter() - start < 0.5

    asyncio.run(main())
    assert compiled.attempts == [1]


def test_a_visit_past_the_bound_names_the_node_the_limit_and_the_line(
    tmp_path: Path,
) -> None:
    compiled = build(
        """
        from kiln import flow, node

        @node(max_visits=3)
        async def step(x: int) -> int:
            return x + 1

        @flow
        async def run(goal: int) -> int:
            x = 0
            while x < goal:
                x = await step(x)
            return x
        """,
        tmp_path,
    )
    assert compiled.run(3) == 3
    with pytest.raises(VisitLimitError) as caught:
        compiled.run(4)
    error = caught.value
    assert (error.node, error.limit) == ("step", 3)
    assert error.where.endswith(
        "generated_flow.py:12"
    )  # the source starts with a blank line


ARGUMENT_FAILS = """
from kiln import flow, node

@node
async def label(text: str) -> str:
    if text.endswith("!"):
        raise ValueError(text)
    return text

@flow
async def run(suffix: object, other: str) -> tuple[str, str]:
    first = await label(other)
    return first, await label("x" + suffix)  # type: ignore[operator]
"""


def test_an_argument_that_fails_before_the_call_names_no_node(tmp_path: Path) -> None:
    """The note names a call that failed, not one whose arguments did."""
    compiled = build(ARGUMENT_FAILS, tmp_path)
    with pytest.raises(TypeError) as caught:
        compiled.run(3, "ok")
    assert not any("kiln:" in n for n in getattr(caught.value, "__notes__", []))
    with pytest.raises(ValueError, match="!") as failed:
        compiled.run("!", "ok")
    assert any("node 'label' failed" in n for n in failed.value.__notes__)
