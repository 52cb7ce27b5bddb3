"""Durable runs with streams: stream nodes' items journaled, streaming flows run durably.

As in test_durable, every node logs a line, its name and its arguments, as
its side effect; a stream node logs one per item, just before it yields it,
and one more as it ends. Item ``n`` of a stream call is journaled at
``KEY#n`` and its end at ``KEY``, so the stream's journal rows pair with
its log lines. The properties:

- a finished run replays its streams' items without running the nodes;
- a stream that stopped part way runs again from its start, and its items
  up to where it stopped must be the ones journaled (anything else is
  refused, since the flow went on from those); the calls made from the
  journaled items do not run again;
- a streaming flow's run is claimed at its first item and recorded at its
  end, failed when its consumer closed it early, and iterated again it
  replays and goes on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kiln import DurableRunError
from kiln.durable.journal import run_record
from kiln.ledger import Ledger
from tests.test_differential import compiled_and_source
from tests.test_durable import RECORDER, fail_once, logged

STREAMS = (
    """\
import json
import os
from collections.abc import AsyncIterator, Iterator

from kiln import flow, node

salt = 0  # what the stream nodes add to their items: changed, they yield others
short = 0  # items the stream nodes leave out at their end


"""
    + RECORDER
    + """

@node
async def count(n: int) -> AsyncIterator[int]:
    for i in range(n - short):
        ran("count", n, i)
        yield i + salt
    ran("count", n, "end")


@node
def lines(n: int) -> Iterator[str]:
    for i in range(n - short):
        ran("lines", n, i)
        yield f"line {i + salt}"
    ran("lines", n, "end")


@node
async def double(x: int) -> int:
    ran("double", x)
    return 2 * x


@node
def measure(line: str) -> int:
    ran("measure", line)
    return len(line)


class Opaque:  # a handle the journal cannot store
    pass


@node
async def handles(n: int) -> AsyncIterator[Opaque]:
    for i in range(n):
        yield Opaque()


@flow
async def summed(n: int) -> int:
    total = 0
    async for x in count(n):
        total = total + await double(x)
    return total


@flow
async def mapped(n: int) -> list[int]:
    return [await double(x) async for x in count(n)]


@flow
def measured(n: int) -> int:
    total = 0
    for line in lines(n):
        total = total + measure(line)
    return total


@flow
async def loud(n: int) -> AsyncIterator[int]:
    async for x in count(n):
        yield await double(x)
    yield -1


@flow
def listed(n: int) -> Iterator[int]:
    for line in lines(n):
        yield measure(line)


@flow
async def collected(n: int) -> list[int]:
    return [x async for x in loud(n)] + [await double(100)]


@flow
async def opaque(n: int) -> int:
    return len([h async for h in handles(n)])
"""
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    module, _ = compiled_and_source(STREAMS, tmp_path_factory.mktemp("streams"))
    return module


@pytest.fixture
def module(compiled: ModuleType, log: Path) -> ModuleType:
    compiled.salt = 0
    compiled.short = 0
    return compiled


def taken(log: Path) -> list[list[Any]]:
    """The log's lines, and the log emptied for what runs next."""
    lines = logged(log)
    if log.exists():
        log.unlink()
    return lines


def same_calls(ran: list[list[Any]], expected: list[list[Any]]) -> bool:
    """The same calls, in any order: a fan-out's interleave with the journal's commits."""
    return sorted(map(json.dumps, ran)) == sorted(map(json.dumps, expected))


def journal_keys(ledger: Path, run: str) -> list[str]:
    return [key for key, _, _ in Ledger.at(ledger).transaction(_keys(run))]


def _keys(run: str) -> Any:
    def read(connection: Any) -> list[tuple[str, str, str]]:
        return connection.execute(
            "SELECT key, node, value FROM journal WHERE run = ? ORDER BY rowid", (run,)
        ).fetchall()

    return read


def state(ledger: Path, run: str) -> str:
    record = run_record(Ledger.at(ledger), run)
    assert record is not None
    return record.state


# --- stream nodes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stream"),
    [("summed", "count"), ("mapped", "count"), ("measured", "lines")],
)
def test_a_finished_run_replays_a_streams_items_without_running_it(
    module: ModuleType, log: Path, tmp_path: Path, name: str, stream: str
) -> None:
    ledger = tmp_path / "l.db"
    expected = getattr(module, name)(5)
    every = taken(log)
    kind = type(getattr(module, name))
    assert kind(run_id="r", ledger=ledger)(5) == expected
    assert same_calls(taken(log), every)
    assert kind(run_id="r", ledger=ledger)(5) == expected
    assert taken(log) == [], "every item and every call replayed"
    keys = journal_keys(ledger, "r")
    items = [key for key in keys if "#" in key]
    assert len(items) == 5, keys
    assert sum(1 for line in every if line[0] == stream) == 6  # 5 items, the end


