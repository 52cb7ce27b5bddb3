"""The ledger's value encoding: round trips to the same types, keys that tell values apart,
decoding that rebuilds only the classes it is allowed, clear refusals."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import pathlib
import zoneinfo
from collections import namedtuple
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from functools import cached_property
from typing import Any, NamedTuple

import pytest
from crafted_rows import TRAPPED, audited, json_values, only_of
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.ledger.codec import Undecodable, Unencodable, encode
from kiln.ledger.decoding import Allowed, decode

HOME = __name__


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
    right: str | None


class Color(Enum):
    RED = 1
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


OldPair = namedtuple("OldPair", "a b")  # untyped namedtuples are stored too
CLASSES = (Point, Shape, Pair, Color, Level, OldPair)


def elsewhere(cls: type, module: str = "geometry") -> type:
    """A class of the same name and fields as `cls`, living in another module."""
    other = type(cls.__name__, (), {"__annotations__": dict(cls.__annotations__)})
    made = dataclass(frozen=True)(other)
    made.__module__ = module
    return made


GeoPoint = elsewhere(Point)


def round_trip(value: object, classes: tuple[object, ...] = CLASSES) -> Any:
    return decode(encode(value, HOME), Allowed(classes, HOME))


def same(a: object, b: object) -> bool:
    """Indistinguishable: the same types all the way down, the same order, the same
    floats (a NaN is the same as a NaN of its sign); sets as sets of such values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b) and sign(a) == sign(b)
        return a == b and sign(a) == sign(b)
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
    if hasattr(a, "__dataclass_fields__"):
        return vars_of(a).keys() == vars_of(b).keys() and all(
            same(getattr(a, name), getattr(b, name)) for name in vars_of(a)
        )
    if isinstance(a, decimal.Decimal):  # a NaN is not equal to itself; 1.10 is 1.1
        return str(a) == str(b)
    return (
        a == b and repr(a) == repr(b) and getattr(a, "fold", 0) == getattr(b, "fold", 0)
    )


def _nan_decimal(value: object) -> bool:
    """A NaN Decimal: unhashable when signalling, never equal to itself in a set."""
    return isinstance(value, decimal.Decimal) and value.is_nan()


def vars_of(value: object) -> dict[str, object]:
    fields = dict.fromkeys(value.__dataclass_fields__)  # type: ignore[attr-defined]
    return fields | dict.fromkeys(getattr(value, "__dict__", {}))


def sign(number: float) -> float:
    return math.copysign(1.0, number)


