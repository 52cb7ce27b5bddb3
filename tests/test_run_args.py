"""kilnc.run.args: `kiln run`'s name=value words, read by the flow's annotations."""

# ruff: noqa: UP045  (flows are annotated with Optional[...] too, and it must convert)

from __future__ import annotations

import datetime
import decimal
import inspect
import sys
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, NewType, NotRequired, Optional, Required, TypedDict

import pytest
import typing_extensions
from pydantic import BaseModel

from kilnc.run.args import (
    ArgumentError,
    bind_arguments,
    convert,
    parse_assignments,
    type_hints,
)

UserId = NewType("UserId", int)


class Color(Enum):
    RED = "red"
    BLUE = 2


@dataclass
class Window:
    start: int
    end: int


@dataclass
class Span:
    start: datetime.datetime
    length: datetime.timedelta
    tags: dict[str, decimal.Decimal]


class Cfg(TypedDict):
    k: int
    tags: list[str]


class Partial(TypedDict, total=False):
    name: Required[str]  # required: Python 3.11 counts it optional here (__future__)
    size: int


class Outer(typing_extensions.TypedDict):
    id: int
    parts: NotRequired[list[Partial]]


class Order(BaseModel):
    id: uuid.UUID
    total: decimal.Decimal


AN_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
PLUS_ONE = datetime.timezone(datetime.timedelta(hours=1))


