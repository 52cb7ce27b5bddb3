"""State the source shares that is not a module-level name: a `ContextVar` a node
sets, and a mutable default argument.

`login` sets `USER` (a `ContextVar`), `whoami` reads it: the source, which
awaits one call after another in one context, returns `("bob", "bob")`. A
compiled call run as a task sets the variable in a copy of the flow's
context, so the compiled flow returned `("bob", "anon")` (trial J, p27). A
node that sets a `ContextVar` it does not `reset` now keeps its place, run
in the flow's own context, and says so (KLN311); one that resets it (a
tracer's span) sets it for its own code only, and overlaps.

`def remember(k, v=None, _store: dict = {})`: every call that takes the
default shares one dict, made as the function is defined, so a node that
stores there and one that reads it are ordered as module state is (trial J,
p26), under the piece `case.remember._store`. A memo kept in a default
(`_memo={}`) is a fill, and two such calls overlap.
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
    "a_context_var_set_then_read": """
        import contextvars

        USER: contextvars.ContextVar[str] = contextvars.ContextVar("USER", default="anon")

        @node
        async def login(user: str) -> str:
            await asyncio.sleep(0.05)
            USER.set(user)
            return user

        @node
        async def whoami() -> str:
            await asyncio.sleep(0.01)
            return USER.get()

        @flow
        async def main() -> tuple[str, str]:
            a = await login("bob")
            b = await whoami()
            return (a, b)
    """,
    "a_context_var_set_by_a_helper_beside_an_unrelated_call": """
        from contextvars import ContextVar

        USER = ContextVar("USER", default="anon")

        def remember_user(user: str) -> None:
            USER.set(user)

        @node
        async def slow() -> int:
            await asyncio.sleep(0.05)
            return 1

        @node
        async def login(user: str) -> str:
            await asyncio.sleep(0.02)
            remember_user(user)
            return user

        @node
        async def whoami() -> str:
            return USER.get()

        @flow
        async def main() -> tuple[int, str, str, str]:
            c = await slow()
            a = await login("bob")
            b = await whoami()
            return (c, a, b, USER.get())
    """,
    "a_fan_out_of_context_var_setters_then_a_read": """
        import contextvars

        USER: contextvars.ContextVar[str] = contextvars.ContextVar("USER", default="anon")

        @node
        async def login(user: str, delay: float) -> str:
            await asyncio.sleep(delay)
            USER.set(user)
            return user

        @node
        async def whoami() -> str:
            return USER.get()

        @flow
        async def main() -> tuple[list[str], str]:
            names = [await login(u, d) for u, d in [("a", 0.03), ("b", 0.01), ("c", 0.0)]]
            return names, await whoami()
    """,
    "a_context_var_set_between_calls_a_task_could_chain": """
        import contextvars

        USER: contextvars.ContextVar[int] = contextvars.ContextVar("USER", default=-1)

        @node
        async def first(x: int) -> int:
            await asyncio.sleep(0.02)
            return x + 1

        @node
        async def login(x: int) -> None:
            await asyncio.sleep(0.01)
            USER.set(x)

        @node
        async def whoami() -> int:
            return USER.get()

        @node
        async def after(x: int) -> int:
            await asyncio.sleep(0.01)
            return x * 2

        @flow
        async def main(x: int = 3) -> tuple[int, int, int, int]:
            a = await first(x)
            await login(x)
            b = await whoami()
            x = await after(x)
            return a, b, x, USER.get()
    """,
    "a_context_var_set_by_the_flow_and_under_an_if": """
        import contextvars

        USER: contextvars.ContextVar[str] = contextvars.ContextVar("USER", default="anon")

        @node
        async def slow(name: str) -> str:
            await asyncio.sleep(0.02)
            return name.upper()

        @node
        async def login(name: str) -> None:
            await asyncio.sleep(0.01)
            USER.set(name)

        @node
        async def whoami(tag: str) -> str:
            return f"{tag}:{USER.get()}"

        @flow
        async def main(flag: bool = True) -> tuple[str, str, str]:
            a = await slow("x")
            USER.set(a)
            b = await whoami("flow")
            if flag:
                await login("ann")
            c = await whoami("if")
            return a, b, c
    """,
    "a_mutable_default_stored_then_read": """
        def remember(key: str, value: int | None = None, _store: dict[str, int] = {}) -> int:
            if value is not None:
                _store[key] = value
            return _store.get(key, 0)

        @node
        async def write(key: str) -> int:
            await asyncio.sleep(0.05)
            return remember(key, 7)

        @node
        async def read(key: str) -> int:
            await asyncio.sleep(0.01)
            return remember(key)

        @flow
        async def main() -> tuple[int, int]:
            a = await write("k")
            b = await read("k")
            return (a, b)
    """,
    "a_node_s_own_default_list_counted": """
        @node
        async def seen(name: str, delay: float, _names: list[str] = []) -> int:
            await asyncio.sleep(delay)
            _names.append(name)
            return len(_names)

        @flow
        async def main() -> tuple[int, int, int]:
            a = await seen("a", 0.05)
            b = await seen("b", 0.02)
            c = await seen("c", 0.0)
            return (a, b, c)
    """,
}

OVERLAPPING = {
    "context_vars_set_and_reset_in_each_call": """
        import contextvars

        SPAN: contextvars.ContextVar[str] = contextvars.ContextVar("SPAN", default="")

        @node
        async def work(name: str) -> str:
            token = SPAN.set(name)
            try:
                EVENTS.append(f"start {name}")
                await asyncio.sleep(0.05)
                EVENTS.append(f"end {name}")
                return SPAN.get()
            finally:
                SPAN.reset(token)

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
    """,
    "two_reads_of_a_context_var": """
        import contextvars

        USER: contextvars.ContextVar[str] = contextvars.ContextVar("USER", default="anon")

        @node
        async def greet(name: str) -> str:
            EVENTS.append(f"start {name}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {name}")
            return f"{name} {USER.get()}"

        @flow
        async def main() -> list[str]:
            return [await greet("a"), await greet("b")]
    """,
    "a_memo_kept_in_a_default": """
        async def square(n: int, _memo: dict[int, int] = {}) -> int:
            if n in _memo:
                return _memo[n]
            await asyncio.sleep(0.05)
            _memo[n] = n * n
            return _memo[n]

        @node
        async def work(name: str, n: int) -> str:
            EVENTS.append(f"start {name}")
            got = await square(n)
            EVENTS.append(f"end {name}")
            return f"{name}{got}"

        @flow
        async def main() -> list[str]:
            return [await work("a", 2), await work("b", 3)]
    """,
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_what_the_source_shares_so_keeps_its_order(case: str, tmp_path: Path) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


def test_the_warning_says_which_context_var_and_why(tmp_path: Path) -> None:
    _, [message] = compile_and_run(tmp_path, ORDERED["a_context_var_set_then_read"])
    assert message.startswith("'whoami' waits for 'login'"), message
    assert "calls 'login', which sets USER, a ContextVar" in message
    assert "a copy of the flow's context" in message


def test_the_warning_names_the_default_as_module_state(tmp_path: Path) -> None:
    _, [message] = compile_and_run(
        tmp_path, ORDERED["a_mutable_default_stored_then_read"]
    )
    assert "the module state 'case.remember._store'" in message, message


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_uses_that_commute_still_overlap(case: str, tmp_path: Path) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])
