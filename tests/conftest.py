"""Shared test configuration: goldens, Hypothesis profiles, asyncio hygiene, no skips in CI.

Python's "coroutine ... was never awaited" is a RuntimeWarning, which the
project's pytest settings turn into an error; an asyncio task whose exception
was never retrieved is only logged, so the `asyncio_hygiene` fixture fails any
test during which asyncio logged an error.

Under CI (`CI` set) a test that skips (Graphviz's dot missing, an extra not
installed, no network for the wheel) fails instead, with its reason: a feature
whose tests could not run must not go green.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Python trusts a module's cached bytecode while the file's size and its mtime in
# whole seconds are unchanged: a test that edits a module (`PRICE = 12` to
# `PRICE = 30`) and runs it again within the second would run the old code, in
# this process and in the interpreters it starts, which inherit this. Nor do
# runs leave `__pycache__` in trees a test compares.
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
sys.dont_write_bytecode = True

# A shell without job control starts a command it runs in the background with
# Ctrl-C ignored, and Python then keeps it ignored: the tests of what Ctrl-C
# does would see nothing. They test what a user at a terminal gets, Python's
# own handler, here and in the interpreters they start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite the [out] sections of tests/data/*.test with what kiln produces now",
    )


@pytest.fixture(autouse=True)
def asyncio_hygiene(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        yield
    problems = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    if problems:
        pytest.fail("asyncio logged errors during the test:\n" + "\n".join(problems))


def _fail_skips_under_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every test must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, None]:
    outcome = yield
    _fail_skips_under_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, Any, None]:
    outcome = yield
    _fail_skips_under_ci(outcome.get_result())


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file a test flow's nodes log their side effects to ($KILN_TEST_RUNS)."""
    path = tmp_path / "runs.log"
    monkeypatch.setenv("KILN_TEST_RUNS", str(path))
    return path
