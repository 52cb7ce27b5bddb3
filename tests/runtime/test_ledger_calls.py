"""`Ledger.call` and `call_sync`: hits, misses, keys, invalidation, refusals, stats, clear."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln import LedgerError, RefusedEntry, UncacheableValue
from kiln.ledger import DEFAULT_PATH, Ledger


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass
class Box:
    label: str | None
    corners: tuple[Point, Point]
    inside: list[Box]


class Span(NamedTuple):
    start: int
    end: int | None


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    shared = Ledger.at(tmp_path / "ledger.db")
    yield shared
    shared.close()


class Runs:
    """Counts the computations a test's calls ran."""

    def __init__(self) -> None:
        self.count = 0

    def of(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async def compute() -> Any:
            self.count += 1
            return await fn(*args, **kwargs)

        return compute

    def of_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def compute() -> Any:
            self.count += 1
            return fn(*args, **kwargs)

        return compute


async def scale(x: float, factor: int = 2, *, offset: int = 0) -> float:
    return x * factor + offset


def box(label: str | None, depth: int) -> Box:
    corners = (Point(0, 0), Point(depth, -depth))
    inside = [box(None, depth - 1)] if depth else []
    return Box(label, corners, inside)


async def boxes(label: str | None, depth: int) -> list[Box | Span]:
    return [box(label, depth), Span(depth, None)]


def count(text: str) -> dict[str, int]:
    return {word: len(word) for word in text.split()}


# What the compiler would list for these nodes: the classes their annotations name.
CLASSES = (Box, Point, Span)


async def call(
    ledger: Ledger, runs: Runs, fn: Any, *args: Any, source: str = "v1", **kwargs: Any
) -> tuple[Any, bool]:
    return await ledger.call(
        fn.__name__,
        source,
        fn,
        args,
        kwargs,
        runs.of(fn, *args, **kwargs),
        classes=CLASSES,
        run="r",
    )


async def test_a_second_call_is_a_hit_that_computes_nothing(ledger: Ledger) -> None:
    runs = Runs()
    assert await call(ledger, runs, scale, 3) == (6, False)
    assert await call(ledger, runs, scale, 3) == (6, True)
    assert runs.count == 1


async def test_arguments_are_keyed_by_parameter_with_defaults(ledger: Ledger) -> None:
    runs = Runs()
    await call(ledger, runs, scale, 3)
    for args, kwargs in [
        ((3, 2), {}),
        ((3,), {"factor": 2}),
        ((), {"x": 3}),
        ((), {"factor": 2, "x": 3, "offset": 0}),
    ]:
        assert await call(ledger, runs, scale, *args, **kwargs) == (6, True)
    assert runs.count == 1
    assert await call(ledger, runs, scale, 3, offset=1) == (7, False)
    assert await call(ledger, runs, scale, 3.0) == (6.0, False)  # 3.0 is not 3
    assert runs.count == 3


async def test_arguments_that_do_not_fit_raise_as_the_plain_call_would(
    ledger: Ledger,
) -> None:
    runs = Runs()
    with pytest.raises(TypeError, match="unexpected keyword"):
        await call(ledger, runs, scale, 3, nope=1)


async def test_a_different_source_hash_misses(ledger: Ledger) -> None:
    runs = Runs()
    await call(ledger, runs, scale, 3, source="v1")
    assert await call(ledger, runs, scale, 3, source="v2") == (6, False)
    assert await call(ledger, runs, scale, 3, source="v1") == (6, True)
    stats = ledger.stats()
    assert [(n.node, n.entries, n.versions) for n in stats.nodes] == [("scale", 2, 2)]


async def test_a_different_node_name_misses(ledger: Ledger) -> None:
    runs = Runs()
    compute = runs.of(scale, 3)
    await ledger.call("a", "v1", scale, (3,), {}, compute)
    assert (await ledger.call("b", "v1", scale, (3,), {}, compute))[1] is False


async def test_results_come_back_decoded_to_their_annotated_types(
    ledger: Ledger,
) -> None:
    runs = Runs()
    first, _ = await call(ledger, runs, boxes, "top", 2)
    again, hit = await call(ledger, runs, boxes, "top", 2)
    assert hit
    assert again == first
    assert again is not first
    assert isinstance(again[0].inside[0].corners[1], Point)
    assert type(again[1]) is Span


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    label=st.text() | st.none(),
    depth=st.integers(0, 3),
    text=st.text(),
)
def test_values_round_trip_through_the_file(
    tmp_path: Path, label: str | None, depth: int, text: str
) -> None:
    ledger = Ledger.at(tmp_path / "round-trip.db")
    runs = Runs()
    for _ in range(2):
        stored = asyncio.run(call(ledger, runs, boxes, label, depth))[0]
        counted = ledger.call_sync(
            "count", "v1", count, (text,), {}, runs.of_sync(count, text)
        )[0]
    assert stored == asyncio.run(boxes(label, depth))
    assert counted == count(text)
    assert runs.count <= 2  # an earlier example may have stored these already
    ledger.close()


