"""A Hypothesis strategy for random flows with effects, written as source text.

`tests/flowgen.py` makes tidy flows: values in, values out. Users write flows
the way they write LangGraph and BrainyFlow code, and this generator writes
those: nodes that append to lists and fill dicts they are passed, inline
statements on the same objects, names that alias one object, an iterator two
fan-outs consume, a `Memory` with clones writing shared global keys and their
own local keys, a Memory made in the flow, log lines between steps and in
a node call's arguments (`await each(logged(3, v), tag)`, printed), guards
(`assert`, `if ...: raise`) in front of nodes with side effects, a node's
value stored into an item of a list or dict that later nodes read, lambdas
and generators made in the flow, whose names are then bound again, handed to
nodes that call them, a list held in a dict, a list a node hands back,
a dataclass state whose fields nodes change, a subflow that changes the list
it is given, subflows whose own statements log and read module state (called
by the flow, by another subflow, and in a fan-out), a dict filled by a store
after it is made, a bound method kept in a dict that a node calls, a project
class's methods (one reads, one changes the object, one appends to a
module-level list) called by nodes on their parameters and by the flow on its
locals, lists a Memory holds at keys (read into the flow's names, stored
there by the flow or a node, one key's list stored under another, grown in
place), a Memory held by a list or chosen by a condition, a Memory's local
store held as a dict, nodes that share module state (a dict one writes and
another reads through a helper, a list and a counter they add to, a global
one rebinds, a memo they fill, a read-modify-write across an await, a
module-level project object whose methods store, read and count into it, one
reached through a helper that returns it, a classmethod that sets its class's
attribute, a fill whose value is the caller's, a `ContextVar` set for the
calls after it, a mutable default argument, two functions a factory made
over one dict, a node a decorator wraps with a log of its own that another
node reads, a context manager whose `__exit__` commits, a tool object whose
`__call__` meters into module state, also in fan-outs; code a node runs
without naming it: a property's getter that counts, a class registry an
`__init__` appends to through `self`, a method through a `Protocol`-typed
name, a decorator factory given a module list, a `functools.partial` given a
module dict, a thread node's fold into module state, a class's object as
a decorator whose wrapper folds into module state, a descriptor whose
`__set__` and `__get__` use module state; library code that
changes module state: a buffer `json.dump` writes, a logging call that runs
a project handler keeping its records), and two calls that fail in one run.

Every node sleeps a random time, so a schedule that reorders two effects shows
in the result. Every node call appends `done <tag>` to the module's `events`
when it ends and every log line appends `log <n>`: the differential test
checks that each log line comes after every call the source ran before it.
The flow returns the final state of every object it touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

HEADER = """\
import asyncio
import contextvars
import functools
import io
import json
import logging
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from kiln import Memory, flow, node

events: list[str] = []


class Stop(Exception):
    pass


@dataclass
class State:
    count: int = 0
    items: list[int] = field(default_factory=list)


LEDGER: list[int] = []
SHARED: dict[str, int] = {}
TALLY: list[int] = []
COUNTER = {"n": 0}
MEMO: dict[int, int] = {}
MODE = 0
FILLS: dict[str, int] = {}
USER: contextvars.ContextVar[int] = contextvars.ContextVar("USER", default=-1)


def shared(key: str) -> int:
    return SHARED.get(key, -1)


def remember(key: str, value: int | None = None, _kept: dict[str, int] = {}) -> int:
    if value is not None:
        _kept[key] = value
    return _kept.get(key, -1)


class Store:
    mode = 0

    def __init__(self) -> None:
        self.data: dict[str, int] = {}
        self.hits = 0
        self.peak = 0

    def put(self, key: str, value: int) -> None:
        self.data[key] = value

    def get(self, key: str) -> int:
        self.hits += 1
        self.peak = max(self.peak, self.hits)
        return self.data.get(key, -1)

    def merge(self, key: str, value: int) -> None:
        self._set(key, self.data.get(key, 0) * 2 + value)

    def _set(self, key: str, value: int) -> None:
        self.data[key] = value

    @classmethod
    def switch(cls, mode: int) -> None:
        cls.mode = mode


STORE = Store()


def make_store() -> tuple[Callable[[str, int], None], Callable[[str], int]]:
    cells: dict[str, int] = {}

    def keep(key: str, value: int) -> None:
        cells[key] = value

    def kept(key: str) -> int:
        return cells.get(key, -1)

    return keep, kept


keep, kept = make_store()


class Txn:
    def __init__(self) -> None:
        self.commits = 0

    def __enter__(self) -> "Txn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.commits = self.commits * 2 + 1


TXN = Txn()
METER = [0]


class Tool:
    def __call__(self, value: int) -> int:
        METER[0] = METER[0] * 3 + value
        return value


TOOL = Tool()


def counted(fn: Callable[..., Any]) -> Any:
    calls: list[str] = []

    async def wrapper(*args: Any) -> Any:
        calls.append(args[-1])
        return await fn(*args)

    wrapper.calls = calls
    return wrapper


def store_of() -> Store:
    return STORE


class Agent:
    def __init__(self, n: int) -> None:
        self.n = n
        self.log: list[int] = []

    def describe(self) -> int:
        return self.n * 100 + len(self.log)

    def add(self, value: int) -> None:
        self.log.append(value)

    def record(self, value: int) -> None:
        LEDGER.append(value + self.n)


def note(tag: str) -> None:
    events.append(f"done {tag}")


def logged(n: int, value: int) -> int:
    print(f"log {n} {value}")  # I/O, not module state: the test reads stdout
    return value


class IdGen:
    def __init__(self) -> None:
        self._n = 0

    @property
    def next_id(self) -> int:
        self._n += 1
        return self._n


IDS = IdGen()


