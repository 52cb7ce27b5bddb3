"""Durable runs (``F(run_id=...)``) of compiled flows: resumed, replayed, killed, refused.

Every node writes a line to a log as its side effect, just before it returns:
its name and its arguments, as JSON. The journal names a call by its node
and its arguments' digest (`kiln.durable.digest`), and `calls_in` names a
logged call the same way, so what ran and what the journal holds compare as
multisets of calls (`Counter`s). The property every test here comes back to:

    a run of an id runs exactly the calls of an uninterrupted run that the
    journal lacked when it started, once each, and returns what the
    uninterrupted run returns.

A call's side effect comes before its journal row is committed, so a call
whose row was committed never runs again, and a call stopped between the
two (a failure of the run, a SIGKILL) may: at least once, never twice after
its row.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kiln import DurableRunError, Memory
from kiln.durable import digest
from kiln.ledger import Ledger
from kiln.ledger.keys import shape_of
from tests.flowgen import flows, plain_run_without_failures
from tests.test_cli_ledger import kiln
from tests.test_differential import compiled_and_source, load

# A call as the journal names it: its node, its arguments' digest.
Call = tuple[str, str]

# The nodes' record of their calls, for the sources below.
RECORDER = """
class Injected(Exception):
    pass


# What the nodes record is kept in files beside the log, not in module state:
# a replayed call would not change module state, and a durable run refuses a
# node that does.
def ran(name: str, *args: object) -> None:
    line = json.dumps([name, *args])
    failing = os.environ["KILN_TEST_RUNS"] + ".fail"  # a call that fails, once
    if os.path.exists(failing):
        with open(failing) as planned:
            fails = planned.read() == line
        if fails:
            os.remove(failing)
            raise Injected(line)
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(line + "\\n")
"""

CHAIN = (
    """\
import asyncio
import json
import os
import time

from kiln import flow, node


"""
    + RECORDER
    + """

def attempt(call: str) -> int:  # which attempt of `call` this is: 1 for the first
    tries = f"{os.environ['KILN_TEST_RUNS']}.{call}"
    with open(tries, "a") as made:
        made.write(".")
    with open(tries) as made:
        return len(made.read())


@node
async def inc(x: int) -> int:
    await asyncio.sleep(0.001 * (x % 3))
    ran("inc", x)
    return x + 1


@node
async def double(x: int) -> int:
    await asyncio.sleep(0.001 * (x % 2))
    ran("double", x)
    return 2 * x


@flow
async def chain(x: int) -> int:
    a = await inc(x)
    b = await inc(a)
    c = await double(b)
    return await inc(c)
"""
)

SHAPES = CHAIN + """

@node
def square(x: int) -> int:
    ran("square", x)
    return x * x


@node(thread=True)
def cube(x: int) -> int:
    time.sleep(0.001)
    ran("cube", x)
    return x**3


@node(retries=2)
async def flaky(x: int) -> int:
    if attempt(f"flaky{x}") == 1:
        raise ConnectionError(f"flaky({x}): the first attempt fails")
    ran("flaky", x)
    return x - 1


@node(cache=True)
async def stored(x: int) -> int:
    ran("stored", x)
    return x * 10


@flow
async def fan_out(xs: list[int]) -> list[int]:
    return [await double(await inc(x)) for x in xs]


@flow
async def looped(x: int) -> int:
    i = 0
    while i < 4:
        x = await inc(x)
        i += 1
    return x


@flow
async def branches(x: int) -> int:
    a = await inc(x)
    if a % 2 == 0:
        b = await double(a)
    else:
        b = await inc(a)
    if b > 10:
        return await double(b)
    return b


@flow
async def inner(x: int) -> int:
    return await double(await inc(x))


@flow
async def outer(x: int) -> int:
    a = await inner(x)
    b = await inner(a)
    return sum([await inner(k) for k in range(a % 3 + 2)]) + b


@flow
def synced(x: int) -> int:
    return square(square(x) + 1)


@flow
async def mixed(x: int) -> int:
    a = square(x)
    b = cube(a)
    return await inc(b) + cube(x)


@flow(concurrency=2)
async def bounded(xs: list[int]) -> list[int]:
    return [await double(await inc(x)) for x in xs]


@flow
async def retried(xs: list[int]) -> list[int]:
    return [await inc(await flaky(x)) for x in xs]


