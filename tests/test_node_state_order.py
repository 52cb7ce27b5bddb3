"""Two node calls that share module state keep the source's order when one
reads (or changes) what the other changes.

`a = await warm(key); b = await check(key)`, where `warm` sets `SEEN[key]` and
`check` reads it: the source returns `(1, 1)`. kiln once overlapped the two
calls (a node's outside effects were its own), so the compiled flow returned
`(1, 0)`, silently. Each node's uses of module state are now read per name,
through imports, helpers and project methods, as a read, a write, an
accumulation or a fill; conflicting uses keep their order, with KLN311 naming
both. What commutes still overlaps: two nodes adding to one log or counter,
two memoised calls filling one cache, two nodes using one client.

Each differential case runs the source and the compiled flow several times in
a fresh interpreter, its project modules imported anew for every run, and
compares the results and the module state they leave.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code, Diagnostic
from kilnc.pipeline import compile_file

RUNS = 4

CACHE_MODULE = """
import asyncio

SEEN: dict[str, int] = {}
LOG: list[str] = []
TAGS: set[str] = set()
COUNTS: dict[str, int] = {}
TOTAL = 0
MODE = "draft"


class Config:
    mode = "draft"


class Registry:
    def __init__(self) -> None:
        self.names: list[str] = []

    def register(self, name: str) -> None:
        self.names.append(name)

    def known(self) -> list[str]:
        return list(self.names)


REGISTRY = Registry()

MEMO: dict[str, str] = {}


async def one() -> int:
    await asyncio.sleep(0.01)
    return 1


def lookup(key: str) -> int:
    return SEEN.get(key, 0)


def snapshot() -> object:
    return {
        "SEEN": SEEN, "LOG": sorted(LOG), "TAGS": sorted(TAGS), "COUNTS": COUNTS,
        "TOTAL": TOTAL, "MODE": MODE, "Config": Config.mode,
        "REGISTRY": sorted(REGISTRY.names),
        "MEMO": MEMO,
    }
"""

INIT_MODULE = """
from app.cache import SEEN as SEEN
"""

NODES_MODULE = """
import asyncio
import time

from kiln import node

from app import cache
from app.cache import COUNTS, LOG, MEMO, REGISTRY, SEEN, TAGS, Config, one


@node
async def warm(key: str) -> int:
    await asyncio.sleep(0.02)
    SEEN[key] = 1
    return 1


@node
async def note(key: str) -> int:
    await asyncio.sleep(0.02)
    LOG.append(key)
    return 1


@node
async def tag(key: str) -> int:
    await asyncio.sleep(0.02)
    TAGS.add(key)
    return 1


@node
async def count(key: str) -> int:
    await asyncio.sleep(0.02)
    COUNTS[key] = COUNTS.get(key, 0)
    COUNTS[key] += 1
    return 1


@node
async def total(n: int) -> int:
    await asyncio.sleep(0.02)
    cache.TOTAL += n
    return n


@node
async def switch(mode: str) -> int:
    await asyncio.sleep(0.02)
    cache.MODE = mode
    return 1


@node
async def configure(mode: str) -> int:
    await asyncio.sleep(0.02)
    Config.mode = mode
    return 1


@node
async def register(name: str) -> int:
    await asyncio.sleep(0.02)
    REGISTRY.register(name)
    return 1


@node(thread=True)
def warm_in_thread(key: str) -> int:
    time.sleep(0.05)
    SEEN[key] = 1
    return 1


QUEUE: asyncio.Queue[str] = asyncio.Queue()


@node
async def produce(key: str) -> int:
    await asyncio.sleep(0.02)
    QUEUE.put_nowait(key)
    return 1


@node
async def consume() -> str:
    return "empty" if QUEUE.empty() else QUEUE.get_nowait()


@node
async def queued_now() -> int:
    return QUEUE.qsize()


@node
async def remember(key: str, value: str, force: bool) -> str:
    if key in MEMO and not force:  # may fall through with the key there
        return MEMO[key]
    await asyncio.sleep(0.02 if value == "first" else 0.0)
    MEMO[key] = value
    return value


@node
async def add_awaited(key: str) -> int:
    COUNTS[key] = COUNTS.get(key, 0) + await one()
    return 1


@node
async def bump(x: int) -> int:
    seen = cache.COUNTS.get("n", 0)
    await asyncio.sleep(0.01 * (3 - x % 3))
    cache.COUNTS["n"] = seen + x
    return cache.COUNTS["n"]
"""

FLOWS_MODULE = """
import asyncio

from kiln import flow, node

