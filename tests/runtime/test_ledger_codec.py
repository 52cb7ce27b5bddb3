"""The ledger's value encoding: round trips to the same types, canonical keys, clear refusals."""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple, NewType, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiln.codec import (
    Classes,
    Undecodable,
    Unencodable,
    canonical_text,
    decode,
    stored_text,
)


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass
class Shape:
    name: str
    points: list[Point]
    tags: tuple[str, ...] = ()
    parent: Shape | None = None
    meta: dict[int, Point] = field(default_factory=dict)


class Pair(NamedTuple):
    left: int
    right: Optional[str]  # noqa: UP045  (the spelling under test)


class Color(Enum):
    RED = 1
    BLUE = "blue"


OldPair = namedtuple("OldPair", "a b")  # untyped namedtuples are stored too
UserId = NewType("UserId", int)


def round_trip(value: object, hint: object = Any) -> Any:
    text = stored_text(value)
    return decode(text, Classes(hint, globals()))


def same(a: object, b: object) -> bool:
    """Equal, of the same types all the way down, in the same order; NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple))
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, (set, frozenset)):
        assert isinstance(b, (set, frozenset))
        return sorted(map(typed, a)) == sorted(map(typed, b))
    if isinstance(a, (Point, Shape)):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a == b


def typed(value: object) -> tuple[str, object]:
    """A hashable's type and value, comparable and order-free: how sets are compared."""
    kind = type(value).__qualname__
    if isinstance(value, (tuple, list)):
        return kind, tuple(typed(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return kind, tuple(sorted(typed(item) for item in value))
    return kind, repr(value)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # nan, inf, -0.0 included
    | st.text()  # lone surrogates included
    | st.binary()
)
hashables = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
points = st.builds(Point, st.floats(), st.floats())
# Deferred: the repr of a recursive strategy over recursive strategies is huge.
values = st.deferred(lambda: _values)
_values = st.recursive(
    scalars
    | points
    | st.sampled_from(Color)
    | st.builds(Pair, st.integers(), st.none()),
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(st.text(), inner, max_size=4)  # "$"-keys included
    | st.dictionaries(hashables, inner, max_size=4)
    | st.sets(hashables, max_size=4)
    | st.frozensets(hashables, max_size=4)
    | st.builds(Pair, st.integers(), st.text() | st.none())
    | st.builds(OldPair, inner, inner),
    max_leaves=20,
)
shapes = st.deferred(lambda: _shapes)
_shapes = st.recursive(
    st.builds(Shape, st.text(), st.lists(points, max_size=3)),
    lambda inner: st.builds(
        Shape,
        st.text(),
        st.lists(points, max_size=2),
        st.lists(st.text(), max_size=2).map(tuple),
        inner | st.none(),
        st.dictionaries(st.integers(), points, max_size=2),
    ),
    max_leaves=4,
)


@given(values)
def test_every_storable_value_comes_back_as_itself(value: object) -> None:
    assert same(round_trip(value), value)


@given(shapes)
def test_nested_dataclasses_with_optional_fields_come_back_by_annotation(
    shape: Shape,
) -> None:
    assert same(round_trip(shape, Shape), shape)
    assert same(round_trip([shape], list[Shape]), [shape])
    assert same(round_trip(shape, Optional[Shape]), shape)  # noqa: UP045
    assert same(round_trip((shape, 1), tuple[Shape, int]), (shape, 1))


@given(values)
def test_stored_text_is_ascii_json(value: object) -> None:
    assert stored_text(value).isascii()


@given(values, values)
def test_different_values_have_different_canonical_texts(a: object, b: object) -> None:
    if not same_for_keys(a, b):
        assert canonical_text(a) != canonical_text(b)


@given(st.dictionaries(hashables, st.integers(), min_size=2), st.randoms())
def test_dict_and_set_order_do_not_change_the_canonical_text(
    mapping: dict[object, int], random: Any
) -> None:
    pairs = list(mapping.items())
    random.shuffle(pairs)
    assert canonical_text(dict(pairs)) == canonical_text(mapping)
    items = list(mapping)
    random.shuffle(items)
    assert canonical_text(set(items)) == canonical_text(set(mapping))


@pytest.mark.parametrize(
    "values",
    [
        (1, 1.0, True, "1", [1], (1,), {1}, frozenset({1}), b"1", Pair(1, None)),
        (0.0, -0.0, 0, False, None, "", b"", [], (), {}),
        (math.nan, math.inf, -math.inf, "nan", None),
        ({"a": 1}, {"$dict": 1}, [["a", 1]], {("a",): 1}),
        (Point(1, 2), (1.0, 2.0), {"x": 1.0, "y": 2.0}, Pair(1, "2"), (1, "2")),
        (Color.RED, 1, Color.BLUE, "blue"),
    ],
)
def test_values_python_tells_apart_have_different_canonical_texts(
    values: tuple[object, ...],
) -> None:
    texts = [canonical_text(v) for v in values]
    assert len(set(texts)) == len(texts), texts


def test_canonical_text_does_not_depend_on_insertion_order() -> None:
    assert canonical_text({"b": 1, "a": 2}) == canonical_text({"a": 2, "b": 1})
    assert canonical_text({2: "x", 1: "y"}) == canonical_text({1: "y", 2: "x"})
    assert canonical_text({3, 1, 2}) == canonical_text({2, 3, 1})


def test_stored_text_keeps_dict_order() -> None:
    assert list(round_trip({"b": 1, "a": 2})) == ["b", "a"]
    assert list(round_trip({2: "x", 1: "y"})) == [2, 1]


def test_a_local_class_is_found_through_the_annotation() -> None:
    @dataclass
    class Local:
        value: int

    assert round_trip([Local(1)], list[Local]) == [Local(1)]
    with pytest.raises(Undecodable, match="Local"):
        round_trip(Local(1))  # neither annotated nor a module-level name


def test_classes_are_found_in_unions_newtypes_and_field_types() -> None:
    assert round_trip(Color.BLUE, Color | None) is Color.BLUE
    assert round_trip(UserId(3), UserId) == 3
    shape = Shape("s", [Point(1, 2)], meta={1: Point(3, 4)})
    # Point is named only by Shape's field types; the namespace does not know it.
    found = decode(stored_text([shape]), Classes(list[Shape], {}))
    assert found == [shape]


def test_fields_that_init_does_not_take_are_restored() -> None:
    @dataclass
    class Counted:
        name: str
        seen: int = field(init=False, default=0)

    counted = Counted("a")
    counted.seen = 5
    assert round_trip(counted, Counted).seen == 5


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "kind", "where"),
    [
        (Opaque(), "test_ledger_codec.Opaque", ""),
        ([1, 2, Opaque()], "test_ledger_codec.Opaque", "[2]"),
        ({"a": {"b": (1, Opaque())}}, "test_ledger_codec.Opaque", "['a']['b'][1]"),
        (Shape("s", [Point(1, 2)], tags=(1j,)), "complex", ".tags[0]"),  # type: ignore[arg-type]
        ({Opaque(): 1}, "test_ledger_codec.Opaque", "<key "),
        (bytearray(b"x"), "bytearray", ""),
        (type("Sub", (str,), {})("x"), "Sub", ""),
    ],
)
def test_a_value_that_cannot_be_stored_says_what_and_where(
    value: object, kind: str, where: str
) -> None:
    with pytest.raises(Unencodable) as raised:
        stored_text(value)
    assert raised.value.kind.endswith(kind)
    assert raised.value.where.startswith(where)
    with pytest.raises(Unencodable):
        canonical_text(value)


