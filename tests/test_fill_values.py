"""A fill overlaps other fills only where its value does not depend on who fills.

`if k not in CACHE: CACHE[k] = await compute(k, tag)`: two calls of one key
with different tags both find the key missing, and the compiled flow, which
overlaps them, keeps the last value stored, where the source keeps the
first (trial J, p13; a lazy client made from the caller's argument, p14).
A fill's value is now read for the parameters it is made from, through the
locals it is bound from: one made from a parameter the key does not name is
a write, and keeps the source's order. A memo keyed by what it computes
from, and a client made from module-level settings, still overlap. A miss
that calls code changing module state (a model client counting its calls) is
a write too: two calls of one key would both miss, where the source's second
finds the first's value (trial Q1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
)

ORDERED = {
    "a_memo_whose_value_depends_on_another_argument": """
        CACHE: dict[str, str] = {}

        async def compute(key: str, tag: str, delay: float) -> str:
            await asyncio.sleep(delay)
            return key + tag

        @node
        async def get(key: str, tag: str, delay: float) -> str:
            if key not in CACHE:
                CACHE[key] = await compute(key, tag, delay)
            return CACHE[key]

        @flow
        async def main() -> tuple[str, str]:
            a = await get("k", "-first", 0.05)
            b = await get("k", "-second", 0.01)
            return (a, b)

        def snapshot() -> object:
            return CACHE
    """,
    "a_lazy_client_made_from_the_caller_s_name": """
        _client: list[str] | None = None

        @node
        async def connect(name: str, delay: float) -> str:
            global _client
            await asyncio.sleep(delay)
            if _client is None:
                _client = [name]
            return _client[0]

        @flow
        async def main() -> tuple[str, str]:
            a = await connect("A", 0.05)
            b = await connect("B", 0.01)
            return (a, b)
    """,
    "a_memo_through_a_local_made_from_another_argument": """
        MEMO: dict[str, str] = {}

        @node
        async def label(key: str, style: str, delay: float) -> str:
            if key in MEMO:
                return MEMO[key]
            await asyncio.sleep(delay)
            made = f"{key}:{style}"
            MEMO[key] = made
            return made

        @flow
        async def main() -> tuple[str, str]:
            a = await label("k", "bold", 0.05)
            b = await label("k", "thin", 0.01)
            return (a, b)

        def snapshot() -> object:
            return MEMO
    """,
    "a_setdefault_of_a_value_from_another_argument": """
        GROUPS: dict[str, list[str]] = {}

        @node
        async def first_of(group: str, member: str, delay: float) -> str:
            await asyncio.sleep(delay)
            return GROUPS.setdefault(group, [member])[0]

        @flow
        async def main() -> tuple[str, str]:
            a = await first_of("g", "ann", 0.05)
            b = await first_of("g", "bob", 0.01)
            return (a, b)

        def snapshot() -> object:
            return GROUPS
    """,
    "a_memo_whose_miss_calls_a_client_that_counts_its_calls": """
        class Model:
            def __init__(self) -> None:
                self.calls = 0

            async def complete(self, prompt: str) -> str:
                self.calls += 1
                await asyncio.sleep(0.02)
                return prompt[::-1]

        MODEL = Model()
        CACHE: dict[str, str] = {}

        @node
        async def cached(prompt: str) -> str:
            if prompt not in CACHE:
                CACHE[prompt] = await MODEL.complete(prompt)
            return CACHE[prompt]

        @flow
        async def main() -> list[object]:
            first = await cached("hi")
            again = await cached("hi")
            return [first, again, MODEL.calls]
    """,
}

OVERLAPPING = {
    "a_memo_of_what_its_key_names_through_a_local": """
        CACHE: dict[tuple[str, int], str] = {}

        async def compute(word: str, times: int) -> str:
            await asyncio.sleep(0.05)
            return word * times

        @node
        async def work(name: str, word: str, times: int) -> str:
            EVENTS.append(f"start {name}")
            key = (word, times)
            if key not in CACHE:
                value = await compute(word, times)
                CACHE[key] = value
            EVENTS.append(f"end {name}")
            return CACHE[key]

        @flow
        async def main() -> list[str]:
            return [await work("a", "x", 2), await work("b", "y", 3)]
    """,
    "a_lazy_client_made_from_module_settings": """
        import fakeclient

        URL = "http://localhost"
        _client: fakeclient.Client | None = None

        @node
        async def work(name: str) -> str:
            global _client
            EVENTS.append(f"start {name}")
            if _client is None:
                _client = fakeclient.Client()
            got = await _client.get(URL + "/" + name)
            EVENTS.append(f"end {name}")
            return got

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
    """,
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_a_fill_that_depends_on_its_filler_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_fills_of_what_their_keys_name_still_overlap(case: str, tmp_path: Path) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])