@pytest.mark.parametrize(
    ("annotation", "text", "expected"),
    [
        (str, "hello world", "hello world"),
        (str, "5", "5"),
        (int, "42", 42),
        (int, "-7", -7),
        (float, "2.5", 2.5),
        (float, "3", 3.0),
        (bool, "true", True),
        (bool, "Yes", True),
        (bool, "1", True),
        (bool, "FALSE", False),
        (bool, "no", False),
        (bool, "0", False),
        (Path, "data/in.txt", Path("data/in.txt")),
        (Optional[int], "4", 4),
        (Optional[int], "none", None),
        (int | None, "null", None),
        (Path | None, "a", Path("a")),
        (Optional[bool], "None", None),
        (int | str, "5", 5),
        (str | int, "5", 5),
        (int | str, "five", "five"),
        (Literal["fast", "slow"], "slow", "slow"),
        (Literal[1, 2], "2", 2),
        (Color, "RED", Color.RED),
        (Color, "red", Color.RED),
        (Color, "2", Color.BLUE),
        (UserId, "12", 12),
        (list[int], "[1, 2, 3]", [1, 2, 3]),
        (list[str], '["a", "b"]', ["a", "b"]),
        (dict[str, list[int]], '{"a": [1], "b": []}', {"a": [1], "b": []}),
        (tuple[int, ...], "[1, 2]", (1, 2)),
        (set[str], '["x", "x"]', {"x"}),
        (frozenset[int], "[1]", frozenset({1})),
        (Window, '{"start": 1, "end": 9}', Window(1, 9)),
        (Optional[list[int]], "[1]", [1]),
        (Cfg, '{"k": 1, "tags": ["a"]}', {"k": 1, "tags": ["a"]}),
        (Partial, '{"name": "a"}', {"name": "a"}),
        (
            Outer,
            '{"id": 1, "parts": [{"name": "a", "size": 2}]}',
            {"id": 1, "parts": [{"name": "a", "size": 2}]},
        ),
        (Outer, '{"id": 1}', {"id": 1}),
        (Any, "[1]", [1]),
        (Any, "plain words", "plain words"),
        (inspect.Parameter.empty, '{"k": 1}', {"k": 1}),
        (inspect.Parameter.empty, "word", "word"),
        (datetime.datetime, "2026-12-05T10:30", datetime.datetime(2026, 12, 5, 10, 30)),
        (
            datetime.datetime,
            "2026-12-05T10:30:00+01:00",
            datetime.datetime(2026, 12, 5, 10, 30, tzinfo=PLUS_ONE),
        ),
        (datetime.date, "2026-12-05", datetime.date(2026, 12, 5)),
        # For `str | None`, "null" is None, and the quoted text is the string.
        (Optional[str], "NULL", None),
        (Optional[str], '"NULL"', "NULL"),
        (Optional[str], '"unclosed', '"unclosed'),
        (int | str, '"5"', "5"),
        (list[float], "[1, 2.5]", [1.0, 2.5]),
        (bytes, "AP8=", b"\x00\xff"),
        (list[bytes], '["AP8="]', [b"\x00\xff"]),
        (datetime.time, "10:30", datetime.time(10, 30)),
        (datetime.timedelta, "90", datetime.timedelta(seconds=90)),
        (uuid.UUID, str(AN_ID), AN_ID),
        (decimal.Decimal, "1.10", decimal.Decimal("1.10")),
        (list[datetime.date], '["2026-01-02"]', [datetime.date(2026, 1, 2)]),
        (dict[str, Path], '{"in": "a.txt"}', {"in": Path("a.txt")}),
        (dict[int, str], '{"1": "one", "2": "two"}', {1: "one", 2: "two"}),
        (dict[Color, int], '{"RED": 1}', {Color.RED: 1}),
        (dict[Any, int], '{"1": 1}', {"1": 1}),
        (tuple[uuid.UUID, int], f'["{AN_ID}", 3]', (AN_ID, 3)),
        (list[Color], '["RED", 2]', [Color.RED, Color.BLUE]),
        (
            Span,
            '{"start": "2026-01-01T00:00", "length": 60, "tags": {"a": "1.5"}}',
            Span(
                datetime.datetime(2026, 1, 1),
                datetime.timedelta(seconds=60),
                {"a": decimal.Decimal("1.5")},
            ),
        ),
        (
            Order,
            f'{{"id": "{AN_ID}", "total": "2.50"}}',
            Order(id=AN_ID, total=decimal.Decimal("2.50")),
        ),
        (
            list[Order],
            f'[{{"id": "{AN_ID}", "total": 1}}]',
            [Order(id=AN_ID, total=decimal.Decimal(1))],
        ),
    ],
)
def test_convert(annotation: Any, text: str, expected: Any) -> None:
    value = convert("p", annotation, text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "text", "shown"),
    [
        (int, "x", "int"),
        (int, "1.5", "int"),
        (float, "fast", "float"),
        (bool, "maybe", "bool"),
        (Optional[int], "many", "int | None"),
        (list[int], "[1, 2", "list[int]"),
        (list[int], '{"a": 1}', "list[int]"),
        (dict[str, int], "[1]", "dict[str, int]"),
        (Literal["fast", "slow"], "medium", "Literal['fast', 'slow']"),
        (Color, "green", "Color"),
        (Window, '{"start": 1}', "Window"),
        (Cfg, '{"k": "1", "tags": []}', "Cfg"),
        (Cfg, '{"k": 1}', "Cfg"),
        (Cfg, '{"k": 1, "tags": [], "x": 0}', "Cfg"),
        (Cfg, "[1]", "Cfg"),
        (Partial, '{"size": 1}', "Partial"),
        (Outer, '{"parts": []}', "Outer"),
        (Outer, '{"id": 1, "parts": [{"name": 1}]}', "Outer"),
        (Window, "[1, 2]", "Window"),
        (datetime.date, "tomorrow", "date"),
        (decimal.Decimal, "1,5", "Decimal"),
        (uuid.UUID, "12", "UUID"),
        (Order, '{"id": 5}', "Order"),
        (datetime.timedelta, "1e300", "timedelta"),
        (datetime.timedelta, "inf", "timedelta"),
        (list[int], "[true]", "list[int]"),
        (dict[int, str], '{"x": "one"}', "dict[int, str]"),
        (list[int | None], '["zz"]', "list[int | None]"),
        (bytes, "not base64!", "bytes"),
    ],
)
def test_convert_refuses_naming_the_parameter_type_and_value(
    annotation: Any, text: str, shown: str
) -> None:
    with pytest.raises(ArgumentError) as caught:
        convert("limit", annotation, text)
    message = str(caught.value)
    assert message.startswith(
        f"argument 'limit' expects {shown}; got {text!r}"
    ), message


