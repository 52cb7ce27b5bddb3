"""What a generator does runs where it is drawn from, through any code that makes it.

Two silent wrong results of trial Q10:

- The batching idiom that clears one buffer after yielding it was seen in the
  node's own body only. Delegated to a project helper (`yield from
  chunks(rows, 3)`, a method's generator, `for b in chunks(...): yield b`), a
  node returning the helper's generator, or a generator held by a name of the
  flow (`it = chunks(rows, 3)`, `g = (b for b in it)`), the fan-out's
  elements overlapped and all saw the last batch: `[13, 13, 13]` for
  `[3, 12, 13]`.
- A stream node's uses of module state were charged to the call that makes
  the generator, which runs none of its body: `consume(read_lines(n))`
  draws every line, appending to `AUDIT`, and a later `audit_size()` read
  `len(AUDIT)` beside it: `[4, 0]` for `[4, 4]`. The step that reads the
  generator (a node given it, a fan-out or loop over it) now uses module
  state as the generator's body does, for a stream node, a node returning
  an iterator, a project generator the flow calls, and a generator
  expression of the flow's.

Each case runs its source and its compiled flow in fresh interpreters and
compares the results (tests/test_state_reach_order.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import assert_overlapped, compile_and_run

CHUNKS = """
        import time
        from collections.abc import Iterable, Iterator

        def chunks(rows: list[int], size: int) -> Iterator[list[int]]:
            buf: list[int] = []
            for r in rows:
                buf.append(r)
                if len(buf) == size:
                    yield buf
                    buf.clear()  # the next batch reuses the list
            if buf:
                yield buf

        class Chunker:
            def __init__(self, size: int) -> None:
                self.size = size
                self.buf: list[int] = []

            def chunks(self, rows: list[int]) -> Iterator[list[int]]:
                for r in rows:
                    self.buf.append(r)
                    if len(self.buf) == self.size:
                        yield self.buf
                        self.buf.clear()
                if self.buf:
                    yield self.buf

        @node(thread=True)
        def total(b: list[int]) -> int:
            time.sleep(0.02)
            return sum(b)
"""

BATCHING = {
    "a_stream_node_yields_from_a_helper": """
        @node
        def batches(rows: list[int], size: int) -> Iterator[list[int]]:
            yield from chunks(rows, size)

        @flow
        async def main() -> list[int]:
            return [total(b) for b in batches(list(range(8)), 3)]
    """,
    "a_stream_node_yields_from_a_method": """
        @node
        def batches(rows: list[int], size: int) -> Iterator[list[int]]:
            yield from Chunker(size).chunks(rows)

        @flow
        async def main() -> list[int]:
            return [total(b) for b in batches(list(range(8)), 3)]
    """,
    "a_stream_node_yields_what_a_helper_yields": """
        @node
        def batches(rows: list[int], size: int) -> Iterator[list[int]]:
            for b in chunks(rows, size):
                yield b

        @flow
        async def main() -> list[int]:
            return [total(b) for b in batches(list(range(8)), 3)]
    """,
    "a_node_returns_the_helper_s_generator_bound_to_a_name": """
        @node
        def batches(rows: list[int], size: int) -> Iterator[list[int]]:
            return chunks(rows, size)

        @flow
        async def main() -> list[int]:
            it = batches(list(range(8)), 3)
            return [total(b) for b in it]
    """,
    "the_flow_binds_the_helper_s_generator_to_a_name": """
        @flow
        async def main() -> list[int]:
            it = chunks(list(range(8)), 3)
            return [total(b) for b in it]
    """,
    "a_generator_expression_over_it": """
        @flow
        async def main() -> list[int]:
            it = chunks(list(range(8)), 3)
            g = (b for b in it)
            return [total(b) for b in g]
    """,
}


@pytest.mark.parametrize("case", sorted(BATCHING))
def test_a_generator_that_changes_what_it_yielded_keeps_elements_in_order(
    case: str, tmp_path: Path
) -> None:
    found, warnings = compile_and_run(tmp_path, CHUNKS + BATCHING[case])
    assert found["compiled"] == found["source"], case
    assert found["source"][0][0] == [3, 12, 13]
    assert any("changes what it yielded (" in w for w in warnings), warnings


AUDITED = """
        import time
        from collections.abc import AsyncIterator, Iterable, Iterator

        AUDIT: list[str] = []

        def plain_lines(n: int) -> Iterator[str]:
            for i in range(n):
                AUDIT.append(f"read{i}")  # runs as the generator is drawn from
                yield f"l{i}"

        def tagged(i: int) -> str:
            AUDIT.append(f"read{i}")
            return f"l{i}"

        @node
        def read_lines(n: int) -> Iterator[str]:
            for i in range(n):
                AUDIT.append(f"read{i}")
                yield f"l{i}"

        @node(thread=True)
        def consume(lines: Iterable[str]) -> int:
            n = 0
            for _ in lines:
                time.sleep(0.01)
                n += 1
            return n

        @node(thread=True)
        def audit_size(tag: str) -> int:
            return len(AUDIT)

        @node(thread=True)
        def echo(line: str) -> str:
            time.sleep(0.01)
            return line

        def snapshot() -> object:
            return AUDIT
