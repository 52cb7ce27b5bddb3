"""`kiln compile --dump schema`: each flow's JSON Schema describes the JSON kiln reads and prints.

For each annotation below, a flow ``f(x: T) -> T`` is compiled with
``--dump schema``. The schema must be a valid JSON Schema (2020-12); and for
values of T drawn by Hypothesis, the JSON `kiln run --json` prints of a value
(`run_output`) must validate against the result's schema, and, passed back
as the argument's text, be read by `kiln run` (`run_args.convert`) as the
value it came from.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import importlib.util
import json
import pathlib
import sys
import types
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from kilnc.pipeline import compile_file
from kilnc.run.args import convert
from kilnc.run.output import json_value
from tests.test_cli import kiln, write

SHAPES = """\
import datetime
import decimal
import enum
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, NotRequired, Optional, Required, TypedDict

from pydantic import BaseModel, Field

from kiln import flow


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass
class Page:
    url: str
    fetched: datetime.datetime
    size: int | None = None


class Pair(NamedTuple):
    left: int
    right: str


class Order(BaseModel):
    id: uuid.UUID
    total: decimal.Decimal = Field(description="money")
    lines: list[str] = []
    customer: str = Field("anon", alias="customerName")


@dataclass
class Tagged:
    name: str = field(metadata={"doc": "given"})
    seen: int = field(init=False, default=0)


class Settings(TypedDict):
    name: str
    tags: list[int]


class Options(TypedDict, total=False):
    name: Required[str]
    size: int


class Request(TypedDict):
    id: int
    options: NotRequired[Options]


