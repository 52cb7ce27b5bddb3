"""`@node(cache=True)` in compiled flows: the ledger behind them, end to end.

Each node counts its executions in a file beside the ledger, so a test can
tell a call the node ran from one the ledger answered, across processes too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from kiln import EventStatus, RefusedEntry, UncacheableValue
from kiln.ledger.file import checksum
from kiln.ledger.keys import call_key, shape_of
from kilnc.pipeline import compile_file
from kilnc.plan import Links
from tests.test_cli import kiln
from tests.test_differential import compiled_and_source, load

NODES = """
import asyncio
import hashlib
import os
from dataclasses import dataclass
from kiln import flow, node

RUNS = os.environ["KILN_TEST_RUNS"]

def count(what: str) -> None:
    with open(RUNS, "a") as log:
        log.write(what + "\\n")

@dataclass(frozen=True)
class Score:
    word: str
    value: int

@node(cache=True)
async def score(word: str) -> Score:
    count(f"score {word}")
    await asyncio.sleep(0.001)
    if word.startswith("!"):
        await asyncio.sleep(0.1)  # after the others have finished
        raise ValueError(word)
    return Score(word, len(word))

@node(cache=True)
def shout(text: str) -> str:
    count(f"shout {text}")
    return text.upper()

@flow
async def scores(words: list[str]) -> list[Score]:
    return [await score(w) for w in words]

@flow
async def loud(words: list[str]) -> str:
    parts = [await score(w) for w in words]
    return shout(" ".join(p.word for p in parts))
"""


def committed_entries(path: Path, node: str) -> int:
    """How many results of `node` the ledger at `path` holds, read by a fresh process."""
    script = (
        "import sys\n"
        "from kiln.ledger import Ledger\n"
        "stats = Ledger.at(sys.argv[1]).stats()\n"
        "print(sum(n.entries for n in stats.nodes if n.node == sys.argv[2]))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", script, str(path), node],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(found.stdout)


def runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def ledger_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "runs.log"
    monkeypatch.setenv("KILN_TEST_RUNS", str(log))
    monkeypatch.setenv("KILN_LEDGER", str(tmp_path / "ledger.db"))
    return log


def build(tmp_path: Path, source: str = NODES) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(source), tmp_path)
    return compiled


def test_a_second_run_is_served_from_the_ledger(
    tmp_path: Path, ledger_env: Path
) -> None:
    module = build(tmp_path)
    words = ["kiln", "fires", "clay", "kiln"]
    first = module.scores(words)
    assert [s.value for s in first] == [4, 5, 4, 4]
    assert isinstance(first[0], module.Score)  # decoded to the annotated type
    # Identical calls in flight at once ran once.
    assert sorted(runs(ledger_env)) == ["score clay", "score fires", "score kiln"]
    assert module.scores(words) == first
    assert len(runs(ledger_env)) == 3


def test_cache_hits_are_events(tmp_path: Path, ledger_env: Path) -> None:
    module = build(tmp_path)
    module.loud(["a", "b"])
    observed = type(module.loud)(record=True)
    assert observed(["a", "b"]) == "A B"
    events = list(observed.executor.pile)
    assert len(events) == 3
    assert all(e.cache_hit and e.status is EventStatus.COMPLETED for e in events)


def test_every_call_starts_and_ends_for_on_event_hits_and_joined_calls_too(
    tmp_path: Path, ledger_env: Path
) -> None:
    """A hit, and a call that an identical one in flight answered, start as they end."""
    module = build(tmp_path)
    for run in ("cold", "warm"):
        seen: list[tuple[int, EventStatus, float | None]] = []
        observed = type(module.loud)(
            on_event=lambda e, seen=seen: seen.append((e.id, e.status, e.ended)),
            record=True,
        )
        assert observed(["a", "b", "a"]) == "A B A"
        calls = list(dict.fromkeys(call for call, _, _ in seen))
        assert len(calls) == 4  # score three times, shout once
        for call in calls:
            told = [(status, ended is None) for c, status, ended in seen if c == call]
            assert told == [
                (EventStatus.PROCESSING, True),
                (EventStatus.COMPLETED, False),
            ]
        assert observed.executor is not None
        hits = [event for event in observed.executor.pile if event.cache_hit]
        # Cold, the second "a" joined the first in flight; warm, the ledger answered all.
        assert len(hits) == (1 if run == "cold" else 4)


def test_a_failed_item_is_retried_on_the_rerun_and_the_others_are_kept(
    tmp_path: Path, ledger_env: Path
) -> None:
    module = build(tmp_path)
    with pytest.raises(ValueError, match="!bad"):
        module.scores(["one", "!bad", "two"])
    before = runs(ledger_env)
    with pytest.raises(ValueError, match="!bad"):
        module.scores(["one", "!bad", "two"])
    again = runs(ledger_env)[len(before) :]
    assert again == ["score !bad"]  # finished items came from the ledger


def test_ledger_false_turns_the_cache_off(tmp_path: Path, ledger_env: Path) -> None:
    module = build(tmp_path)
    uncached = type(module.scores)(ledger=False)
    uncached(["x"])
    uncached(["x"])
    assert runs(ledger_env) == ["score x", "score x"]
    assert not (tmp_path / "ledger.db").exists()


def test_editing_a_node_reruns_its_calls_and_no_others(
    tmp_path: Path, ledger_env: Path
) -> None:
    first = build(tmp_path / "v1")
    assert first.loud(["a", "b"]) == "A B"
    assert len(runs(ledger_env)) == 3
    edited = NODES.replace("return text.upper()", "return text.upper() + '!'")
    second = build(tmp_path / "v2", edited)
    assert second.loud(["a", "b"]) == "A B!"
    assert runs(ledger_env)[3:] == ["shout a b"]  # `score` unchanged: served
    reformatted = edited.replace(
        '    count(f"shout {text}")\n', "    count(f'shout {text}')  # same code\n"
    )
    third = build(tmp_path / "v3", reformatted)
    assert third.loud(["a", "b"]) == "A B!"
    assert runs(ledger_env)[4:] == []  # layout and comments are not edits


KILLED = """
import os, sys
sys.path.insert(0, os.environ["KILN_TEST_BUILD"])
from kiln import EventStatus
from out import fanout