"""

DRAWN = {
    "a_stream_node_handed_to_a_node": """
        @flow
        async def main() -> list[int]:
            c = consume(read_lines(4))
            k = audit_size("x")
            return [c, k]
    """,
    "a_stream_node_bound_to_names": """
        @flow
        async def main() -> list[int]:
            lines = read_lines(4)
            again = lines
            c = consume(again)
            k = audit_size("x")
            return [c, k]
    """,
    "a_node_returning_a_project_generator": """
        @node
        def make_lines(n: int) -> Iterator[str]:
            return plain_lines(n)

        @flow
        async def main() -> list[int]:
            c = consume(make_lines(4))
            k = audit_size("x")
            return [c, k]
    """,
    "a_stream_node_wrapping_another": """
        @node
        def upper(lines: Iterable[str]) -> Iterator[str]:
            for line in lines:
                yield line.upper()

        @flow
        async def main() -> list[int]:
            c = consume(upper(read_lines(4)))
            k = audit_size("x")
            return [c, k]
    """,
    "a_fan_out_over_a_stream_node": """
        @flow
        async def main() -> list[int]:
            got = [echo(line) for line in read_lines(4)]
            k = audit_size("x")
            return [len(got), k]
    """,
    "a_later_node_clears_what_the_stream_added_to": """
        @node(thread=True)
        def reset_audit(tag: str) -> int:
            AUDIT.clear()
            return 0

        @flow
        async def main() -> list[int]:
            c = consume(read_lines(3))
            reset_audit("x")
            return [c]
    """,
    "a_project_generator_the_flow_calls": """
        @flow
        async def main() -> list[int]:
            lines = plain_lines(4)
            c = consume(lines)
            k = audit_size("x")
            return [c, k]
    """,
    "a_generator_expression_of_the_flow": """
        @flow
        async def main() -> list[int]:
            lines = (tagged(i) for i in range(4))
            c = consume(lines)
            k = audit_size("x")
            return [c, k]
    """,
    "an_async_stream_node": """
        @node
        async def aread(n: int) -> AsyncIterator[str]:
            for i in range(n):
                AUDIT.append(f"read{i}")
                await asyncio.sleep(0)
                yield f"l{i}"

        @node
        async def aconsume(lines: AsyncIterator[str]) -> int:
            n = 0
            async for _ in lines:
                await asyncio.sleep(0.01)
                n += 1
            return n

        @node
        async def asize(tag: str) -> int:
            await asyncio.sleep(0)
            return len(AUDIT)

        @flow
        async def main() -> list[int]:
            c = await aconsume(aread(4))
            k = await asize("x")
            return [c, k]
    """,
}


@pytest.mark.parametrize("case", sorted(DRAWN))
def test_module_state_a_generator_uses_is_used_where_it_is_drawn(
    case: str, tmp_path: Path
) -> None:
    found, warnings = compile_and_run(tmp_path, AUDITED + DRAWN[case])
    assert found["compiled"] == found["source"], case
    assert any("draws from " in w for w in warnings), warnings


def test_the_warning_says_what_the_consumer_draws_from(tmp_path: Path) -> None:
    body = AUDITED + DRAWN["a_stream_node_handed_to_a_node"]
    _, [message] = compile_and_run(tmp_path, body)
    assert message.startswith(
        "'audit_size' waits for 'consume' (line 50) because 'consume' adds to the "
        "module state 'case.AUDIT' (draws from read_lines, which calls "
        "AUDIT.append, at "
    ), message


def test_a_stream_that_adds_to_a_log_overlaps_another_node_adding_to_it(
    tmp_path: Path,
) -> None:
    """Drawing is charged as the body's uses are: an append overlaps an append."""
    assert_overlapped(
        tmp_path,
        """
        from collections.abc import Iterable, Iterator

        LOG: list[str] = []

        @node
        def read_lines(n: int) -> Iterator[str]:
            for i in range(n):
                LOG.append(f"read{i}")
                yield f"l{i}"

        @node
        async def consume(lines: Iterable[str]) -> int:
            EVENTS.append("start consume")
            n = len(list(lines))
            await asyncio.sleep(0.05)
            EVENTS.append("end consume")
            return n

        @node
        async def note(tag: str) -> str:
            EVENTS.append("start note")
            LOG.append(tag)
            await asyncio.sleep(0.05)
            EVENTS.append("end note")
            return tag

        @flow
        async def main() -> list[object]:
            a = await consume(read_lines(3))
            b = await note("x")
            return [a, b]
        """,
    )