@flow
async def cached(x: int) -> int:
    return await inc(await stored(x))


async def launcher(x: int) -> int:  # a test puts a durable run of another flow here
    raise NotImplementedError


@node
async def launch(x: int) -> int:
    return await launcher(x)


@flow
async def launching(xs: list[int]) -> list[int]:
    return [await launch(x) for x in xs]
"""

# flow, arguments, the call that fails in the first run (its log line)
CASES = [
    ("chain", (1,), ["double", 3]),
    ("fan_out", ([1, 2, 3, 4, 5],), ["double", 4]),
    ("looped", (1,), ["inc", 3]),
    ("branches", (3,), ["double", 4]),
    ("branches", (4,), ["inc", 5]),
    ("outer", (1,), ["double", 5]),
    ("synced", (3,), ["square", 10]),
    ("mixed", (2,), ["inc", 64]),
    ("bounded", ([1, 2, 3, 4, 5, 6],), ["double", 5]),
    ("retried", ([1, 2, 3],), ["inc", 1]),
]


# --- what ran, and what the journal holds ----------------------------------------------


def logged(log: Path) -> list[list[Any]]:
    """The calls the nodes finished, in order: [node, *arguments] each."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def fail_once(log: Path, call: list[Any]) -> Path:
    """Make the call `call` ([node, *arguments]) raise `Injected` once; the file
    that says so, which the call removes."""
    failing = log.with_name(f"{log.name}.fail")
    failing.write_text(json.dumps(call))
    return failing


def tried(log: Path) -> dict[int, int]:
    """The attempts of each flaky(x), by x."""
    return {
        int(path.name.rpartition(".flaky")[2]): len(path.read_text())
        for path in log.parent.glob(f"{log.name}.flaky*")
    }


def forget_tries(log: Path) -> None:
    for path in log.parent.glob(f"{log.name}.flaky*"):
        path.unlink()


def calls_in(module: ModuleType, lines: Iterable[list[Any]]) -> Counter[Call]:
    """Logged calls as the journal names them: node and arguments' digest."""
    named: Counter[Call] = Counter()
    for name, *args in lines:
        shape = shape_of(getattr(module, name))
        named[name, digest(shape, module.__name__, tuple(args), {})] += 1
    return named


def journaled(ledger: Path, run: str, nodes: Iterable[str]) -> Counter[Call]:
    """The node calls run `run` journaled (its subflow calls left out), read from the file."""
    wanted = set(nodes)
    with closing(sqlite3.connect(ledger)) as connection:
        rows = connection.execute(
            "SELECT node, digest FROM journal WHERE run = ?", (run,)
        ).fetchall()
    assert all(found for _, found in rows), "every argument here has a digest"
    return Counter((node, found) for node, found in rows if node in wanted)


def nodes_of(calls: Counter[Call]) -> set[str]:
    return {node for node, _ in calls}


def finish_thread_nodes() -> None:
    """Wait for thread=True calls a failed run stopped waiting for: they log when done."""
    for thread in threading.enumerate():
        if thread.name == "kiln-thread-node":
            thread.join(5)


# --- in one process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    module, _ = compiled_and_source(SHAPES, tmp_path_factory.mktemp("shapes"))
    return module


@pytest.fixture
def module(shapes: ModuleType, log: Path) -> ModuleType:
    return shapes  # what its nodes record is in files beside `log`, new for each test


def uninterrupted(
    module: ModuleType, name: str, args: tuple[Any, ...], log: Path
) -> tuple[Any, Counter[Call]]:
    """What the flow returns without a run id, and the calls it makes."""
    value = getattr(module, name)(*args)
    made = calls_in(module, logged(log))
    log.unlink()
    forget_tries(log)
    return value, made


