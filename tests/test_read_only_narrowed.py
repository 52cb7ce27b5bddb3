"""A read-only annotation is trusted only where the body keeps to it.

`def normalize(rows: Sequence[int])` whose body does `if isinstance(rows,
list): rows.sort()` changes the caller's list, and mypy accepts it. kiln
took the annotation as proof that nothing changes `rows` and skipped the
body's change: the flow's next node read the list beside the sort, `3` for
`1` (trial Q10). Now a parameter the body narrows (`isinstance`,
`type(x) is`, `cast`, `match`) or changes as written (`rows.sort()`,
`cfg[k] = v`, `rows += [x]`), through any name that may hold it, is read as
its body says; the annotation still keeps a parameter its body only reads,
or hands to code kiln cannot see into, unchanged, and a deeply immutable one
(`str`) is never changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_effects import effects_of
from tests.test_state_reach_order import assert_kept_in_order

NODES = """
        import random
        import time
        from collections.abc import Mapping, Sequence
        from typing import cast

        def sort_in_place(xs: list[int]) -> None:
            xs.sort()

        @node(thread=True)
        def first(rows: list[int]) -> int:
            return rows[0]

        @node(thread=True)
        def keys(cfg: dict[str, str]) -> list[str]:
            return sorted(cfg)
"""


def _normalizing(body: str, rows: str = "[3, 1, 2]") -> str:
    """A thread node given `rows: Sequence[int]` that sleeps, runs `body` (its
    lines, indented as the node's) and returns its length; the flow reads the
    list's first item after it."""
    lines = "".join(f"            {line}\n" for line in body.strip().splitlines())
    return f"""
        @node(thread=True)
        def normalize(rows: Sequence[int]) -> int:
            time.sleep(0.02)
{lines}            return len(rows)

        @flow
        async def main() -> list[int]:
            rows = {rows}
            n = normalize(rows)
            return [n, first(rows)]
    """


CHANGED = {
    "a_sequence_narrowed_to_a_list_and_sorted": _normalizing(
        "if isinstance(rows, list):\n    rows.sort()"
    ),
    "a_mapping_narrowed_to_a_dict_and_stored_into": """
        @node(thread=True)
        def tag(cfg: Mapping[str, str]) -> int:
            time.sleep(0.02)
            if isinstance(cfg, dict):
                cfg["tagged"] = "yes"
            return len(cfg)

        @flow
        async def main() -> list[object]:
            cfg = {"a": "b"}
            t = tag(cfg)
            return [t, keys(cfg)]
    """,
    "a_cast_alias_sorted": _normalizing("lst = cast(list[int], rows)\nlst.sort()"),
    "a_narrowed_parameter_handed_to_a_helper_that_sorts": _normalizing(
        "if isinstance(rows, list):\n    sort_in_place(rows)"
    ),
    "a_type_test_then_an_alias_reversed": _normalizing(
        "if type(rows) is list:\n    view = rows\n    view.reverse()"
    ),
    "a_narrowed_parameter_shuffled_by_the_standard_library": _normalizing(
        "if isinstance(rows, list):\n    random.Random(1).shuffle(rows)",
        rows="list(range(20))",
    ),
    "a_match_on_the_parameter": _normalizing(
        "match rows:\n    case list():\n        rows.sort()"
    ),
}


@pytest.mark.parametrize("case", sorted(CHANGED))
def test_a_read_only_parameter_the_body_changes_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, NODES + CHANGED[case], case)


SOURCE = """
import unknown_library
from collections.abc import Mapping, Sequence


def f(rows: Sequence[int], cfg: Mapping[str, int], name: str, other: object) -> None:
    {body}
"""


@pytest.mark.parametrize(
    ("body", "changed"),
    [
        # Trusted: nothing in the body reaches past the view.
        ("unknown_library.send(rows, cfg)", set()),
        ("n = len(rows) + sum(cfg.values())", set()),
        ("if isinstance(other, list):\n        unknown_library.send(rows)", set()),
        ("if isinstance(cfg, Mapping):\n        unknown_library.send(cfg)", set()),
        # Narrowed, or changed as written: the body says what it does.
        ("if isinstance(rows, list):\n        unknown_library.send(rows)", {"rows"}),
        ("if isinstance(cfg, dict):\n        cfg.clear()", {"cfg"}),
        ("rows.sort()  # type: ignore[attr-defined]", {"rows"}),
        ('cfg["k"] = 1  # type: ignore[index]', {"cfg"}),
        ("rows += [1]  # type: ignore[assignment,operator]", {"rows"}),
        ("view = rows\n    if isinstance(view, list):\n        view.pop()", {"rows"}),
        # A value that cannot change stays unchanged, narrowed or not.
        ('if isinstance(name, str):\n        name += "x"', set()),
    ],
)
def test_what_a_read_only_parameter_s_body_may_change(
    body: str, changed: set[str], tmp_path: Path
) -> None:
    effects = effects_of(SOURCE.format(body=body), "f", tmp_path)
    assert {name for name, _ in effects.changes} == changed