def test_call_sync_hits_and_misses(ledger: Ledger) -> None:
    runs = Runs()
    compute = runs.of_sync(count, "a bb")
    assert ledger.call_sync("count", "v1", count, ("a bb",), {}, compute) == (
        {"a": 1, "bb": 2},
        False,
    )
    assert ledger.call_sync("count", "v1", count, (), {"text": "a bb"}, compute)[1]
    assert runs.count == 1


async def test_a_failed_call_is_not_stored_and_the_next_call_retries(
    ledger: Ledger,
) -> None:
    attempts = []

    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        return x

    with pytest.raises(ValueError, match="first attempt"):
        await ledger.call("flaky", "v1", flaky, (1,), {}, lambda: flaky(1))
    assert ledger.stats().entries == 0
    assert await ledger.call("flaky", "v1", flaky, (1,), {}, lambda: flaky(1)) == (
        1,
        False,
    )
    assert await ledger.call("flaky", "v1", flaky, (1,), {}, lambda: flaky(1)) == (
        1,
        True,
    )
    assert attempts == [1, 1]


class Handle:
    pass


async def takes(thing: object, items: list[object] = []) -> int:  # noqa: B006
    return 1


async def gives(x: int) -> object:
    return [1, Handle()] if x else Handle


async def test_an_unstorable_argument_names_node_parameter_and_type(
    ledger: Ledger,
) -> None:
    runs = Runs()
    with pytest.raises(UncacheableValue) as raised:
        await call(ledger, runs, takes, Handle())
    error = raised.value
    assert (error.node, error.what, error.kind) == (
        "takes",
        "argument 'thing'",
        "test_ledger_calls.Handle",
    )
    assert "'takes'" in str(error)
    assert "argument 'thing'" in str(error)
    assert "Handle" in str(error)
    assert "uncacheable='run'" in str(error)
    assert isinstance(error, TypeError)
    with pytest.raises(
        UncacheableValue, match=r"argument 'items' holds .*Handle.* \(at \[1\]\)"
    ):
        await call(ledger, runs, takes, 1, [0, Handle()])
    assert runs.count == 0  # refused before computing


async def test_an_unstorable_result_names_the_result(
    ledger: Ledger, tmp_path: Path
) -> None:
    runs = Runs()
    with pytest.raises(
        UncacheableValue, match=r"'gives'.*its result holds .*Handle.*\[1\]"
    ):
        await call(ledger, runs, gives, 1)
    # The node's next call is refused before it runs: it would pay for nothing.
    with pytest.raises(
        UncacheableValue, match=r"Handle.*earlier call's; this call of 'gives' did not"
    ):
        await call(ledger, runs, gives, 0)
    assert runs.count == 1
    assert ledger.stats().entries == 0
    elsewhere = Ledger.at(tmp_path / "elsewhere.db")
    with pytest.raises(UncacheableValue, match="its result is a value of type type"):
        await call(elsewhere, runs, gives, 0)
    elsewhere.close()


async def test_uncacheable_run_computes_every_time_and_stores_nothing(
    ledger: Ledger,
) -> None:
    runs = Runs()
    for _ in range(2):
        handle = Handle()
        value, hit = await ledger.call(
            "takes",
            "v1",
            takes,
            (handle,),
            {},
            runs.of(takes, handle),
            uncacheable="run",
        )
        assert (value, hit) == (1, False)
        result, hit = await ledger.call(
            "gives", "v1", gives, (1,), {}, runs.of(gives, 1), uncacheable="run"
        )
        assert isinstance(result[1], Handle)
        assert not hit
    assert runs.count == 4
    assert ledger.stats().entries == 0


async def test_a_result_of_a_class_the_compiler_did_not_list_is_refused(
    ledger: Ledger,
) -> None:
    async def named() -> Point:
        return Point(1, 2)

    with pytest.raises(
        UncacheableValue,
        match=r"could not rebuild its result, a Point.*'Point' is not one",
    ):
        await ledger.call("named", "v1", named, (), {}, named)
    await ledger.call("named", "v1", named, (), {}, named, classes=(Point,))
    assert await ledger.call("named", "v1", named, (), {}, named, classes=(Point,)) == (
        Point(1, 2),
        True,
    )


