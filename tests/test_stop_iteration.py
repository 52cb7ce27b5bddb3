"""A StopIteration leaves a compiled flow as it leaves the source, and never hangs it.

Python turns a StopIteration into RuntimeError where it would end a generator
or a coroutine (PEP 479): so a flow's source raises it as itself from a plain
`def` and a list comprehension, and as RuntimeError from a generator
expression or an `async def`. kiln runs a sync flow's thread=True nodes from a
coroutine, reads a generator of node calls into a list, and hands a thread's
outcome over a future (which refuses a StopIteration); each must still give
the source's exception. Every flow runs in a process of its own, with a
timeout, as source and compiled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kilnc.pipeline import compile_file

NODES = """\
from kiln import flow, node


@node(thread=True)
def stops_in_thread(x: int) -> int:
    raise StopIteration(f"stop {x}")


@node(thread=True)
def plus_in_thread(x: int) -> int:
    return x + 1


@node
def stops(x: int) -> int:
    if x == 2:
        raise StopIteration(f"stop {x}")
    return x
"""

FLOWS = {
    "thread_node_in_a_sync_flow": """
@flow
def main(xs: list[int]) -> int:
    return stops_in_thread(xs[0])
""",
    "thread_node_in_an_async_flow": """
@flow
async def main(xs: list[int]) -> int:
    return plus_in_thread(xs[0]) + stops_in_thread(xs[0])
""",
    "thread_nodes_in_a_fan_out": """
@flow
async def main(xs: list[int]) -> list[int]:
    return [stops_in_thread(x) for x in xs]
""",
    "exhausted_iterator_in_a_sync_flow_that_awaits": """
@flow
def main(xs: list[int]) -> int:
    first = plus_in_thread(xs[0])
    return first + next(iter([]))
""",
    "generator_read_whole": """
@flow
def main(xs: list[int]) -> int:
    return sum(stops(x) for x in xs)
""",
    "generator_sorted": """
@flow
def main(xs: list[int]) -> list[int]:
    return sorted(stops(x) for x in xs)
""",
    "list_comprehension": """
@flow
def main(xs: list[int]) -> list[int]:
    return [stops(x) for x in xs]
""",
}

RUN = """\
import asyncio, inspect, json, sys
sys.path.insert(0, sys.argv[1])
import flow_source as m
try:
    result = m.main([1, 2, 3])
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    print(json.dumps(["returned", result]))
except BaseException as error:
    print(json.dumps(["raised", type(error).__name__, str(error)]))
"""


def outcome(directory: Path) -> object:
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,  # a hang is a failure, not a stuck suite
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_a_stop_iteration_leaves_the_compiled_flow_as_it_leaves_the_source(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / "flow_source.py").write_text(NODES + FLOWS[name], encoding="utf-8")
    compilation = compile_file(tmp_path / "flow_source.py")
    assert compilation.output is not None, compilation.diagnostics
    out = tmp_path / "out"
    out.mkdir()
    (out / "flow_source.py").write_text(compilation.output, encoding="utf-8")
    expected = outcome(tmp_path)
    assert expected[0] == "raised", expected
    assert outcome(out) == expected
