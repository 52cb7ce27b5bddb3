"""The checks a task repeats for mypy change nothing a flow does.

`tests/data/narrowing.test` holds flows whose tasks and fan-out elements
repeat, as asserts, the checks the flow made of the values they read (its
goldens show the asserts; `test_typecheck` holds them to `mypy --strict`).
Here each flow runs compiled and as its source, on values that pass its
checks and values that fail them: the same result, or the same exception.
An assert repeated where the flow's check did not hold (a name bound again
after it, a check in one arm only) would fail where the source goes on, if
it ran; the asserts never run, and tell mypy what the source's checks told
it, `TypeGuard` functions, `type(x) is C` and `len(t) == 2` too.
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

from kilnc.pipeline import compile_file
from kilnc.typecheck import typecheck_modules
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


def test_a_check_by_any_test_mypy_narrows_by_is_repeated_and_checks_clean(
    tmp_path: Path,
) -> None:
    """`kiln check` reports nothing on a flow whose checks narrow by a `TypeGuard`
    function, `type(x) is C` or `len(t) == 2`: mypy accepts the source, and the
    tasks repeat those checks (trial Q9 §3)."""
    (case,) = [c for c in CASES if c.name == "narrowed_by_guards_types_and_lengths"]
    path = tmp_path / "guards.py"
    path.write_text(case.source, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    assert "assert type(d) is str" in compilation.output  # `is not` failed: `is`
    found = typecheck_modules(
        [("guards.py", compilation.output, compilation.line_map)], [], [tmp_path]
    )
    assert found == []