Pages = list[Page]
"""

ANNOTATIONS = [
    "int",
    "float",
    "list[float]",
    "bytes",
    "str",
    "bool",
    "list[int]",
    "dict[str, float]",
    "tuple[int, str]",
    "tuple[int, ...]",
    "Optional[str]",
    "int | None",
    "Literal['a', 'b']",
    "datetime.datetime",
    "datetime.date",
    "datetime.timedelta",
    "uuid.UUID",
    "decimal.Decimal",
    "Path",
    "Mode",
    "Page",
    "Pages",
    "Pair",
    "Order",
    "list[Order]",
    "Tagged",
    "Settings",
    "Options",
    "Request",
]


def flows_source() -> str:
    flows = [
        f"@flow\ndef f{index}(x: {annotation}) -> {annotation}:\n    return x\n"
        for index, annotation in enumerate(ANNOTATIONS)
    ]
    return SHAPES + "\n\n" + "\n\n".join(flows)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], ModuleType]:
    directory = tmp_path_factory.mktemp("schema")
    path = directory / "shapes.py"
    path.write_text(flows_source())
    compilation = compile_file(path, dump="schema")
    assert compilation.output is not None, compilation.diagnostics
    (document,) = compilation.dumps
    schemas = json.loads(document)
    spec = importlib.util.spec_from_file_location("shapes_for_schema", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return schemas, module


def values_of(hint: Any) -> st.SearchStrategy[Any]:
    """Values of `hint` that JSON carries exactly: finite numbers, whole seconds."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if hint is decimal.Decimal:
        return st.decimals(allow_nan=False, allow_infinity=False)
    if hint is datetime.timedelta:
        return st.integers(-(10**9), 10**9).map(lambda s: datetime.timedelta(seconds=s))
    if hint is pathlib.Path:
        parts = st.lists(st.sampled_from(["a", "b c", "ü"]), min_size=1, max_size=3)
        return parts.map(lambda names: pathlib.Path(*names))
    if origin is list:
        return st.lists(values_of(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=3), values_of(args[1]), max_size=3)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(values_of(args[0]), max_size=3).map(tuple)
        return st.tuples(*map(values_of, args))
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*map(values_of, args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if hint is type(None):
        return st.none()
    if isinstance(hint, type) and (
        dataclasses.is_dataclass(hint)
        or hasattr(hint, "_fields")
        or hasattr(hint, "model_fields")
    ):
        fields = typing.get_type_hints(hint)
        model = getattr(hint, "model_fields", None)
        if model is not None:  # given by alias, as model_validate reads them
            given = {field.alias or name: fields[name] for name, field in model.items()}
        elif dataclasses.is_dataclass(hint):
            given = {f.name: fields[f.name] for f in dataclasses.fields(hint) if f.init}
        else:
            given = {name: fields[name] for name in hint._fields}
        return st.builds(
            hint, **{name: values_of(kind) for name, kind in given.items()}
        )
    return st.from_type(hint)


@pytest.mark.parametrize("index", range(len(ANNOTATIONS)))
def test_each_schema_is_valid_and_describes_what_kiln_prints_and_reads(
    compiled: tuple[list[Any], ModuleType], index: int
) -> None:
    schemas, module = compiled
    schema = schemas[index]
    assert schema["flow"] == f"f{index}"
    assert schema["file"].endswith("shapes.py")
    arguments, result = schema["arguments"], schema["result"]  # each whole
    Draft202012Validator.check_schema(arguments)
    Draft202012Validator.check_schema(result)
    assert arguments["required"] == ["x"]
    hint = typing.get_type_hints(getattr(module, f"f{index}"))["x"]

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(values_of(hint))
    def check(value: Any) -> None:
        printed = json_value(value)
        Draft202012Validator(result).validate(printed)
        Draft202012Validator(arguments).validate({"x": printed})
        text = printed if isinstance(printed, str) else json.dumps(printed)
        if (
            hint is not str  # a plain str is its text as it is, quotes and all
            and isinstance(printed, str)
            and (printed.lower() in ("none", "null") or printed.startswith('"'))
        ):
            # In a union, text that reads as None (or as a quoted text) is quoted.
            text = json.dumps(printed)
        assert convert("x", hint, text) == value

    check()


def test_a_streaming_flow_has_the_schema_of_its_items(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text(
        "from collections.abc import AsyncIterator\n"
        "from kiln import flow, node\n\n\n"
        "@node\nasync def count(n: int) -> AsyncIterator[int]:\n"
        "    for i in range(n):\n        yield i\n\n\n"
        "@flow\nasync def counted(n: int = 3) -> AsyncIterator[int]:\n"
        "    async for i in count(n):\n        yield i\n"
    )
    compilation = compile_file(tmp_path / "s.py", dump="schema")
    (schema,) = json.loads(compilation.dumps[0])
    assert schema["result"] == {"type": "integer", "x-kiln-stream": True}
    assert schema["arguments"]["properties"]["n"] == {"type": "integer", "default": 3}
    assert schema["arguments"]["required"] == []


def test_required_fields_and_aliases_are_as_the_classes_take_them(
    compiled: tuple[list[Any], ModuleType],
) -> None:
    schemas, _ = compiled
    definitions = {
        name: definition
        for schema in schemas
        for name, definition in schema["arguments"].get("$defs", {}).items()
    }
    order = definitions["Order"]
    assert order["required"] == ["id", "total"]  # Field(gt=...) sets no default
    assert "customerName" in order["properties"]
    assert "customer" not in order["properties"]
    tagged = definitions["Tagged"]
    assert tagged["required"] == ["name"]  # field(metadata=...): no default
    assert "seen" not in tagged["properties"]  # init=False: not given
    # A TypedDict's keys: as Required/NotRequired mark them, else as total= says.
    assert definitions["Settings"]["required"] == ["name", "tags"]
    assert definitions["Options"]["required"] == ["name"]
    assert definitions["Request"]["required"] == ["id"]
    assert definitions["Request"]["properties"]["options"] == {
        "$ref": "#/$defs/Options"
    }


WARNED = """\
import asyncio

from kiln import flow, node

SEEN: dict[str, int] = {}


@node
async def put(key: str) -> None:
    await asyncio.sleep(0)
    SEEN[key] = 1


@node
async def get(key: str) -> int:
    return SEEN.get(key, 0)


@flow
async def both(key: str) -> int:
    await put(key)
    return await get(key)
"""


def test_the_schema_dump_is_all_stdout_holds_whatever_the_compile_says(
    tmp_path: Path,
) -> None:
    """A warning (KLN311 here) goes to stderr: stdout parses as one JSON document."""
    write(tmp_path / "warned.py", WARNED)
    result = kiln("compile", "warned.py", "--dump", "schema", cwd=tmp_path)
    assert result.returncode == 0, result
    [schema] = json.loads(result.stdout)
    assert (schema["file"], schema["flow"]) == ("warned.py", "both")
    assert "[KLN311]" in result.stderr
