"""A flow binds its calls in a few lines however many it makes, and each stays its own.

`with self._kiln_bind(...) as (a, b):` when the names fit the header; else
`as calls:` and the names unpacked a line at a time, from slices of the
tuple (`a, b = calls[:2]`, `c = calls[2]`), rather than the one name a line
black would stand a long tuple of targets in, up to four lines: a bigger
table keeps black's layout, since each slice is made per run. Whichever form, every call
site is the one the source made: its result, its failure's note (found by
the lines `place_site_lines` writes into its site), its types for mypy.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from kilnc.pipeline import compile_file
from kilnc.typecheck import typecheck_modules
from tests.test_differential import compiled_and_source

NOTE = re.compile(r"kiln: node '(\w+)' failed; defined at \S+:\d+, called at \S+:(\d+)")


def flow_of(sites: int, failing: int | None) -> str:
    """A flow calling `sites` nodes with long names in a chain; the one at index
    `failing` raises."""
    lines = ["from kiln import flow, node", ""]
    for index in range(sites):
        fails = "    raise ValueError(x)" if index == failing else "    return x + 1"
        lines += ["", "@node", f"async def step_number_{index}(x: int) -> int:", fails]
    lines += ["", "", "@flow", "async def main(x: int) -> int:"]
    lines += [f"    x = await step_number_{index}(x)" for index in range(sites)]
    lines += ["    return x", ""]
    return "\n".join(lines)


@pytest.mark.parametrize("sites", [1, 2, 5, 9, 14, 23, 40])
def test_every_site_is_bound_to_its_call_in_lines_that_fit(
    tmp_path: Path, sites: int
) -> None:
    source = flow_of(sites, failing=None)
    compiled, reference = compiled_and_source(source, tmp_path)
    output = (tmp_path / "out.py").read_text(encoding="utf-8")
    assert max(len(line) for line in output.splitlines()) <= 88
    header = next(line for line in output.splitlines() if "_kiln_bind(" in line)
    unpacking = [line for line in output.splitlines() if " = calls" in line]
    if sites == 9:  # their names do not fit the header, and fit four lines
        assert header.endswith(" as calls:"), header
        assert "calls[" in output
    if sites == 40:  # a table that big stays one name a line: it costs a run nothing
        assert header.endswith(" as ("), header
    assert len(unpacking) <= 4
    assert compiled.main(3) == asyncio.run(reference.main(3)) == 3 + sites
    path = tmp_path / "generated_flow.py"
    compilation = compile_file(path)
    assert compilation.output is not None
    found = typecheck_modules(
        [("out.py", compilation.output, compilation.line_map)],
        [],
        [tmp_path],
        {compilation.source.path: source},
    )
    assert found == []


@pytest.mark.parametrize("failing", [0, 6, 17, 29])
def test_a_failure_is_noted_at_the_call_it_left(tmp_path: Path, failing: int) -> None:
    source = flow_of(30, failing=failing)
    compiled, _ = compiled_and_source(source, tmp_path)
    with pytest.raises(ValueError, match=str(failing)) as raised:
        compiled.main(0)
    notes = [m for note in raised.value.__notes__ if (m := NOTE.search(note))]
    assert [(m[1], int(m[2])) for m in notes] == [
        (
            f"step_number_{failing}",
            source.splitlines().index(f"    x = await step_number_{failing}(x)") + 1,
        )
    ]
