"""Values that share nothing that can change order nothing (trials Q11, Q12).

A ReAct step `await think(pad, tasks[0])`, where `think` appends its `str`
argument to `pad["thoughts"]`, made every later reader of `tasks: list[str]`
wait for it: kiln linked `pad` to `tasks` ("may hold what 'tasks' holds"),
though what `pad` keeps is a `str`, which nothing changes, and it told the
next change of the local `pad` that it "holds what the caller passed in".
An argument of a parameter annotated with a deeply immutable type, or an
item or a copy of a container whose items are deeply immutable, now shares
nothing with the flow's names: `act(tasks[1])` overlaps `think`.

`snap = snapshot()`, a node returning `dict(COUNTERS)` of a `dict[str, int]`,
made two earlier calls that only add to `COUNTERS` run one after another
("may change 'snap'", a name bound two lines later): the copy of `str` keys
and `int` values was read as module state's. It no longer is; and a name
bound to module state a call hands out (`return COUNTERS`) orders only the
calls that may run after that call: the ones before it are ordered against
the call by the state it reads.

Each case runs its source and its compiled flow in fresh interpreters and
compares the results (tests/test_state_reach_order.py); an overlapped case
also has both calls start before either ends, and no KLN311. The kept cases
are the same shapes where something does share a changeable object.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import assert_kept_in_order, assert_overlapped

THINK = """
        from typing import Any

        @node
        async def think(pad: dict[str, list[Any]], task: str) -> str:
            EVENTS.append("start think")
            await asyncio.sleep(0.05)
            pad["thoughts"].append(task)
            EVENTS.append("end think")
            return "t:" + task

        @node
        async def think_any(pad: dict[str, list[Any]], task: Any) -> str:
            EVENTS.append("start think")
            await asyncio.sleep(0.05)
            pad["thoughts"].append(task)
            EVENTS.append("end think")
            return "t:" + str(task)

        @node
        async def act(arg: Any) -> str:
            EVENTS.append("start act")
            await asyncio.sleep(0.05)
            EVENTS.append("end act")
            return str(arg).upper()
"""

COUNTERS = """
        COUNTERS: dict[str, int] = {}

        @node
        async def work(n: int) -> int:
            EVENTS.append(f"start {n}")
            await asyncio.sleep(0.05)
            COUNTERS["work"] = COUNTERS.get("work", 0) + 1
            EVENTS.append(f"end {n}")
            return n

        @node
        def counts() -> dict[str, int]:
            return dict(COUNTERS)

        @node
        def current() -> dict[str, int]:
            return COUNTERS

        @node
        async def reader(d: dict[str, int]) -> int:
            return d.get("work", 0)
"""

OVERLAPPING = {
    # The trial's flow: `tasks` a parameter, `think(pad, task: str)`.
    "a_str_item_of_a_parameter": THINK
    + """
        @flow
        async def react(tasks: list[str]) -> dict[str, Any]:
            pad: dict[str, list[Any]] = {"thoughts": []}
            thought = await think(pad, tasks[0])
            result = await act(tasks[1])
            return {"thought": thought, "result": result, "pad": pad}

        @flow
        async def main() -> dict[str, Any]:
            return await react(["a", "b"])
    """,
    # What the flow's annotation says of the item, the parameter saying nothing.
    "an_item_of_a_list_of_str": THINK
    + """
        @flow
        async def main() -> list[Any]:
            tasks: list[str] = ["a", "b"]
            pad: dict[str, list[Any]] = {"thoughts": []}
            thought = await think_any(pad, tasks[0])
            result = await act(tasks[1])
            return [thought, result, pad]
    """,
    # What the parameter's annotation says, the flow's saying nothing of the item.
    "an_argument_of_a_str_parameter": THINK
    + """
        @flow
        async def main() -> list[Any]:
            tasks: list[Any] = ["a", "b"]
            pad: dict[str, list[Any]] = {"thoughts": []}
            thought = await think(pad, tasks[0])
            result = await act(tasks[1])
            return [thought, result, pad]
    """,
    # A copy of a dict of `int`s: a node changing the original changes no copy.
    "a_copy_of_a_dict_of_ints": """
        @node
        async def bump(counts: dict[str, int]) -> None:
            EVENTS.append("start bump")
            await asyncio.sleep(0.05)
            counts["a"] += 1
            EVENTS.append("end bump")

        @node
        async def show(counts: dict[str, int]) -> str:
            EVENTS.append("start show")
            await asyncio.sleep(0.05)
            EVENTS.append("end show")
            return repr(counts)

        @flow
        async def main() -> list[object]:
            counts: dict[str, int] = {"a": 0}
            snap = dict(counts)
            await bump(counts)
            return [await show(snap), counts]
    """,
    # Trial Q12: a node's copy of module state's `dict[str, int]`.
    "a_node_s_copy_of_module_state": COUNTERS
    + """
        @flow
        async def main() -> list[object]:
            a = await work(1)
            b = await work(2)
            snap = counts()
            return [a, b, snap]
    """,
    # Module state itself, bound after the calls that add to it.
    "module_state_bound_after_the_calls": COUNTERS
    + """
        @flow
        async def main() -> list[object]:
            a = await work(1)
            b = await work(2)
            snap = current()
            return [a, b, dict(snap)]
    """,
}


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_a_value_that_shares_nothing_changeable_orders_nothing(
    case: str, tmp_path: Path
) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])


ORDERED = {
    # A `list[str]` item of a `list[list[str]]` is an object a node may change.
    "a_changeable_item_kept": """
        @node
        async def keep(pad: dict[str, list[list[str]]], row: list[str]) -> None:
            await asyncio.sleep(0.05)
            pad["rows"].append(row)

        @node
        async def grow(pad: dict[str, list[list[str]]]) -> None:
            await asyncio.sleep(0.02)
            pad["rows"][0].append("x")

        @node
        async def size(row: list[str]) -> int:
            return len(row)

        @flow
        async def main() -> int:
            rows: list[list[str]] = [["a"], ["b"]]
            pad: dict[str, list[list[str]]] = {"rows": []}
            await keep(pad, rows[0])
            await grow(pad)
            return await size(rows[0])
    """,
    # `dict(k=items)` holds the list itself, not copies of its items.
    "a_keyword_of_a_copy": """
        @node
        async def bump(items: list[int]) -> None:
            await asyncio.sleep(0.05)
            items.append(1)

        @node
        async def show(d: dict[str, list[int]]) -> str:
            return repr(d)

        @flow
        async def main() -> str:
            items: list[int] = []
            snap = dict(k=items)
            await bump(items)
            return await show(snap)
    """,
    # Bound before the calls that change it: they change what `snap` holds.
    "module_state_bound_before_the_calls": COUNTERS
    + """
        @flow
        async def main() -> list[int]:
            snap = current()
            a = await work(1)
            b = await work(2)
            return [a, b, await reader(snap)]
    """,
    # In a loop, the call binding it runs before the next iteration's calls.
    "module_state_bound_in_a_loop": COUNTERS
    + """
        @flow
        async def main() -> int:
            total = 0
            for _ in range(2):
                await work(1)
                snap = current()
                total += await reader(snap)
            return total
    """,
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_a_value_that_shares_a_changeable_object_keeps_the_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)