def done(event):
    if event.status is EventStatus.COMPLETED:
        with open(os.environ["KILN_TEST_DONE"], "a") as log:
            log.write(f"{event.visit}\\n")

print(type(fanout)(on_event=done)(40), flush=True)
"""

FANOUT = """
import asyncio
import hashlib
import os
import random
from kiln import flow, node

@node(cache=True)
async def work(index: int) -> int:
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(f"{index}\\n")
    await asyncio.sleep(random.uniform(0.02, 0.3))
    return index * index

@flow
async def fanout(n: int) -> int:
    return sum([await work(i) for i in range(n)])
"""


@pytest.mark.parametrize("attempt", range(3))
def test_a_run_killed_midway_redoes_only_what_had_not_finished(
    tmp_path: Path, ledger_env: Path, attempt: int
) -> None:
    build(tmp_path, FANOUT)
    done_log = tmp_path / "done.log"
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    env = {
        **os.environ,
        "KILN_TEST_BUILD": str(tmp_path),
        "KILN_TEST_DONE": str(done_log),
    }
    process = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while len(runs(done_log)) < 3 + attempt * 8 and time.monotonic() < deadline:
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    started = runs(ledger_env)
    assert len(started) == 40, "every call had started when it was killed"
    # Visits number a fan-out's elements in order: visit v is index v - 1.
    finished = {int(v) - 1 for v in runs(done_log)}
    committed = committed_entries(tmp_path / "ledger.db", "work")
    assert len(finished) <= committed < 40, "kill it midway"
    rerun = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(rerun.stdout) == sum(i * i for i in range(40))
    again = {int(i) for i in runs(ledger_env)[40:]}
    assert not again & finished, "a call that had finished ran again"
    assert len(again) == 40 - committed  # exactly the calls the ledger did not hold


# --- a hit is the call's value, or a miss ------------------------------------------------


def test_a_dict_argument_in_another_order_is_another_call(
    tmp_path: Path, ledger_env: Path
) -> None:
    module = build(
        tmp_path,
        """
        from kiln import flow, node

        @node(cache=True)
        def header(columns: dict[str, int]) -> str:
            return ",".join(columns)

        @flow
        def headers(a: dict[str, int], b: dict[str, int]) -> list[str]:
            return [header(a), header(b)]
        """,
    )
    assert module.headers({"name": 0, "age": 1}, {"age": 1, "name": 0}) == [
        "name,age",
        "age,name",
    ]


SHOP = {
    "shop/__init__.py": "",
    "shop/rates.py": "RATE = 2\nUNUSED = 0\n",
    "shop/prices.py": """
        import os
        from kiln import flow, node
        from .rates import RATE

        @node(cache=True)
        def price(x: int) -> int:
            with open(os.environ["KILN_TEST_RUNS"], "a") as log:
                log.write(f"price {x}\\n")
            return x * RATE

        @flow
        def total(xs: list[int]) -> int:
            return sum([price(x) for x in xs])
        """,
}


def compile_and_run(root: Path, main: str, script: str) -> str:
    """Compile `main` of the project at `root` into root/build, run `script` in a new process."""
    compilation = compile_file(root / main)
    assert compilation.output is not None, compilation.diagnostics
    out = root / "build" / Path(main).name
    out.parent.mkdir(exist_ok=True)
    out.write_text(compilation.output, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{out.parent}{os.pathsep}{root}"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_edit_of_a_helper_module_invalidates_the_nodes_that_reach_it(
    tmp_path: Path, ledger_env: Path
) -> None:
    write_files(tmp_path, SHOP)
    run = "import prices; print(prices.total([1, 2, 3]))"
    assert compile_and_run(tmp_path, "shop/prices.py", run) == "12"
    assert compile_and_run(tmp_path, "shop/prices.py", run) == "12"
    assert len(runs(ledger_env)) == 3
    rates = tmp_path / "shop" / "rates.py"
    rates.write_text("RATE = 5\nUNUSED = 0\n")
    assert compile_and_run(tmp_path, "shop/prices.py", run) == "30"
    assert len(runs(ledger_env)) == 6
    rates.write_text("RATE = 5  # per unit\nUNUSED = 1\n")  # nothing price reaches
    assert compile_and_run(tmp_path, "shop/prices.py", run) == "30"
    assert len(runs(ledger_env)) == 6


def test_an_any_result_never_comes_back_as_another_class_of_its_name(
    tmp_path: Path, ledger_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_files(
        tmp_path,
        {
            "geo/__init__.py": "",
            "geo/geometry.py": """
                from dataclasses import dataclass

                @dataclass(frozen=True)
                class Point:
                    x: int
                    y: int
                """,
            "geo/where.py": """
                from dataclasses import dataclass
                from typing import Any
                from kiln import flow, node
                from . import geometry

                @dataclass(frozen=True)
                class Point:
                    x: int
                    y: int

                @node(cache=True)
                async def locate(name: str) -> Any:
                    return geometry.Point(1, 2)

                @flow
                async def find(name: str) -> Any:
                    return await locate(name)
                """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    compilation = compile_file(tmp_path / "geo" / "where.py")
    assert compilation.output is not None, compilation.diagnostics
    (tmp_path / "where_out.py").write_text(compilation.output, encoding="utf-8")
    module = load(tmp_path / "where_out.py")
    with pytest.raises(UncacheableValue, match="could not rebuild its result, a Point"):
        module.find("here")
    tolerant = type(module.find)(uncacheable="run")
    for _ in range(2):
        found = tolerant("here")
        assert type(found).__module__ == "geo.geometry"


def plant(ledger: Path, key: bytes, text: str) -> None:
    """A row for `key` as a writer of the file would leave it: its checksum holds."""
    with closing(sqlite3.connect(ledger)) as connection:
        connection.execute(
            "INSERT OR REPLACE INTO entries VALUES (?, 'score', '', ?, ?, 0)",
            (key, text, checksum(key, text.encode())),
        )
        connection.commit()


def test_a_row_naming_popen_runs_nothing_and_the_node_runs(
    tmp_path: Path, ledger_env: Path
) -> None:
    module = build(tmp_path)
    module.scores(["warm"])  # the ledger exists
    (site,) = type(module.scores)._kiln_sites
    key = call_key("score", site.cache, shape_of(site.fn), ("kiln",), {})
    pwned = tmp_path / "pwned"
    row = '{"$dataclass":["_kiln.run.asyncio.subprocess.subprocess.Popen",{"args":'
    plant(tmp_path / "ledger.db", key, row + f'["touch","{pwned}"]}}]}}')
    with pytest.warns(RefusedEntry, match="node 'score'"):
        (score,) = module.scores(["kiln"])
    time.sleep(0.1)
    assert not pwned.exists()
    assert score == module.Score("kiln", 4)
    assert runs(ledger_env)[-1] == "score kiln"


def test_a_result_built_differently_from_its_fields_is_never_a_different_hit(
    tmp_path: Path, ledger_env: Path
) -> None:
    module = build(
        tmp_path,
        """
        from dataclasses import dataclass
        from kiln import flow, node

        @dataclass
        class Counter:
            n: int

            def __post_init__(self) -> None:
                self.n += 1

        @node(cache=True)
        def count(start: int) -> Counter:
            return Counter(start)

        @flow
        def counted(start: int) -> Counter:
            return count(start)
        """,
    )
    with pytest.raises(UncacheableValue, match=r"would come back .*n=3.*n=2"):
        module.counted(1)
    tolerant = type(module.counted)(uncacheable="run")
    assert [tolerant(1).n, tolerant(1).n] == [2, 2]


def test_a_refused_result_refuses_the_nodes_later_calls_before_they_run(
    tmp_path: Path, ledger_env: Path
) -> None:
    """The annotation could not tell (`Any`): the first result did; no later call pays."""
    module = build(
        tmp_path,
        """
        import os
        from typing import Any
        from kiln import flow, node

        class Handle:
            pass

        @node(cache=True)
        def call_api(prompt: str) -> Any:
            with open(os.environ["KILN_TEST_RUNS"], "a") as log:
                log.write(prompt + "\\n")
            return Handle() if prompt.startswith("h") else prompt

        @flow
        def ask(prompt: str) -> Any:
            return call_api(prompt)
        """,
    )
    assert module.ask("plain") == "plain"
    with pytest.raises(UncacheableValue, match="Handle"):
        module.ask("handle")
    with pytest.raises(
        UncacheableValue, match=r"earlier call's; this call of 'call_api' did not"
    ):
        module.ask("hello")
    assert runs(ledger_env) == ["plain", "handle"], "the third call did not run"
    assert module.ask("plain") == "plain", "a stored result is still a hit"
    tolerant = type(module.ask)(uncacheable="run")
    assert tolerant("hello") is not None
    assert runs(ledger_env) == ["plain", "handle", "hello"]


def write_files(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")


def test_an_edit_of_a_class_the_node_imports_beside_another_but_never_uses_keeps_it(
    tmp_path: Path, ledger_env: Path
) -> None:
    """`from models import Report, Summary` with `Summary` used: `Report` is not reached."""
    write_files(
        tmp_path,
        {
            "models.py": """
                from dataclasses import dataclass

                @dataclass
                class Summary:
                    text: str

                @dataclass
                class Report:
                    title: str
            """,
            "main.py": """
                import os
                from kiln import flow, node
                from models import Report, Summary

                @node(cache=True)
                def summarize(text: str) -> Summary:
                    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
                        log.write(text + "\\n")
                    return Summary(text[:3])

                @flow
                def digest(text: str) -> Report:
                    return Report(summarize(text).text)
            """,
        },
    )
    script = "import main\nprint(main.digest('hello').title)\n"
    assert compile_and_run(tmp_path, "main.py", script) == "hel"
    models = tmp_path / "models.py"
    models.write_text(
        models.read_text().replace("title: str", "title: str\n    pages: int = 0")
    )
    assert compile_and_run(tmp_path, "main.py", script) == "hel"
    assert runs(ledger_env) == ["hello"], "editing Report does not reach summarize"
    models.write_text(
        models.read_text().replace("text: str", "text: str\n    words: int = 1")
    )
    assert compile_and_run(tmp_path, "main.py", script) == "hel"
    assert runs(ledger_env) == ["hello", "hello"], "editing Summary does"


def test_a_node_calling_a_flows_sync_entry_point_while_its_call_is_in_flight(
    tmp_path: Path, ledger_env: Path
) -> None:
    """The inner run, on a worker thread's loop, computes `embed` itself: the
    outer loop, which has the same call in flight, is blocked on the inner run."""
    write_files(
        tmp_path,
        {
            "inner.py": """
                import asyncio
                from kiln import flow, node

                @node(cache=True)
                async def embed(text: str) -> int:
                    await asyncio.sleep(0.2)
                    return len(text)

                @flow
                async def inner(text: str) -> int:
                    return await embed(text)
            """,
            "outer.py": """
                import asyncio
                from kiln import flow, node
                from inner import embed

                @node
                async def tool(text: str) -> int:
                    await asyncio.sleep(0.05)
                    from out.inner import inner
                    return inner(text) + 100

                @flow
                async def outer(text: str) -> int:
                    a = await embed(text)
                    b = await tool(text)
                    return a + b
            """,
        },
    )
    compiled = kiln("compile", "inner.py", "outer.py", "-o", "out", "-q", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    done = subprocess.run(
        [sys.executable, "-c", "from out.outer import outer; print(outer('hello'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "110\n"), done.stderr


def test_a_stale_build_refuses_to_cache_a_node_run_from_its_edited_source(
    tmp_path: Path, ledger_env: Path
) -> None:
    """A node of a module without flows runs from its source: after an edit, a build
    compiled before it would store the new code's results under the old code's key,
    to answer as hits once the edit is undone and the build compiled again."""
    write_files(
        tmp_path,
        {
            "pyproject.toml": '[tool.kiln]\nsources = ["app"]\noutput = "build"\n',
            "app/__init__.py": "",
            "app/nodes.py": """
                from kiln import node

                @node(cache=True)
                async def score(x: int) -> int:
                    return x * 1
            """,
            "app/main.py": """
                from kiln import flow
                from .nodes import score

                @flow
                async def total(x: int) -> int:
                    return await score(x)
            """,
        },
    )
    nodes = tmp_path / "app" / "nodes.py"

    def total(x: int, *options: str) -> subprocess.CompletedProcess[str]:
        script = (
            f"from build.app.main import Total; print(Total({', '.join(options)})({x}))"
        )
        return subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def compile_build() -> None:
        assert kiln("compile", "-q", cwd=tmp_path).returncode == 0

    compile_build()
    assert total(1).stdout == "1\n"
    nodes.write_text(nodes.read_text().replace("x * 1", "x * 2"))
    refused = total(2)
    assert refused.returncode == 1
    assert "kiln.errors.StaleModuleError: build.app.main is stale: " in refused.stderr
    assert f"{nodes}, where its cached node 'score' is defined" in refused.stderr
    assert "Run kiln compile again" in refused.stderr
    assert committed_entries(tmp_path / "ledger.db", "score") == 1, "nothing stored"
    assert total(2, "ledger=False").stdout == "4\n", "no ledger: nothing to poison"
    nodes.write_text(nodes.read_text().replace("x * 2", "x * 1"))
    compile_build()
    assert total(2).stdout == "2\n"


def test_only_a_cached_node_run_from_its_source_carries_its_files_hash(
    tmp_path: Path,
) -> None:
    write_files(
        tmp_path,
        {
            "nodes.py": """
                from kiln import node

                @node(cache=True)
                async def imported(x: int) -> int:
                    return x

                @node
                async def uncached(x: int) -> int:
                    return x
            """,
            "main.py": """
                from kiln import flow, node
                from nodes import imported, uncached

                @node(cache=True)
                async def local(x: int) -> int:
                    return x

                @flow
                async def total(x: int) -> int:
                    return await imported(x) + await uncached(x) + await local(x)
            """,
        },
    )
    compilation = compile_file(tmp_path / "main.py")
    assert compilation.output is not None, compilation.diagnostics
    digest = hashlib.sha256((tmp_path / "nodes.py").read_bytes()).hexdigest()
    assert compilation.output.count("file_sha256=") == 1
    assert f'file_sha256="{digest}"' in compilation.output
    # Compiled with main.py, nodes.py would have an output holding the node's code.
    linked = compile_file(
        tmp_path / "main.py", links=Links(compiled={"nodes": "build.nodes"})
    )
    assert linked.output is not None, linked.diagnostics
    assert "from build.nodes import imported" in linked.output
    assert "file_sha256=" not in linked.output
