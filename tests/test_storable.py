"""KLN109: the compiler refuses a cached node whose result the ledger cannot store.

The compiler judges the return annotation from the source (`kilnc.storable`);
the runtime judges the classes themselves (`kiln.ledger.types.unstorable`).
For each annotation below, in a project of two modules, the two must agree
wherever the compiler gives a verdict: a refusal at compile time is a type
the runtime refuses too (the compiler never refuses what would run), and a
type the runtime refuses is refused at compile time unless the source cannot
tell (a class of an installed package, a name bound by code).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import get_type_hints

import pytest

from kiln.ledger.types import unstorable
from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file

SHAPES = """\
import datetime
import decimal
import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple, NotRequired, Optional, TypedDict

from pydantic import BaseModel

from helpers import Remote, Tagged


class Handle:
    pass


class Color(enum.Enum):
    RED = 1


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    registry: ClassVar[Handle | None] = None


@dataclass
class Holder:
    handle: Handle
    note: str = ""


@dataclass
class Deep:
    inner: list["Holder"] = field(default_factory=list)


class Pair(NamedTuple):
    a: int
    b: Point


class Reply(BaseModel):
    text: str
    at: datetime.datetime
    cost: decimal.Decimal


class Bad(BaseModel, arbitrary_types_allowed=True):
    handle: Handle


class Child(Point):
    pass


class Text(str):
    pass


class Shade(str, enum.Enum):
    DARK = "dark"


class Row(TypedDict):
    name: str
    at: NotRequired[datetime.date]


class BadRow(TypedDict, total=False):
    handle: Handle


class MoreRow(Row):
    points: list[Point]


Alias = dict[str, Point]
Made = Handle if True else Point
"""

HELPERS = """\
from dataclasses import dataclass


class Remote:
    pass


@dataclass
class Tagged:
    tag: str
"""

# annotation -> what the compiler says: the refused type's name, "" stored, None cannot tell
CASES: list[tuple[str, str | None]] = [
    ("int", ""),
    ("str | None", ""),
    ("Optional[list[dict[str, tuple[int, ...]]]]", ""),
    ("bytes", ""),
    ("complex", "complex"),
    ("list[complex]", "complex"),
    ("Handle", "Handle"),
    ("Handle | None", "Handle"),
    ("'Handle'", "Handle"),
    ("Point", ""),
    ("list[Point]", ""),
    ("Holder", "Handle"),
    ("Deep", "Handle"),
    ("Pair", ""),
    ("Color", ""),
    ("Literal['a', 'b']", ""),
    ("Reply", ""),
    ("Bad", "Handle"),
    ("Child", ""),
    ("Alias", ""),
    ("datetime.datetime", ""),
    ("datetime.timedelta", ""),
    ("uuid.UUID", ""),
    ("decimal.Decimal", ""),
    ("Path", ""),
    ("frozenset[Path]", ""),
    ("Remote", "Remote"),
    ("Tagged", ""),
    ("Callable[[int], int]", "Callable"),
    ("Any", None),
    ("object", None),
    ("Made", None),
    ("Text", "Text"),
    ("Shade", ""),
    ("Row", ""),
    ("list[Row]", ""),
    ("MoreRow", ""),
    ("BadRow", "Handle"),
]


def project(tmp_path: Path, annotation: str) -> Path:
    source = SHAPES + (
        "\n\nfrom kiln import flow, node\n\n\n"
        "@node(cache=True)\n"
        f"def make(x: int) -> {annotation}:\n"
        "    raise NotImplementedError\n\n\n"
        "@flow\n"
        f"def run(x: int) -> {annotation}:\n"
        "    return make(x)\n"
    )
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "shapes.py").write_text(source)
    return tmp_path / "shapes.py"


def runtime_verdict(path: Path) -> str | None:
    """What the runtime says of `make`'s return type, the module imported."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("shapes", path)
        assert spec is not None
        assert spec.loader is not None
        module: ModuleType = importlib.util.module_from_spec(spec)
        sys.modules["shapes"] = module  # where string annotations resolve
        spec.loader.exec_module(module)
        return unstorable(get_type_hints(module.make)["return"])
    finally:
        sys.path.remove(str(path.parent))
        sys.modules.pop("helpers", None)
        sys.modules.pop("shapes", None)


