"""Names a string annotation spells are uses: the shaken module keeps what binds them.

A type written as a string (``"Optional[Greeter]"``) is read later, by
`typing.get_type_hints`, by `kiln run` and by mypy, in the generated module:
every import and class it names must be there, whatever the type's shape and
wherever typing reads it (a parameter, a return, a field, a module variable, a
`TypeAlias`, a generic alias's argument, a `TypeVar` bound, `cast`, a
functional `TypedDict` or `NamedTuple`, the flow's own signature). Each case
compiles one shape in one place, then asks the generated module for what the
source module answers: the names are bound, and the annotations evaluate to
the same types.
"""

from __future__ import annotations

import asyncio
import re
import typing
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.pipeline import compile_file
from tests.test_differential import load
from tests.test_typecheck import mypy_strict

PRELUDE = """\
import collections.abc
from dataclasses import dataclass
from decimal import Decimal
from typing import (
    Callable,
    NamedTuple,
    Optional,
    Protocol,
    TypeAlias,
    TypedDict,
    TypeVar,
    Union,
    cast,
)

from kiln import flow, node


class Greeter(Protocol):
    def greet(self) -> str: ...


"""

# Each shape: the annotation as the source spells it (a Python expression,
# quoted in part or whole), and the module-level names it reads.
SHAPES = {
    "a subscript": ('"Optional[Greeter]"', {"Optional", "Greeter"}),
    "a dotted generic and a union": (
        '"collections.abc.Sequence[Decimal] | None"',
        {"collections", "Decimal"},
    ),
    "a quote inside the quote": (
        "\"Union[Decimal, 'Greeter', None]\"",
        {"Union", "Decimal", "Greeter"},
    ),
    "a callable": (
        '"Optional[Callable[[Decimal], Greeter]]"',
        {"Optional", "Callable", "Decimal", "Greeter"},
    ),
    "a quoted argument of an unquoted generic": (
        'Optional["list[Greeter]"]',
        {"Optional", "Greeter"},
    ),
    "concatenated strings": ('"Optional[" "Decimal]"', {"Optional", "Decimal"}),
    "a bare name": ('"Optional_"', {"Optional_"}),
}

# Each place: the code that puts the annotation `{T}` there, reached from the
# node `step`, and the name of what `typing.get_type_hints` reads (None where
# only mypy reads the annotation).
PLACES = {
    "a node's parameter": (
        "@node\nasync def step(x: {T} = None) -> str:\n    return 'ok'\n",
        "step",
    ),
    "a return": (
        "def helper() -> {T}:\n    return None\n\n\n"
        "@node\nasync def step() -> str:\n    return str(helper())\n",
        "helper",
    ),
    "a dataclass field": (
        "@dataclass\nclass Row:\n    note: {T} = None\n\n\n"
        "@node\nasync def step() -> str:\n    return str(Row())\n",
        "Row",
    ),
    "a module variable": (
        "DEFAULT: {T} = None\n\n\n"
        "@node\nasync def step() -> str:\n    return str(DEFAULT)\n",
        None,
    ),
    "a TypeAlias": (
        "Alias: TypeAlias = {T}\n\n\n"
        "@node\nasync def step(x: Alias = None) -> str:\n    return 'ok'\n",
        "step",
    ),
    "a generic alias's argument": (
        "Alias = list[{T}]\n\n\n"
        "@node\nasync def step(x: Alias | None = None) -> str:\n    return 'ok'\n",
        "step",
    ),
    "a TypeVar's bound": (
        'T = TypeVar("T", bound={T})\n\n\n'
        "def same(x: T) -> T:\n    return x\n\n\n"
        "@node\nasync def step() -> str:\n    return str(same(None))\n",
        None,
    ),
    "cast": (
        "@node\nasync def step() -> str:\n    return str(cast({T}, None))\n",
        None,
    ),
    "a functional TypedDict": (
        'Row = TypedDict("Row", {"note": {T}})\n\n\n'
        "@node\nasync def step() -> str:\n    return str(Row(note=None))\n",
        "Row",
    ),
    "a functional NamedTuple": (
        'Pair = NamedTuple("Pair", [("note", {T})])\n\n\n'
        "@node\nasync def step() -> str:\n    return str(Pair(None))\n",
        "Pair",
    ),
    "the flow's own parameter": (
        "@node\nasync def step() -> str:\n    return 'ok'\n",
        "main",
    ),
}

