"""fingerprint_node: a cached node's hash changes with every project module's code it reaches,
and with nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from kilnc.fingerprint import fingerprint_node
from tests.test_result_classes import project

MAIN = """
    import json
    from kiln import node
    from .rates import RATE
    from . import tax
    import shop.units

    @node(cache=True)
    def price(x: int) -> int:
        return tax.add(x * RATE)

    @node(cache=True)
    def local(x: int) -> int:
        from .late import LATE
        return x + LATE

    @node(cache=True)
    def whole(x: int) -> int:
        return shop.units.scale(x)

    @node(cache=True)
    def alone(x: int) -> str:
        return json.dumps(x)
"""

FILES = {
    "shop/__init__.py": "",
    "shop/rates.py": "from .base import BASE\nRATE = BASE * 2\nDEBUG = False\n",
    "shop/base.py": "BASE = 1\nOTHER = 2\n",
    "shop/tax.py": "def add(x):\n    return x + 1\n",
    "shop/late.py": "LATE = 3\n",
    "shop/units.py": "def scale(x):\n    return x * 10\n",
    "shop/prices.py": MAIN,
}
NODES = ("price", "local", "whole", "alone")


def fingerprints(root: Path, **edits: str) -> dict[str, str]:
    files = dict(FILES)
    for name, text in edits.items():
        files[f"shop/{name}.py"] = text
    found, defs = project(root, files, "shop/prices.py")
    return {name: fingerprint_node(found, defs.nodes[name]) for name in NODES}


@pytest.mark.parametrize(
    ("module", "text", "changed"),
    [
        (
            "rates",
            "from .base import BASE\nRATE = BASE * 3\nDEBUG = False\n",
            {"price"},
        ),
        ("base", "BASE = 5\nOTHER = 2\n", {"price"}),  # through rates, two modules away
        ("tax", "def add(x):\n    return x + 2\n", {"price"}),  # `from . import tax`
        ("late", "LATE = 4\n", {"local"}),  # imported in the node's body
        (
            "units",
            "from . import prices\n\ndef scale(x):\n    return x * 11\n",
            {"whole"},
        ),
        # What no node reaches, comments and layout change nothing.
        ("rates", "from .base import BASE\nRATE = BASE * 2\nDEBUG = True\n", set()),
        ("base", "BASE = 1  # the base\nOTHER = 3\n", set()),
        ("tax", "def add(x):\n\n    return x + 1  # one more\n", set()),
    ],
)
def test_an_edit_changes_the_nodes_whose_code_reaches_it(
    tmp_path: Path, module: str, text: str, changed: set[str]
) -> None:
    before = fingerprints(tmp_path / "before")
    after = fingerprints(tmp_path / "after", **{module: text})
    assert {name for name in NODES if before[name] != after[name]} == changed


def test_a_module_that_does_not_parse_is_hashed_as_its_bytes(tmp_path: Path) -> None:
    broken = fingerprints(tmp_path / "a", tax="def add(x):\n    return x +\n")
    other = fingerprints(tmp_path / "b", tax="def add(x):\n    return x -\n")
    assert broken["price"] != other["price"]
    assert broken["alone"] == other["alone"]


def test_modules_that_import_each_other_are_hashed_once_each(tmp_path: Path) -> None:
    cycle = "from . import prices\n\ndef scale(x):\n    return x * 10\n"
    first = fingerprints(tmp_path / "a", units=cycle)
    assert first == fingerprints(tmp_path / "b", units=cycle)
    # `whole` reaches all of prices now, so every edit there is one of its own.
    edited = fingerprints(tmp_path / "c", units=cycle, late="LATE = 4\n")
    assert {name for name in NODES if first[name] != edited[name]} == {"local", "whole"}
