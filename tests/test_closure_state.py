"""State kept in a closure's cells: what a factory's or a decorator's functions share.

`put, get = make_store()`, where `make_store` defines `put` and `get` over
one dict, or a decorator whose wrapper appends to a list of its own (read
back as `fetch.log`): the source's calls see each other's changes in source
order. kiln read none of it (the cells are no module-level names), so a node
calling `get` ran beside the one calling `put` and saw nothing, silently.
Now the functions a project function defines are read with its names as
state: each call of the factory, and each function a decorator wraps, has
its own cells (`app.put.store`, `app.fetch.log`), and a call of what it made
uses them as the functions it may run do.

Each case runs its source and its compiled flow in fresh interpreters and
compares the result and the state left (tests/test_state_reach_order.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
)

ORDERED = {
    "functions_a_factory_returns": """
        def make_store():
            store: dict[str, list[str]] = {}

            def put(k: str, v: str) -> None:
                store.setdefault(k, []).append(v)

            def get(k: str) -> list[str]:
                return list(store.get(k, []))

            return put, get

        put, get = make_store()

        @node
        async def write(v: str, delay: float) -> None:
            await asyncio.sleep(delay)
            put("k", v)

        @node
        async def read() -> list[str]:
            return get("k")

        @flow
        async def main() -> list[str]:
            await write("a", 0.05)
            seen = await read()
            await write("b", 0)
            return seen + await read()
    """,
    "a_counter_bound_again_by_nonlocal": """
        def make_ids():
            last = 0

            def next_id() -> int:
                nonlocal last
                last += 1
                return last

            return next_id

        next_id = make_ids()

        @node
        async def stamp(name: str, delay: float) -> str:
            await asyncio.sleep(delay)
            return f"{name}{next_id()}"

        @flow
        async def main() -> list[str]:
            return [await stamp(n, d) for n, d in [("a", 0.05), ("b", 0), ("c", 0.02)]]
    """,
    "a_decorator_s_log_read_through_the_function": """
        from collections.abc import Awaitable, Callable
        from typing import Any

        def traced(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            log: list[str] = []

            async def wrapper(*args: Any) -> Any:
                log.append(fn.__name__)
                return await fn(*args)

            wrapper.log = log  # type: ignore[attr-defined]
            return wrapper

        @node
        @traced
        async def first(delay: float) -> int:
            await asyncio.sleep(delay)
            return 1

        @node
        async def report() -> list[str]:
            return list(first.log)

        @flow
        async def main() -> list[str]:
            await first(0.05)
            seen = await report()
            await first(0)
            return seen + await report()
    """,
    "a_decorator_with_arguments_counting_into_its_cell": """
        from collections.abc import Awaitable, Callable
        from typing import Any

        def counted(label: str) -> Any:
            counts: dict[str, int] = {}

            def decorate(fn: Callable[..., Awaitable[Any]]) -> Any:
                async def wrapper(*args: Any) -> Any:
                    counts[label] = counts.get(label, 0) + 1
                    return (await fn(*args), counts[label])

                return wrapper

            return decorate

        @node
        @counted("calls")
        async def work(delay: float) -> int:
            await asyncio.sleep(delay)
            return 1

        @flow
        async def main() -> list[Any]:
            return [await work(d) for d in (0.05, 0, 0.02)]
    """,
    "a_memo_decorator_whose_function_adds_to_state": """
        from collections.abc import Awaitable, Callable

        CALLS: list[int] = []

        def memo(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
            cache: dict[int, int] = {}

            async def wrapper(x: int) -> int:
                if x not in cache:
                    cache[x] = await fn(x)
                return cache[x]

            return wrapper

        @node
        @memo
        async def square(x: int) -> int:
            CALLS.append(x)
            await asyncio.sleep(0.02)
            return x * x

        @flow
        async def main() -> list[int]:
            return [await square(x) for x in (2, 2, 3)]

        def snapshot() -> list[int]:
            return sorted(CALLS)
    """,
    "factory_made_functions_imported_from_another_module": """
        from store import register, registered

        @node
        async def add(x: str, delay: float) -> None:
            await asyncio.sleep(delay)
            register(x)

        @node
        async def look() -> list[str]:
            return registered()

        @flow
        async def main() -> list[str]:
            await add("a", 0.05)
            seen = await look()
            await add("b", 0)
            return seen + await look()
    """,
    "factory_made_functions_called_through_their_module": """
        import store

        @node
        async def add(x: str, delay: float) -> None:
            await asyncio.sleep(delay)
            store.register(x)

        @node
        async def look() -> list[str]:
            return store.registered()

        @flow
        async def main() -> list[str]:
            await add("a", 0.05)
            seen = await look()
            await add("b", 0)
            return seen + await look()
    """,
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_state_in_a_closure_s_cells_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


def test_a_decorator_that_only_adds_to_its_cells_still_overlaps(tmp_path: Path) -> None:
    """Each wrapped node has cells of its own, and adding to a log commutes."""
    assert_overlapped(
        tmp_path,
        """
        from collections.abc import Awaitable, Callable
        from typing import Any

        def timed(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            durations: list[float] = []

            async def wrapper(*args: Any) -> Any:
                started = 0.0
                result = await fn(*args)
                durations.append(started)
                return result

            return wrapper

        @node
        @timed
        async def work(name: str) -> str:
            EVENTS.append(f"start {name}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {name}")
            return name

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
        """,
    )


def test_two_stores_one_factory_made_are_two_pieces(tmp_path: Path) -> None:
    """A call of the factory makes cells of its own: nodes over two stores overlap."""
    assert_overlapped(
        tmp_path,
        """
        def make_store():
            store: dict[str, str] = {}

            def put(k: str, v: str) -> None:
                store[k] = v

            return put

        put_a = make_store()
        put_b = make_store()

        @node
        async def fill_a(name: str) -> str:
            EVENTS.append(f"start {name}")
            await asyncio.sleep(0.05)
            put_a("k", name)
            EVENTS.append(f"end {name}")
            return name

        @node
        async def fill_b(name: str) -> str:
            EVENTS.append(f"start {name}")
            await asyncio.sleep(0.05)
            put_b("k", name)
            EVENTS.append(f"end {name}")
            return name

        @flow
        async def main() -> list[str]:
            return [await fill_a("a"), await fill_b("b")]
        """,
    )