@pytest.mark.parametrize(("name", "args", "failing"), CASES)
def test_a_failed_run_resumes_with_the_calls_its_journal_lacks(
    module: ModuleType,
    log: Path,
    tmp_path: Path,
    name: str,
    args: tuple[Any, ...],
    failing: list[Any],
) -> None:
    ledger = tmp_path / "ledger.db"
    expected, every = uninterrupted(module, name, args, log)
    kind = type(getattr(module, name))

    planned = fail_once(log, failing)
    with pytest.raises(module.Injected):
        kind(run_id="r1", ledger=ledger)(*args)
    assert not planned.exists(), "the failing call was made"
    finish_thread_nodes()
    first = calls_in(module, logged(log))
    journal = journaled(ledger, "r1", nodes_of(every))
    assert journal <= first, "a call is journaled only once it ran"
    assert not journal & calls_in(module, [failing]), "a failed call is not journaled"
    assert journal, "the run got somewhere before it failed"
    log.unlink()

    assert kind(run_id="r1", ledger=ledger)(*args) == expected
    assert calls_in(module, logged(log)) == every - journal
    assert journal <= every
    log.unlink()

    assert kind(run_id="r1", ledger=ledger)(*args) == expected
    assert logged(log) == [], "a finished run replays every call"
    assert sum(journaled(ledger, "r1", nodes_of(every)).values()) == sum(every.values())


@pytest.mark.parametrize(("name", "args"), [(name, args) for name, args, _ in CASES])
def test_a_finished_run_awaited_replays_from_its_journal(
    module: ModuleType, log: Path, tmp_path: Path, name: str, args: tuple[Any, ...]
) -> None:
    """`aforward` of every flow, a sync one's included, runs durably as calling it does."""
    expected, every = uninterrupted(module, name, args, log)
    durable = type(getattr(module, name))(run_id="r1", ledger=tmp_path / "l.db")
    assert asyncio.run(durable.aforward(*args)) == expected
    assert calls_in(module, logged(log)) == every
    log.unlink()
    assert asyncio.run(durable.aforward(*args)) == expected
    assert logged(log) == []


def test_a_retried_call_is_journaled_once_with_the_value_it_ended_with(
    module: ModuleType, log: Path, tmp_path: Path
) -> None:
    durable = type(module.retried)(run_id="r1", ledger=tmp_path / "l.db")
    assert durable([5, 6]) == [5, 6]
    assert tried(log) == {5: 2, 6: 2}
    with closing(sqlite3.connect(tmp_path / "l.db")) as connection:
        rows = connection.execute(
            "SELECT value FROM journal WHERE node = 'flaky' ORDER BY value"
        ).fetchall()
    assert rows == [("4",), ("5",)]
    assert durable([5, 6]) == [5, 6]
    assert tried(log) == {5: 2, 6: 2}, "a journaled call is not attempted again"


def test_a_dataclass_result_is_journaled_and_replayed(
    tmp_path: Path, log: Path
) -> None:
    module, _ = compiled_and_source(
        """\
import json
import os
from dataclasses import dataclass

from kiln import flow, node


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@node
async def point(x: int) -> Point:
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(json.dumps(["point", x]) + "\\n")
    return Point(x, x + 1)


@flow
async def where(x: int) -> Point:
    return await point(x)
""",
        tmp_path / "flow",
    )
    durable = type(module.where)(run_id="r1", ledger=tmp_path / "l.db")
    assert durable(1) == module.Point(1, 2)
    assert durable(1) == module.Point(1, 2)
    assert type(durable(1)) is module.Point
    assert logged(log) == [["point", 1]]


