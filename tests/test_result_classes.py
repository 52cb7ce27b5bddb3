"""find_result_classes and place_classes: which classes a cached node's results may rebuild,
found in its return annotation and the project's class definitions, and how the generated
module names them."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from kilnc.collect import collect_definitions
from kilnc.front import ModuleDefs, ParsedModule
from kilnc.parse import parse_source
from kilnc.pipeline import FRONT_END, compile_file
from kilnc.project import Project, Reader
from kilnc.resolve import locate
from kilnc.result_classes import find_result_classes
from kilnc.source import SourceFile, display_path
from tests.test_differential import load

GEOMETRY = """
    from dataclasses import dataclass
    from enum import Enum

    class Unit(Enum):
        M = "m"

    @dataclass(frozen=True)
    class Point:
        x: float
        unit: "Unit"

    class Outer:
        @dataclass
        class Inner:
            depth: int

    def point(x: float) -> Point:
        return Point(x, Unit.M)
"""


def project(root: Path, files: dict[str, str], main: str) -> tuple[Project, ModuleDefs]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")
    path = root / main
    location = locate(path)
    source = SourceFile.from_bytes(display_path(path), location.name, path.read_bytes())
    parsed = parse_source(source)
    assert isinstance(parsed, ParsedModule)
    defs, _ = collect_definitions(parsed, location)
    return Project(defs, Reader(location.root, FRONT_END)), defs


def classes_of(root: Path, annotation: str, prelude: str = "") -> list[tuple[str, str]]:
    main = f"""
        from __future__ import annotations
        import datetime
        from dataclasses import dataclass
        from typing import Annotated, Any, Literal, NewType, Optional, TypeAlias
        from kiln import node
        from . import geometry
        from .geometry import Point, Outer
        {prelude}

        @node(cache=True)
        def result() -> {annotation}:
            ...
    """
    files = {"pipe/__init__.py": "", "pipe/geometry.py": GEOMETRY, "pipe/main.py": main}
    found, defs = project(root, files, "pipe/main.py")
    refs = find_result_classes(found, defs.nodes["result"])
    return [(ref.module, ref.path) for ref in refs]


POINT = ("pipe.geometry", "Point")
UNIT = ("pipe.geometry", "Unit")


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        ("int", []),
        ("Any", []),
        ("list[dict[str, tuple[int, ...]]]", []),
        ("Point", [POINT, UNIT]),
        ("Optional[Point]", [POINT, UNIT]),
        ("Point | None", [POINT, UNIT]),
        ('"list[Point]"', [POINT, UNIT]),
        ("geometry.Unit", [UNIT]),
        ("Outer.Inner", [("pipe.geometry", "Outer.Inner")]),
        ("Literal['Point']", []),
        ("Annotated[int, 'Point']", []),
        ("datetime.date", [("datetime", "date")]),
    ],
)
def test_the_classes_an_annotation_names_and_their_fields(
    tmp_path: Path, annotation: str, expected: list[tuple[str, str]]
) -> None:
    assert classes_of(tmp_path, annotation) == expected


def test_aliases_new_types_and_own_classes_with_their_bases(tmp_path: Path) -> None:
    prelude = """
        Rows: TypeAlias = list["Shape"]
        Id = NewType("Id", Point)

        @dataclass
        class Base:
            origin: Point

        @dataclass
        class Shape(Base):
            parent: Shape | None
            kids: dict[str, Shape]
    """
    assert classes_of(tmp_path, "Rows", prelude) == [
        ("pipe.main", "Shape"),
        POINT,
        UNIT,
    ]
    assert classes_of(tmp_path, "Id", prelude) == [POINT, UNIT]


@pytest.mark.parametrize(
    ("imports", "named"),
    [
        ("from . import geometry", "(Box, geometry.Point, geometry.Unit)"),
        ("from .geometry import Point", "(Box, Point, _KILN_CLASS_UNIT)"),
    ],
)
def test_the_module_names_its_classes_as_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imports: str, named: str
) -> None:
    """Its own copy, a name it imports anyway, else an import of its own."""
    main = f"""
        from dataclasses import dataclass
        from kiln import flow, node
        {imports}
        from .geometry import point

        @dataclass
        class Box:
            corner: {named.split(", ")[1]}

        @node(cache=True)
        def boxed(x: float) -> Box:
            return Box(point(x))

        @flow
        def run(x: float) -> Box:
            return boxed(x)
    """
    files = {"pipe/__init__.py": "", "pipe/geometry.py": GEOMETRY, "pipe/main.py": main}
    project(tmp_path, files, "pipe/main.py")
    output = compile_file(tmp_path / "pipe" / "main.py").output
    assert output is not None
    assert f"classes={named}" in output
    assert ("_KILN_CLASS_UNIT" in named) == (
        "from pipe.geometry import Unit as _KILN_CLASS_UNIT" in output
    )
    assert output.index("class Box") < output.index("class Run")
    (tmp_path / "main_out.py").write_text(output, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("KILN_LEDGER", str(tmp_path / "ledger.db"))
    module = load(tmp_path / "main_out.py")
    assert module.run(1.5) == module.run(1.5)  # the second from the ledger


def test_a_flow_written_above_a_class_comes_out_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = """
        from __future__ import annotations
        from dataclasses import dataclass
        from kiln import flow, node

        @flow
        def run(x: int) -> Late:
            return late(x)

        @node(cache=True)
        def late(x: int) -> Late:
            return Late(x)

        @dataclass
        class Late:
            x: int
    """
    project(tmp_path, {"late.py": main}, "late.py")
    output = compile_file(tmp_path / "late.py").output
    assert output is not None
    assert output.index("class Late") < output.index("class Run")
    (tmp_path / "late_out.py").write_text(output, encoding="utf-8")
    monkeypatch.setenv("KILN_LEDGER", str(tmp_path / "ledger.db"))
    module = load(tmp_path / "late_out.py")
    assert module.run(3) == module.run(3) == module.Late(3)
