"""A node whose parameter is untyped or `Any` changes the items of what it is passed.

LangGraph nodes are ported as `def mark(docs): for d in docs: d["seen"] = True`.
kiln read the loop as an iteration of `docs` first (a change of an iterator
only), kept that as the node's first change of `docs`, and dropped the
change of its items that came after; a flow that knows `docs` is a list then
forgets an iteration, so the node ran beside an earlier reader of `docs`,
which saw the change (trial Q1). The same happened for an item reached
through `next(iter(xs))`, `next(reversed(xs))`, `dict(state)[...]` or `first,
*rest = xs`, and `sum(groups, [])` made a list that shared nothing with the
groups' items, in a node and in the flow. A module-level lambda's body was
read with its own parameter names, which name nothing of the node's, and a
project function handed to `map` with the list in an iterable changed nothing
kiln could name (trial Q2).

Now a lambda called through a module-level name is read as a def is, its
parameters bound to the call's arguments, a function handed on that changes
what it is given may change every other argument of the call it is handed
to, and a change of the items outweighs an iteration, and a `sum` with a list to
start from holds the items it adds. Each case runs source and compiled in
fresh interpreters (tests/test_state_reach_order.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import assert_kept_in_order

_FLOW = """
from typing import Any

@node
async def show(docs: list[dict[str, Any]]) -> str:
    await asyncio.sleep(0.05)
    return repr(docs)

{change}

@flow
async def main() -> list[str]:
    docs: list[dict[str, Any]] = [{{"id": 1}}, {{"id": 2}}]
    before = await show(docs)
    {call}
    return [before, repr(docs)]
"""


def _case(change: str, call: str = "await mark(docs)") -> str:
    return _FLOW.format(change=change.strip(), call=call)


ORDERED = {
    "a_loop_over_an_untyped_parameter": _case("""
@node
async def mark(docs):
    for d in docs:
        d["seen"] = True
"""),
    "a_loop_over_an_any_parameter": _case("""
@node
async def mark(docs: Any) -> None:
    for d in docs:
        d["seen"] = True
"""),
    "the_last_item_through_reversed": _case("""
@node
async def mark(docs):
    last = next(reversed(docs))
    last["seen"] = True
"""),
    "the_first_item_through_an_iterator": _case("""
@node
async def mark(docs: Any) -> None:
    first = next(iter(docs))
    first["seen"] = True
"""),
    "an_item_of_a_star_unpacking": _case("""
@node
async def mark(docs):
    first, *rest = docs
    rest[0]["seen"] = True
"""),
    "an_item_of_a_shallow_copy": _case(
        """
@node
async def mark(state: Any) -> None:
    copy = dict(state)
    copy["docs"][0]["seen"] = True
""",
        'await mark({"docs": docs})',
    ),
    "a_helper_with_a_loose_annotation": _case("""
def mark_all(docs: Any) -> None:
    for d in docs:
        d["seen"] = True

@node
async def mark(docs: list[dict[str, Any]]) -> None:
    mark_all(docs)
"""),
    "a_module_level_lambda": _case("""
mark_one = lambda table, key: table[0].update({key: True})  # noqa: E731

@node
async def mark(docs: list[dict[str, Any]]) -> None:
    mark_one(docs, "seen")
"""),
    "a_lambda_in_a_dispatch_table": _case("""
OPS = {"mark": lambda table, key: table[0].update({key: True})}

@node
async def mark(docs: list[dict[str, Any]]) -> None:
    OPS["mark"](docs, "seen")
"""),
    "a_project_function_handed_to_map": _case("""
def mark_first(table: list[dict[str, Any]], key: str) -> None:
    table[0][key] = True

@node
async def mark(docs: list[dict[str, Any]]) -> None:
    list(map(mark_first, [docs], ["seen"]))
"""),
    "a_sum_of_lists_in_a_node": _case("""
@node
async def mark(docs: list[dict[str, Any]]) -> None:
    everything = sum([docs], [])
    everything[1]["seen"] = True
"""),
    "a_sum_of_lists_in_the_flow": _case(
        """
@node
async def mark(docs: list[dict[str, Any]]) -> None:
    for d in docs:
        d["seen"] = True
""",
        "flat = sum([docs[:1], docs[1:]], [])\n    await mark(flat)",
    ),
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_a_change_through_a_loose_parameter_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)
