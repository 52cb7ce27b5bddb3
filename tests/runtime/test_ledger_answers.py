"""A hit is the call's value, or a miss: what the ledger answers with, whatever the file holds.

Rows are planted in the file the way a damaged disk, an older kiln or an
attacker with write access would leave them; `plant` writes a row that only
its content gives away (a valid checksum when the schema has one), so each
test is about the content.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sqlite3
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from crafted_rows import TRAPPED, Trap, audited, json_values, only_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kiln as _kiln  # a compiled module's name for the runtime: paths lead from it
from kiln import RefusedEntry, UncacheableValue
from kiln.ledger import Ledger
from kiln.ledger.keys import call_key, shape_of

assert _kiln  # reached only through the node functions' globals


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    shared = Ledger.at(tmp_path / "ledger.db")
    yield shared
    shared.close()


def plant(
    ledger: Ledger, node: str, fn: Any, args: tuple[Any, ...], value: str | bytes
) -> None:
    """Put `value` in the ledger as the stored result of ``fn(*args)``, checksum and all."""
    key = call_key(node, "v1", shape_of(fn), args, {})
    assert key is not None
    data = value.encode() if isinstance(value, str) else value
    with closing(sqlite3.connect(ledger.path)) as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
        row: dict[str, object] = {
            "key": key,
            "node": node,
            "source": "v1",
            "created": 0.0,
        }
        if "checksum" in columns:
            row["checksum"] = hashlib.sha256(key + data).digest()
        names = ", ".join(row)
        connection.execute(
            f"INSERT OR REPLACE INTO entries ({names}, value) "
            f"VALUES ({', '.join('?' * len(row))}, CAST(? AS TEXT))",
            [*row.values(), data],
        )
        connection.commit()


async def answer(
    ledger: Ledger,
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    classes: tuple[object, ...] = (),
    uncacheable: Any = "raise",
) -> tuple[Any, bool]:
    listed = {"classes": classes} if classes else {}
    return await ledger.call(
        fn.__name__,
        "v1",
        fn,
        args,
        {},
        lambda: fn(*args),
        uncacheable=uncacheable,
        **listed,
    )


async def create(ledger: Ledger) -> None:
    """Make the file, with a row of its own."""
    await answer(ledger, square, 1)


# --- 1. a key is one call: calls the node can tell apart never share one ---------------


async def header(columns: dict[str, int]) -> str:
    return ",".join(columns)


async def test_a_dict_in_another_order_is_another_call(ledger: Ledger) -> None:
    assert await answer(ledger, header, {"name": 0, "age": 1}) == ("name,age", False)
    assert await answer(ledger, header, {"age": 1, "name": 0}) == ("age,name", False)
    assert await answer(ledger, header, {"name": 0, "age": 1}) == ("name,age", True)


class Level(int, Enum):
    LOW = 1


async def describe(value: object) -> str:
    return f"{type(value).__name__}:{value!r}"


@pytest.mark.parametrize(
    "values",
    [
        (1, 1.0, True, Level.LOW),
        (0.0, -0.0, 0, False),
        (math.nan, -math.nan),
        ((1, 2), [1, 2]),
        ({1}, frozenset({1})),
        ("a", b"a"),
    ],
)
async def test_lookalike_arguments_are_each_their_own_call(
    ledger: Ledger, values: tuple[object, ...]
) -> None:
    for value in values:
        assert await answer(ledger, describe, value) == (await describe(value), False)


@settings(max_examples=500)
@given(
    st.lists(
        st.sampled_from(
            [0, 1, 1.0, -0.0, 0.0, True, math.nan, -math.nan, "1", b"1", Level.LOW]
        )
        | st.dictionaries(
            st.sampled_from("ab"), st.sampled_from([0, 1, 1.0]), max_size=2
        ),
        min_size=2,
        max_size=2,
    )
)
def test_equal_keys_mean_arguments_the_node_sees_as_the_same(
    pair: list[object],
) -> None:
    shape = shape_of(describe)
    a, b = pair
    if call_key("describe", "v1", shape, (a,), {}) == call_key(
        "describe", "v1", shape, (b,), {}
    ):
        assert type(a) is type(b)
        assert repr(a) == repr(b)
        if isinstance(a, float) and isinstance(b, float):
            assert math.copysign(1, a) == math.copysign(1, b)


# --- 2. decoding rebuilds only the classes the compiler listed --------------------------


async def listing(directory: str) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir())


async def test_a_row_naming_a_path_to_popen_runs_nothing(
    ledger: Ledger, tmp_path: Path
) -> None:
    await create(ledger)
    pwned = tmp_path / "pwned"
    for name in ["_kiln.run.asyncio.subprocess.subprocess.Popen", "_kiln:Popen"]:
        row = {"$dataclass": [name, {"args": ["touch", str(pwned)]}]}
        plant(ledger, "listing", listing, (str(tmp_path),), json.dumps(row))
        with pytest.warns(RefusedEntry, match="node 'listing'.*is not one the node"):
            value, hit = await answer(ledger, listing, str(tmp_path))
        await asyncio.sleep(0.1)
        assert not pwned.exists()
        assert (value, hit) == (await listing(str(tmp_path)), False)


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class GeoPoint:
    x: float
    y: float


GeoPoint.__module__ = "geometry"
GeoPoint.__qualname__ = GeoPoint.__name__ = "Point"


async def somewhere() -> Any:
    return GeoPoint(1, 2)


async def test_an_any_result_never_comes_back_as_a_class_of_the_same_name(
    ledger: Ledger,
) -> None:
    with pytest.raises(UncacheableValue, match="could not rebuild its result"):
        await answer(ledger, somewhere)
    value, hit = await answer(ledger, somewhere, uncacheable="run")
    assert type(value) is GeoPoint
    # Not even as the home module's own Point, if the row says so.
    plant(ledger, "somewhere", somewhere, (), '{"$dataclass":["Point",{"x":1,"y":2}]}')
    with pytest.warns(RefusedEntry):
        value, hit = await answer(ledger, somewhere, uncacheable="run")
    assert (type(value), hit) == (GeoPoint, False)


async def count_to(n: int) -> int:
    return n


async def test_a_row_of_another_type_than_the_annotations_is_refused(
    ledger: Ledger,
) -> None:
    await create(ledger)
    for text in ['"abc"', "[1]", "1.5", '{"$tuple":[1]}', "null"]:
        plant(ledger, "count_to", count_to, (3,), text)
        with pytest.warns(
            RefusedEntry, match="not the int the node's return annotation"
        ):
            assert await answer(ledger, count_to, 3) == (3, False)


async def test_a_row_that_is_not_utf8_is_refused_not_crashed_on(ledger: Ledger) -> None:
    await create(ledger)
    plant(ledger, "count_to", count_to, (3,), b'"\xff\xfe"')
    with pytest.warns(RefusedEntry, match="not the ASCII text"):
        assert await answer(ledger, count_to, 3) == (3, False)
    assert await answer(ledger, count_to, 3) == (3, True)


class Pair(NamedTuple):
    left: int
    right: str | None


class Color(Enum):
    RED = 1
    BLUE = "blue"


async def as_int(x: int) -> int:
    return x


async def as_points(x: int) -> list[Point]:
    return [Point(x, x)]


async def as_pair(x: int) -> Pair | None:
    return Pair(x, None)


async def as_color(x: int) -> Color:
    return Color.RED


async def as_any(x: int) -> Any:
    return [x]


def number(value: object) -> bool:
    return type(value) in (int, float, bool)


# Each node, the classes the compiler would list for it, and an oracle written
# apart from the ledger's own check: the values its annotation allows.
NODES: dict[str, tuple[Callable[[int], Awaitable[Any]], tuple[type, ...], Any]] = {
    "as_int": (as_int, (), lambda v: type(v) in (int, bool)),
    "as_points": (
        as_points,
        (Point,),
        lambda v: type(v) is list
        and all(type(p) is Point and number(p.x) and number(p.y) for p in v),
    ),
    "as_pair": (
        as_pair,
        (Pair,),
        lambda v: v is None
        or (
            type(v) is Pair
            and type(v.left) in (int, bool)
            and type(v.right) in (str, type(None))
        ),
    ),
    "as_color": (as_color, (Color,), lambda v: type(v) is Color),
    "as_any": (as_any, (), lambda v: only_of(v, set())),
}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    node=st.sampled_from(sorted(NODES)),
    row=json_values.map(json.dumps) | st.binary(max_size=40) | st.text(max_size=40),
    checksum_holds=st.booleans(),
    x=st.integers(0, 3),
)
def test_whatever_a_row_holds_the_call_gets_a_value_its_annotation_allows(
    tmp_path: Path, node: str, row: str | bytes, checksum_holds: bool, x: int
) -> None:
    fn, classes, allows = NODES[node]
    ledger = Ledger.at(tmp_path / "crafted.db")
    asyncio.run(create(ledger))
    plant(ledger, node, fn, (x,), row)
    if not checksum_holds:
        with closing(sqlite3.connect(ledger.path)) as connection:
            connection.execute(
                "UPDATE entries SET checksum = zeroblob(32) WHERE node = ?", (node,)
            )
            connection.commit()
    # The node's annotations are evaluated once, by the first call: not the row's doing.
    shape_of(fn, classes).conforms(asyncio.run(fn(x)))
    with audited() as events, warnings.catch_warnings():
        warnings.simplefilter("ignore", RefusedEntry)
        value, hit = asyncio.run(answer(ledger, fn, x, classes=classes))
    assert not [e for e in events if e in DANGEROUS], [
        e for e in events if e in DANGEROUS
    ]
    assert TRAPPED == []
    assert allows(value), value
    if not hit:
        assert value == asyncio.run(fn(x))
    ledger.close()


DANGEROUS = frozenset(
    {
        "exec",
        "compile",
        "import",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "ctypes.dlopen",
        "builtins.input",
        "open",
    }
)

assert Trap  # a module-level class a crafted row names: never built


# --- 3. a hit is the value the call returned -------------------------------------------


@dataclass
class Counter:
    n: int

    def __post_init__(self) -> None:
        self.n += 1  # not idempotent: built again from n=2, it is n=3


async def counted(start: int) -> Counter:
    return Counter(start)


async def test_a_result_that_would_come_back_different_is_not_stored(
    ledger: Ledger,
) -> None:
    with pytest.raises(
        UncacheableValue, match=r"would come back .*Counter\(n=3\).*Counter\(n=2\)"
    ):
        await answer(ledger, counted, 1, classes=(Counter,))
    for _ in range(2):
        value, hit = await answer(
            ledger, counted, 1, classes=(Counter,), uncacheable="run"
        )
        assert (value.n, hit) == (2, False)
    assert ledger.stats().entries == 0


async def square(x: int) -> int:
    return x * x


async def test_a_flipped_digit_is_refused_and_recomputed(ledger: Ledger) -> None:
    assert await answer(ledger, square, 12345) == (152399025, False)
    with closing(sqlite3.connect(ledger.path)) as connection:
        connection.execute(
            "UPDATE entries SET value = '152399024' WHERE value = '152399025'"
        )
        connection.commit()
    with pytest.warns(RefusedEntry, match="node 'square'.*checksum fails"):
        assert await answer(ledger, square, 12345) == (152399025, False)
    assert await answer(ledger, square, 12345) == (152399025, True)


async def test_one_flipped_bit_in_the_file_is_refused_and_recomputed(
    ledger: Ledger,
) -> None:
    assert await answer(ledger, square, 12345) == (152399025, False)
    ledger.close()  # the last connection checkpoints: the row is in the main file
    data = bytearray(ledger.path.read_bytes())
    at = data.index(b"152399025")
    data[at + 8] ^= 0x01  # "5" becomes "4"
    ledger.path.write_bytes(bytes(data))
    with pytest.warns(RefusedEntry, match="checksum fails"):
        assert await answer(ledger, square, 12345) == (152399025, False)
    assert await answer(ledger, square, 12345) == (152399025, True)


async def test_a_refused_entry_can_be_made_an_error(ledger: Ledger) -> None:
    await answer(ledger, square, 3)
    with closing(sqlite3.connect(ledger.path)) as connection:
        connection.execute("UPDATE entries SET checksum = zeroblob(32)")
        connection.commit()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RefusedEntry)
        with pytest.raises(RefusedEntry) as raised:
            await answer(ledger, square, 3)
    assert isinstance(raised.value, _kiln.LedgerError)
    assert raised.value.node == "square"
