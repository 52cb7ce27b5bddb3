"""The ledger across processes: killed with SIGKILL and rerun, shared by two writers, forked.

Each scenario is a hand-written asyncio script that calls `Ledger.call`
directly, run as a subprocess; the scripts log what they ran and what
finished, one line per event, and the tests read the logs.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

CALLS = 40

FANOUT = """
import asyncio, random, sys
from kiln.ledger import Ledger

async def work(index: int) -> int:
    return index * index

def log(line):
    with open(sys.argv[2], "a") as file:
        file.write(line + "\\n")

async def main(path, seed):
    ledger = Ledger.at(path)
    durations = [random.Random(seed).uniform(0.02, 0.3) for _ in range(40)]
    random.Random(seed).shuffle(durations)
    gate = asyncio.Semaphore(8)  # a rate-limited service: the run lasts about a second

    async def compute(index):
        async with gate:
            log(f"ran {index}")
            await asyncio.sleep(durations[index])
            return await work(index)

    async def one(index):
        value, hit = await ledger.call(
            "work", "v1", work, (index,), {}, lambda: compute(index), run=seed
        )
        assert value == index * index
        log(f"finished {index} {int(hit)}")

    await asyncio.gather(*(one(index) for index in range(40)))

asyncio.run(main(sys.argv[1], sys.argv[3]))
"""


def events(log: Path, kind: str) -> dict[int, str]:
    """The calls that logged `kind` ("ran" or "finished"), with the rest of their line."""
    if not log.exists():
        return {}
    found = {}
    for line in log.read_text().splitlines():
        word, index, *rest = line.split()
        if word == kind:
            found[int(index)] = " ".join(rest)
    return found


@pytest.mark.parametrize("kill_after", [5, 15, 25])
def test_a_run_killed_midway_reruns_exactly_the_calls_that_had_not_finished(
    tmp_path: Path, kill_after: int
) -> None:
    ledger, script = tmp_path / "ledger.db", tmp_path / "fanout.py"
    script.write_text(FANOUT)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    process = subprocess.Popen(
        [sys.executable, str(script), str(ledger), str(first), f"seed{kill_after}"]
    )
    deadline = time.monotonic() + 60
    while len(events(first, "finished")) < kill_after:
        assert time.monotonic() < deadline, "the first run did not get going"
        assert process.poll() is None, "the first run ended before it was killed"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = set(events(first, "finished"))
    assert kill_after <= len(finished) < CALLS, "killed midway"

    subprocess.run(
        [sys.executable, str(script), str(ledger), str(second), "rerun"], check=True
    )
    rerun = events(second, "finished")
    ran_again = set(events(second, "ran"))
    assert set(rerun) == set(range(CALLS)), "every call finished on the rerun"
    assert not ran_again & finished, "a call that had finished ran again"
    assert all(rerun[index] == "1" for index in finished), "finished calls are hits"
    ran_ever = set(events(first, "ran")) | ran_again
    assert ran_ever == set(range(CALLS)), "every call ran at some point"
    # A call that finished computing but was killed before its commit ran again;
    # one committed but killed before it logged was a hit: both are allowed.
    assert ran_again <= set(range(CALLS)) - finished


WRITER = """
import asyncio, os, random, sys
from kiln.ledger import Ledger

async def triple(index: int) -> dict[str, int]:
    return {"index": index, "triple": 3 * index}

async def main(path, first, last, log, go):
    ledger = Ledger.at(path)
    gate = asyncio.Semaphore(16)
    rng = random.Random(first)

    async def compute(index):
        async with gate:
            await asyncio.sleep(rng.uniform(0, 0.005))
            with open(log, "a") as file:
                file.write(f"{index}\\n")
            return await triple(index)

    async def one(index):
        value, _ = await ledger.call(
            "triple", "v1", triple, (index,), {}, lambda: compute(index), run=log
        )
        assert value == {"index": index, "triple": 3 * index}

    while not os.path.exists(go):  # start together with the other writer
        await asyncio.sleep(0.001)
    await asyncio.gather(*(one(index) for index in range(first, last)))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]))
"""

CHECK = """
import asyncio, sys
from kiln.ledger import Ledger

async def triple(index: int) -> dict[str, int]:
    raise AssertionError(f"{index} was not stored")

async def main(path, last):
    ledger = Ledger.at(path)
    for index in range(last):
        value, hit = await ledger.call(
            "triple", "v1", triple, (index,), {}, lambda: triple(index)
        )
        assert hit and value == {"index": index, "triple": 3 * index}, (index, value)
    print(ledger.stats().entries)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_two_processes_writing_one_ledger_lose_nothing_and_corrupt_nothing(
    tmp_path: Path,
) -> None:
    ledger, go = tmp_path / "ledger.db", tmp_path / "go"
    (tmp_path / "writer.py").write_text(WRITER)
    (tmp_path / "check.py").write_text(CHECK)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    ranges = [(0, 300), (150, 450)]  # 150 keys in common
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                *map(str, (tmp_path / "writer.py", ledger, first, last, log, go)),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for (first, last), log in zip(ranges, logs, strict=True)
    ]
    time.sleep(0.5)  # both are waiting for `go` (not needed for correctness)
    go.touch()
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
    for log, (first, last) in zip(logs, ranges, strict=True):
        assert set(map(int, log.read_text().split())) <= set(range(first, last))
    checked = subprocess.run(
        [sys.executable, str(tmp_path / "check.py"), str(ledger), "450"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert int(checked.stdout) == 450
    connection = sqlite3.connect(ledger)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()


FORKED = """
import asyncio, multiprocessing, os, sys
from kiln.ledger import Ledger

async def square(x: int) -> int:
    return x * x

def call(x, expect_hit):
    async def go():
        ledger = Ledger.at(sys.argv[1])
        value, hit = await ledger.call("square", "v1", square, (x,), {}, lambda: square(x))
        assert (value, hit) == (x * x, expect_hit), (x, value, hit, os.getpid())
    asyncio.run(go())

def child():
    call(1, True)    # the parent's result, seen through the child's own connections
    call(2, False)   # stored by the child's own writer thread

if __name__ == "__main__":
    call(1, False)
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0, process.exitcode
    call(2, True)    # the child's result
    call(3, False)   # the parent's writer still works
    call(3, True)
    print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_uses_the_ledger_with_connections_of_its_own(
    tmp_path: Path,
) -> None:
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ledger.db")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
