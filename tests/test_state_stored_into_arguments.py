"""Module state a node stores into what the flow passes it.

After `out["rows"] = CACHE["a"]` in a node, the flow's `out` holds a list of
module state: a later change through `out` (by another node, or by the flow)
changes `CACHE`, and a node that reads `CACHE` must wait for it as the
source's order has it. kiln read the store as a change of `out` only, so the
reader ran at once and saw the list before the change.

Each case runs its source and its compiled flow in fresh interpreters
(tests/test_state_reach_order.py) and compares their results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import assert_kept_in_order

READER = """
CACHE: dict[str, list[int]] = {"a": [1]}

@node
async def grow(out: dict[str, list[int]]) -> None:
    await asyncio.sleep(0.05)
    out["rows"].append(2)

@node
async def look() -> int:
    return len(CACHE["a"])
"""


def stored_then_changed(store: str, flow: str = "await fill(out)") -> str:
    """A node (or the flow) storing `CACHE`'s list into `out`, a node that
    changes what `out` holds, and a node that reads `CACHE`."""
    return f"""{READER}
@node
async def fill(out: dict[str, list[int]]) -> None:
    {store}

@flow
async def main() -> int:
    out: dict[str, list[int]] = {{}}
    {flow}
    await grow(out)
    return await look()
"""


CASES = {
    "an_item_assigned": stored_then_changed('out["rows"] = CACHE["a"]'),
    "through_setdefault": stored_then_changed('out.setdefault("rows", CACHE["a"])'),
    "through_update": stored_then_changed('out.update(rows=CACHE["a"])'),
    "through_a_local": stored_then_changed('rows = CACHE["a"]\n    out["rows"] = rows'),
    "by_the_flow_itself": stored_then_changed("pass", 'out["rows"] = CACHE["a"]'),
    "an_attribute_of_an_object": f"""
class Box:
    def __init__(self) -> None:
        self.rows: list[int] = []

    def __getitem__(self, key: str) -> list[int]:
        return self.rows
{READER.replace("out: dict[str, list[int]]", "out: Box")}

@node
async def fill(out: Box) -> None:
    out.rows = CACHE["a"]

@flow
async def main() -> int:
    out = Box()
    await fill(out)
    await grow(out)
    return await look()
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_change_through_what_holds_module_state_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, CASES[case], case)
