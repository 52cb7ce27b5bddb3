"""kiln.stale: a cached node run from its source file is run only from that file as compiled."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiln import StaleModuleError
from kiln.site_table import Site
from kiln.stale import check_sources

SOURCE = "async def score(x: int) -> int:\n    return x * 1\n"


def load(path: Path) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location(f"nodes_{abs(hash(path))}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    score: Callable[..., Any] = module.score
    return score


def compiled(fn: Callable[..., Any], path: Path) -> Site:
    """The site a module compiled now would have: the file's hash as it reads now."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Site(
        "score",
        "app/main.py:6",
        fn,
        cache="f" * 64,
        file_sha256=digest,
        defined="app/nodes.py:1",
    )


class Main:
    """A flow class as the generated module `build.app.main` names it."""


Main.__module__ = "build.app.main"


@pytest.fixture
def nodes(tmp_path: Path) -> Path:
    path = tmp_path / "app" / "nodes.py"
    path.parent.mkdir()
    path.write_text(SOURCE)
    return path


def test_the_file_as_compiled_runs(nodes: Path) -> None:
    check_sources(Main, [compiled(load(nodes), nodes)])


def test_an_edited_file_is_refused_naming_the_module_the_file_and_the_node(
    nodes: Path,
) -> None:
    score = compiled(load(nodes), nodes)
    nodes.write_text(SOURCE.replace("x * 1", "x * 2"))
    with pytest.raises(StaleModuleError, match="Run kiln compile again") as refused:
        check_sources(Main, [score])
    assert (refused.value.module, refused.value.source, refused.value.node) == (
        "build.app.main",
        str(nodes),
        "score",
    )
    assert str(refused.value).startswith(f"build.app.main is stale: {nodes}, where")
    again = pickle.loads(
        pickle.dumps(refused.value)
    )  # across processes, as Dask sends it
    assert (str(again), again.module, again.node) == (
        str(refused.value),
        "build.app.main",
        "score",
    )


def test_a_file_that_cannot_be_read_is_not_refused(nodes: Path) -> None:
    """Deployed without its sources: nothing to tell the running code by."""
    score = compiled(load(nodes), nodes)
    nodes.unlink()
    check_sources(Main, [score])


def test_each_file_is_hashed_once_per_process(nodes: Path) -> None:
    score = compiled(load(nodes), nodes)
    check_sources(Main, [score])
    nodes.write_text(SOURCE.replace("x * 1", "x * 2"))
    check_sources(Main, [score])  # the first check stands: the code was loaded before


def test_a_node_seen_through_its_decorator_is_checked(nodes: Path) -> None:
    @functools.wraps(load(nodes))
    async def wrapped(x: int) -> int:
        return x

    score = compiled(wrapped, nodes)
    nodes.write_text(SOURCE.replace("x * 1", "x * 2"))
    with pytest.raises(StaleModuleError):
        check_sources(Main, [score])


def test_a_node_that_runs_from_another_file_than_the_compiled_one_is_not_checked(
    nodes: Path,
) -> None:
    async def elsewhere(x: int) -> int:  # defined in this test file, not app/nodes.py
        return x

    score = compiled(elsewhere, nodes)
    nodes.write_text(SOURCE.replace("x * 1", "x * 2"))
    check_sources(Main, [score])