import app.cache as c
from app import SEEN as REEXPORTED
from app import cache
from app.cache import LOG, REGISTRY, SEEN, TAGS, Config, lookup
from app.nodes import (
    add_awaited, bump, configure, consume, count, note, produce, queued_now,
    register, remember, switch, tag, total, warm, warm_in_thread,
)


@flow
async def queued(key: str) -> tuple[int, str, int]:
    a = await produce(key)
    b = await consume()
    return a, b, await queued_now()


@flow
async def forced(key: str) -> tuple[str, str]:
    a = await remember(key, "first", True)
    b = await remember(key, "second", True)
    return a, b


@flow
async def added_across_an_await(key: str) -> list[int]:
    return [await add_awaited(key) for _ in range(3)]


@node
async def check(key: str) -> int:
    return SEEN.get(key, 0)


@node
async def check_module(key: str) -> int:
    return c.SEEN.get(key, 0)


@node
async def check_reexport(key: str) -> int:
    return REEXPORTED.get(key, 0)


@node
async def check_helper(key: str) -> int:
    return lookup(key)


@node
async def logged() -> int:
    return len(LOG)


@node
async def tagged(key: str) -> bool:
    return key in TAGS


@node
async def counted(key: str) -> int:
    return cache.COUNTS.get(key, 0)


@node
async def totalled() -> int:
    return cache.TOTAL


@node
async def mode_now() -> str:
    return cache.MODE


@node
async def config_now() -> str:
    return Config.mode


@node
async def registered() -> list[str]:
    return REGISTRY.known()


@node
async def show(x: int) -> int:
    return x * 10


@flow
async def dict_read(key: str) -> tuple[int, int]:
    a = await warm(key)
    b = await check(key)
    return a, b


@flow
async def module_attribute(key: str) -> tuple[int, int]:
    a = await warm(key)
    b = await check_module(key)
    return a, b


@flow
async def reexport(key: str) -> tuple[int, int]:
    a = await warm(key)
    b = await check_reexport(key)
    return a, b


@flow
async def helper(key: str) -> tuple[int, int]:
    a = await warm(key)
    b = await check_helper(key)
    return a, b


@flow
async def list_log(key: str) -> tuple[int, int]:
    a = await note(key)
    b = await logged()
    return a, b


@flow
async def set_tags(key: str) -> tuple[int, bool]:
    a = await tag(key)
    b = await tagged(key)
    return a, b


@flow
async def counter(key: str) -> tuple[int, int]:
    a = await count(key)
    b = await counted(key)
    return a, b


@flow
async def global_total(key: str) -> tuple[int, int]:
    a = await total(3)
    b = await totalled()
    return a, b


@flow
async def rebind(key: str) -> tuple[int, str]:
    a = await switch(key)
    b = await mode_now()
    return a, b


@flow
async def class_attribute(key: str) -> tuple[int, str]:
    a = await configure(key)
    b = await config_now()
    return a, b


@flow
async def project_method(key: str) -> tuple[int, list[str]]:
    a = await register(key)
    b = await registered()
    return a, b


@flow
async def read_first(key: str) -> tuple[int, int]:
    b = await check(key)
    a = await warm(key)
    return a, b


@flow
async def fan_out(key: str) -> list[int]:
    return [await bump(x) for x in range(1, 6)]


@flow
async def sub(key: str) -> int:
    return await warm(key)


@flow
async def subflow(key: str) -> tuple[int, int]:
    a = await sub(key)
    b = await check(key)
    return a, b


@flow
async def branch(key: str, go: bool) -> tuple[int, int]:
    a = 0
    if go:
        a = await warm(key)
    b = await check(key)
    return a, b


@flow
async def in_match(key: str) -> tuple[int, int]:
    a = 0
    match key:
        case "k":
            a = await warm(key)
        case _:
            a = 2
    b = await check(key)
    return a, b


@flow
async def loop(keys: list[str]) -> list[int]:
    out = []
    for key in keys:
        await warm(key)
        out.append(await check(key))
    return out


@flow
async def loop_then(keys: list[str]) -> int:
    for key in keys:
        await warm(key)
    return await check(keys[-1])


@flow
async def while_loop(keys: list[str]) -> list[int]:
    out = []
    i = 0
    while i < len(keys):
        out.append(await check(keys[i]))
        await warm(keys[i])
        i += 1
    return out


@flow
async def nested(key: str) -> tuple[int, int]:
    a = await warm(key)
    b = await show(await check(key))
    return a, b


@node(thread=True)
def check_in_thread(key: str) -> int:
    return SEEN.get(key, 0)


@flow
def sync_threads(key: str) -> tuple[int, int]:
    a = warm_in_thread(key)
    b = check_in_thread(key)
    return a, b


