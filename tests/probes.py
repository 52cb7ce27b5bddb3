"""A module of a library kiln does not read, beside a test's project.

Tests that watch a compiled flow overlap (calls in flight, the order in which
elements start) keep what they watch with in such a module: calls of it are
outside effects, which leave the nodes that make them concurrent, where
module state of the project's that a node reads and another changes would
keep them in the source's order.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest


def library_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str
) -> ModuleType:
    """`source` as the module `name`, importable and outside the project."""
    library = tmp_path / "library"
    library.mkdir(exist_ok=True)
    (library / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(library))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)
