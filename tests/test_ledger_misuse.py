"""A ledger kiln cannot use is the user's to fix: it leaves as itself, before any node runs.

A path that is a directory or a device, a `ledger=` that is no path at all,
an argument the ledger cannot store: none is a failure of the node, so no
retry repeats it, no fallback answers it, and no note blames the node.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from kiln import LedgerError, OptionError, UncacheableValue
from tests.test_differential import compiled_and_source

# What ran is logged to a file: a cached node may not change module state.
FLOWS = """
import asyncio
import os
from kiln import flow, node

def ran(what: str) -> None:
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(what + "\\n")

def answer(x: object, *, error: Exception) -> int:
    ran("fallback")
    return -1

@node(cache=True, fallback=answer)
async def square(x: object) -> int:
    ran("square")
    return 4

@node(cache=True, retries=3, wait=0.5)
def cube(x: int) -> int:
    ran("cube")
    return x * x * x

@flow
async def answered(x: object) -> int:
    return await square(x)

@flow
def retried(x: int) -> int:
    return cube(x)
"""


@pytest.fixture
def module(tmp_path: Path, log: Path) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(FLOWS), tmp_path / "build")
    return compiled


@pytest.mark.parametrize("flow", ["answered", "retried"])
@pytest.mark.parametrize("path", ["directory", "/dev/null"])
def test_a_ledger_path_kiln_cannot_use_fails_the_run_before_any_node_runs(
    module: ModuleType, tmp_path: Path, log: Path, flow: str, path: str
) -> None:
    ledger = tmp_path if path == "directory" else Path(path)
    instance = type(getattr(module, flow))(ledger=ledger)
    with pytest.raises(LedgerError, match=r"directory|not a regular file") as raised:
        instance(2)
    assert not log.exists()  # neither the node, nor its fallback, nor a retry
    assert getattr(raised.value, "__notes__", []) == []  # no node failed


def test_an_argument_the_ledger_cannot_store_is_no_failure_a_fallback_answers(
    module: ModuleType, tmp_path: Path, log: Path
) -> None:
    instance = type(module.answered)(ledger=tmp_path / "ledger.db")
    with pytest.raises(UncacheableValue, match="square"):
        instance(object())
    assert not log.exists()


@pytest.mark.parametrize(
    "ledger", [123, b"/tmp/ledger.db", ["a.db"], 1.5, object(), ""]
)
def test_a_ledger_that_is_no_path_is_refused_when_the_instance_is_made(
    module: ModuleType, ledger: object
) -> None:
    with pytest.raises(OptionError, match=r"^ledger must be a path .*; got "):
        type(module.answered)(ledger=ledger)


@pytest.mark.parametrize("ledger", [True, False, None, "x.db"])
def test_a_ledger_option_of_each_kind_it_takes_is_accepted(
    module: ModuleType, tmp_path: Path, ledger: object
) -> None:
    if isinstance(ledger, str):
        ledger = tmp_path / ledger
    type(module.answered)(ledger=ledger)