async def flow(path: Path, top: int = 5, tags: list[str] | None = None) -> str:
    return ""


def parse(*words: str) -> dict[str, str]:
    return parse_assignments(words, inspect.signature(flow))


def test_parse_assignments() -> None:
    assert parse("a=1", "b=x=y", "c=") == {"a": "1", "b": "x=y", "c": ""}
    # not the flow's names: left for bind_arguments to name
    assert parse("1a=2", "a b=3") == {"1a": "2", "a b": "3"}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (
            ["unknown q"],
            "argument 'unknown q' has no '=': arguments are name=value,"
            " such as 'path=unknown q' (the flow takes: path, top, tags)",
        ),
        (
            ["path=p", "3"],
            "argument '3' has no '=': arguments are name=value; if it is the rest of"
            " the value before it, quote both: 'path=p 3' (the flow takes: path, top, tags)",
        ),
        (
            ["top=3", "notes.md"],
            "argument 'notes.md' has no '=': arguments are name=value; if it is the"
            " rest of the value before it, quote both: 'top=3 notes.md'",
        ),
        (
            ["notes.md", "top=3"],
            "such as path=notes.md (the flow takes: path, top, tags)",
        ),
        (
            ["path=p", "top"],
            "argument 'top' has no '=': arguments are name=value;"
            " give its value as top=VALUE (the flow takes: path, top, tags)",
        ),
        (
            ["=3"],
            "argument '=3' has no name before '=' (the flow takes: path, top, tags)",
        ),
        (
            ["top=1", "top=2"],
            "argument 'top' is given twice ('top=1', then 'top=2'); give it once",
        ),
    ],
)
def test_parse_names_the_mistake(words: list[str], message: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        parse(*words)
    assert message in str(caught.value)
    assert "quote a value" not in str(caught.value)


def test_a_flow_without_parameters_says_so() -> None:
    def none() -> None: ...

    with pytest.raises(
        ArgumentError,
        match=r"no '=': arguments are name=value \(the flow takes no arguments\)$",
    ):
        parse_assignments(["3"], inspect.signature(none))
    with pytest.raises(
        ArgumentError, match=r"unknown argument 'q' \(the flow takes no arguments\)$"
    ):
        bind_arguments(inspect.signature(none), {}, {"q": "3"})


def test_a_flow_with_variadic_parameters_says_they_cannot_be_named() -> None:
    def star(*xs: int) -> None: ...

    def mixed(a: int, *xs: int, **kw: int) -> None: ...

    with pytest.raises(
        ArgumentError,
        match=r"unknown argument 'xs' \(its \*xs cannot be given as name=value\)$",
    ):
        bind_arguments(inspect.signature(star), {}, {"xs": "3"})
    with pytest.raises(
        ArgumentError,
        match=r"\(the flow takes: a, any other name \(\*\*kw\); its \*xs cannot be "
        r"given as name=value\)$",
    ):
        parse_assignments(["3"], inspect.signature(mixed))


def bind(
    function: Any, given: dict[str, str]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return bind_arguments(inspect.signature(function), type_hints(function), given)


def test_bind_by_annotation() -> None:
    assert bind(flow, {"path": "x.md", "tags": '["a"]'}) == (
        (),
        {"path": Path("x.md"), "tags": ["a"]},
    )


def test_bind_refuses_missing_and_unknown_arguments() -> None:
    with pytest.raises(
        ArgumentError,
        match=r"missing required argument: path \(Path\); give it as path=VALUE$",
    ):
        bind(flow, {"top": "1"})
    with pytest.raises(
        ArgumentError, match=r"unknown argument 'tops'.*did you mean 'top'\?"
    ):
        bind(flow, {"path": "p", "tops": "1"})
    with pytest.raises(ArgumentError, match=r"the flow takes: path, top, tags"):
        bind(flow, {"path": "p", "zzz": "1"})


def test_missing_arguments_are_all_named() -> None:
    def two(a: int, b: list[int]) -> None: ...

    with pytest.raises(
        ArgumentError,
        match=r"arguments: a \(int\), b \(list\[int\]\); give each as name=value$",
    ):
        bind(two, {})


def test_positional_only_keyword_only_and_extra_keywords() -> None:
    def shaped(a: int, /, b: int = 0, *rest: int, c: bool, **extra: float) -> None: ...

    assert bind(shaped, {"a": "1", "c": "yes", "d": "2.5"}) == (
        (1,),
        {"c": True, "d": 2.5},
    )
    with pytest.raises(ArgumentError, match="unknown argument 'rest'"):
        bind(lambda *rest: None, {"rest": "1"})

    def gap(a: int = 0, b: int = 0, /) -> None: ...

    with pytest.raises(ArgumentError, match="'b' is positional-only: give 'a' too"):
        bind(gap, {"b": "1"})


def test_string_annotations_resolve_and_unresolvable_ones_refuse_their_argument() -> (
    None
):
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\n"
        "from pathlib import Path\n"
        "from typing import Optional\n"
        "def f(p: Path, n: 'Optional[int]', s: list['Path'], m: Missing,"
        " q: 'list[Missing]') -> None: ...\n",
        namespace,
    )
    hints = type_hints(namespace["f"])
    assert hints["p"] is Path
    assert hints["n"] == Optional[int]
    assert hints["s"] == list[Path]
    assert convert("n", hints["n"], "123") == 123
    assert convert("s", hints["s"], '["a"]') == [Path("a")]
    for name, written in [("m", "Missing"), ("q", "list[Missing]")]:
        with pytest.raises(ArgumentError) as caught:
            convert(name, hints[name], "[1]")
        assert str(caught.value) == (
            f"argument {name!r} is annotated {written!r}, which kiln cannot evaluate"
            " (NameError: name 'Missing' is not defined), so it cannot tell how to"
            " read '[1]'; make the names the annotation uses importable when its"
            " module runs (not only under TYPE_CHECKING)"
        )


@pytest.mark.parametrize(
    ("annotation", "text", "reason"),
    [
        (Cfg, '{"k": 1, "tags": [1]}', "tags.0: the JSON is int, not str"),
        (Cfg, "{}", "missing required keys of Cfg: k (int), tags (list[str])"),
        (
            Cfg,
            '{"k": 1, "tags": [], "kk": 2}',
            "unknown key 'kk' (Cfg's keys: k, tags); did you mean 'k'?",
        ),
        (
            Outer,
            '{"id": 1, "parts": [{"name": "a"}, {"name": "b", "size": "2"}]}',
            "parts.1.size: the JSON is str, not int",
        ),
        (Window, '{"start": 1}', "missing required field of Window: end (int)"),
        (
            Window,
            '{"start": 1, "end": 2, "ends": 3}',
            "unknown field 'ends' (Window's fields: start, end); did you mean 'end'?",
        ),
        (dict[str, Window], '{"a": {"start": "1", "end": 2}}', "a.start: the JSON is"),
    ],
)
def test_a_mismatch_inside_a_record_says_where(
    annotation: Any, text: str, reason: str
) -> None:
    with pytest.raises(ArgumentError) as caught:
        convert("p", annotation, text)
    assert f"; got {text!r}: {reason}" in str(caught.value)


def test_a_model_that_does_not_validate_says_which_fields_and_why() -> None:
    with pytest.raises(ArgumentError) as caught:
        convert("order", list[Order], '[{"id": 5}]')
    message = str(caught.value)
    assert "id: UUID input should be a string, bytes or UUID object" in message
    assert "total: Field required" in message
    assert "errors.pydantic.dev" not in message


@pytest.mark.parametrize(
    "annotation", [dict[str, Any], list[Any], inspect.Parameter.empty]
)
def test_json_nested_too_deeply_is_refused_not_a_crash(annotation: Any) -> None:
    """5,000 brackets deep: json.loads raises RecursionError, which was an
    internal error (trial Q6); it is a refusal of the value, naming why."""
    text = "[" * 5000 + "]" * 5000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # a plain run's: another test may have raised it
    try:
        with pytest.raises(ArgumentError, match="JSON nested too deeply"):
            convert("data", annotation, text)
    finally:
        sys.setrecursionlimit(limit)
