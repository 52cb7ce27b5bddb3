"""A flow that reads the order of a set of strings cannot be resumed in another process.

Trial Q1, finding 6: `unique = set(tools)` then `[await run_tool(t) for t in
unique]` in a durable flow. Resumed in another process, hash randomization
(`PYTHONHASHSEED`) gives the set another order, the journal refuses the call
of `run_tool` with other arguments, and nothing said why. `kiln check` now
warns (KLN315, as for the clock) where a flow's body reads a set's order, and
the journal's refusal names hash randomization.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.determinism import check_determinism
from kilnc.diagnostics import Code
from kilnc.front import ParsedModule
from kilnc.parse import parse_source
from kilnc.pipeline import compile_file

HEAD = """\
import asyncio
from typing import AbstractSet

from kiln import ask, flow, node


@node
async def run_tool(name: str) -> str:
    await asyncio.sleep(0.001)
    return name.upper()


@node
async def tags(text: str) -> set[str]:
    return set(text.split())


@node
async def count(items: object) -> int:
    return len(str(items))
"""

# Each flow body's statement that reads an order, and the expression it reads.
READS = {
    "a_comprehension_over_a_set": ("[await run_tool(t) for t in unique]", "unique"),
    "a_for_loop": ("for t in unique:\n    await run_tool(t)", "unique"),
    "a_set_comprehension": ("[await run_tool(t) for t in {t for t in tools}]", None),
    "a_set_display": ('[await run_tool(t) for t in {"a", "b"}]', '{"a", "b"}'),
    "a_frozenset": ("[await run_tool(t) for t in frozenset(tools)]", None),
    "list_of_it": ("await count(list(unique))", "unique"),
    "its_text": ('await count(f"{unique}")', "unique"),
    "a_join": ('await count(", ".join(unique))', "unique"),
    "unpacked": ("await count([*unique])", "unique"),
    "a_pop": ("await run_tool(unique.pop())", "unique"),
    "a_union": ("[await run_tool(t) for t in unique | {'x'}]", "unique | {'x'}"),
    "an_annotated_parameter": ("[await run_tool(t) for t in given]", "given"),
    "a_node_s_set": (
        "found = await tags('a b')\n[await run_tool(t) for t in found]",
        "found",
    ),
    "an_enumerate": ("[await run_tool(t) for _, t in enumerate(unique)]", "unique"),
}
# Reads of a set that do not depend on its order, or of a set of numbers.
UNORDERED = {
    "sorted": "[await run_tool(t) for t in sorted(unique)]",
    "len": "await count(len(unique))",
    "membership": "await count('a' in unique)",
    "handed_to_a_node": "await count(unique)",
    "numbers": "[await count(n) for n in set(range(3))]",
    "annotated_numbers": "[await count(n) for n in numbers]",
    "dict_fromkeys_of_a_list": "[await run_tool(t) for t in dict.fromkeys(tools)]",
    "a_set_of_a_set": "await count({t.lower() for t in unique})",
}


def _warnings(tmp_path: Path, statement: str) -> list[tuple[str, str]]:
    """KLN315's warnings for a flow running `statement`: their text and expression."""
    body = textwrap.indent(statement, "    ")
    source = (
        HEAD
        + "\n\n@flow\nasync def agent(\n"
        + "    tools: list[str], given: AbstractSet[str], numbers: set[int]\n"
        + ") -> int:\n"
        + "    unique = set(tools)\n"
        + f"{body}\n"
        + "    return 0\n"
    )
    path = tmp_path / "agent.py"
    path.write_text(source, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    parsed = parse_source(compilation.source)
    assert isinstance(parsed, ParsedModule)
    lines = source.split("\n")
    return [
        (
            d.message,
            lines[d.span.line - 1][d.span.column - 1 : d.span.end_column - 1],
        )
        for d in check_determinism(parsed, compilation.flows)
        if d.code is Code.NONDETERMINISTIC
    ]


@pytest.mark.parametrize("case", sorted(READS))
def test_reading_a_set_s_order_in_a_flow_is_a_warning(
    tmp_path: Path, case: str
) -> None:
    statement, read = READS[case]
    found = _warnings(tmp_path, statement)
    assert len(found) == 1, found
    message, expression = found[0]
    assert "reads the order of a set here" in message
    assert "PYTHONHASHSEED" in message
    if read is not None:
        assert expression == read


@pytest.mark.parametrize("case", sorted(UNORDERED))
def test_a_read_that_keeps_no_order_is_not(tmp_path: Path, case: str) -> None:
    assert _warnings(tmp_path, UNORDERED[case]) == []


AGENT = HEAD + """

@flow
async def agent(tools: list[str]) -> list[str]:
    unique = set(tools)
    results = [await run_tool(t) for t in unique]
    ok = await ask("approve", bool, results)
    return results if ok else []
"""

FIRST = """
import kiln, sys
sys.path.insert(0, sys.argv[1])
from out import agent
try:
    type(agent)(run_id="r", ledger=sys.argv[2])(["search", "calc", "browse", "mail"])
except kiln.Suspended:
    print("suspended")
"""
RESUMED = """
import kiln, sys
sys.path.insert(0, sys.argv[1])
from out import agent
try:
    print(type(agent)(run_id="r", ledger=sys.argv[2]).resume(approve=True))
except kiln.DurableRunError as error:
    print(error)
"""


def test_a_run_resumed_under_another_hash_seed_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    """The refusal, where a set's order changed between the processes, says
    what may have changed it."""
    path = tmp_path / "agent.py"
    path.write_text(AGENT, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    (tmp_path / "out.py").write_text(compilation.output, encoding="utf-8")
    ledger = str(tmp_path / "led.db")

    def run(code: str, seed: str) -> str:
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        ran = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path), ledger],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        return ran.stdout

    assert run(FIRST, "1") == "suspended\n"
    said = run(RESUMED, "2")  # the seeds give the four names other orders
    assert "journaled a call of 'run_tool' with other arguments" in said
    assert "hash randomization" in said
    assert "PYTHONHASHSEED" in said