@settings(max_examples=30, deadline=None)
@given(
    source=flows(durable=True),
    x=st.integers(min_value=-50, max_value=50),
    data=st.data(),
)
def test_random_flows_resume_after_a_failure_with_what_their_journal_lacks(
    source: str, x: int, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A random flow fails at a random call of its first run; the second finishes it.

    (A call at `fail_at` in a node with retries is retried: then the first
    run finishes too, and the second replays all of it.)
    """
    directory = tmp_path_factory.mktemp("flow")
    compiled, reference = compiled_and_source(source, directory)
    log = directory / "runs.log"  # each call's line; its planned failures beside it
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KILN_TEST_RUNS", str(log))
        expected = asyncio.run(
            plain_run_without_failures(reference).main(x, Memory({"log": []}))
        )
        log.unlink(missing_ok=True)
        # The calls an uninterrupted run makes, compiled: the source may make fewer
        # (the compiler calls the node of a `while (v := n(...))` test twice a round).
        assert asyncio.run(compiled.main.aforward(x, Memory({"log": []}))) == expected
        every = calls_in(compiled, logged(log))
        nodes = nodes_of(every)
        log.unlink(missing_ok=True)
        attempts = directory / "runs.log.attempts"
        attempts.unlink(missing_ok=True)  # its retried calls fail again
        ledger = directory / "ledger.db"

        # Past the first call, so that the journal has something; at `total`, no failure.
        total = sum(every.values())
        fail_at = data.draw(st.integers(min(1, total), total), label="fail_at")
        (directory / "runs.log.fail_at").write_text(str(fail_at))
        durable = type(compiled.main)(run_id="r1", ledger=ledger)
        try:
            assert asyncio.run(durable.aforward(x, Memory({"log": []}))) == expected
        except compiled.Injected:
            failed = True
        else:
            failed = False
        finish_thread_nodes()
        first = len(logged(log))
        journal = journaled(ledger, "r1", nodes)
        assert journal <= calls_in(compiled, logged(log))
        done = "none" if not journal else "all" if journal == every else "some"
        event(f"the first run {'failed' if failed else 'finished'}, {done} journaled")

        assert asyncio.run(durable.aforward(x, Memory({"log": []}))) == expected
        resumed = logged(log)[first:]
        assert calls_in(compiled, resumed) == every - journal
        assert journaled(ledger, "r1", nodes) == every
    Ledger.at(ledger).close()  # its writer thread, one per example otherwise


def test_a_run_started_inside_another_run_keys_its_calls_from_its_own_start(
    module: ModuleType, log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its journal answers it wherever it runs again: here, out of the other run."""
    ledger = tmp_path / "l.db"

    def launcher(x: int) -> Awaitable[int]:
        return type(module.chain)(run_id=f"chain{x}", ledger=ledger).aforward(x)

    monkeypatch.setattr(module, "launcher", launcher)
    assert type(module.launching)(run_id="outer", ledger=ledger)([1, 2]) == [7, 9]
    assert len(logged(log)) == 8
    assert type(module.chain)(run_id="chain2", ledger=ledger)(2) == 9
    assert len(logged(log)) == 8, "the run replayed its journal"


# --- refusals ---------------------------------------------------------------------------


def test_a_run_id_is_refused_with_other_arguments_or_another_flow(
    module: ModuleType, tmp_path: Path
) -> None:
    ledger = tmp_path / "l.db"
    assert type(module.chain)(run_id="r1", ledger=ledger)(1) == 7
    with pytest.raises(DurableRunError, match=r"started with other arguments \(\{"):
        type(module.chain)(run_id="r1", ledger=ledger)(2)
    with pytest.raises(
        DurableRunError, match=r"belongs to a run of flow Chain, not of Looped"
    ):
        type(module.looped)(run_id="r1", ledger=ledger)(1)
    # What was refused changed nothing: the run replays as it was.
    assert type(module.chain)(run_id="r1", ledger=ledger)(1) == 7


def test_one_process_runs_a_run_id_once_at_a_time(
    module: ModuleType, tmp_path: Path, log: Path
) -> None:
    ledger = tmp_path / "l.db"
    first, second = (type(module.fan_out)(run_id="r1", ledger=ledger) for _ in range(2))

    async def both() -> list[Any]:
        return await asyncio.gather(
            first.aforward([1, 2]), second.aforward([1, 2]), return_exceptions=True
        )

    done, refused = asyncio.run(both())
    assert done == [4, 6]
    assert isinstance(refused, DurableRunError)
    assert "already running in this process" in str(refused)
    assert second([1, 2]) == [4, 6], "once the first run ended"
    assert len(logged(log)) == 4


def edited(tmp_path: Path, line: str, instead: str) -> ModuleType:
    """The chain's module with `line` rewritten, compiled, under a fixed name.

    A durable run belongs to its flow by the module's name, so each version
    is imported under the same name, as a program restarted after an edit
    would be.
    """
    assert f"    {line}\n" in CHAIN
    source = CHAIN.replace(f"    {line}\n", f"    {instead}\n", 1)
    directory = tmp_path / f"version{len(list(tmp_path.glob('version*')))}"
    compiled_and_source(source, directory)
    return load(directory / "out.py", "kiln_test_durable_edited")


def test_an_edit_before_a_journaled_call_is_refused_and_one_after_them_runs(
    tmp_path: Path, log: Path
) -> None:
    ledger = tmp_path / "l.db"
    original = edited(tmp_path, "b = await inc(a)", "b = await inc(a)")
    fail_once(log, ["double", 3])
    with pytest.raises(original.Injected):
        type(original.chain)(run_id="r1", ledger=ledger)(1)
    assert logged(log) == [["inc", 1], ["inc", 2]]  # journaled; double(3) failed

    before = edited(tmp_path, "b = await inc(a)", "b = await inc(a + 1)")
    with pytest.raises(DurableRunError) as refused:
        type(before.chain)(run_id="r1", ledger=ledger)(1)
    message = str(refused.value)
    assert "journaled a call of 'inc' with other arguments" in message
    assert "the flow's source or its inputs changed before this point" in message
    assert "hash randomization changes from process to process" in message
    assert "PYTHONHASHSEED" in message
    assert "`kiln runs forget r1 --from " in message
    assert len(logged(log)) == 2, "a refused run runs nothing"

    # The first call the journal lacks (double, which failed) is free to change.
    after = edited(tmp_path, "c = await double(b)", "c = await double(b + 10)")
    assert type(after.chain)(run_id="r1", ledger=ledger)(1) == 27
    assert logged(log)[2:] == [["double", 13], ["inc", 26]]


# --- the ledger around the journal ------------------------------------------------------


def test_clearing_the_ledger_leaves_durable_runs_journals_alone(
    module: ModuleType, tmp_path: Path, log: Path
) -> None:
    ledger = tmp_path / "l.db"
    durable = type(module.cached)(run_id="r1", ledger=ledger)
    assert durable(3) == 31
    rows = journaled(ledger, "r1", ["stored", "inc"])
    assert sum(rows.values()) == 2

    Ledger.at(ledger).clear()
    done = kiln("ledger", "clear", ledger, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert journaled(ledger, "r1", ["stored", "inc"]) == rows
    assert durable(3) == 31
    assert logged(log) == [["stored", 3], ["inc", 30]], "the run replayed"
    # While a run without an id finds the cache empty.
    assert type(module.cached)(ledger=ledger)(3) == 31
    assert logged(log)[2:] == [["stored", 3], ["inc", 30]]


def test_a_ledger_of_schema_3_is_upgraded_in_place_and_its_entries_still_answer(
    module: ModuleType, tmp_path: Path, log: Path
) -> None:
    ledger = tmp_path / "l.db"
    assert type(module.cached)(ledger=ledger)(3) == 31
    Ledger.at(ledger).close()
    # Version 4 is version 3 and the durable runs' two tables.
    with closing(sqlite3.connect(ledger)) as connection:
        connection.execute("DROP TABLE durable")
        connection.execute("DROP TABLE journal")
        connection.execute("PRAGMA user_version = 3")
        connection.commit()
    log.unlink()

    assert type(module.cached)(run_id="r1", ledger=ledger)(3) == 31
    assert logged(log) == [["inc", 30]], "stored(3) came from the cache"
    with closing(sqlite3.connect(ledger)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (4,)
        assert connection.execute("SELECT count(*) FROM entries").fetchone() == (1,)
    assert sum(journaled(ledger, "r1", ["stored", "inc"]).values()) == 2


# --- across processes ---------------------------------------------------------------------

# Uncached nodes with random small waits around their side effects, so that a
# SIGKILL lands between a call's side effect and its commit as well as elsewhere.
# Each call's first argument is a tag of its own: no two calls are alike.
KILLABLE = """\
import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

from kiln import flow, node


def ran(name: str, *args: object) -> None:
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(json.dumps([name, *args]) + "\\n")


@node
async def inc(tag: str, x: int) -> int:
    await asyncio.sleep(random.uniform(0.002, 0.010))
    ran("inc", tag, x)
    await asyncio.sleep(random.uniform(0, 0.004))
    return x + 1


@node
async def mix(tag: str, a: int, b: int) -> int:
    await asyncio.sleep(random.uniform(0.002, 0.010))
    ran("mix", tag, a, b)
    await asyncio.sleep(random.uniform(0, 0.004))
    return (a * 31 + b) % 1000003


@node
def fold(tag: str, values: list[int]) -> int:
    time.sleep(random.uniform(0.002, 0.008))
    ran("fold", tag, values)
    return sum(values) % 1000003


@node(thread=True)
def weigh(tag: str, x: int) -> int:
    time.sleep(random.uniform(0.002, 0.008))
    ran("weigh", tag, x)
    time.sleep(random.uniform(0, 0.004))
    return x * 7 % 1000003


@node
async def wait_for(marker: str) -> str:
    ran("wait_for", marker)
    while not Path(marker).exists():
        await asyncio.sleep(0.01)
    return marker


@flow
async def part(tag: str, x: int) -> int:
    a = await inc(f"{tag}.a", x)
    return await mix(f"{tag}.b", a, x)


@flow(concurrency=3, max_visits=10)
async def work(n: int) -> int:
    total = 0
    i = 0
    while i < n:
        total = await inc(f"loop{i}", total)
        i += 1
    pieces = [await mix(f"mix{k}", await inc(f"each{k}", k), total) for k in range(2 * n)]
    parts = [await part(f"part{k}", p) for k, p in enumerate(pieces[:n])]
    weighed = weigh("weigh", fold("fold", pieces + parts))
    if weighed % 2 == 0:
        weighed = await inc("even", weighed)
    else:
        weighed = await mix("odd", weighed, n)
    return await inc("last", weighed)


@flow
async def blocked(marker: str) -> int:
    await wait_for(marker)
    return await inc("after", 1)


@node
async def produce(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(random.uniform(0.001, 0.004))
        ran("produce", i)
        yield i * 3


@flow
async def streamed(n: int) -> int:
    total = 0
    async for x in produce(n):
        total = await mix(f"item{x}", total, x)
    return await inc("end", total)
"""

# Runs a flow of the compiled module `out` in a process of its own; says "ready"
# before the run starts, prints its result or the DurableRunError, and exits
# once its input closes: a SIGKILL lands on a live process, if after the run.
RUNNER = """\
import json
import sys

sys.path.insert(0, sys.argv[1])
import out
from kiln import DurableRunError

flow = getattr(out, sys.argv[2])
durable = type(flow)(run_id=sys.argv[3], ledger=sys.argv[4])
print("ready", flush=True)
try:
    print(json.dumps(durable(*json.loads(sys.argv[5]))), flush=True)
except DurableRunError as error:
    print(f"DurableRunError: {error}", flush=True)
sys.stdin.read()
"""

KILLED_ARGUMENT = 8  # work(8): 60 node calls, about 0.3 s uninterrupted
KILLS = 4  # per seed: with 6 seeds, 24 SIGKILLs


@pytest.fixture(scope="module")
def killable(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    directory = tmp_path_factory.mktemp("killable")
    module, _ = compiled_and_source(KILLABLE, directory)
    (directory / "runner.py").write_text(RUNNER)
    return module


def start(
    module: ModuleType, flow: str, run: str, ledger: Path, log: Path, *args: object
) -> subprocess.Popen[str]:
    """A process running `flow` of `module` as durable run `run`, once it said "ready"."""
    directory = Path(module.__file__ or "").parent
    process = subprocess.Popen(
        [
            sys.executable,
            str(directory / "runner.py"),
            str(directory),
            flow,
            run,
            str(ledger),
            json.dumps(args),
        ],
        env={**os.environ, "KILN_TEST_RUNS": str(log)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def outcome(process: subprocess.Popen[str]) -> str:
    """What the process printed after "ready", once it has exited.

    Read through `process.stdout`, not `communicate()`: `start()`'s readline
    may have buffered the next line already (a refused run prints it at
    once), and `communicate()` reads the pipe beneath that buffer.
    """
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    process.wait(timeout=60)  # it prints a line or two: the pipe never fills
    out = process.stdout.read()
    assert process.returncode == 0, out
    return out.strip()


def written(log: Path) -> int:
    """How many lines the log has, counted as written: a line may be half there."""
    return log.read_bytes().count(b"\n") if log.exists() else 0


def wait_for_lines(log: Path, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while written(log) < count and process.poll() is None:
        assert time.monotonic() < deadline, f"no {count} calls logged in 30 s"
        time.sleep(0.001)


@pytest.mark.parametrize("seed", range(6))
def test_a_run_killed_at_random_points_never_runs_a_journaled_call_again(
    killable: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Run, SIGKILL, run again: each process runs only what the journal lacked.

    The kill lands after a random number of this process's calls have logged
    their side effects, a moment later (0-3 ms): often between a side effect
    and its commit. After each kill, the journal as the next process finds
    it says what that process may run: nothing the journal holds.
    """
    rng = random.Random(seed)
    ledger, log = tmp_path / "l.db", tmp_path / "runs.log"
    monkeypatch.setenv("KILN_TEST_RUNS", str(log))
    expected = killable.work(KILLED_ARGUMENT)
    every = calls_in(killable, logged(log))
    nodes = nodes_of(every)
    assert sum(every.values()) == 60
    log.unlink()

    before: Counter[Call] = Counter()  # the journal, when the last process was killed
    again = 0  # calls that ran twice: killed between their side effect and commit
    for _ in range(KILLS):
        lines = len(logged(log))
        live = sum((every - before).values())  # every one of them runs live
        process = start(killable, "work", "k", ledger, log, KILLED_ARGUMENT)
        # Most kills land before the last 8 calls, the last 4 of which run one
        # after another; one that lands later, after the run, is a kill all the same.
        wait_for_lines(log, lines + rng.randint(0, max(0, live - 8)), process)
        time.sleep(rng.uniform(0, 0.003))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert process.returncode == -signal.SIGKILL

        ran = calls_in(killable, logged(log)[lines:])
        after = journaled(ledger, "k", nodes)
        assert before <= after, "a committed row stays"
        assert ran <= every - before, "it ran a call the journal held, or one twice"
        assert after - before <= ran, "a row is committed after its call's side effect"
        again += sum((ran - after).values())
        before = after

    lines = len(logged(log))
    process = start(killable, "work", "k", ledger, log, KILLED_ARGUMENT)
    assert json.loads(outcome(process)) == expected
    assert calls_in(killable, logged(log)[lines:]) == every - before
    assert journaled(ledger, "k", nodes) == every
    # Some call ran twice only if a kill landed between its side effect and its commit.
    assert sum(calls_in(killable, logged(log)).values()) == 60 + again


@pytest.mark.parametrize("seed", range(3))
def test_a_run_killed_inside_a_stream_runs_the_stream_again_and_no_call_twice(
    killable: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """SIGKILL while a stream node's items drive calls: the stream runs from its start.

    Its items are checked against the journal (they are the same: the node is
    deterministic); every call made from an item, journaled before the kill,
    never runs again, and the run ends with the uninterrupted result.
    """
    rng = random.Random(seed)
    ledger, log = tmp_path / "l.db", tmp_path / "runs.log"
    monkeypatch.setenv("KILN_TEST_RUNS", str(log))
    items = 12
    expected = killable.streamed(items)
    every = calls_in(killable, [line for line in logged(log) if line[0] != "produce"])
    nodes = nodes_of(every)
    log.unlink()
    before: Counter[Call] = Counter()
    for _ in range(3):
        remaining = sum((every - before).values())  # each logs a line, at least
        if remaining == 0:
            break
        lines = len(logged(log))
        process = start(killable, "streamed", "s", ledger, log, items)
        wait_for_lines(log, lines + rng.randint(1, remaining), process)
        time.sleep(rng.uniform(0, 0.003))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        new = logged(log)[lines:]
        ran_calls = calls_in(killable, [line for line in new if line[0] != "produce"])
        produced = [line[1] for line in new if line[0] == "produce"]
        assert produced == list(range(len(produced))), "the stream ran from its start"
        after = journaled(ledger, "s", nodes)
        assert ran_calls <= every - before, "a journaled call ran again"
        assert before <= after
        before = after
    lines = len(logged(log))
    process = start(killable, "streamed", "s", ledger, log, items)
    assert json.loads(outcome(process)) == expected
    rest = [line for line in logged(log)[lines:] if line[0] != "produce"]
    assert calls_in(killable, rest) <= every - before
    assert journaled(ledger, "s", nodes) == every


def test_a_second_process_is_refused_a_run_id_another_process_runs(
    killable: ModuleType, tmp_path: Path
) -> None:
    ledger, log, marker = tmp_path / "l.db", tmp_path / "runs.log", tmp_path / "go"
    first = start(killable, "blocked", "b", ledger, log, str(marker))
    wait_for_lines(log, 1, first)
    assert first.poll() is None, "the first process waits for the marker"

    second = start(killable, "blocked", "b", ledger, log, str(marker))
    refused = outcome(second)
    assert refused.startswith("DurableRunError: run 'b' is running in process ")
    assert f":{first.pid}; two processes never run one durable run at once" in refused

    marker.touch()
    assert outcome(first) == "2"
    third = start(killable, "blocked", "b", ledger, log, str(marker))
    assert outcome(third) == "2"
    assert logged(log) == [["wait_for", str(marker)], ["inc", "after", 1]]