FLOW = """

@flow
async def main(x: {F} = None) -> str:
    return await step()
"""


def module_text(place: str, shape: str) -> str:
    code, _ = PLACES[place]
    spelled, _ = SHAPES[shape]
    # The bare name's shape names an alias of the module's own.
    alias = "Optional_ = Optional[Decimal]\n\n\n" if "Optional_" in spelled else ""
    flow_type = spelled if place == "the flow's own parameter" else "object"
    return (
        PRELUDE + alias + code.replace("{T}", spelled) + FLOW.replace("{F}", flow_type)
    )


def hints(module: ModuleType, name: str) -> str:
    """The evaluated annotations of `name` in `module`, its module's name taken out."""
    target = getattr(module, name)
    if name == "main":  # the flow: the source's function, the compiled class's method
        target = getattr(target, "aforward", target)
    found = typing.get_type_hints(target)
    found.pop("return", None)
    return re.sub(r"kiln_test_\w+", "M", repr(found))


def compiled_and_source(tmp_path: Path, text: str) -> tuple[ModuleType, ModuleType]:
    path = tmp_path / "annotated.py"
    path.write_text(text, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, [str(d) for d in compilation.diagnostics]
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    return load(out), load(path)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("place", list(PLACES))
def test_every_name_a_string_annotation_spells_is_kept(
    tmp_path: Path, place: str, shape: str
) -> None:
    compiled, source = compiled_and_source(tmp_path, module_text(place, shape))
    _, names = SHAPES[shape]
    missing = sorted(name for name in names if not hasattr(compiled, name))
    assert not missing, f"the output lost {missing}"
    _, read = PLACES[place]
    if read is not None:
        assert hints(compiled, read) == hints(source, read)
    assert asyncio.run(compiled.main.aforward()) == asyncio.run(source.main())


def test_a_string_that_is_no_expression_is_left_as_it_is(tmp_path: Path) -> None:
    text = PRELUDE + (
        '@node\nasync def step(x: "not a type!" = None) -> str:\n    return "ok"\n'
        + FLOW.replace("{F}", "object")
    )
    compiled, _ = compiled_and_source(tmp_path, text)
    assert compiled.step.__annotations__["x"] == "not a type!"
    assert not hasattr(compiled, "Optional")  # nothing is kept for it


def test_the_output_of_every_place_passes_mypy_strict(tmp_path: Path) -> None:
    """Each place in one module of its own, compiled, then all given to mypy at once."""
    written = []
    for index, place in enumerate(PLACES):
        text = module_text(place, "a callable")
        path = tmp_path / f"place_{index}.py"
        path.write_text(text, encoding="utf-8")
        compilation = compile_file(path)
        assert compilation.output is not None
        out = tmp_path / "out" / f"place_{index}.py"
        out.parent.mkdir(exist_ok=True)
        out.write_text(compilation.output, encoding="utf-8")
        written.append(out)
    mypy_strict(written)


HELPERS = """\
from decimal import Decimal
from typing import Optional

from kiln import node


@node
async def fetch(x: int) -> "Optional[Decimal]":
    return Decimal(x)
"""

TASKS = """\
from typing import Optional

from helpers_{tag} import fetch
from kiln import flow, node


@node
async def local(x: int) -> "Optional[list[int]]":
    return [x]


@flow
async def main(x: int) -> str:
    a = await fetch(x)
    b = await fetch(x + 1)
    c = await local(x)
    d = await local(x + 1)
    return f"{a}{b}{c}{d}"
"""


def test_a_task_annotated_by_a_string_return_type_passes_mypy_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task is annotated with its node's return type where this module binds
    every name of it: `Optional` here, but not `Decimal`, which only the
    imported node's module binds (its call is no task of its own then)."""
    tag = tmp_path.name.replace("-", "_")
    (tmp_path / f"helpers_{tag}.py").write_text(HELPERS, encoding="utf-8")
    path = tmp_path / "tasks.py"
    path.write_text(TASKS.replace("{tag}", tag), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    compilation = compile_file(path)
    assert compilation.output is not None
    out = tmp_path / "out" / "tasks.py"
    out.parent.mkdir()
    out.write_text(compilation.output, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    mypy_strict([out])
    assert asyncio.run(load(out).main.aforward(1)) == "12[1][2]"