@pytest.mark.parametrize(("annotation", "expected"), CASES)
def test_the_compiler_refuses_what_the_runtime_refuses(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    annotation: str,
    expected: str | None,
) -> None:
    path = project(tmp_path, annotation)
    monkeypatch.chdir(tmp_path)
    compilation = compile_file(Path("shapes.py"))
    refusals = [d for d in compilation.diagnostics if d.code is Code.UNSTORABLE_RESULT]
    runtime = runtime_verdict(path)
    if expected:
        assert len(refusals) == 1, compilation.diagnostics
        assert (
            f"cannot store a {expected}, which its return annotation"
            in refusals[0].message
        )
        if expected != annotation.strip("'"):
            assert f"annotation, {annotation}, holds" in refusals[0].message
        assert refusals[0].span.line == SHAPES.count("\n") + 7  # the `def make` line
        assert runtime is not None, "the compiler refused what the runtime stores"
    else:
        assert refusals == [], refusals
        assert compilation.output is not None, compilation.diagnostics
        if expected == "":
            assert (
                runtime is None
            ), f"the runtime refuses {runtime}: the compiler missed it"


ASKING = """\
from kiln import ask, flow, node


class Draft:
    pass


@node
async def write(doc: str) -> Draft:
    return Draft()


@node
async def post(doc: str) -> str:
    return doc


@flow
async def publish(doc: str) -> str:
    draft = await write(doc)
    if await ask("review", bool, doc):
        return await post(doc)
    return str(draft)


@flow
async def plain(doc: str) -> str:
    return str(await write(doc))
"""


def test_a_flow_that_asks_runs_durably_so_every_node_it_calls_must_be_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "asking.py").write_text(ASKING)
    monkeypatch.chdir(tmp_path)
    compilation = compile_file(Path("asking.py"))
    (refusal,) = [
        d for d in compilation.diagnostics if d.code is Code.UNSTORABLE_RESULT
    ]
    assert refusal.span.line == 9  # `write`'s: `plain` alone would compile
    assert (
        "flow 'publish' asks question 'review', so it runs only durably"
        in refusal.message
    )
    assert "cannot store a Draft" in refusal.message


CACHED_ARGUMENTS = """\
from kiln import Memory, flow, node


class Handle:
    def __init__(self, name: str) -> None:
        self.name = name


@node(cache=True)
async def summarize(memory: Memory, text: str) -> str:
    return text


@node(cache=True)
async def describe(handle: Handle) -> str:
    return handle.name


@node(cache=True)
async def shout(text: str, times: int) -> str:
    return text * times


@flow
async def main(memory: Memory, text: str) -> list[str]:
    a = await summarize(memory, text)
    b = await describe(Handle(text))
    return [a, b, await shout(text, 2)]
"""


def test_a_cached_node_s_arguments_key_its_results_so_they_must_be_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached node taking a Memory (trial Q4) or a plain class fails its every
    call at run time (`UncacheableValue`): the compiler says so at the parameter."""
    (tmp_path / "cached.py").write_text(CACHED_ARGUMENTS)
    monkeypatch.chdir(tmp_path)
    refusals = [
        (d.span.line, d.span.column, d.message)
        for d in compile_file(Path("cached.py")).diagnostics
        if d.code is Code.UNSTORABLE_RESULT
    ]
    assert [(line, column) for line, column, _ in refusals] == [(10, 29), (15, 28)]
    assert "parameter 'memory' takes a Memory" in refusals[0][2]
    assert "parameter 'handle' takes a Handle" in refusals[1][2]