async def test_a_stored_result_that_no_longer_decodes_is_a_refused_entry_and_a_miss(
    ledger: Ledger,
) -> None:
    @dataclass
    class Before:
        value: int

    @dataclass
    class After:  # the same name, another field: the stored JSON does not fit
        other: int

    After.__qualname__ = Before.__qualname__

    async def old() -> Before:
        return Before(1)

    async def new() -> After:
        return After(2)

    old.__annotations__["return"] = Before  # local names: the strings would not resolve
    new.__annotations__["return"] = After

    await ledger.call("node", "v1", old, (), {}, old, classes=(Before,))
    with pytest.warns(
        RefusedEntry, match=r"node 'node'.*not a value the node may return"
    ):
        assert await ledger.call("node", "v1", new, (), {}, new, classes=(After,)) == (
            After(2),
            False,
        )
    assert await ledger.call("node", "v1", new, (), {}, new, classes=(After,)) == (
        After(2),
        True,
    )


async def test_stats_count_entries_hits_and_misses_per_run(ledger: Ledger) -> None:
    for run, xs in [("first", [1, 2, 3]), ("second", [1, 2, 3, 4])]:
        for x in xs:
            await ledger.call(
                "scale", "v1", scale, (x,), {}, lambda x=x: scale(x), run=run
            )
    stats = ledger.stats()
    assert stats.path == ledger.path
    assert stats.size > 0
    assert [(n.node, n.entries) for n in stats.nodes] == [("scale", 4)]
    assert stats.nodes[0].bytes == 4  # "2", "4", "6", "8"
    assert [(r.run, r.hits, r.misses) for r in stats.runs] == [
        ("second", 3, 1),
        ("first", 0, 3),
    ]
    assert stats.runs[0].hit_rate == 0.75
    assert len(ledger.stats(runs=1).runs) == 1


async def test_only_the_last_hundred_runs_are_kept(ledger: Ledger) -> None:
    for run in range(105):
        await ledger.call(
            "scale", "v1", scale, (1,), {}, lambda: scale(1), run=str(run)
        )
        ledger.flush()
    runs = ledger.stats(runs=1000).runs
    assert len(runs) == 100
    assert {r.run for r in runs} == {str(n) for n in range(5, 105)}


async def test_clear_removes_one_node_or_all_and_gives_space_back(
    ledger: Ledger,
) -> None:
    for x in range(300):
        await ledger.call("big", "v1", scale, (x,), {}, lambda x=x: scale(x), run="r")
        await ledger.call("small", "v1", scale, (x,), {}, lambda x=x: scale(x))
    full = ledger.stats().size
    assert ledger.clear("small") == 300
    assert [n.node for n in ledger.stats().nodes] == ["big"]
    assert ledger.clear("nothing") == 0
    assert ledger.clear() == 300
    cleared = ledger.stats()
    assert (cleared.nodes, cleared.runs) == ((), ())
    assert cleared.size < full
    runs = Runs()
    assert await call(ledger, runs, scale, 1) == (2, False)


def test_a_path_without_a_ledger_has_empty_stats_and_is_not_created(
    tmp_path: Path,
) -> None:
    ledger = Ledger.at(tmp_path / "none" / "ledger.db")
    assert ledger.stats().nodes == ()
    assert ledger.clear() == 0
    assert not (tmp_path / "none").exists()


def test_at_shares_one_ledger_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Ledger.at("a.db") is Ledger.at(tmp_path / "a.db")
    assert Ledger.at("sub/../a.db") is Ledger.at("a.db")
    assert Ledger.at(None).path == tmp_path / DEFAULT_PATH
    monkeypatch.setenv("KILN_LEDGER", str(tmp_path / "env.db"))
    assert Ledger.at(None) is Ledger.at(tmp_path / "env.db")


def test_the_default_directory_is_made_and_kept_out_of_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KILN_LEDGER", raising=False)
    ledger = Ledger.at(None)
    assert ledger.call_sync("count", "v1", count, ("a",), {}, lambda: count("a"))
    ledger.close()
    assert (tmp_path / ".kiln" / "ledger.db").is_file()
    assert (tmp_path / ".kiln" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_importing_kiln_does_not_load_sqlite() -> None:
    script = "import sys, kiln; print('sqlite3' in sys.modules, kiln.Ledger.__name__)"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "Ledger"]


async def test_a_ledger_error_is_a_kiln_error_with_the_path(tmp_path: Path) -> None:
    ledger = Ledger.at(tmp_path)
    with pytest.raises(LedgerError, match=str(tmp_path)):
        await ledger.call("scale", "v1", scale, (1,), {}, lambda: scale(1))


async def test_closing_the_ledger_mid_call_loses_nothing(ledger: Ledger) -> None:
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 5

    pending = asyncio.ensure_future(
        ledger.call("slow", "v1", slow, (), {}, slow, run="r")
    )
    await asyncio.sleep(0.01)
    ledger.close()  # as at exit, or by a user, while the call computes
    release.set()
    assert await asyncio.wait_for(pending, 30) == (5, False)
    ledger.close()
    assert await ledger.call("slow", "v1", slow, (), {}, slow, run="r") == (5, True)
    assert (ledger.stats().runs[0].hits, ledger.stats().runs[0].misses) == (1, 1)
