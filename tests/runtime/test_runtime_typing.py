"""The runtime's static API: mypy --strict on typing_cases.py reports exactly the `# E:` lines."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

CASES = Path(__file__).with_name("typing_cases.py")
EXPECTED = re.compile(r"#\s*E:\s*([\w-]+)")
REPORTED = re.compile(r"^[^:]+:(\d+): error: .*\[([\w-]+)\]$")


def expected_errors() -> set[tuple[int, str]]:
    lines = CASES.read_text().splitlines()
    return {
        (number, match.group(1))
        for number, line in enumerate(lines, start=1)
        if (match := EXPECTED.search(line))
    }


def test_mypy_strict_accepts_the_api_and_rejects_misuse() -> None:
    stdout, stderr, _ = mypy_api.run(
        [
            "--strict",
            "--config-file",
            os.devnull,
            "--cache-dir",  # test_lint's mypy, maybe running beside, owns .mypy_cache
            os.devnull,
            "--python-version",
            "3.11",
            str(CASES),
        ]
    )
    reported = {
        (int(match.group(1)), match.group(2))
        for line in stdout.splitlines()
        if (match := REPORTED.match(line))
    }
    unexplained = [line for line in stdout.splitlines() if ": error:" in line]
    assert reported == expected_errors(), stdout + stderr
    assert len(unexplained) == len(reported), stdout
