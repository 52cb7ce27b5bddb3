"""The methods Python calls for code that names none: `with`, `x(...)`, `x[k] = v`.

A node that does `with txn:` runs `Txn.__exit__`, which may commit; one that
calls a tool object (`TOOL("hi")`) runs `Tool.__call__`, which may meter its
use into module state; `box[k] = v`, `cfg.mode = m` and `acc += x` run
`__setitem__`, a property's setter and `__iadd__`. kiln read none of these
(trial N): a node reading what they changed ran beside the node that changed
it, silently. Each is now read as the call it is, where kiln can type the
object as a project class that defines the method.

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

TRANSACTION = """
    class Txn:
        def __init__(self) -> None:
            self.commits = 0

        def __enter__(self) -> "Txn":
            return self

        def __exit__(self, *exc: object) -> None:
            self.commits += 1

    TXN = Txn()
"""

ORDERED = {
    "with_runs_exit": TRANSACTION
    + """
    @node
    async def commit() -> None:
        await asyncio.sleep(0.05)
        with TXN:
            pass

    @node
    async def commits() -> int:
        return TXN.commits

    @flow
    async def main() -> int:
        await commit()
        return await commits()
    """,
    "async_with_runs_aexit": """
    class Session:
        def __init__(self, log: list[str]) -> None:
            self.log = log

        async def __aenter__(self) -> "Session":
            return self

        async def __aexit__(self, *exc: object) -> None:
            self.log.append("closed")

    LOG: list[str] = []

    @node
    async def talk() -> None:
        await asyncio.sleep(0.05)
        async with Session(LOG):
            pass

    @node
    async def count() -> int:
        return len(LOG)

    @flow
    async def main() -> int:
        await talk()
        return await count()
    """,
    "with_runs_exit_on_a_parameter": TRANSACTION
    + """
    @node
    async def commit(t: Txn) -> None:
        await asyncio.sleep(0.05)
        with t:
            pass

    @node
    async def commits(t: Txn) -> int:
        return t.commits

    @flow
    async def main() -> int:
        await commit(TXN)
        return await commits(TXN)
    """,
    "a_tool_object_called": """
    USAGE: dict[str, int] = {"tokens": 0}

    class Tool:
        def __call__(self, x: str) -> str:
            USAGE["tokens"] += len(x)
            return x

    TOOL = Tool()

    @node
    async def use_tool() -> None:
        await asyncio.sleep(0.05)
        TOOL("hello")

    @node
    async def usage() -> int:
        return USAGE["tokens"] * 10 + 1

    @flow
    async def main() -> int:
        await use_tool()
        return await usage()
    """,
    "a_tool_object_passed_in_and_called": """
    USAGE: dict[str, int] = {"tokens": 0}

    class Tool:
        def __call__(self, x: str) -> str:
            USAGE["tokens"] = USAGE["tokens"] * 2 + len(x)
            return x

    @node
    async def use_tool(tool: Tool) -> None:
        await asyncio.sleep(0.05)
        tool("hello")

    @node
    async def usage() -> int:
        return USAGE["tokens"]

    @flow
    async def main() -> int:
        await use_tool(Tool())
        return await usage()
    """,
    "a_property_setter": """
    REGISTRY: dict[str, str] = {}

    class Agent:
        def __init__(self) -> None:
            self._name = ""

        @property
        def name(self) -> str:
            return self._name

        @name.setter
        def name(self, v: str) -> None:
            self._name = v
            REGISTRY["agent"] = v

    @node
    async def rename(a: Agent) -> None:
        await asyncio.sleep(0.05)
        a.name = "bob"

    @node
    async def lookup(k: str) -> str:
        return REGISTRY.get(k, "<missing>")

    @flow
    async def main() -> str:
        await rename(Agent())
        return await lookup("agent")
    """,
    "setitem_delitem_and_setattr": """
    REGISTRY: dict[str, str] = {"gone": "here"}

    class Config:
        def __setitem__(self, k: str, v: str) -> None:
            REGISTRY[k] = v

        def __delitem__(self, k: str) -> None:
            REGISTRY.pop(k, None)

    class Tracked:
        def __setattr__(self, k: str, v: object) -> None:
            object.__setattr__(self, k, v)
            REGISTRY[k] = "set"

    @node
    async def configure(c: Config, t: Tracked) -> None:
        await asyncio.sleep(0.05)
        c["mode"] = "fast"
        del c["gone"]
        t.x = 1

    @node
    async def lookup() -> str:
        return repr(sorted(REGISTRY.items()))

    @flow
    async def main() -> str:
        await configure(Config(), Tracked())
        return await lookup()
    """,
    "an_in_place_operator": """
    TOTALS: list[int] = []

    class Acc:
        def __iadd__(self, x: int) -> "Acc":
            TOTALS.append(len(TOTALS) * 10 + x)
            return self

    @node
    async def add(acc: Acc, x: int) -> None:
        await asyncio.sleep(0.05)
        acc += x

    @node
    async def seen() -> list[int]:
        return list(TOTALS)

    @flow
    async def main() -> list[int]:
        acc = Acc()
        await add(acc, 1)
        return await seen()
    """,
    # Not implicit, found beside: an object made with module state holds it.
    "an_object_made_with_module_state_changes_it": """
    LOG: list[str] = []

    class Session:
        def __init__(self, log: list[str]) -> None:
            self.log = log

        def close(self) -> None:
            self.log.append("closed")

    @node
    async def talk() -> None:
        await asyncio.sleep(0.05)
        Session(LOG).close()

    @node
    async def count() -> int:
        return len(LOG)

    @flow
    async def main() -> int:
        await talk()
        return await count()
    """,
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_a_method_python_calls_for_a_statement_is_read(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


def test_a_context_manager_that_changes_nothing_shared_still_overlaps(
    tmp_path: Path,
) -> None:
    """A span's `__exit__` that only writes its own object orders nothing."""
    assert_overlapped(
        tmp_path,
        """
        class Span:
            def __init__(self, name: str) -> None:
                self.name = name
                self.closed = False

            def __enter__(self) -> "Span":
                return self

            def __exit__(self, *exc: object) -> None:
                self.closed = True

        @node
        async def work(name: str) -> str:
            with Span(name):
                EVENTS.append(f"start {name}")
                await asyncio.sleep(0.05)
                EVENTS.append(f"end {name}")
            return name

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
        """,
    )
