"""A compile's work grows with the flow, linearly: counted, never timed.

A chain of n steps (`x = await step(x)`, n times: benchmarks/common.py) is
compiled at two lengths, and what the front and middle of the compiler do
per node of the tree is counted: the nodes libcst's `visit` and kiln's
`walk` pass, and the assignments libcst's scope analysis links to the
accesses kiln asks about. Each may grow about as fast as the flow, four
times for four times the steps, with room to spare; a pass that walks the
whole body once per statement, or an analysis that links every access to
every assignment of the name, grows sixteen times and fails here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libcst as cst
import pytest
from libcst.metadata.scope_provider import Access

import kilnc.walk
from kilnc.pipeline import compile_file

SHORT, LONG = 25, 100
SLACK = 1.5  # over the growth of the flow itself


def chain(length: int) -> str:
    body = "    x = await step(x)\n" * length
    return (
        "from kiln import flow, node\n\n\n"
        "@node\nasync def step(x: int) -> int:\n    return x + 1\n\n\n"
        f"@flow\nasync def chain(x: int) -> int:\n{body}    return x\n"
    )


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counts: Counter[str] = Counter()

    def counted(what: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[what] += 1
            return original(*args, **kwargs)

        return call

    for cls in (cst.CSTNode, cst.Module):
        monkeypatch.setattr(cls, "visit", counted("libcst visits", cls.visit))
    monkeypatch.setattr(kilnc.walk, "walk", counted("walked", kilnc.walk.walk))
    record = Access.record_assignments

    def linked(access: Access, name: str) -> None:
        record(access, name)
        counts["assignments linked"] += len(access.referents)

    monkeypatch.setattr(Access, "record_assignments", linked)
    return counts


def compile_chain(tmp_path: Path, length: int, work: Counter[str]) -> Counter[str]:
    source = tmp_path / f"chain{length}.py"
    source.write_text(chain(length))
    work.clear()
    compilation = compile_file(source)
    assert compilation.output is not None, compilation.diagnostics
    return Counter(work)


def test_a_compile_does_work_in_proportion_to_the_flow(
    tmp_path: Path, work: Counter[str]
) -> None:
    short = compile_chain(tmp_path, SHORT, work)
    long = compile_chain(tmp_path, LONG, work)
    growth = LONG / SHORT
    for what in ("libcst visits", "walked", "assignments linked"):
        assert short[what] > 0, what
        assert long[what] <= growth * SLACK * short[what], (what, short, long)
