"""`kiln ledger stats|clear`, run through the installed `kiln` command."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from kiln.ledger import Ledger
from tests.test_cli import KILN


def kiln(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "KILN_LEDGER"}
    result = subprocess.run(
        [*KILN, *map(str, args)],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result
    return result


async def summarize(text: str) -> str:
    return text[:3]


async def score(text: str) -> int:
    return len(text)


def fill(path: Path) -> None:
    """Two nodes, two source versions of one of them, and two runs of hits and misses."""

    async def runs() -> None:
        ledger = Ledger.at(path)
        for run, texts in [("run-one", ["a", "bb"]), ("run-two", ["a", "bb", "ccc"])]:
            for text in texts:
                await ledger.call(
                    "summarize",
                    "v1",
                    summarize,
                    (text,),
                    {},
                    lambda t=text: summarize(t),
                    run=run,
                )
        for source in ("v1", "v2"):
            await ledger.call("score", source, score, ("x",), {}, lambda: score("x"))
        ledger.close()

    asyncio.run(runs())


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    fill(path)
    return path


def test_stats_prints_entries_per_node_size_and_the_last_runs(
    tmp_path: Path, ledger: Path
) -> None:
    done = kiln("ledger", "stats", ledger, cwd=tmp_path)
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"ledger {ledger}: 5 entries, ")
    assert lines[0].endswith("on disk")
    table = [line.split() for line in lines[2:5]]
    assert table == [
        ["node", "entries", "versions", "stored"],
        ["score", "2", "2", "2", "B"],
        ["summarize", "3", "1", "12", "B"],
    ]
    assert "last runs, newest first:" in lines
    runs = lines[lines.index("last runs, newest first:") + 2 :]
    assert [(r.split()[0], r.split()[-3:]) for r in runs] == [
        ("run-two", ["2", "1", "66.7%"]),
        ("run-one", ["0", "2", "0.0%"]),
    ]


def test_stats_json(tmp_path: Path, ledger: Path) -> None:
    done = kiln("ledger", "stats", ledger, "--json", "--runs", "1", cwd=tmp_path)
    assert done.returncode == 0, done
    document = json.loads(done.stdout)
    assert document["path"] == str(ledger)
    assert document["entries"] == 5
    assert document["size"] > 0
    assert document["nodes"] == [
        {"node": "score", "entries": 2, "versions": 2, "bytes": 2},
        {"node": "summarize", "entries": 3, "versions": 1, "bytes": 12},
    ]
    (run,) = document["runs"]
    assert (run["run"], run["hits"], run["misses"], run["hit_rate"]) == (
        "run-two",
        2,
        1,
        0.6667,
    )
    assert run["started"].endswith("+00:00")


def test_clear_one_node_then_all(tmp_path: Path, ledger: Path) -> None:
    done = kiln("ledger", "clear", "--node", "score", ledger, cwd=tmp_path)
    assert done.returncode == 0, done
    assert done.stdout.strip() == f"removed 2 entries of node 'score' from {ledger}"
    stats = json.loads(kiln("ledger", "stats", ledger, "--json", cwd=tmp_path).stdout)
    assert [n["node"] for n in stats["nodes"]] == ["summarize"]

    done = kiln("ledger", "clear", "--node", "nope", ledger, cwd=tmp_path)
    assert done.returncode == 0, done
    assert "no entries of node 'nope'" in done.stdout
    assert "(its nodes: 'summarize')" in done.stdout

    done = kiln("ledger", "clear", ledger, "--json", cwd=tmp_path)
    assert json.loads(done.stdout) == {"path": str(ledger), "node": None, "removed": 3}
    done = kiln("ledger", "stats", ledger, cwd=tmp_path)
    assert done.stdout.splitlines()[0].startswith(f"ledger {ledger}: 0 entries")
    assert "no runs recorded yet" in done.stdout


@pytest.mark.parametrize("action", ["stats", "clear"])
def test_the_ledger_may_be_given_as_kiln_run_and_kiln_runs_take_it(
    tmp_path: Path, ledger: Path, action: str
) -> None:
    done = kiln("ledger", action, "--ledger", ledger, "--json", cwd=tmp_path)
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["path"] == str(ledger)


def test_the_default_path_is_kiln_ledger_then_dot_kiln(tmp_path: Path) -> None:
    fill(tmp_path / "env.db")
    done = kiln(
        "ledger", "stats", cwd=tmp_path, env={"KILN_LEDGER": str(tmp_path / "env.db")}
    )
    assert done.returncode == 0, done
    assert str(tmp_path / "env.db") in done.stdout
    fill(tmp_path / ".kiln" / "ledger.db")
    done = kiln("ledger", "clear", cwd=tmp_path)
    assert done.returncode == 0, done
    assert f"from {tmp_path / '.kiln' / 'ledger.db'}" in done.stdout


@pytest.mark.parametrize("action", ["stats", "clear"])
def test_no_ledger_is_an_error_that_says_so(tmp_path: Path, action: str) -> None:
    done = kiln("ledger", action, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("kiln: error: no ledger at ")
    assert "set KILN_LEDGER" in done.stderr
    assert not (tmp_path / ".kiln").exists()


def test_a_file_that_is_not_a_ledger_is_an_error_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    before = other.read_bytes()
    for action in (["stats"], ["clear"], ["clear", "--node", "t"]):
        done = kiln("ledger", *action, other, cwd=tmp_path)
        assert done.returncode == 1, done
        assert done.stderr.startswith("kiln: error: ")
        assert "is a SQLite database that is not a kiln ledger" in done.stderr
    assert other.read_bytes() == before
    done = kiln("ledger", "stats", tmp_path, cwd=tmp_path)
    assert done.returncode == 1
    assert "is a directory" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["ledger"],
        ["ledger", "show"],
        ["ledger", "clear", "--node"],
        ["ledger", "stats", "--runs", "-1"],
        ["ledger", "stats", "a.db", "b.db"],
        ["ledger", "stats", "a.db", "--ledger", "b.db"],
    ],
)
def test_bad_usage_exits_2(tmp_path: Path, args: list[str]) -> None:
    done = kiln(*args, cwd=tmp_path)
    assert done.returncode == 2, done
    assert "kiln: error: " in done.stderr


def test_help_says_what_runs_counts(tmp_path: Path) -> None:
    done = kiln("ledger", "stats", "--help", cwd=tmp_path)
    assert done.returncode == 0, done
    assert "the last N runs (default: 10)" in " ".join(done.stdout.split())
