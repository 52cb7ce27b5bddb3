"""A fan-out over a generator: the code that draws the next item runs between elements.

Run as plain Python, `[await show(b) for b in batches(rows)]` finishes each
element before the generator runs on to its next `yield`. Compiled, the
elements run at once, each started as its item is drawn: so what drawing an
item does (the generator's body up to the next `yield`, a stream node's, a
clause's test) happens while the elements before it still run. Where that
changes what they use, kiln saw nothing (trials Q1 and Q4): a batching
generator that clears the one buffer it yields gave `[9, 9, 9, 9]` for
`[3, 12, 21, 9]`; a stream node writing a Memory key before each `yield` gave
every element the last key.

Now the effects of drawing are read against the elements': a generator that
changes an object after yielding it (`effects/yielded.py`), or drawing that
changes what an element uses (a name it reads, a Memory key, module state),
keeps the elements one after another, with KLN311 saying why: a change
through another name for it counts (`yield POOL[0]` after `POOL[0].text =
...`, `held = [box]; held[0].value = i`, trial Q5), and so does a change of an
object the yielded one was made with (`yield Chunk(i, buf)`, then
`buf.clear()`) or may be part of (`full = ch.feed(t)`, then `ch.reset()`,
trial Q8). Drawing that
changes nothing the elements use, and a generator that yields a new object
each time, leave them concurrent.

Each case runs its source and its compiled flow in fresh interpreters and
compares the results (tests/test_state_reach_order.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
    compile_and_run,
)

ORDERED = {
    "a_batching_generator_clears_the_buffer_it_yielded": """
        from collections.abc import Iterator

        def batches(rows: list[int], size: int) -> Iterator[list[int]]:
            buffer: list[int] = []
            for row in rows:
                buffer.append(row)
                if len(buffer) == size:
                    yield buffer
                    buffer.clear()
            if buffer:
                yield buffer

        @node
        async def total(batch: list[int]) -> int:
            await asyncio.sleep(0.01)
            return sum(batch)

        @flow
        async def main() -> list[int]:
            return [await total(b) for b in batches(list(range(10)), 3)]
    """,
    "a_sliding_window_grows_the_list_it_yielded": """
        from collections.abc import Iterator

        def windows(xs: list[str]) -> Iterator[list[str]]:
            window: list[str] = []
            for x in xs:
                window.append(x)
                yield window

        @node
        async def render(window: list[str]) -> str:
            await asyncio.sleep(0.01)
            return ",".join(window)

        @flow
        async def main() -> list[str]:
            return [await render(w) for w in windows(["a", "b", "c"])]
    """,
    "a_stream_node_yields_the_state_it_goes_on_changing": """
        from collections.abc import AsyncIterator
        from typing import Any

        @node
        async def values(n: int) -> AsyncIterator[dict[str, Any]]:
            state: dict[str, Any] = {"step": 0, "messages": []}
            for i in range(n):
                await asyncio.sleep(0.001)
                state["step"] = i
                state["messages"].append(f"m{i}")
                yield state

        @node
        async def render(state: dict[str, Any]) -> str:
            await asyncio.sleep(0.01)
            return f"{state['step']}:{len(state['messages'])}"

        @flow
        async def main() -> list[str]:
            return [await render(s) async for s in values(3)]
    """,
    "a_stream_node_writes_a_memory_key_before_each_yield": """
        from collections.abc import AsyncIterator

        from kiln import Memory

        @node
        async def pages(memory: Memory, n: int) -> AsyncIterator[int]:
            for i in range(n):
                memory.cursor = i
                yield i

        @node
        async def handle(memory: Memory, page: int) -> str:
            await asyncio.sleep(0.01)
            return f"{page}:{memory.cursor}"

        @flow
        async def main() -> list[str]:
            memory = Memory()
            return [await handle(memory, p) async for p in pages(memory, 3)]
    """,
    "a_generator_writes_the_dict_the_elements_read": """
        from collections.abc import Iterator

        def walk(state: dict[str, int], n: int) -> Iterator[int]:
            for i in range(n):
                state["cursor"] = i
                yield i

        @node
        async def handle(state: dict[str, int], i: int) -> str:
            await asyncio.sleep(0.01)
            return f"{i}:{state['cursor']}"

        @flow
        async def main() -> list[str]:
            state: dict[str, int] = {}
            return [await handle(state, i) for i in walk(state, 3)]
    """,
    "a_generator_counts_in_module_state_the_elements_read": """
        from collections.abc import Iterator

        CURRENT = {"i": -1}

        def ticking(xs: list[str]) -> Iterator[str]:
            for x in xs:
                CURRENT["i"] += 1
                yield x

        @node
        async def stamp(x: str) -> str:
            await asyncio.sleep(0.01)
            return f"{x}@{CURRENT['i']}"

        @flow
        async def main() -> list[str]:
            return [await stamp(x) for x in ticking(["a", "b", "c"])]
    """,
    "a_streaming_subflow_writes_what_the_elements_read": """
        from collections.abc import AsyncIterator

        from kiln import Memory

        @node
        async def write_counter(m: Memory, v: int) -> None:
            await asyncio.sleep(0.001)
            m.counter = v

        @node
        async def read_counter(m: Memory) -> int:
            await asyncio.sleep(0.01)
            return int(m.counter)

        @flow
        async def emit(m: Memory, n: int) -> AsyncIterator[int]:
            for i in range(n):
                await write_counter(m, 100 + i)
                yield i

        @flow
        async def main() -> list[int]:
            memory = Memory()
            return [await read_counter(memory) async for _ in emit(memory, 3)]
    """,
    "a_stream_node_refills_a_module_buffer_it_yields_an_item_of": """
        from collections.abc import AsyncIterator
        from dataclasses import dataclass

        @dataclass
        class Tok:
            text: str = ""

        POOL = [Tok()]

        @node
        async def tokens(n: int) -> AsyncIterator[Tok]:
            for i in range(n):
                await asyncio.sleep(0.001)
                POOL[0].text = f"w{i}"
                yield POOL[0]

        @node
        async def slow_read(t: Tok) -> str:
            await asyncio.sleep(0.01)
            return t.text

        @flow
        async def main() -> list[str]:
            return [await slow_read(t) async for t in tokens(3)]
    """,
    "a_generator_changes_what_it_yielded_through_a_list_holding_it": """
        from collections.abc import Iterator

        class Box:
            def __init__(self) -> None:
                self.value = 0

        def boxes(n: int) -> Iterator[Box]:
            box = Box()
            for i in range(n):
                held = [box]
                held[0].value = i
                yield box

        @node
        async def show(b: Box) -> int:
            await asyncio.sleep(0.01)
            return b.value

        @flow
        async def main() -> list[int]:
            return [await show(b) for b in boxes(3)]
    """,
    "a_generator_yields_an_object_holding_the_buffer_it_clears": """
        from collections.abc import Iterator
        from dataclasses import dataclass

        @dataclass
        class Chunk:
            index: int
            tokens: list[str]

        def batches(tokens: list[str], size: int) -> Iterator[Chunk]:
            buf: list[str] = []
            for t in tokens:
                buf.append(t)
                if len(buf) == size:
                    yield Chunk(len(t), buf)
                    buf.clear()
            if buf:
                yield Chunk(0, buf)

        @node
        async def summarize(c: Chunk) -> str:
            await asyncio.sleep(0.01)
            return "".join(c.tokens)

        @flow
        async def main() -> list[str]:
            return [await summarize(c) for c in batches(list("abcdefgh"), 3)]
    """,
    "a_generator_yields_what_a_helper_s_method_hands_out_then_resets": """
        from collections.abc import Iterator

        class Chunker:
            def __init__(self) -> None:
                self.buf: list[str] = []

            def feed(self, t: str, size: int) -> list[str] | None:
                self.buf.append(t)
                return self.buf if len(self.buf) == size else None

            def reset(self) -> None:
                self.buf.clear()

        def batches(text: str, size: int) -> Iterator[list[str]]:
            ch = Chunker()
            for t in text:
                full = ch.feed(t, size)
                if full is not None:
                    yield full
                    ch.reset()
            if ch.buf:
                yield ch.buf

        @node
        async def summarize(c: list[str]) -> str:
            await asyncio.sleep(0.01)
            return "".join(c)

        @flow
        async def main() -> list[str]:
            return [await summarize(c) for c in batches("abcdefg", 3)]
    """,
    "a_clause_s_test_changes_what_the_elements_read": """
        def advance(state: dict[str, int], x: int) -> bool:
            state["seen"] = x
            return True

        @node
        async def handle(state: dict[str, int], x: int) -> str:
            await asyncio.sleep(0.01)
            return f"{x}:{state['seen']}"

        @flow
        async def main() -> list[str]:
            state: dict[str, int] = {}
            return [await handle(state, x) for x in [1, 2, 3] if advance(state, x)]
    """,
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_drawing_that_changes_what_elements_use_keeps_them_in_order(
    case: str, tmp_path: Path
) -> None:
    warnings = assert_kept_in_order(tmp_path, ORDERED[case], case)
    assert all("fan-out run one after another" in w for w in warnings), warnings


def test_the_warning_names_the_change_of_the_yielded_object(tmp_path: Path) -> None:
    _, [message] = compile_and_run(
        tmp_path, ORDERED["a_batching_generator_clears_the_buffer_it_yielded"]
    )
    assert "the generator it iterates changes what it yielded (buffer.clear())" in (
        message
    )


OVERLAPPING = {
    "a_batching_generator_yields_a_new_list_each_time": """
        from collections.abc import Iterator

        def batches(rows: list[int], size: int) -> Iterator[list[int]]:
            buffer: list[int] = []
            for row in rows:
                buffer.append(row)
                if len(buffer) == size:
                    yield buffer
                    buffer = []
            if buffer:
                yield buffer

        @node
        async def total(batch: list[int]) -> int:
            EVENTS.append(f"start {batch[0]}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {batch[0]}")
            return sum(batch)

        @flow
        async def main() -> list[int]:
            return [await total(b) for b in batches([1, 2, 3, 4], 2)]
    """,
    "a_generator_yields_items_of_a_list_it_never_changes": """
        from collections.abc import Iterator

        ROWS = [[1, 2], [3, 4]]

        def rows() -> Iterator[list[int]]:
            for i in range(len(ROWS)):
                yield ROWS[i]

        @node
        async def total(row: list[int]) -> int:
            EVENTS.append(f"start {row[0]}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {row[0]}")
            return sum(row)

        @flow
        async def main() -> list[int]:
            return [await total(r) for r in rows()]
    """,
    "a_generator_yields_an_object_made_from_a_copy": """
        from collections.abc import Iterator
        from dataclasses import dataclass

        @dataclass
        class Chunk:
            tokens: list[int]

        def batches(rows: list[int]) -> Iterator[Chunk]:
            buf: list[int] = []
            for row in rows:
                buf.append(row)
                if len(buf) == 2:
                    yield Chunk(list(buf))
                    buf.clear()

        @node
        async def total(c: Chunk) -> int:
            EVENTS.append(f"start {c.tokens[0]}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {c.tokens[0]}")
            return sum(c.tokens)

        @flow
        async def main() -> list[int]:
            return [await total(c) for c in batches([1, 2, 3, 4])]
    """,
    "a_clause_changes_what_no_element_uses": """
        @node
        async def handle(x: int) -> int:
            EVENTS.append(f"start {x}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {x}")
            return x

        @flow
        async def main() -> list[int]:
            seen: set[int] = set()
            xs = [1, 1, 2, 3]
            return [await handle(x) for x in xs if x not in seen and not seen.add(x)]
    """,
}


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_drawing_that_changes_nothing_the_elements_use_overlaps(
    case: str, tmp_path: Path
) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])