def typed(value: object) -> tuple[str, str, object]:
    """A hashable's type and value, comparable and order-free: how sets are compared."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(value, (tuple, list)):
        return name, "", tuple(typed(item) for item in value)
    if isinstance(value, (set, frozenset)):
        return name, "", tuple(sorted(typed(item) for item in value))
    if isinstance(value, float):
        return name, repr(value), sign(value)
    return name, repr(value), ()


zones = st.sampled_from(
    [
        None,
        datetime.UTC,
        datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
        datetime.timezone(-datetime.timedelta(hours=11)),
        zoneinfo.ZoneInfo("UTC"),
        zoneinfo.ZoneInfo("Europe/Paris"),  # folds in autumn, skips in spring
        zoneinfo.ZoneInfo("America/St_Johns"),
    ]
)
folded = st.integers(0, 1)
# The standard values the codec tags: each must come back of its type, exactly.
standard = (
    st.builds(
        lambda moment, zone, fold: moment.replace(tzinfo=zone, fold=fold),
        st.datetimes(),
        zones,
        folded,
    )
    | st.dates()
    | st.builds(
        lambda moment, zone, fold: moment.replace(tzinfo=zone, fold=fold),
        st.times(),
        st.sampled_from(
            [
                None,
                datetime.UTC,
                datetime.timezone(-datetime.timedelta(hours=3)),
            ]
        ),
        folded,
    )
    | st.timedeltas()
    | st.uuids()
    | st.decimals(allow_nan=True, allow_infinity=True)  # NaN, sNaN, -0, 1.10
    | st.sampled_from(
        [decimal.Decimal("-NaN"), decimal.Decimal("sNaN"), decimal.Decimal("1.10")]
    )
    | st.builds(
        lambda kind, parts: kind(*parts),
        st.sampled_from([pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.Path]),
        st.lists(st.sampled_from(["a", "b c", "..", "ü", "/"]), max_size=3),
    )
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # nan, inf, -0.0 included
    | st.text()  # lone surrogates included
    | st.binary()
    | standard
)
hashables = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False)
    | standard.filter(lambda value: not _nan_decimal(value)),
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
    | st.sampled_from(Level)
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


@settings(max_examples=300)
@given(values)
def test_every_storable_value_comes_back_as_itself(value: object) -> None:
    assert same(round_trip(value), value)


@given(shapes)
def test_nested_dataclasses_with_optional_fields_come_back(shape: Shape) -> None:
    assert same(round_trip(shape), shape)
    assert same(round_trip([shape, (shape, 1)]), [shape, (shape, 1)])


@given(values)
def test_the_text_is_ascii_json(value: object) -> None:
    assert encode(value, HOME).isascii()


# --- keys: equal texts only for values the node cannot tell apart ------------------------

# A small world of look-alikes, so that random pairs often share a text if they can.
lookalike_scalars = st.sampled_from(
    [
        0,
        1,
        -1,
        0.0,
        -0.0,
        1.0,
        math.nan,
        -math.nan,
        math.inf,
        True,
        False,
        None,
        "",
        "1",
        "a",
        b"",
        b"1",
        b"a",
        Color.RED,
        Level.LOW,
        Level.HIGH,
        Point(1, 2),
        Point(1.0, 2.0),
        GeoPoint(1, 2),
        Pair(1, None),
        OldPair(1, None),
    ]
)
lookalike_keys = st.sampled_from(
    [0, 1, 1.0, True, "a", "b", "$a", b"a", (1,), frozenset({1}), Level.LOW]
)
lookalikes = st.recursive(
    lookalike_scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)
    | st.dictionaries(lookalike_keys, inner, max_size=3)
    | st.sets(st.sampled_from([0, 1, 1.0, True, "a", (1,), b"a"]), max_size=3)
    | st.frozensets(st.sampled_from([0, 1, "a", (), Level.LOW]), max_size=3),
    max_leaves=6,
)


@settings(max_examples=1000)
@given(lookalikes, lookalikes)
def test_equal_texts_only_for_values_the_node_cannot_tell_apart(
    a: object, b: object
) -> None:
    if encode(a, HOME) == encode(b, HOME):
        assert same(a, b), (a, b)


@settings(max_examples=100)
@given(st.data())
def test_reordering_a_dict_changes_its_text(data: st.DataObject) -> None:
    mapping = data.draw(st.dictionaries(hashables, st.integers(), min_size=2))
    pairs = data.draw(st.permutations(list(mapping.items())))
    reordered = dict(pairs)
    assert (encode(reordered, HOME) == encode(mapping, HOME)) == (
        list(reordered) == list(mapping)
    )


@given(st.sets(hashables, min_size=2), st.randoms())
def test_a_sets_iteration_order_is_not_part_of_its_text(
    items: set[object], random: Any
) -> None:
    shuffled = list(items)
    random.shuffle(shuffled)
    assert encode(set(shuffled), HOME) == encode(items, HOME)
    assert encode(frozenset(shuffled), HOME) == encode(frozenset(items), HOME)


def test_the_columns_of_a_header_in_another_order_are_another_call() -> None:
    assert encode({"name": 0, "age": 1}, HOME) != encode({"age": 1, "name": 0}, HOME)
    assert encode({2: "x", 1: "y"}, HOME) != encode({1: "y", 2: "x"}, HOME)


@pytest.mark.parametrize(
    "values",
    [
        (1, 1.0, True, "1", [1], (1,), {1}, frozenset({1}), b"1", Pair(1, None)),
        (0.0, -0.0, 0, False, None, "", b"", [], (), {}),
        (math.nan, -math.nan, math.inf, -math.inf, "nan", None),
        ({"a": 1}, {"$dict": 1}, [["a", 1]], {("a",): 1}),
        (Point(1, 2), (1.0, 2.0), {"x": 1.0, "y": 2.0}, Pair(1, "2"), (1, "2")),
        (Color.RED, 1, Color.BLUE, "blue"),
        (Level.LOW, 1, Level.HIGH, 2, True),
        (Point(1, 2), GeoPoint(1, 2), elsewhere(Point, "other")(1, 2)),
        (Pair(1, None), OldPair(1, None)),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ],
)
def test_values_python_tells_apart_have_different_texts(
    values: tuple[object, ...],
) -> None:
    texts = [encode(v, HOME) for v in values]
    assert len(set(texts)) == len(texts), texts


def test_classes_are_named_without_the_home_module_only() -> None:
    assert encode(Point(1, 2), HOME) == '{"$dataclass":["Point",{"x":1,"y":2}]}'
    assert encode(GeoPoint(1, 2), HOME) == (
        '{"$dataclass":["geometry:Point",{"x":1,"y":2}]}'
    )
    assert encode(Point(1, 2), "out").startswith(f'{{"$dataclass":["{HOME}:Point"')


def test_attributes_beside_the_fields_are_part_of_the_value() -> None:
    @dataclass
    class Tagged:
        name: str

        @cached_property
        def shout(self) -> str:
            return self.name.upper()

    plain, noted = Tagged("a"), Tagged("a")
    noted.note = 1  # type: ignore[attr-defined]
    assert encode(plain, HOME) != encode(noted, HOME)
    assert plain.shout == "A"  # a cached property is computed again: not the value's
    assert encode(plain, HOME) == encode(Tagged("a"), HOME)
    assert same(round_trip(noted, (Tagged,)), noted)


def test_a_local_class_decodes_when_it_is_allowed() -> None:
    @dataclass
    class Local:
        value: int

    assert round_trip([Local(1)], (Local,)) == [Local(1)]
    with pytest.raises(Undecodable, match="Local"):
        round_trip(Local(1))


def test_fields_that_init_does_not_take_are_restored() -> None:
    @dataclass
    class Counted:
        name: str
        seen: int = field(init=False, default=0)

    counted = Counted("a")
    counted.seen = 5
    assert round_trip(counted, (Counted,)).seen == 5


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
        encode(value, HOME)
    assert raised.value.kind.endswith(kind)
    assert raised.value.where.startswith(where)


def test_circular_and_huge_values_are_refused_not_crashed_on() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(Unencodable, match="circular"):
        encode(loop, HOME)
    with pytest.raises(Unencodable, match="too long"):
        encode(10**5000, HOME)


# --- decoding: only the allowed classes, whatever the text says ------------------------


def test_stored_json_that_no_longer_fits_is_undecodable() -> None:
    with pytest.raises(Undecodable):
        decode('{"$dataclass":["Point",{"x":1,"z":2}]}', Allowed([Point], HOME))
    with pytest.raises(Undecodable):
        decode('{"$enum":["Color",7]}', Allowed([Color], HOME))
    with pytest.raises(Undecodable):
        decode("{not json", Allowed())


def test_two_classes_of_one_name_are_ambiguous() -> None:
    first = type("Twin", (), {"__annotations__": {"x": int}})
    second = type("Twin", (), {"__annotations__": {"x": int}})
    twins = [dataclass(first), dataclass(second)]
    with pytest.raises(Undecodable, match="two classes named 'Twin'"):
        decode(encode(twins[0](1), HOME), Allowed(twins, HOME))
    assert decode(encode(twins[0](1), HOME), Allowed(twins[:1], HOME)) == twins[0](1)


def test_a_class_from_another_module_never_comes_back_as_the_homes() -> None:
    text = encode(GeoPoint(1, 2), HOME)
    with pytest.raises(Undecodable, match="'geometry:Point' is not one"):
        decode(text, Allowed([Point], HOME))
    assert type(decode(text, Allowed([Point, GeoPoint], HOME))) is GeoPoint
    with pytest.raises(Undecodable, match="'Point' is not one"):
        decode(encode(Point(1, 2), HOME), Allowed([GeoPoint], HOME))


POPEN = '{"$dataclass":["subprocess:Popen",{"args":["touch","pwned"]}]}'


@pytest.mark.parametrize(
    "text",
    [
        POPEN,
        '{"$dataclass":["_kiln.run.asyncio.subprocess.subprocess.Popen",{"args":["x"]}]}',
        '{"$dataclass":["Popen",{"args":["x"]}]}',
        '{"$namedtuple":["builtins:eval",{"source":"1"}]}',
        '{"$enum":["os:system",["touch pwned"]]}',
        '{"$dataclass":["Point",{"x":1,"y":2,"__class__":1}]}',
        '{"$dataclass":["Point",{"x":1,"y":2,"__reduce__":["os.system","x"]}]}',
        '{"$dataclass":["Point",{"x":1,"y":2,"__dict__":{"a":1}}]}',
        '{"$dataclass":["Point",{"x":1}]}',
        '{"$dataclass":["Point"]}',
        '{"$dataclass":"Point"}',
        '{"$dataclass":[["Point"],{"x":1,"y":2}]}',
        '{"$enum":["Point",1]}',
        '{"$namedtuple":["Point",{"x":1,"y":2}]}',
        '{"$dataclass":["Pair",{"left":1,"right":null}]}',
        '{"$pickle":"gASV"}',
        '{"$tuple":"abc"}',
        '{"$tuple":[1],"x":2}',
        '{"$bytes":"not base64!"}',
        '{"$float":"nope"}',
        '{"$dict":[[[1],2]]}',
        '{"$dict":[1,2]}',
        '{"$set":[[1]]}',
        "NaN",
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "9" * 100_000,
        '"\\ud800"',  # a lone surrogate: a str, as it was stored
    ],
)
def test_crafted_texts_rebuild_nothing_they_may_not(text: str) -> None:
    allowed = Allowed([Point, Pair], HOME)
    with audited() as events:
        try:
            value = decode(text, allowed)
        except Undecodable:
            value = None
    assert events == []
    assert type(value) in (type(None), str, Point, Pair)
    if isinstance(value, Point):
        assert vars(value).keys() <= {"x", "y"}


@settings(max_examples=1000)
@given(json_values)
def test_random_texts_never_run_code_nor_rebuild_a_class_not_allowed(
    tree: object,
) -> None:
    text = json.dumps(tree)
    with audited() as events:
        try:
            value = decode(text, Allowed([Point, Pair, Color], HOME))
        except Undecodable:
            return
    assert events == []
    assert TRAPPED == []
    assert only_of(value, {Point, Pair, Color})
