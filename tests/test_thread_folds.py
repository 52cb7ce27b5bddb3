"""A fold into module state in a `thread=True` node: a change, not an accumulation.

`USAGE["tokens"] += count_tokens(p)` reads the count, runs the call, then
stores the sum. In the event loop nothing runs between the read and the
store unless the right side awaits (which makes it a change already); in a
thread, another thread's fold may, and one of the two updates is lost: the
source's three calls counted 6 tokens, the compiled fan-out 1 or 2 (trial
Q5). A thread node's folds are changes: its calls keep the source's order.
An append is one step of the list's (atomic in CPython), so thread nodes that
only append still overlap.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent

import pytest

from tests.test_differential import compiled_and_source

HEADER = """
import time
from kiln import flow, node

USAGE: dict[str, int] = {"tokens": 0}
TOTAL = 0
LOG: list[str] = []


def count_tokens(text: str) -> int:  # a blocking tokenizer
    time.sleep(0.02)
    return len(text)


class Meter:
    def __init__(self) -> None:
        self.used = 0

    def add(self, text: str) -> None:
        self.used = self.used + count_tokens(text)


METER = Meter()
"""

FOLDS = {
    "an_item_added_to": 'USAGE["tokens"] += count_tokens(prompt)',
    "an_item_summed_with_get": (
        'USAGE["tokens"] = USAGE.get("tokens", 0) + count_tokens(prompt)'
    ),
    "a_global_added_to": "global TOTAL\nTOTAL += count_tokens(prompt)",
    "a_module_object_s_method_that_folds": "METER.add(prompt)",
}

RESULT = '[outs, USAGE["tokens"], TOTAL, METER.used]'


def _flows(body: str) -> str:
    body = body.replace("\n", "\n" + " " * 12)  # the lines of the node's body
    return dedent(HEADER) + dedent(f"""
        @node(thread=True)
        def tllm(prompt: str) -> str:
            {body}
            return prompt.upper()


        @flow
        async def fanned() -> list[object]:
            outs = [tllm(p) for p in ["aa", "bbb", "c"]]
            return {RESULT}


        @flow
        async def apart() -> list[object]:
            outs = [tllm("aa"), tllm("bbb"), tllm("c")]
            return {RESULT}
        """)


@pytest.mark.parametrize("flow", ["fanned", "apart"])
@pytest.mark.parametrize("fold", sorted(FOLDS))
def test_a_thread_node_s_folds_keep_the_source_s_order(
    fold: str, flow: str, tmp_path: Path
) -> None:
    compiled, source = compiled_and_source(_flows(FOLDS[fold]), tmp_path)
    expected = asyncio.run(getattr(source, flow)())
    assert getattr(compiled, flow)() == expected
    assert 6 in expected


def test_thread_nodes_that_only_append_still_overlap(tmp_path: Path) -> None:
    appends = 'LOG.append("start")\ntime.sleep(0.1)\nLOG.append("end")'
    compiled, _ = compiled_and_source(_flows(appends), tmp_path)
    assert compiled.fanned()[0] == ["AA", "BBB", "C"]
    assert compiled.LOG[:2] == [
        "start",
        "start",
    ]  # the second began before the first ended