@flow
async def streaming(key: str):
    a = await warm(key)
    b = await check(key)
    yield a
    yield b
"""

CASES = [
    ("dict_read", ["k"]),
    ("module_attribute", ["k"]),
    ("reexport", ["k"]),
    ("helper", ["k"]),
    ("list_log", ["k"]),
    ("set_tags", ["k"]),
    ("counter", ["k"]),
    ("global_total", ["k"]),
    ("rebind", ["final"]),
    ("class_attribute", ["final"]),
    ("project_method", ["k"]),
    # `COUNTS[k] = COUNTS.get(k, 0) + await one()` reads before it waits: a
    # write, not an accumulation, or overlapping calls lose updates.
    ("added_across_an_await", ["k"]),
    # A module-level asyncio.Queue of the nodes' module: its methods change it.
    ("queued", ["k"]),
    # `if key in MEMO and not force: return` may fall through: no fill.
    ("forced", ["k"]),
    ("read_first", ["k"]),
    ("fan_out", ["k"]),
    ("subflow", ["k"]),
    ("branch", ["k", True]),
    ("in_match", ["k"]),
    ("loop", [["a", "b", "c"]]),
    ("loop_then", [["a", "b", "c"]]),
    ("while_loop", [["a", "b", "a"]]),
    ("nested", ["k"]),
    ("streaming", ["k"]),
    ("sync_threads", ["k"]),
]

RUNNER = """
import asyncio, importlib, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
name, args, runs = sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])


def fresh(module):
    for loaded in list(sys.modules):
        if loaded in ("app", "flows") or loaded.startswith("app."):
            del sys.modules[loaded]
    return importlib.import_module(module)


async def collect(stream):
    return [item async for item in stream]


def run(module, compiled):
    flow = getattr(module, name)
    if name == "streaming":
        stream = flow.astream(*args) if compiled else flow(*args)
        value = asyncio.run(collect(stream))
    else:
        value = flow(*args) if compiled or name.startswith("sync") else asyncio.run(flow(*args))
    return value, importlib.import_module("app.cache").snapshot()


found = {"source": [], "compiled": []}
for _ in range(runs):
    found["source"].append(run(fresh("app.flows"), False))
    found["compiled"].append(run(fresh("flows"), True))
print(json.dumps(found))
"""


def write_project(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Diagnostic]]:
    root = tmp_path_factory.mktemp("state")
    write_project(
        root / "src",
        {
            "app/__init__.py": INIT_MODULE,
            "app/cache.py": CACHE_MODULE,
            "app/nodes.py": NODES_MODULE,
            "app/flows.py": FLOWS_MODULE,
        },
    )
    compilation = compile_file(root / "src" / "app" / "flows.py")
    assert compilation.output is not None, compilation.diagnostics
    (root / "build").mkdir()
    (root / "build" / "flows.py").write_text(compilation.output, encoding="utf-8")
    return root, list(compilation.diagnostics)


def run_both(root: Path, name: str, args: list[object]) -> dict[str, list[object]]:
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            str(root / "src"),
            str(root / "build"),
            name,
            json.dumps(args),
            str(RUNS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    found: dict[str, list[object]] = json.loads(ran.stdout)
    return found


@pytest.mark.parametrize(("name", "args"), CASES)
def test_compiled_node_calls_see_the_module_state_the_source_shows_them(
    project: tuple[Path, list[Diagnostic]], name: str, args: list[object]
) -> None:
    root, _ = project
    found = run_both(root, name, args)
    assert found["compiled"] == found["source"], name


def warnings_at(diagnostics: list[Diagnostic], text: str) -> list[str]:
    """The KLN311 warnings at the first line of the flows that reads `text`."""
    line = FLOWS_MODULE.splitlines().index(text) + 1
    return [
        d.message
        for d in diagnostics
        if d.code is Code.EFFECT_ORDER and d.span.line == line
    ]


def test_the_later_call_says_which_state_it_waits_for(
    project: tuple[Path, list[Diagnostic]],
) -> None:
    root, diagnostics = project
    [message] = warnings_at(diagnostics, "    b = await check(key)")
    app = root / "src" / "app"
    nodes = NODES_MODULE.splitlines().index("    SEEN[key] = 1") + 1
    flows = FLOWS_MODULE.splitlines().index("    return SEEN.get(key, 0)") + 1
    warm = FLOWS_MODULE.splitlines().index("    a = await warm(key)") + 1
    assert message == (
        f"'check' waits for 'warm' (line {warm}) because 'warm' changes the "
        f"module state 'app.cache.SEEN' (assigns SEEN[key], at "
        f"{app / 'nodes.py'}:{nodes}), which 'check' reads "
        f"(calls SEEN.get, at {app / 'flows.py'}:{flows})"
    )


def test_a_fan_out_whose_element_reads_and_changes_state_runs_in_order(
    project: tuple[Path, list[Diagnostic]],
) -> None:
    _, diagnostics = project
    [message] = warnings_at(
        diagnostics, "    return [await bump(x) for x in range(1, 6)]"
    )
    assert message.startswith(
        "the elements of this fan-out run one after another: 'bump' changes the "
        "module state 'app.cache.COUNTS'"
    ), message


OVERLAPS = """
import asyncio

