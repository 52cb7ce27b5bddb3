"""What a compiled flow guarantees at run time: overlap, order, and failure.

Each test compiles a small flow and checks one promise of DESIGN §5 through
its observable effects: independent waits overlap, Memory steps keep their
order, the original exception leaves with a note and no ExceptionGroup,
siblings are cancelled, nothing is left running, cancellation reaches every
node call. Timing checks use generous margins; order checks use events.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from kiln import Memory
from tests.goldens import DATA, load_cases
from tests.test_differential import compiled_and_source


def build(source: str, tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(dedent(source), tmp_path)


def test_independent_waits_overlap(tmp_path: Path) -> None:
    compiled, _ = build(
        """
        import asyncio
        from kiln import flow, node

        @node
        async def wait(seconds: float) -> float:
            await asyncio.sleep(seconds)
            return seconds

        @flow
        async def both() -> float:
            a = await wait(0.2)
            b = await wait(0.2)
            return a + b
        """,
        tmp_path,
    )
    start = time.perf_counter()
    assert compiled.both() == pytest.approx(0.4)
    assert time.perf_counter() - start < 0.35  # one wait, not two


def test_fan_out_runs_every_element_at_once(tmp_path: Path) -> None:
    compiled, _ = build(
        """
        import asyncio
        from kiln import flow, node

        @node
        async def wait(index: int) -> int:
            await asyncio.sleep(0.1)
            return index

        @flow
        async def many(n: int) -> list[int]:
            return [await wait(i) for i in range(n)]
        """,
        tmp_path,
    )
    start = time.perf_counter()
    assert compiled.many(50) == list(range(50))
    assert time.perf_counter() - start < 0.6


def test_memory_steps_keep_source_order(tmp_path: Path) -> None:
    compiled, source = build(
        """
        import asyncio
        from kiln import Memory, flow, node

        @node
        async def log(memory: Memory, entry: str, delay: float) -> None:
            await asyncio.sleep(delay)
            memory.log = [*memory.log, entry]

        @flow
        async def ordered(memory: Memory) -> list[str]:
            await log(memory, "first", 0.05)
            await log(memory, "second", 0.0)
            await log(memory, "third", 0.02)
            return list(memory.log)
        """,
        tmp_path,
    )
    expected = asyncio.run(source.ordered(Memory({"log": []})))
    assert expected == ["first", "second", "third"]
    assert compiled.ordered(Memory({"log": []})) == expected


def test_clones_run_concurrently_and_share_global(tmp_path: Path) -> None:
    compiled, _ = build(
        """
        import asyncio
        from kiln import Memory, flow, node

        @node
        async def left_branch(memory: Memory) -> str:
            await asyncio.sleep(0.2)
            memory.left = True
            return str(memory.side)

        @node
        async def right_branch(memory: Memory) -> str:
            await asyncio.sleep(0.2)
            memory.right = True
            return str(memory.side)

        @flow
        async def fork(memory: Memory) -> list[str]:
            left = await left_branch(memory.clone({"side": "left"}))
            right = await right_branch(memory.clone({"side": "right"}))
            return [left, right]
        """,
        tmp_path,
    )
    store: dict[str, object] = {}
    start = time.perf_counter()
    assert compiled.fork(Memory(store)) == ["left", "right"]
    assert time.perf_counter() - start < 0.35
    assert store == {"left": True, "right": True}


FAILING = """
import asyncio
from kiln import flow, node

events: list[str] = []

@node
async def slow(tag: str) -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        events.append(f"cancelled {tag}")
        raise
    return tag

@node
async def broken(tag: str) -> str:
    await asyncio.sleep(0.01)
    raise ValueError(f"bad {tag}")

# The failing call comes first in source order: the calls after it are
# cancelled at once (a call before it would be awaited, to know whether it
# fails too: its error would be the one the source raises).
@flow
async def failing() -> list[str]:
    b = await broken("b")
    a = await slow("a")
    c = await slow("c")
    return [a, b, c]
