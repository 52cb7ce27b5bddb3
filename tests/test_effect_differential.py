"""Differential tests for flows with effects: the compiled flow equals its source run.

The flows come from `tests/effectgen.py`: nodes and statements that change
what they are passed, aliases, iterators, Memory clones, log lines, guards
and failures. The compiled run must return what the source returns (or raise
the same error), and each log line must come after every call the source
ran before it and before every call it ran after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
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
        with contextlib.redirect_stdout(Printed(events)):
            outcome: Outcome = ("returned", asyncio.run(flow(x, memory)))
    except (getattr(module, "Stop", AssertionError), AssertionError) as error:
        outcome = ("raised", type(error).__name__, str(error))
    return outcome, list(events)


class Printed(io.StringIO):
    """stdout whose lines join the module's events as they are printed."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def write(self, text: str) -> int:
        self.events.extend(line for line in text.split("\n") if line)
        return len(text)


def logs_keep_their_place(source: list[str], compiled: list[str]) -> None:
    """Each log line comes after every call the source ran before it, and before
    every call the source ran after it, in the same order."""
    assert [e for e in compiled if e.startswith("log")] == [
        e for e in source if e.startswith("log")
    ]
    for index, entry in enumerate(source):
        if entry.startswith("log"):
            before = {e for e in source[:index] if e.startswith("done")}
            place = compiled.index(entry)
            ended = {e for e in compiled[:place] if e.startswith("done")}
            assert before == ended, (entry, before, compiled)


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