def test_circular_and_huge_values_are_refused_not_crashed_on() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(Unencodable, match="circular"):
        stored_text(loop)
    with pytest.raises(Unencodable, match="too long"):
        canonical_text(10**5000)


def test_stored_json_that_no_longer_fits_is_undecodable() -> None:
    with pytest.raises(Undecodable):
        decode('{"$dataclass":["Point",{"x":1,"z":2}]}', Classes(Point, {}))
    with pytest.raises(Undecodable):
        decode('{"$enum":["Color",7]}', Classes(Color, {}))
    with pytest.raises(Undecodable):
        decode("{not json", Classes(Any, {}))


def test_two_classes_of_one_name_in_the_annotation_are_ambiguous() -> None:
    first = type("Twin", (), {"__annotations__": {"x": int}})
    second = type("Twin", (), {"__annotations__": {"x": int}})
    twins = [dataclass(first), dataclass(second)]
    hint = twins[0] | twins[1]
    with pytest.raises(Undecodable, match="two classes named 'Twin'"):
        decode(stored_text(twins[0](1)), Classes(hint, {}))
    assert decode(stored_text(twins[0](1)), Classes(twins[0], {})) == twins[0](1)


def same_for_keys(a: object, b: object) -> bool:
    """Equal for the ledger's keys: `same`, except that dict and set order do not count."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        ta = sorted((canonical_text(k), v) for k, v in a.items())
        tb = sorted((canonical_text(k), v) for k, v in b.items())
        return len(ta) == len(tb) and all(
            ka == kb and same_for_keys(va, vb)
            for (ka, va), (kb, vb) in zip(ta, tb, strict=True)
        )
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple))
        return len(a) == len(b) and all(
            same_for_keys(x, y) for x, y in zip(a, b, strict=True)
        )
    if hasattr(a, "__dataclass_fields__"):
        return all(
            same_for_keys(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__
        )
    return same(a, b)