@pytest.mark.parametrize(
    ("name", "stream", "failing"),
    [
        ("summed", "count", ["double", 3]),
        ("measured", "lines", ["measure", "line 3"]),
        ("summed", "count", ["count", 6, "end"]),
    ],
)
def test_a_stream_cut_short_runs_again_from_its_start_and_the_rest_once(
    module: ModuleType,
    log: Path,
    tmp_path: Path,
    name: str,
    stream: str,
    failing: list[Any],
) -> None:
    ledger = tmp_path / "l.db"
    expected = getattr(module, name)(6)
    every = taken(log)
    kind = type(getattr(module, name))

    fail_once(log, failing)
    with pytest.raises(module.Injected):
        kind(run_id="r", ledger=ledger)(6)
    first = taken(log)
    assert state(ledger, "r") == "failed"

    assert kind(run_id="r", ledger=ledger)(6) == expected
    again = taken(log)
    # The stream, from its start: the items the flow had, then the rest.
    assert [line for line in again if line[0] == stream] == [
        line for line in every if line[0] == stream
    ]
    # Each call made from an item: once, in the first run or this one.
    calls = [line for line in every if line[0] != stream]
    ran_calls = [line for line in first + again if line[0] != stream]
    assert same_calls(ran_calls, calls)
    assert kind(run_id="r", ledger=ledger)(6) == expected
    assert taken(log) == []


@pytest.mark.parametrize("change", ["salt", "short"])
def test_a_stream_that_yields_other_items_when_run_again_is_refused(
    module: ModuleType, log: Path, tmp_path: Path, change: str
) -> None:
    ledger = tmp_path / "l.db"
    kind = type(module.summed)
    fail_once(log, ["double", 4])
    with pytest.raises(module.Injected):
        kind(run_id="r", ledger=ledger)(6)
    setattr(module, change, 3)
    what = "yielded another" if change == "salt" else "ended before"
    with pytest.raises(
        DurableRunError, match=rf"'count'.*{what} item [0-3] than"
    ) as caught:
        kind(run_id="r", ledger=ledger)(6)
    assert "kiln runs forget r --from 0.0#0" in str(caught.value)
    keys = journal_keys(ledger, "r")
    assert "0.0#0" in keys, keys


def test_a_stream_whose_items_cannot_be_journaled_is_refused_before_it_runs(
    module: ModuleType, tmp_path: Path
) -> None:
    with pytest.raises(DurableRunError, match=r"node 'handles'.*yields items of type"):
        type(module.opaque)(run_id="r", ledger=tmp_path / "l.db")
    assert module.opaque(3) == 3, "without a run id it runs"


# --- streaming flows --------------------------------------------------------------------


async def items_of(stream: AsyncIterator[int], limit: int | None = None) -> list[int]:
    got: list[int] = []
    async for item in stream:
        got.append(item)
        if limit is not None and len(got) == limit:
            break
    if limit is not None:
        await stream.aclose()  # type: ignore[attr-defined]
    return got


def test_a_streaming_flow_runs_durably_and_replays(
    module: ModuleType, log: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    expected = asyncio.run(items_of(module.loud.astream(4)))
    every = taken(log)
    kind = type(module.loud)
    assert asyncio.run(items_of(kind(run_id="s", ledger=ledger).astream(4))) == expected
    assert taken(log) == every
    assert state(ledger, "s") == "done"
    assert asyncio.run(items_of(kind(run_id="s", ledger=ledger).astream(4))) == expected
    assert taken(log) == []
    assert list(kind(run_id="s", ledger=ledger).stream(4)) == expected
    assert taken(log) == []


def test_a_streaming_flow_closed_early_goes_on_when_iterated_again(
    module: ModuleType, log: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    expected = asyncio.run(items_of(module.loud.astream(5)))
    every = taken(log)
    kind = type(module.loud)
    head = asyncio.run(items_of(kind(run_id="s", ledger=ledger).astream(5), limit=2))
    assert head == expected[:2]
    first = taken(log)
    assert state(ledger, "s") == "failed"

    assert asyncio.run(items_of(kind(run_id="s", ledger=ledger).astream(5))) == expected
    again = taken(log)
    doubled = [line for line in first + again if line[0] == "double"]
    assert same_calls(doubled, [line for line in every if line[0] == "double"])
    assert state(ledger, "s") == "done"


def test_a_sync_streaming_flow_runs_durably(
    module: ModuleType, log: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    expected = list(module.listed(3))
    every = taken(log)
    kind = type(module.listed)
    stream: Iterator[int] = kind(run_id="s", ledger=ledger).stream(3)
    assert list(stream) == expected
    assert taken(log) == every
    assert list(kind(run_id="s", ledger=ledger)(3)) == expected
    assert taken(log) == []
    # The consumer's code between items runs outside the run: a durable run of
    # another id can start there.
    for _ in kind(run_id="s2", ledger=ledger).stream(2):
        assert type(module.measured)(run_id="m", ledger=ledger)(2) > 0
    assert state(ledger, "s2") == "done"


def test_a_streaming_subflow_of_a_durable_run_replays_its_calls(
    module: ModuleType, log: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    expected = module.collected(4)
    every = taken(log)
    kind = type(module.collected)
    fail_once(log, ["double", 2])
    with pytest.raises(module.Injected):
        kind(run_id="c", ledger=ledger)(4)
    first = taken(log)
    assert kind(run_id="c", ledger=ledger)(4) == expected
    again = taken(log)
    calls = [line for line in every if line[0] != "count"]
    assert same_calls([line for line in first + again if line[0] != "count"], calls)
    keys = journal_keys(ledger, "c")
    assert any(key.startswith("0.0/") and "#" in key for key in keys), keys
    assert kind(run_id="c", ledger=ledger)(4) == expected
    assert taken(log) == []
