"""Types: every golden output passes `mypy --strict`, and so do runtime/ and compiler/.

mypy runs through its API (`mypy.api.run`), once over all goldens together.
The generated code imports the runtime as `kiln`, which mypy finds where it is
installed, as it does for users: no MYPYPATH.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from mypy import api

from tests.goldens import DATA, load_cases

ROOT = Path(__file__).resolve().parent.parent


def mypy_strict(paths: list[Path]) -> str:
    # No cache: test_lint's mypy, maybe running beside this one, owns .mypy_cache.
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            "--show-error-codes",
            *map(str, paths),
        ]
    )
    assert status == 0, stdout + stderr
    return stdout


def test_golden_outputs_pass_mypy_strict(tmp_path: Path) -> None:
    written = []
    for path in sorted(DATA.glob("*.test")):
        for case in load_cases(path):
            if case.expected:
                module = tmp_path / f"golden_{case.name}.py"
                module.write_text(case.expected, encoding="utf-8")
                written.append(module)
    assert len(written) >= 10
    mypy_strict(written)


def test_the_project_passes_mypy_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    mypy_strict([ROOT / "runtime" / "kiln", ROOT / "compiler" / "kilnc"])


# A site table as kiln writes one, with a call of each kind the types tell apart.
SITES = """
from collections.abc import Iterator

import kiln as _kiln


async def fetch(url: str) -> bytes:
    return url.encode()


def read(path: str) -> int:
    return len(path)


def lines(text: str) -> Iterator[str]:
    yield from text.split()


def cached(url: str, error: Exception) -> {sync_answer}:
    return {sync_value}


async def refetched(url: str, error: Exception) -> bytes:
    return b""


_POLICY = _kiln.Policy("read", timeout=1.0, where="a.py:9")


class Sites(_kiln.Flow, _kiln.AsyncProcess, _kiln.Process):
    _kiln_sites = (
        _kiln.site(fetch, "fetch", "a.py:1", "a.py:2", fallback=cached),
        _kiln.site(fetch, "fetch", "a.py:3", "a.py:2", fallback=refetched),
        _kiln.site(read, "read", "a.py:4", "a.py:5", kind="thread", policy=_POLICY),
        _kiln.site(lines, "lines", "a.py:6", "a.py:7", kind="stream"),
    )

    async def aforward(self, url: str) -> int:
        with self._kiln_bind(self._kiln_sites) as (fetched, refetch, reading, split):
            reveal_type(fetched)
            reveal_type(refetch)
            reveal_type(reading)
            reveal_type(split)
            return len(await fetched(url)) + await reading(url)

    def forward(self, url: str) -> int:
        return _kiln.run_sync(self.aforward(url))
"""


def test_a_site_is_typed_as_the_call_it_stands_for(tmp_path: Path) -> None:
    module = tmp_path / "sites.py"
    module.write_text(SITES.format(sync_answer="bytes", sync_value='b""'))
    stdout, _, _ = api.run(
        ["--strict", "--no-incremental", "--cache-dir", os.devnull, str(module)]
    )
    revealed = [
        line.split("Revealed type is ")[1]
        for line in stdout.splitlines()
        if "Revealed" in line
    ]
    assert revealed == [
        '"def (url: str) -> typing.Coroutine[Any, Any, bytes]"',
        '"def (url: str) -> typing.Coroutine[Any, Any, bytes]"',
        '"def (path: str) -> typing.Coroutine[Any, Any, int]"',
        '"def (text: str) -> typing.Iterator[str]"',
    ]
    assert "error" not in stdout


def test_a_fallback_answering_with_another_type_is_a_type_error(tmp_path: Path) -> None:
    module = tmp_path / "sites.py"
    module.write_text(SITES.format(sync_answer="str", sync_value='""'))
    stdout, _, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", os.devnull, str(module)]
    )
    assert status == 1
    [error] = [line for line in stdout.splitlines() if ": error:" in line]
    line = int(error.split(":")[1])
    assert "fallback=cached" in module.read_text().splitlines()[line - 1]


GENERIC_SITES = """
from typing import TypeVar

import kiln as _kiln

T = TypeVar("T")


def last(xs: list[T]) -> T:
    return xs[-1]


async def first(xs: list[T]) -> T:
    return xs[0]


_POLICY = _kiln.Policy("last", where="a.py:9")

reveal_type(_kiln.site(last, "last", "a.py:1", kind="thread", policy=_POLICY))
reveal_type(_kiln.site(first, "first", "a.py:2", policy=_POLICY))
"""


def test_a_generic_node_keeps_its_site_generic(tmp_path: Path) -> None:
    """A generic node's calls are typed at each call, as the node's own are."""
    module = tmp_path / "generic_sites.py"
    module.write_text(GENERIC_SITES)
    stdout, _, _ = api.run(
        ["--strict", "--no-incremental", "--cache-dir", os.devnull, str(module)]
    )
    assert "error" not in stdout, stdout
    revealed = [
        line.split("Revealed type is ")[1]
        for line in stdout.splitlines()
        if "Revealed" in line
    ]
    # Generic (`def [T] (xs: list[T]) -> ...`), however mypy names the variable.
    assert len(revealed) == 2
    assert all(re.match(r'"def \[(\w+)\] \(xs: .*list\[\1\]\)', t) for t in revealed)
