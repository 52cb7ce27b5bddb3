"""ledger_types.conforms: a value against an annotation, as a type checker reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import (
    Annotated,
    Any,
    ClassVar,
    Generic,
    Literal,
    NamedTuple,
    NewType,
    NotRequired,
    Optional,
    Protocol,
    TypedDict,
    TypeVar,
)

import pytest

from kiln.ledger.types import conforms, describe, unstorable

T = TypeVar("T")
UserId = NewType("UserId", int)


class Color(Enum):
    RED = 1


@dataclass
class Point:
    x: float
    y: float
    label: str = ""
    seen: ClassVar[int] = 0


@dataclass
class Shape:
    points: list[Point]
    parent: Shape | None = None
    meta: dict[str, Color] = field(default_factory=dict)


class Pair(NamedTuple):
    left: int
    right: str | None


@dataclass
class Box(Generic[T]):
    item: T


class Draft(TypedDict):
    text: str
    version: NotRequired[int]
    points: NotRequired[list[Point]]


class Thread(TypedDict):
    text: str
    replies: list[Thread]


class Drawable(Protocol):
    def draw(self) -> str: ...


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (1, int),
        (True, int),
        (1, float),
        (1.5, float),
        (None, None),
        (None, Optional[int]),  # noqa: UP045  (the spelling under test)
        ("a", int | str),
        ([1, 2], list[int]),
        ((1, "a"), tuple[int, str]),
        ((1, 2, 3), tuple[int, ...]),
        ((), tuple[()]),
        ({"a": [1]}, dict[str, list[int]]),
        ({1, 2}, set[int]),
        (frozenset({"a"}), frozenset[str]),
        ([1], Sequence[int]),
        ({"a": 1}, Mapping[str, int]),
        ("b", Literal["a", "b"]),
        (3, Annotated[int, "meta"]),
        (3, UserId),
        (Color.RED, Color),
        (Point(1, 2.5), Point),
        (Shape([Point(1, 2)], Shape([], None), {"c": Color.RED}), Shape),
        (Pair(1, None), Pair),
        (Box("anything"), Box[int]),  # a type variable is not checked
        (object(), Drawable),  # neither is a Protocol
        ([1, "a"], list[Any]),
        (b"x", Any),
        ({"text": "a", "version": 1}, Draft),
        ({"text": "a", "points": [Point(1, 2)], "more": object()}, Draft),
        ({"text": "a", "replies": [{"text": "b", "replies": []}]}, Thread),
    ],
)
def test_values_of_their_annotated_type_conform(value: object, hint: object) -> None:
    assert conforms(value, hint)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("1", int),
        (1.5, int),
        (None, int),
        (1, None),
        (b"a", str | int),
        ((1, 2), list[int]),
        ([1, "a"], list[int]),
        ((1, "a", 2), tuple[int, str]),
        ((1, "a"), tuple[int, ...]),
        ((1,), tuple[()]),
        ({"a": "x"}, dict[str, int]),
        ({1: 1}, dict[str, int]),
        ({1, "a"}, set[int]),
        ({1}, frozenset[int]),
        ("c", Literal["a", "b"]),
        (True, Literal[1]),
        ("3", UserId),
        (1, Color),
        (Point("1", 2), Point),  # type: ignore[arg-type]
        (Shape([Point(1, 2)], None, {"c": 1}), Shape),  # type: ignore[dict-item]
        (Shape([Point(1, 2)], Shape(["p"])), Shape),  # type: ignore[list-item]
        (Pair("1", None), Pair),  # type: ignore[arg-type]
        ((1, None), Pair),
        (Box(1), Point),
        ([("text", "a")], Draft),
        ({"text": 1}, Draft),
        ({"text": "a", "points": [(1, 2)]}, Draft),
        ({"text": "a", "replies": [{"text": "b", "replies": [1]}]}, Thread),
    ],
)
def test_values_of_another_type_do_not(value: object, hint: object) -> None:
    assert not conforms(value, hint)


@dataclass
class Link:
    next: Link | None


def test_a_value_too_deep_to_check_does_not_conform() -> None:
    chain = Link(None)
    for _ in range(100_000):
        chain = Link(chain)
    assert not conforms(chain, Link)
    assert conforms(Link(Link(None)), Link)


def test_hints_are_described_as_written() -> None:
    assert describe(int) == "int"
    assert describe(list[Point]) == "list[test_ledger_types.Point]"
    assert describe(Optional[int]) == "Optional[int]"  # noqa: UP045


def test_a_typed_dict_is_stored_as_the_dict_it_is_when_its_keys_are() -> None:
    assert unstorable(Draft) is None
    assert unstorable(Thread) is None
    assert unstorable(list[Draft]) is None

    class Complex(TypedDict):
        value: complex

    assert unstorable(Complex) == "complex"
