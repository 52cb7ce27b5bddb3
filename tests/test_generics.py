"""Generic nodes: what a call of one returns is mypy's to infer, never an annotation of kiln's.

A node whose return annotation names a type variable (`def first(xs:
list[T]) -> T`) returns another type at each call, so the generated code
writes no annotation of its value (`tests/data/generics.test` shows the
module). Here, which names are type variables (`type_variables`): made by
typing's or typing_extensions' `TypeVar`, `ParamSpec`, `TypeVarTuple`, in the
node's module or a module of the project it imports them from, `AnyStr`, and
the function's own type parameters; and a project whose nodes use them,
compiled and held to `mypy --strict`.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

import kilnc.parse
from kilnc.annotations import type_variables
from tests.test_cli import kiln
from tests.test_result_classes import project

TYPES = """
    import typing

    import typing_extensions
    from typing import ParamSpec, TypeVarTuple

    T = typing.TypeVar("T")
    U = typing_extensions.TypeVar("U")
    P = ParamSpec("P")
    Ts = TypeVarTuple("Ts")
    Row = list[int]
"""

NODES = """
    from collections.abc import Awaitable, Callable
    from typing import AnyStr, TypeVar

    from kiln import node

    from .types import P, Row, T, Ts, U

    K = TypeVar("K")


    class Item:
        pass


    @node
    async def first(xs: list[T]) -> T: ...
    @node
    async def quoted(x: U) -> "dict[str, U]": ...
    @node
    async def local(x: K) -> list[K]: ...
    @node
    async def text(x: AnyStr) -> AnyStr: ...
    @node
    async def later(f: Callable[P, Awaitable[int]]) -> Callable[P, Awaitable[int]]: ...
    @node
    async def unpacked(*xs: *Ts) -> tuple[*Ts]: ...
    @node
    async def own[V](x: V) -> tuple[V, Item]: ...
    @node
    async def rows() -> Row: ...
    @node
    async def items() -> list[Item]: ...
"""


def test_type_variables_are_read_from_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.11 refuses `def own[V]`; 3.12 runs it, and kiln reads it then.
    monkeypatch.setattr(kilnc.parse, "_python_rejects", lambda source, text: None)
    files = {"app/__init__.py": "", "app/types.py": TYPES, "app/nodes.py": NODES}
    found, defs = project(tmp_path, files, "app/nodes.py")
    assert {
        name: sorted(type_variables(found, node)) for name, node in defs.nodes.items()
    } == {
        "first": ["T"],
        "quoted": ["U"],
        "local": ["K"],
        "text": ["AnyStr"],
        "later": ["P"],
        "unpacked": ["Ts"],
        "own": ["V"],
        "rows": [],
        "items": [],
    }


def test_a_project_of_generic_nodes_compiles_to_a_module_mypy_passes(
    tmp_path: Path,
) -> None:
    sources = {
        "app/__init__.py": "",
        "app/types.py": TYPES,
        "app/nodes.py": """
            import asyncio

            from kiln import node

            from .types import T


            @node
            async def last(xs: list[T]) -> T:
                await asyncio.sleep(0.01)
                return xs[-1]
        """,
        "app/main.py": """
            import asyncio

            from kiln import flow, node

            from .nodes import last
            from .types import T


            @node
            async def first(xs: list[T]) -> T:
                await asyncio.sleep(0.01)
                return xs[0]


            @node
            async def double(x: int) -> int:
                await asyncio.sleep(0.01)
                return 2 * x


            @flow
            async def ends(ids: list[int]) -> int:
                i = await first(ids)
                j = await last(ids)
                a = await double(i)
                b = await double(j)
                c = await double(i + j)
                return a + b + c
        """,
    }
    for name, text in sources.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")
    compiled = kiln("compile", "app/main.py", "-o", "build", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "Child[T]" not in (tmp_path / "build/app/main.py").read_text()
    checked = kiln("check", "app/main.py", "-o", "build", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
