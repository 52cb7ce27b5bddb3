"""depth.run_deep: room to recurse as deep as CPython compiles, and errors that stay errors."""

from __future__ import annotations

import sys

import pytest

from kilnc.depth import python_limits, run_deep


def nested(levels: int) -> int:
    """Recursion through a C call on each level, as libcst's visitors recurse."""
    return 0 if levels == 0 else 1 + sum(nested(levels - 1) for _ in (0,))


def endless(level: int) -> int:
    return 1 + sum(endless(level + 1) for _ in (0,))


def test_the_passes_may_recurse_far_past_pythons_default_limit() -> None:
    assert run_deep(lambda: nested(50_000)) == 50_000
    assert sys.getrecursionlimit() < 50_000  # given back afterwards


def test_endless_recursion_is_still_a_recursion_error() -> None:
    with pytest.raises(RecursionError):
        run_deep(lambda: endless(0))


def test_cpython_is_asked_under_a_plain_runs_limit() -> None:
    def limit() -> int:
        with python_limits():
            return sys.getrecursionlimit()

    assert run_deep(limit) < 2 * sys.getrecursionlimit()


def test_a_run_inside_a_run_stays_on_its_thread() -> None:
    assert run_deep(lambda: run_deep(lambda: nested(10_000))) == 10_000
