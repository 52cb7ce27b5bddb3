"""Shared test configuration: goldens, Hypothesis profiles, and asyncio hygiene.

Python's "coroutine ... was never awaited" is a RuntimeWarning, which the
project's pytest settings turn into an error; an asyncio task whose exception
was never retrieved is only logged, so the `asyncio_hygiene` fixture fails any
test during which asyncio logged an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

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
