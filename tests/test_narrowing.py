"""The checks a task repeats for mypy change nothing a flow does.

`tests/data/narrowing.test` holds flows whose tasks and fan-out elements
repeat, as asserts, the checks the flow made of the values they read (its
goldens show the asserts; `test_typecheck` holds them to `mypy --strict`).
Here each flow runs compiled and as its source, on values that pass its
checks and values that fail them: the same result, or the same exception.
An assert repeated where the flow's check did not hold (a name bound again
after it, a check in one arm only, a test of anything but identity or type)
would fail where the source goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.goldens import DATA, load_cases
from tests.test_differential import compiled_and_source

CASES = load_cases(DATA / "narrowing.test")
# Each parameter's values: past every check, and stopped by one (and few
# enough rounds of a loop for its visit limits).
VALUES: dict[str, list[Any]] = {
    "i": [-1, 0, 1, 2, 3],
    "xs": [[], [4, 5]],
    "d": ["a", None],
}


def outcome(run: Callable[[], object]) -> tuple[str, object]:
    try:
        return "value", run()
    except Exception as error:
        return type(error).__name__, str(error)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_flow_repeating_its_checks_equals_its_source(
    case: Any, tmp_path: Path
) -> None:
    compiled, source = compiled_and_source(case.source, tmp_path)
    flows = [
        name for name, value in vars(source).items() if hasattr(value, "__kiln_flow__")
    ]
    assert flows
    for name in flows:
        parameters = inspect.signature(getattr(source, name)).parameters
        for arguments in itertools.product(*(VALUES[p] for p in parameters)):
            expected = outcome(partial(asyncio.run, getattr(source, name)(*arguments)))
            got = outcome(partial(getattr(compiled, name), *arguments))
            assert got == expected, (name, arguments)