class Registered:
    registry: ClassVar[list[int]] = []
    count: ClassVar[int] = 0

    def __init__(self, value: int) -> None:
        self.registry.append(value)
        type(self).count = type(self).count * 3 + value


PROTO: dict[str, int] = {}


class Runner(Protocol):
    def run(self, value: int) -> None: ...


class Saver:
    def run(self, value: int) -> None:
        PROTO["k"] = PROTO.get("k", 0) * 3 + value


def runner_of() -> Runner:
    return Saver()


AUDIT: list[int] = []


def audited(sink: list[int]) -> Callable[[Any], Any]:
    def deco(fn: Any) -> Any:
        async def wrapper(*args: Any) -> Any:
            out = await fn(*args)
            sink.append(1)
            return out

        return wrapper

    return deco


HOOKED: dict[str, int] = {}


def _hook(table: dict[str, int], key: str, value: int) -> None:
    table[key] = table.get(key, 0) * 3 + value


hook = functools.partial(_hook, HOOKED, "k")
GATE = [0]
FIELD = [0]


class Gate:
    def __init__(self) -> None:
        self.passed = 0

    def __call__(self, fn: Any) -> Any:
        @functools.wraps(fn)
        async def wrapper(*args: Any) -> Any:
            out = await fn(*args)
            GATE[0] = GATE[0] * 3 + args[0] % 5
            self.passed += 1
            return out

        return wrapper


GATED = Gate()


class Audited:
    def __get__(self, obj: object, owner: type | None = None) -> int:
        return FIELD[0]

    def __set__(self, obj: object, value: int) -> None:
        FIELD[0] = FIELD[0] * 3 + value


class Settings:
    level = Audited()


SETTINGS = Settings()
USAGE = {"n": 0}


def slow_count(value: int) -> int:
    time.sleep(0.002)  # a blocking call between the fold's read and its store
    return value % 7 + 1


BUF = io.StringIO()


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


KEPT = Kept()


def running_total() -> Generator[int, int, None]:
    total = 0
    while True:
        total += yield total


RUNNING = running_total()
next(RUNNING)


@functools.lru_cache
def scaled(value: int) -> int:
    return value * 2


scaled(1)  # a call fills the cache; its calls in nodes would race with `cinfo`
LOGGER = logging.getLogger(__name__)  # the source's and the compiled module's own
LOGGER.addHandler(KEPT)
LOGGER.setLevel(logging.INFO)
LOGGER.propagate = False


def store(memory: Memory, key: str, value: int) -> None:
    memory[key] = value


def store_any(*args: Any) -> None:
    args[0][args[1]] = args[2]


def store_rest(memory: Memory, key: str, value: int, *rest: int) -> None:
    memory[key] = value + sum(rest)


"""

# Each node: its source, with {d} for a delay in seconds. Tags name the call.
NODES = {
    "push": """@node
async def push(box: list[int], value: int, tag: str) -> None:
    await asyncio.sleep({d})
    box.append(value)
    note(tag)
""",
    "put": """@node
