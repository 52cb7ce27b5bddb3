"""Differential tests for flows with effects: the compiled flow equals its source run.

The flows come from `tests/effectgen.py`: nodes and statements that change
what they are passed, aliases, iterators, Memory clones, log lines, guards
and failures. The compiled run must return what the source returns (or raise
the same error), and each log line must come after every call the source
ran before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kiln import Memory
from tests.effectgen import effect_flows
from tests.test_differential import compiled_and_source

Outcome = tuple[Any, ...]


def run(
    module: ModuleType, flow: Callable[..., Coroutine[Any, Any, Any]], x: int
) -> tuple[Outcome, list[str]]:
    """The flow's result or error, and the module's events, for one fresh run."""
    events: list[str] = getattr(module, "events", [])  # shaken away when unused
    events.clear()
    memory = Memory({"log": [], "k1": 0})
    try:
        outcome: Outcome = ("returned", asyncio.run(flow(x, memory)))
    except (getattr(module, "Stop", AssertionError), AssertionError) as error:
        outcome = ("raised", type(error).__name__, str(error))
    return outcome, list(events)


def logs_keep_their_place(source: list[str], compiled: list[str]) -> None:
    """Each log line comes after every call the source ran before it, in the same order."""
    assert [e for e in compiled if e.startswith("log")] == [
        e for e in source if e.startswith("log")
    ]
    for index, entry in enumerate(source):
        if entry.startswith("log"):
            before = {e for e in source[:index] if e.startswith("done")}
            place = compiled.index(entry)
            assert before <= set(compiled[:place]), (entry, before, compiled)


def check(source: str, x: int, directory: Any) -> None:
    compiled, reference = compiled_and_source(source, directory)
    expected, source_events = run(reference, reference.main, x)
    outcome, events = run(compiled, compiled.main.aforward, x)
    assert outcome == expected, source
    logs_keep_their_place(source_events, events)


@settings(max_examples=80, deadline=None)
@given(source=effect_flows(), x=st.integers(min_value=-50, max_value=50))
def test_flows_with_effects_match_their_source(
    source: str, x: int, tmp_path_factory: Any
) -> None:
    check(source, x, tmp_path_factory.mktemp("effects"))