"""


def test_failure_is_the_original_exception_with_a_note(tmp_path: Path) -> None:
    compiled, _ = build(FAILING, tmp_path)
    with pytest.raises(ValueError, match="bad b") as caught:
        compiled.failing()
    assert not isinstance(caught.value, BaseExceptionGroup)
    notes = getattr(caught.value, "__notes__", [])
    assert any(
        "'broken'" in note and "generated_flow.py:" in note for note in notes
    ), notes


def test_failure_cancels_siblings_and_leaves_nothing_running(tmp_path: Path) -> None:
    compiled, _ = build(FAILING, tmp_path)

    async def run() -> set[asyncio.Task[object]]:
        start = time.perf_counter()
        with pytest.raises(ValueError, match="bad b"):
            await compiled.failing.aforward()
        assert time.perf_counter() - start < 1  # nobody waited for the 5 s sleeps
        return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}

    assert asyncio.run(run()) == set()
    assert sorted(compiled.events) == ["cancelled a", "cancelled c"]


def test_cancelling_the_caller_cancels_every_node_call(tmp_path: Path) -> None:
    compiled, _ = build(FAILING.replace('broken("b")', 'slow("b")'), tmp_path)

    async def run() -> None:
        task = asyncio.create_task(compiled.failing.aforward())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert {
            t for t in asyncio.all_tasks() if t is not asyncio.current_task()
        } == set()

    asyncio.run(run())
    assert sorted(compiled.events) == ["cancelled a", "cancelled b", "cancelled c"]


def test_sync_entry_point_works_inside_a_running_loop(tmp_path: Path) -> None:
    compiled, _ = build(
        """
        from kiln import flow, node

        @node
        async def inc(x: int) -> int:
            return x + 1

        @flow
        async def plus_one(x: int) -> int:
            return await inc(x)
        """,
        tmp_path,
    )

    async def inside_a_loop() -> int:
        result: int = compiled.plus_one(1)  # a notebook cell, an async web handler
        return result

    assert asyncio.run(inside_a_loop()) == 2
    assert compiled.plus_one.forward(2) == 3


def test_a_flow_using_every_construct_equals_its_source(tmp_path: Path) -> None:
    case = next(
        c for c in load_cases(DATA / "language.test") if c.name == "everything_together"
    )
    compiled, source = compiled_and_source(case.source, tmp_path)
    store: dict[str, object] = {}
    expected = asyncio.run(source.tricky([1, 2], Memory({})))
    assert compiled.tricky([1, 2], Memory(store)) == expected
    assert store == {"c": 5, "d": 8}


def test_chains_that_rebind_their_inputs_overlap(tmp_path: Path) -> None:
    case = next(
        c
        for c in load_cases(DATA / "scheduling.test")
        if c.name == "chains_that_rebind_their_inputs"
    )
    compiled, source = compiled_and_source(case.source, tmp_path)
    expected = asyncio.run(
        source.polish("ab", "cde")
    )  # 0.4 s: four 0.1 s calls in turn
    start = time.perf_counter()
    assert compiled.polish("ab", "cde") == expected == (3, 4)
    assert (
        time.perf_counter() - start < 0.35
    )  # two chains of two 0.1 s calls, side by side


def test_names_a_nested_block_writes_reach_the_code_after_it(tmp_path: Path) -> None:
    compiled, source = build(
        """
        import asyncio
        from kiln import flow, node

        @node
        async def f(x: int) -> int:
            await asyncio.sleep(0)
            return x + 1

        @node
        async def g(x: int) -> int:
            return x * 10

        @flow
        async def arms(x: int) -> tuple[int, int]:
            a = 0
            b = 0
            if x > 0:
                a = await f(x)
                b = await g(a)
            for _ in range(2):
                a = await f(a)
                b = await g(b)
            return a, b
        """,
        tmp_path,
    )
    assert compiled.arms(3) == asyncio.run(source.arms(3)) == (6, 4000)


def test_a_while_loop_that_calls_no_node_reads_what_its_body_binds(
    tmp_path: Path,
) -> None:
    """Kept whole, the loop's lines read what lines above them (or an earlier
    iteration) bound; as a call of an unread module's function makes it."""
    compiled, source = build(
        """
        from kiln import flow, node

        async def fetch(u: str) -> str:
            return u.upper()

        @node
        def count(pages: list[str]) -> int:
            return len(pages)

        @flow
        async def crawl(frontier: list[str]) -> int:
            pages: list[str] = []
            while frontier:
                if pages:
                    assert last
                got = [await fetch(u) for u in frontier]
                pages.extend(got)
                last = got[-1]
                frontier = frontier[1:]
            else:
                pages.append(last)
            return count(pages)
        """,
        tmp_path,
    )
    assert compiled.crawl(["a", "b"]) == asyncio.run(source.crawl(["a", "b"])) == 4


def test_a_fan_out_nested_in_a_fan_outs_element_equals_its_source(
    tmp_path: Path,
) -> None:
    compiled, source = build(
        """
        import asyncio
        from kiln import flow, node

        @node
        def inc(x: int) -> int:
            return x + 1

        @node
        async def ainc(x: int) -> int:
            await asyncio.sleep(0)
            return x + 1

        @flow
        def nested_sync(x: int) -> list[int]:
            return [inc(sum([inc(w) for w in range(v)])) for v in range(x)]

        @flow
        async def nested_async(x: int) -> list[int]:
            return [await ainc(sum([await ainc(w) for w in range(v)])) for v in range(x)]
        """,
        tmp_path,
    )
    assert compiled.nested_sync(4) == source.nested_sync(4) == [1, 2, 4, 7]
    assert (
        compiled.nested_async(4) == asyncio.run(source.nested_async(4)) == [1, 2, 4, 7]
    )