async def put(table: dict[str, int], key: str, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    table[key] = value
    note(tag)
""",
    "total": """@node
async def total(box: list[int], tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return sum(box) % 1000003
""",
    "peek": """@node
async def peek(table: dict[str, int], key: str, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return table.get(key, -1)
""",
    "each": """@node
async def each(value: int, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return value * 3 + 1
""",
    "bump": """@node
async def bump(box: list[int], tag: str) -> None:
    await asyncio.sleep({d})
    box[:] = [v + 1 for v in box]
    note(tag)
""",
    "mlog": """@node
async def mlog(memory: Memory, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    memory.log.append(value)
    note(tag)
""",
    "mget": """@node
async def mget(memory: Memory, key: str, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return int(memory.get(key, -1))
""",
    "mlocal": """@node
async def mlocal(memory: Memory, value: int, tag: str) -> int:
    memory.local["mine"] = value
    await asyncio.sleep({d})
    note(tag)
    return int(memory.mine)
""",
    "grow": """@node
async def grow(box: list[int], value: int, tag: str) -> int:
    await asyncio.sleep({d})
    box.append(value)
    note(tag)
    return len(box)
""",
    "sgrow": """@node
def sgrow(box: list[int], value: int, tag: str) -> int:
    box.append(value)
    note(tag)
    return len(box)
""",
    "add": """@node
async def add(a: int, b: int, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return a * 7 + b
""",
    "apply": """@node
async def apply(function: Callable[[], int], tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return function()
""",
    "consume": """@node
async def consume(items: Iterable[int], tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return sum(items)
""",
    "fail": """@node
async def fail(value: int, tag: str) -> int:
    await asyncio.sleep({d})
    raise Stop(f"{{tag}} failed on {{value}}")
""",
    "same": """@node
async def same(box: list[int], tag: str) -> list[int]:
    await asyncio.sleep({d})
    note(tag)
    return box
""",
    "deep": """@node
async def deep(holder: dict[str, list[int]], tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return sum(holder["inner"]) * 10 + len(holder)
""",
    "deep_push": """@node
async def deep_push(holder: dict[str, list[int]], value: int, tag: str) -> None:
    await asyncio.sleep({d})
    holder["inner"].append(value)
    note(tag)
""",
    "use_tool": """@node
async def use_tool(tools: dict[str, Callable[[int], None]], value: int, tag: str) -> None:
    await asyncio.sleep({d})
    tools["push"](value)
    note(tag)
""",
    "incr": """@node
async def incr(state: State, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    state.count += value
    state.items.append(state.count)
    note(tag)
""",
    "look": """@node
async def look(state: State, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return state.count * 100 + len(state.items)
""",
    "ask": """@node
async def ask(agent: Agent, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return agent.describe()
""",
    "teach": """@node
async def teach(agent: Agent, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    agent.add(value)
    note(tag)
""",
    "report": """@node
async def report(agent: Agent, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    agent.record(value)
    note(tag)
""",
    "mfetch": """@node
async def mfetch(memory: Memory, key: str, tag: str) -> list[int]:
    await asyncio.sleep({d})
    note(tag)
    return memory[key]
""",
    "mkeep": """@node
async def mkeep(memory: Memory, key: str, box: list[int], tag: str) -> None:
    await asyncio.sleep({d})
    memory[key] = box
    note(tag)
""",
    "mgrow": """@node
async def mgrow(memory: Memory, key: str, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    memory[key].append(value)
    note(tag)
""",
    "msum": """@node
async def msum(memory: Memory, key: str, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return sum(memory[key]) % 1000003
""",
    "mlink": """@node
async def mlink(memory: Memory, tag: str) -> None:
    await asyncio.sleep({d})
    memory.l2 = memory.l1
    note(tag)
""",
    "refill": """@flow
async def refill(box: list[int], value: int, tag: str) -> int:
    await push(box, value, tag + "a")
    n = await total(box, tag + "b")
    await push(box, n, tag + "c")
    return n
""",
    "whisper": """@flow
async def whisper(value: int, tag: str) -> int:
    events.append(f"log {{tag}} {{value}} after {{len(events)}}")
    return await each(value, tag + "w")
""",
    "chronicle": """@flow
async def chronicle(box: list[int], tag: str) -> int:
    n = await total(box, tag + "a")
    return await whisper(n + len(LEDGER), tag + "b")
""",
}
# Nodes that share module state: each use of it a read, a write, an
# accumulation (two of which overlap) or a fill (a memo: ditto).
NODES |= {
    "sset": """@node
async def sset(key: str, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    SHARED[key] = value
    note(tag)
""",
    "sget": """@node
async def sget(key: str, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return shared(key)
""",
    "sbump": """@node
async def sbump(key: str, value: int, tag: str) -> int:
    seen = SHARED.get(key, 0)
    await asyncio.sleep({d})
    SHARED[key] = seen + value
    note(tag)
    return seen
""",
    "stally": """@node
async def stally(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    TALLY.append(value)
    COUNTER["n"] += value
    note(tag)
""",
    "scount": """@node
async def scount(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return len(TALLY) * 1000 + COUNTER["n"]
""",
    "shift": """@node
async def shift(value: int, tag: str) -> None:
    global MODE
    await asyncio.sleep({d})
    MODE = value
    note(tag)
""",
    "smode": """@node
async def smode(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return MODE
""",
    "smemo": """@node
async def smemo(key: int, tag: str) -> int:
    note(tag)
    if key in MEMO:
        return MEMO[key]
    await asyncio.sleep({d})
    MEMO[key] = key * 3 + 1
    return MEMO[key]
""",
    # A fill whose value is the caller's, not its key's: a write.
    "sfill": """@node
async def sfill(key: str, value: int, tag: str) -> int:
    if key not in FILLS:
        await asyncio.sleep({d})
        FILLS[key] = value
    note(tag)
    return FILLS[key]
""",
    # A ContextVar set for the calls after it, and read.
    "cset": """@node
async def cset(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    USER.set(value)
    note(tag)
""",
    "cget": """@node
async def cget(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return USER.get()
""",
    # A mutable default argument, shared by every call that takes it.
    "commit": """@node
async def commit(tag: str) -> None:
    with TXN:
        await asyncio.sleep({d})
    note(tag)
""",
    "commits": """@node
async def commits(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return TXN.commits
""",
    "meter": """@node
async def meter(value: int, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return TOOL(value % 5)
""",
    "metered": """@node
async def metered(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return METER[0]
""",
    "pnext": """@node
async def pnext(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return IDS.next_id
""",
    "pids": """@node
async def pids(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return IDS._n
""",
    "preg": """@node
async def preg(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    Registered(value % 5)
    note(tag)
""",
    "pregs": """@node
async def pregs(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return len(Registered.registry) * 1000 + Registered.count % 1000
""",
    "prun": """@node
async def prun(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    runner: Runner = runner_of()
    runner.run(value % 5)
    note(tag)
""",
    "pread": """@node
async def pread(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return PROTO.get("k", -1)
""",
    "aud": """@node
@audited(AUDIT)
async def aud(value: int, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return value + 1
""",
    "auds": """@node
async def auds(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return len(AUDIT)
""",
    "hset": """@node
async def hset(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    hook(value % 5)
    note(tag)
""",
    "hget": """@node
async def hget(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return HOOKED.get("k", -1)
""",
    "tfold": """@node(thread=True)
def tfold(value: int, tag: str) -> None:
    time.sleep({d})
    USAGE["n"] += slow_count(value)
    note(tag)
""",
    "tused": """@node
async def tused(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return USAGE["n"]
""",
    # A class's object as a decorator, whose wrapper folds into module state
    # and counts on the object; a descriptor whose `__set__` and `__get__`
    # use module state.
    "gwork": """@node
@GATED
async def gwork(value: int, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return value + 1
""",
    "gread": """@node
async def gread(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return GATE[0] * 100 + GATED.passed
""",
    "dlevel": """@node
async def dlevel(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    SETTINGS.level = value % 5
    note(tag)
""",
    "dread": """@node
async def dread(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return SETTINGS.level
""",
    # Library code that changes module state: a buffer `json.dump` writes, a
    # logging call whose handler (a project class) keeps its records.
    "jdump": """@node
async def jdump(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    json.dump(value, BUF)
    note(tag)
""",
    "jread": """@node
async def jread(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return len(BUF.getvalue())
""",
    "lkeep": """@node
async def lkeep(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    LOGGER.info("kept %d", value)
    note(tag)
""",
    "lcount": """@node
async def lcount(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return len(KEPT.records)
""",
    # A module's generator that `send` moves on; a cache `cache_clear` empties.
    "gsend": """@node
async def gsend(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    RUNNING.send(value % 4)
    note(tag)
""",
    "gtotal": """@node
async def gtotal(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return RUNNING.send(0)
""",
    "cclear": """@node
async def cclear(tag: str) -> None:
    await asyncio.sleep({d})
    scaled.cache_clear()
    note(tag)
""",
    "cinfo": """@node
async def cinfo(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return scaled.cache_info().currsize
""",
    "kput": """@node
async def kput(key: str, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    keep(key, value)
    note(tag)
""",
    "kget": """@node
async def kget(key: str, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return kept(key)
""",
    "cwork": """@node
@counted
async def cwork(value: int, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return value + 1
""",
    "ccount": """@node
async def ccount(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return len(cwork.calls)
""",
    "dput": """@node
async def dput(key: str, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    remember(key, value)
    note(tag)
""",
    "dget": """@node
async def dget(key: str, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return remember(key)
""",
    "speek": """@node
async def speek(key: int, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return MEMO.get(key, -1)
""",
    # A module-level project object, used through its methods.
    "oput": """@node
async def oput(key: str, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    STORE.put(key, value)
    note(tag)
""",
    "oget": """@node
async def oget(key: str, tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return STORE.get(key)
""",
    "omerge": """@node
async def omerge(key: str, value: int, tag: str) -> None:
    await asyncio.sleep({d})
    store_of().merge(key, value)
    note(tag)
""",
    "oswitch": """@node
async def oswitch(value: int, tag: str) -> None:
    await asyncio.sleep({d})
    Store.switch(value)
    note(tag)
""",
    "omode": """@node
async def omode(tag: str) -> int:
    await asyncio.sleep({d})
    note(tag)
    return STORE.mode
""",
}
# The nodes written `def`, which a flow calls without `await`.
SYNC_NODES = frozenset({"tfold"})
# A node the flow calls through another node's source needs that node's source too.
NEEDS = {
    "refill": ("push", "total"),
    "whisper": ("each",),
    "chronicle": ("total", "whisper", "each"),
    "ccount": ("cwork",),
}


def _setter(name: str, write: str) -> str:
    """A node that writes `value` at a Memory key, the way `write` says."""
    return (
        f"@node\nasync def {name}(memory: Memory, key: str, value: int, tag: str)"
        f" -> None:\n    await asyncio.sleep({{d}})\n    {write}\n    note(tag)\n"
    )


# Memory keys written directly, and through a project helper bound every way a
# call can bind them; `mfixed`, `mfixstar` and `many` write "k2" whatever key
# they are given, through a helper whose own parameter is named `key`.
SETTERS = {
    "mset": "memory[key] = value",
    "mvia": "store(memory, key, value)",
    "mkw": "store(value=value, key=key, memory=memory)",
    "mstar": "store(*(memory, key, value))",
    "mfixed": 'store_rest(memory, "k2", value)',
    "mfixstar": 'store(*(memory, "k2", value))',
    "many": 'store_any(memory, "k2", value)',
}
NODES |= {name: _setter(name, write) for name, write in SETTERS.items()}


@dataclass
class _Flow:
    """The flow being written: its lines and the names it has bound so far."""

    draw: st.DrawFn
    lines: list[str] = field(default_factory=list)
    ints: list[str] = field(default_factory=lambda: ["x"])
    boxes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    # Dicts holding one of the boxes at "inner", dataclass states, Agents.
    holders: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    # Lambdas and generators, each with the node that calls or reads it.
    closures: list[tuple[str, str]] = field(default_factory=list)
    memories: list[str] = field(default_factory=lambda: ["memory"])
    # The Memories whose global store is the parameter's: its keys "l1" and
    # "l2" hold lists (`lists` once a statement uses them).
    rooted: list[str] = field(default_factory=lambda: ["memory"])
    lists: bool = False
    used: set[str] = field(default_factory=set)
    calls: int = 0
    logs: int = 0
    names: int = 0

    def name(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def tag(self) -> str:
        self.calls += 1
        return f'"c{self.calls}"'

    def pick(self, names: list[str]) -> str:
        return self.draw(st.sampled_from(names))

    def value(self) -> str:
        return self.pick(self.ints)

    def argument(self) -> str:
        """A value for a node call, at times logged as the argument is evaluated."""
        if self.draw(st.integers(0, 3)) != 0:
            return self.value()
        self.logs += 1
        return f"logged({self.logs}, {self.value()})"

    def call(
        self,
        node: str,
        *args: str,
        target: str | None = None,
        binds: bool = True,
        awaited: bool = True,
    ) -> None:
        """`target = await node(*args, tag)`; a target that `binds` is a new int name."""
        self.used.add(node)
        text = f"{'await ' if awaited else ''}{node}({', '.join([*args, self.tag()])})"
        self.lines.append(f"{target} = {text}" if target else text)
        if target and binds:
            self.ints.append(target)


def _statement(flow: _Flow) -> None:
    choices = ["box", "table", "each", "log", "memory", "clone", "guard", "alias"]
    choices += ["closure", "rebind", *["held"] * 3]  # each of its shapes is rare
    if flow.boxes:
        choices += ["push", "total", "bump", "inline_box", "fan_push", "iterate"]
        choices += ["operands", "store"]
    if flow.tables:
        choices += ["put", "peek", "inline_table", "store"]
    if flow.closures:
        choices += ["call_closure"]
    choices += ["state", *["module"] * 6]
    choices += ["whisper"]
    if flow.boxes:
        choices += ["holder", "same", "refill", "tool", "chronicle"]
    if flow.holders:
        choices += ["deep", "deep_push", "inline_deep"]
    if flow.states:
        choices += ["incr", "look", "inline_state", "state_items"]
    choices += ["agent"]
    if flow.agents:
        choices += ["ask", "teach", "report", "inline_agent"]
    kind = flow.draw(st.sampled_from(choices))
    if kind in ("box", "table", "alias", "inline_box", "inline_table"):
        _object_statement(flow, kind)
    elif kind in NESTED:
        _nested_statement(flow, kind)
    elif kind in ("whisper", "chronicle"):
        _subflow_statement(flow, kind)
    elif kind in ("store", "closure", "rebind", "call_closure"):
        _late_statement(flow, kind)
    elif kind in ("push", "bump", "total", "put", "peek", "each"):
        _call_statement(flow, kind)
    elif kind == "memory":
        _memory_statement(flow)
    elif kind == "held":
        _held_statement(flow)
    elif kind == "operands":
        _operands_statement(flow)
    elif kind in ("agent", "ask", "teach", "report", "inline_agent"):
        _agent_statement(flow, kind)
    elif kind == "module":
        _module_statement(flow)
    else:
        _shaped_statement(flow, kind)


def _object_statement(flow: _Flow, kind: str) -> None:
    """Lists and dicts made, aliased and changed by the flow's own statements."""
    if kind == "box":
        box = flow.name("box")
        flow.lines.append(f"{box}: list[int] = [{flow.value()}]")
        flow.boxes.append(box)
    elif kind == "table":
        table = flow.name("table")
        flow.lines.append(f"{table}: dict[str, int] = {{}}")
        flow.tables.append(table)
    elif kind == "alias" and flow.boxes:
        alias = flow.name("same")
        flow.lines.append(f"{alias} = {flow.pick(flow.boxes)}")
        flow.boxes.append(alias)
    elif kind == "inline_box":
        box, value = flow.pick(flow.boxes), flow.value()
        changes = [f"{box}.append({value})", f"{box}[0] += {value}"]
        flow.lines.append(flow.draw(st.sampled_from(changes)))
    elif kind == "inline_table":
        flow.lines.append(f'{flow.pick(flow.tables)}["a"] = {flow.value()}')


NESTED = frozenset(
    {"state", "holder", "same", "refill", "deep", "deep_push", "inline_deep", "tool"}
    | {"incr", "look", "inline_state", "state_items"}
)


def _nested_statement(flow: _Flow, kind: str) -> None:
    """Objects reached through others: a list held in a dict, a list a node hands
    back, a dataclass's fields, and a subflow that changes the list it is given."""
    if kind == "state":
        state = flow.name("state")
        flow.lines.append(f"{state} = State({flow.value()})")
        flow.states.append(state)
    elif kind == "holder":  # made whole, or filled by a store after it is made
        holder, box = flow.name("holder"), flow.pick(flow.boxes)
        made = flow.draw(st.sampled_from(["display", "store", "setdefault"]))
        if made == "display":
            flow.lines.append(f'{holder} = {{"inner": {box}}}')
        elif made == "store":
            flow.lines += [
                f"{holder}: dict[str, list[int]] = {{}}",
                f'{holder}["inner"] = {box}',
            ]
        else:
            flow.lines += [
                f"{holder}: dict[str, list[int]] = {{}}",
                f'{holder}.setdefault("inner", {box})',
            ]
        flow.holders.append(holder)
    elif kind == "same":
        alias = flow.name("same")
        flow.call("same", flow.pick(flow.boxes), target=alias, binds=False)
        flow.boxes.append(alias)
    elif kind == "refill":
        flow.call("refill", flow.pick(flow.boxes), flow.value(), target=flow.name("v"))
    elif kind == "deep":
        flow.call("deep", flow.pick(flow.holders), target=flow.name("v"))
    elif kind == "deep_push":
        flow.call("deep_push", flow.pick(flow.holders), flow.value())
    elif kind == "tool":  # a bound method kept in a dict, which a node calls
        tools = flow.name("tools")
        flow.lines.append(f'{tools} = {{"push": {flow.pick(flow.boxes)}.append}}')
        flow.call("use_tool", tools, flow.value())
    elif kind == "inline_deep":
        flow.lines.append(f'{flow.pick(flow.holders)}["inner"].append({flow.value()})')
    elif kind == "incr":
        flow.call("incr", flow.pick(flow.states), flow.value())
    elif kind == "look":
        flow.call("look", flow.pick(flow.states), target=flow.name("v"))
    elif kind == "inline_state":
        flow.lines.append(f"{flow.pick(flow.states)}.count += {flow.value()}")
    else:  # a field's list handed to a node of lists
        state = flow.pick(flow.states)
        node = flow.draw(st.sampled_from(["push", "total"]))
        if node == "push":
            flow.call("push", f"{state}.items", flow.value())
        else:
            flow.call("total", f"{state}.items", target=flow.name("v"))


def _subflow_statement(flow: _Flow, kind: str) -> None:
    """Subflows whose own statements log and read module state, which keep their
    place in the caller: called by the flow, by another subflow, in a fan-out."""
    if kind == "whisper" and flow.draw(st.booleans()):  # one call per element
        flow.used.add("whisper")
        tag, n = flow.tag().strip('"'), flow.draw(st.integers(1, 3))
        flow.lines.append(
            f'{flow.name("fan")} = [await whisper(i, f"{tag}.{{i}}") for i in range({n})]'
        )
    elif kind == "whisper":
        flow.call("whisper", flow.value(), target=flow.name("v"))
    else:
        flow.call("chronicle", flow.pick(flow.boxes), target=flow.name("v"))


def _agent_statement(flow: _Flow, kind: str) -> None:
    """A project class's methods: nodes call them on their parameters, the flow
    on its locals; `record` changes the module's `LEDGER`."""
    if kind == "agent":
        agent = flow.name("agent")
        flow.lines.append(f"{agent} = Agent({flow.value()})")
        flow.agents.append(agent)
        return
    agent = flow.pick(flow.agents)
    if kind == "ask":
        flow.call("ask", agent, target=flow.name("v"))
    elif kind in ("teach", "report"):
        flow.call(kind, agent, flow.value())
    else:
        shapes = [f"{agent}.add({flow.value()})", f"{agent}.record({flow.value()})"]
        read = flow.name("v")
        shapes.append(f"{read} = {agent}.describe()")
        line = flow.draw(st.sampled_from(shapes))
        flow.lines.append(line)
        if line.startswith(read):
            flow.ints.append(read)


def _module_statement(flow: _Flow) -> None:
    """Nodes sharing module state: called alone, in a fan-out, under an `if`;
    at times two in a row, which the source runs one after the other."""
    draw = flow.draw
    if draw(st.booleans()):
        _module_statement(flow)
    key = draw(st.sampled_from(['"a"', '"b"']))
    small = f"{flow.value()} % 3"
    calls = {
        "sset": [key, flow.value()],
        "sget": [key],
        "sbump": [key, flow.value()],
        "stally": [flow.value()],
        "scount": [],
        "shift": [flow.value()],
        "smode": [],
        "smemo": [small],
        "speek": [small],
        "oput": [key, flow.value()],
        "oget": [key],
        "omerge": [key, flow.value()],
        "oswitch": [flow.value()],
        "omode": [],
        "sfill": [key, flow.value()],
        "cset": [flow.value()],
        "cget": [],
        "dput": [key, flow.value()],
        "dget": [key],
        "kput": [key, flow.value()],
        "kget": [key],
        "cwork": [flow.value()],
        "ccount": [],
        "commit": [],
        "commits": [],
        "meter": [flow.value()],
        "metered": [],
        "pnext": [],
        "pids": [],
        "preg": [flow.value()],
        "pregs": [],
        "prun": [flow.value()],
        "pread": [],
        "aud": [flow.value()],
        "auds": [],
        "hset": [flow.value()],
        "hget": [],
        "tfold": [flow.value()],
        "tused": [],
        "gwork": [flow.value()],
        "gread": [],
        "dlevel": [flow.value()],
        "dread": [],
        "jdump": [flow.value()],
        "jread": [],
        "lkeep": [flow.value()],
        "lcount": [],
        "gsend": [flow.value()],
        "gtotal": [],
        "cclear": [],
        "cinfo": [],
    }
    node = draw(st.sampled_from(sorted(calls)))
    silent = ("sset", "stally", "shift", "oput", "omerge", "oswitch", "cset", "dput")
    silent += ("kput", "commit", "preg", "prun", "hset", "tfold", "jdump", "lkeep")
    silent += ("dlevel", "gsend", "cclear")
    returns = node not in silent
    shape = draw(st.sampled_from(["call", "call", "fan", "if"]))
    fans = {
        "sbump": f"{key}, i",
        "stally": "i",
        "smemo": "i % 2",
        "oget": key,
        "omerge": f"{key}, i",
        "sfill": f"{key}, i",
        "cset": "i",
        "dput": f"{key}, i",
        "kput": f"{key}, i",
        "cwork": "i",
        "meter": "i",
        "pnext": "",
        "preg": "i",
        "prun": "i",
        "aud": "i",
        "hset": "i",
        "tfold": "i",
        "gwork": "i",
        "dlevel": "i",
        "jdump": "i",
        "lkeep": "i",
        "gsend": "i",
    }
    awaited = "" if node in SYNC_NODES else "await "  # a sync node is called
    if shape == "fan" and node in fans:
        flow.used.add(node)
        tag, n = flow.tag().strip('"'), draw(st.integers(1, 3))
        fan = flow.name("fan")
        args = ", ".join(a for a in (fans[node], f'f"{tag}.{{i}}"') if a)
        flow.lines.append(f"{fan} = [{awaited}{node}({args}) for i in range({n})]")
        if returns:
            flow.lines.append(f"{fan}_sum = sum({fan})")
            flow.ints.append(f"{fan}_sum")
        return
    target = flow.name("v") if returns else None
    if shape == "if":
        flow.used.add(node)
        text = f"{awaited}{node}({', '.join([*calls[node], flow.tag()])})"
        text = f"{target} = {text}" if target else text
        flow.lines.append(f"if {flow.value()} % 2:\n    {text}")
        if target:  # bound on both arms
            flow.lines[-1] += f"\nelse:\n    {target} = 0"
            flow.ints.append(target)
        return
    flow.call(node, *calls[node], target=target, awaited=bool(awaited))


def _call_statement(flow: _Flow, kind: str) -> None:
    """Node calls that change, read or ignore the objects they are passed."""
    key = flow.draw(st.sampled_from(['"a"', '"b"']))
    if kind == "push":
        flow.call("push", flow.pick(flow.boxes), flow.argument())
    elif kind == "bump":
        flow.call("bump", flow.pick(flow.boxes))
    elif kind == "total":
        flow.call("total", flow.pick(flow.boxes), target=flow.name("v"))
    elif kind == "put":
        flow.call("put", flow.pick(flow.tables), key, flow.argument())
    elif kind == "peek":
        flow.call("peek", flow.pick(flow.tables), key, target=flow.name("v"))
    else:
        flow.call("each", flow.argument(), target=flow.name("v"))


def _late_statement(flow: _Flow, kind: str) -> None:
    """What is read after it is written: an item a node's value is stored into, and
    a lambda's or a generator's names, read when a node calls it."""
    if kind == "store":
        holders = [f'{t}["a"]' for t in flow.tables] + [f"{b}[0]" for b in flow.boxes]
        flow.call("each", flow.value(), target=flow.pick(holders), binds=False)
    elif kind == "closure":
        made, value = flow.name("later"), flow.value()
        shapes = [
            (f"lambda: {value} * 2", "apply"),
            (f"(v + {value} for v in range(2))", "consume"),
        ]
        shape, node = flow.draw(st.sampled_from(shapes))
        flow.lines.append(f"{made} = {shape}")
        flow.closures.append((made, node))
    elif kind == "rebind":
        name = flow.value()
        flow.call("each", name, target=name, binds=False)
    else:
        made, node = flow.draw(st.sampled_from(flow.closures))
        flow.call(node, made, target=flow.name("v"))


def _operands_statement(flow: _Flow) -> None:
    """An expression that reads a list before and after a node call that grows it.

    Python evaluates an expression's operands left to right: what is read
    before the call sees the list without the item the call appends.
    """
    box, value, target = flow.pick(flow.boxes), flow.value(), flow.name("v")
    node = flow.draw(st.sampled_from(["grow", "sgrow"]))
    flow.used.add(node)
    grow = f"{'await ' if node == 'grow' else ''}{node}({box}, {value}, {flow.tag()})"
    shapes = [
        f"len({box}) * 100 + {grow}",
        f'{{"n": len({box}), "g": {grow}, "m": len({box})}}["n"]',
        f"int(f'{{len({box})}}{{{grow}}}{{len({box})}}')",
        f"sum(({box}[-1], {grow}, {box}[-1]))",
        f"max(len({box}), {grow} - len({box}))",
        f"{box}[len({box}) - 1] + {grow}",
        f"int(len({box}) < {grow}) + sum([*{box}, {grow}])",
        f"len(str({box})) + {grow} + len([y for y in {box}])",
    ]
    expression = flow.draw(st.sampled_from(shapes))
    if flow.draw(st.booleans()):  # as the arguments of a node call of its own
        flow.used.add("add")
        calls = [
            f"await add(len({box}), {grow}, {flow.tag()})",
            f"await add(b={grow}, a=len({box}), tag={flow.tag()})",
            f"await add(sum({box}), await add(len({box}), {grow}, {flow.tag()}), "
            f"{flow.tag()})",
        ]
        expression = flow.draw(st.sampled_from(calls))
    flow.lines.append(f"{target} = {expression}")
    flow.ints.append(target)


def _shaped_statement(flow: _Flow, kind: str) -> None:
    """Fan-outs, iterators, log lines, clones and guards."""
    draw = flow.draw
    if kind == "fan_push":
        box, n = flow.pick(flow.boxes), draw(st.integers(1, 3))
        flow.used.add("push")
        flow.lines.append(
            f'{flow.name("fan")} = [await push({box}, i, f"f{{i}}") for i in range({n})]'
        )
    elif kind == "iterate":
        it, head, rest = flow.name("it"), flow.name("head"), flow.name("rest")
        flow.used.add("each")
        total = flow.name("v")
        flow.lines += [
            f"{it} = iter(list({flow.pick(flow.boxes)}))",
            f'{head} = [await each(v, "h") for v, _ in zip({it}, range(1))]',
            f'{rest} = [await each(v, "r") for v in {it}]',
            f"{total} = sum({head}) + sum({rest})",
        ]
        flow.ints.append(total)
    elif kind == "log":
        flow.logs += 1
        flow.lines.append(f'events.append(f"log {flow.logs} {{{flow.value()}}}")')
    elif kind == "clone":
        clone = flow.name("branch")
        source = flow.pick(flow.memories)
        flow.lines.append(f'{clone} = {source}.clone({{"mine": {flow.value()}}})')
        flow.memories.append(clone)
        if source in flow.rooted:
            flow.rooted.append(clone)
    else:  # a guard, then a side effect it must hold back
        value, limit = flow.value(), draw(st.integers(-60, 200))
        guards = [
            f'assert {value} < {limit}, "guard {limit}"',
            f'if {value} >= {limit}:\n    raise Stop("guard {limit}")',
        ]
        flow.lines.append(draw(st.sampled_from(guards)))
        if flow.boxes:
            flow.call("push", flow.pick(flow.boxes), value)


def _memory_statement(flow: _Flow) -> None:
    draw = flow.draw
    memory = flow.pick(flow.memories)
    key = draw(st.sampled_from(['"k1"', '"k2"']))
    kind = draw(
        st.sampled_from([*SETTERS, "mlog", "mget", "mlocal", "clone_arg", "made"])
    )
    if kind in SETTERS:
        flow.call(kind, memory, key, flow.value())
    elif kind == "mlog":
        flow.call("mlog", memory, flow.value())
    elif kind == "mget":
        flow.call("mget", memory, key, target=flow.name("v"))
    elif kind == "mlocal":
        flow.call("mlocal", memory, flow.value(), target=flow.name("v"))
    elif kind == "clone_arg":
        node = draw(st.sampled_from(["mset", "mlog"]))
        args = [f"{memory}.clone({{}})"]
        args += [key, flow.value()] if node == "mset" else [flow.value()]
        flow.call(node, *args)
    else:
        made = flow.name("made")
        flow.lines.append(f'{made} = Memory({{"log": [], "k1": {flow.value()}}})')
        flow.memories.append(made)


def _held_statement(flow: _Flow) -> None:
    """Lists a Memory holds at keys, reached from both sides: through the
    Memory by nodes, through the flow's names by the flow and by nodes."""
    draw, flow.lists = flow.draw, True
    memory = flow.pick(flow.rooted)
    key = draw(st.sampled_from(["l1", "l2"]))
    kinds = ["read", "fetch", "grow", "sum", "link", "whole", "choose", "view"]
    kind = draw(st.sampled_from([*kinds, *(["keep", "store"] if flow.boxes else [])]))
    if kind in ("read", "fetch", "keep", "store"):
        _named_list(flow, kind, memory, key)
    else:
        _through_memory(flow, kind, memory, key)


def _named_list(flow: _Flow, kind: str, memory: str, key: str) -> None:
    """A list both a name of the flow and a key of the Memory hold, then
    perhaps a node reading the key while a change through the name waits."""
    draw = flow.draw
    if kind in ("read", "fetch"):  # a name bound to the list at a key
        held = flow.name("held")
        reads = [f'{memory}["{key}"]', f"{memory}.{key}", f'{memory}.get("{key}")']
        if kind == "read":
            flow.lines.append(f"{held} = {draw(st.sampled_from(reads))}")
        else:
            flow.call("mfetch", memory, f'"{key}"', target=held, binds=False)
        flow.boxes.append(held)
    elif kind == "store":  # the flow's list stored at a key
        target = draw(st.sampled_from([f'{memory}["{key}"]', f"{memory}.{key}"]))
        flow.lines.append(f"{target} = {flow.pick(flow.boxes)}")
    else:
        flow.call("mkeep", memory, f'"{key}"', flow.pick(flow.boxes))
    if draw(st.booleans()):
        flow.call("msum", memory, f'"{key}"', target=flow.name("v"))


def _through_memory(flow: _Flow, kind: str, memory: str, key: str) -> None:
    """The lists changed and read through the Memory, or a Memory kiln does
    not name (in a list, chosen by a condition), or its local store as a dict."""
    draw = flow.draw
    if kind == "grow":
        if draw(st.booleans()):
            flow.call("mgrow", memory, f'"{key}"', flow.value())
        else:
            flow.lines.append(f'{memory}["{key}"].append({flow.value()})')
    elif kind == "sum":
        flow.call("msum", memory, f'"{key}"', target=flow.name("v"))
    elif kind == "link":  # one key's list stored under the other
        if draw(st.booleans()):
            flow.call("mlink", memory)
        else:
            flow.lines.append(f'{memory}["l2"] = {memory}["l1"]')
    elif kind == "whole":  # a Memory held by a list, used through it
        holder = flow.name("holder")
        flow.lines.append(f"{holder} = [{memory}]")
        flow.call("mgrow", f"{holder}[0]", f'"{key}"', flow.value())
    elif kind == "choose":
        chosen, other = flow.name("chosen"), flow.pick(flow.rooted)
        flow.lines.append(f"{chosen} = {memory} if {flow.value()} > 0 else {other}")
        flow.memories.append(chosen)
        flow.rooted.append(chosen)
    else:  # its local store, as a dict the flow and nodes change
        view = flow.name("view")
        flow.lines.append(f"{view} = {flow.pick(flow.memories)}.local")
        flow.tables.append(view)


@st.composite
def effect_flows(draw: st.DrawFn) -> str:
    """A module whose flow `main(x: int, memory: Memory)` is full of effects."""
    flow = _Flow(draw)
    for _ in range(draw(st.integers(min_value=2, max_value=12))):
        _statement(flow)
    if draw(st.integers(0, 5)) == 0:  # two calls that fail, in either order in time
        flow.call("fail", flow.value(), target=flow.name("v"))
        flow.call("fail", flow.value(), target=flow.name("v"))
    # A State as its fields: the compiled module's State is a class of its own.
    fields = [f"({s}.count, {s}.items)" for s in flow.states]
    fields += [f"({a}.n, {a}.log)" for a in flow.agents]
    # Sorted: two nodes that append to the module's list overlap (README).
    state = [*flow.boxes, *flow.tables, *fields, "sorted(LEDGER)"]
    # The module state nodes share; a list's order is the accumulations' own.
    state += ["dict(SHARED)", "sorted(TALLY)", 'COUNTER["n"]', "MODE", "dict(MEMO)"]
    state += ["dict(STORE.data)", "STORE.hits", "STORE.peak", "Store.mode"]
    state += ["dict(FILLS)", "USER.get()", 'remember("a")', 'remember("b")']
    state += ['kept("a")', 'kept("b")', "TXN.commits", "METER[0]"]
    state += ["IDS._n", "sorted(Registered.registry)", "Registered.count"]
    state += ["dict(PROTO)", "len(AUDIT)", "dict(HOOKED)", 'USAGE["n"]']
    state += ["GATE[0]", "GATED.passed", "FIELD[0]"]
    state += ["BUF.getvalue()", "sorted(KEPT.records)"]
    state += ["RUNNING.send(0)", "scaled.cache_info().currsize"]
    memories = ", ".join(f"dict({m}.local)" for m in flow.memories)
    if flow.lists:  # the keys' lists, made first: the flow's parameter holds none
        flow.lines[:0] = ['memory["l1"] = [x]', 'memory["l2"] = [x + 1]']
        memories += ', list(memory["l1"]), list(memory["l2"])'
    body = "\n".join(f"    {line}".replace("\n", "\n    ") for line in flow.lines)
    result = f"[{', '.join(flow.ints)}], [{', '.join(state)}], list(memory.log), [{memories}]"
    used = flow.used.union(*(NEEDS.get(name, ()) for name in flow.used))
    nodes = "\n\n".join(
        NODES[name].format(d=draw(st.sampled_from([0, 0.001, 0.003, 0.006])))
        for name in sorted(used, key=lambda name: (name in NEEDS, name))
    )
    return (
        f"{HEADER}{nodes}\n\n@flow\nasync def main(x: int, memory: Memory) -> object:\n"
        f"    LEDGER.clear()\n{body}\n    return {result}\n"
    )