from kiln import flow, node

import fakeclient

EVENTS: list[str] = []
CACHE: dict[str, str] = {}
COUNTS: dict[str, int] = {"calls": 0}
CLIENT = fakeclient.Client()
_shared = None


def shared() -> object:
    global _shared
    if _shared is None:
        _shared = object()
    return _shared


@node
async def add(name: str) -> str:
    EVENTS.append(f"start {name}")
    COUNTS["calls"] += 1
    await asyncio.sleep(0.05)
    EVENTS.append(f"end {name}")
    return name


@node
async def memo(key: str) -> str:
    EVENTS.append(f"start {key}")  # before the test: a miss adds nothing
    if key in CACHE:
        return CACHE[key]
    shared()
    await asyncio.sleep(0.05)
    CACHE[key] = key.upper()
    return CACHE[key]


@node
async def fetch(url: str) -> str:
    EVENTS.append(f"start {url}")
    got = await CLIENT.get(url)
    EVENTS.append(f"end {url}")
    return got


@node
async def authorize(token: str) -> None:
    await asyncio.sleep(0.02)
    CLIENT.headers["auth"] = token


@flow
async def accumulate() -> list[str]:
    a = await add("a")
    b = await add("b")
    return [a, b]


@flow
async def fill() -> list[str]:
    a = await memo("x")
    b = await memo("y")
    return [a, b]


@flow
async def client() -> list[str]:
    a = await fetch("u")
    b = await fetch("v")
    return [a, b]


@flow
async def authorized(token: str) -> str:
    await authorize(token)
    return await fetch("w")
"""

FAKE_CLIENT = """
import asyncio


class Client:
    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    async def get(self, url: str) -> str:
        await asyncio.sleep(0.05)
        return url + self.headers.get("auth", "")
"""


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("overlaps")
    write_project(root / "src", {"overlaps.py": OVERLAPS})
    write_project(root / "lib", {"fakeclient.py": FAKE_CLIENT})  # not the project's
    compilation = compile_file(root / "src" / "overlaps.py")
    assert compilation.output is not None, compilation.diagnostics
    (root / "build").mkdir()
    (root / "build" / "overlaps.py").write_text(compilation.output, encoding="utf-8")
    return root, compilation.diagnostics


def events_of(root: Path, name: str, *args: str) -> tuple[object, list[str]]:
    script = (
        "import json, sys; sys.path[:0] = sys.argv[1:3]\n"
        "import overlaps\n"
        f"value = overlaps.{name}(*sys.argv[3:])\n"
        "print(json.dumps([value, overlaps.EVENTS]))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script, str(root / "build"), str(root / "lib"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    value, events = json.loads(ran.stdout)
    return value, events


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [("accumulate", "a", "b"), ("fill", "x", "y"), ("client", "u", "v")],
)
def test_uses_that_commute_still_overlap(
    overlapping: tuple[Path, list[Diagnostic]], name: str, first: str, second: str
) -> None:
    """Both calls start before either ends: two nodes adding to one list and
    counter, two memoised calls filling one cache (and one lazily made
    object), two nodes using one client kiln cannot see into."""
    root, diagnostics = overlapping
    assert [d.message for d in diagnostics if d.code is Code.EFFECT_ORDER] == [
        d.message
        for d in diagnostics
        if d.code is Code.EFFECT_ORDER and "authorize" in d.message
    ]
    _, events = events_of(root, name)
    assert set(events[:2]) == {f"start {first}", f"start {second}"}, events


def test_a_change_of_a_client_orders_its_later_users(
    overlapping: tuple[Path, list[Diagnostic]],
) -> None:
    root, diagnostics = overlapping
    value, _ = events_of(root, "authorized", "T")
    assert value == "wT"
    [message] = [d.message for d in diagnostics if d.code is Code.EFFECT_ORDER]
    assert "'fetch' waits for 'authorize'" in message
    assert "changes the module state 'overlaps.CLIENT'" in message
