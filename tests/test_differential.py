"""Differential tests: a compiled flow computes what its source computes.

The source module, run as plain Python, is the reference semantics. Random
DAG-shaped flows (mixed sync and async nodes, fan-outs, branches, inline
glue, Memory writes) are compiled and both versions run on the same input.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import black
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kiln import EventStatus, Memory
from kilnc.pipeline import compile_file
from kilnc.writer import MODE
from tests.flowgen import (
    SCHEDULER_REGRESSION,
    flows,
    plain_run_without_failures,
    retried_as_planned,
)


def load(path: Path, name: str | None = None) -> ModuleType:
    """Import the module at `path`, as `name` (a fresh name if None)."""
    name = name or f"kiln_test_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compiled_and_source(source: str, directory: Path) -> tuple[ModuleType, ModuleType]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "generated_flow.py"
    path.write_text(source, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, [d.message for d in compilation.diagnostics]
    assert formatted_once(compilation.output)
    assert nothing_after_return(compilation.output)
    out = directory / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    return load(out), load(path)


def formatted_once(output: str) -> bool:
    """Whether black leaves the module as the compiler wrote it: one pass was enough."""
    return black.format_str(output, mode=MODE) == output


def nothing_after_return(output: str) -> bool:
    """Whether no statement of the module follows a `return` in its block: dead code."""
    for node in ast.walk(ast.parse(output)):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and any(
                isinstance(statement, ast.Return) for statement in block[:-1]
            ):
                return False
    return True


@settings(max_examples=60, deadline=None)
@given(source=flows(counted=True), x=st.integers(min_value=-50, max_value=50))
@example(source=SCHEDULER_REGRESSION, x=3)
def test_random_flows_match_their_source(
    source: str, x: int, tmp_path_factory: Any
) -> None:
    """The same values, from the same node calls: none more, none fewer."""
    directory = tmp_path_factory.mktemp("flow")
    compiled, reference = compiled_and_source(source, directory)
    expected = asyncio.run(
        plain_run_without_failures(reference).main(x, Memory({"log": []}))
    )
    calls = sorted(getattr(reference, "executed", []))
    assert asyncio.run(compiled.main.aforward(x, Memory({"log": []}))) == expected
    assert retried_as_planned(compiled)
    assert sorted(getattr(compiled, "executed", [])) == calls
    if calls:
        compiled.executed.clear()
    assert compiled.main(x, Memory({"log": []})) == expected
    assert sorted(getattr(compiled, "executed", [])) == calls


@settings(max_examples=30, deadline=None)
@given(
    source=flows(),
    x=st.integers(min_value=-50, max_value=50),
    concurrency=st.none() | st.integers(min_value=1, max_value=3),
)
def test_observed_and_capped_runs_match_their_source(
    source: str, x: int, concurrency: int | None, tmp_path_factory: Any
) -> None:
    """Events and a cap on calls in flight change when calls run, never what they compute."""
    directory = tmp_path_factory.mktemp("flow")
    compiled, reference = compiled_and_source(source, directory)
    expected = asyncio.run(
        plain_run_without_failures(reference).main(x, Memory({"log": []}))
    )
    observed = type(compiled.main)(record=True, concurrency=concurrency)
    assert asyncio.run(observed.aforward(x, Memory({"log": []}))) == expected
    # Unobserved, a capped fan-out's workers call its node themselves (`fan_out`).
    capped = type(compiled.main)(concurrency=concurrency)
    assert asyncio.run(capped.aforward(x, Memory({"log": []}))) == expected
    assert observed.executor is not None
    for event in observed.executor.pile:
        assert event.status is EventStatus.COMPLETED, event
        assert event.started is not None
        assert event.ended is not None
        assert event.ended >= event.started
        assert event.attempts >= 1
