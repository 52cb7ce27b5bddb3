"""A method called on a module-level object uses that object's state as its
body does: node calls keep the source's order where one changes what the
other reads, and overlap where their uses commute.

`STORE.put("k", 7)` in one node and `STORE.get("k")` in the next: the source
returns `(1, 7)`. kiln read a method of a module-level object as a client's
(a read), so the compiled flow returned `(1, 0)`, silently (trial J, class
1). Each method's uses of its own object are now read as uses of the object
it is called on, one piece per attribute (`app.STORE.data`): `put` changes
`data`, `get` reads it, and a gauge's `enter` (`self.now += 1`, a high-water
mark, a lock only read) adds to what another call adds to, so two calls that
count into one gauge still overlap.

So are module-level state under a second name (`VIEW = CACHE`, one list
held by two dicts: one piece, by the first name), what a helper hands out
(`get_store()[k] = v`, `registry().add(k)`, a `functools.cache`d
function's result), what builtins reach (`list.append(LOG, x)`, `setattr`
and `getattr`, `vars(obj)[k] = v`, `globals()["MODE"] = m`), a base's
attribute read through a subclass or an instance, a memo that also reads
its cache whole (`len(CACHE)`: its store is a write) or adds to other state
when it misses (two calls of one key would both miss), a name a node
imports in its body (`from app.store import CACHE`), and an iterator a node draws from
(`next(IDS)` of `itertools.count`, a change).

Each case is one module run as the source and as the compiled flow, several
times each in a fresh interpreter, and compared by result and by the state
it leaves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file

RUNS = 3

# Each case: a module whose flow `main` returns what the source computes, and
# whose `snapshot()` is the state it leaves. The first call waits longer, so
# a missing order shows in every run.
ORDERED = {
    "a_method_stores_and_another_reads": """
        class Store:
            def __init__(self) -> None:
                self.data: dict[str, int] = {}

            def put(self, key: str, value: int) -> None:
                self.data[key] = value

            def get(self, key: str) -> int:
                return self.data.get(key, 0)

        STORE = Store()

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            STORE.put("k", 7)
            return 1

        @node
        async def second() -> int:
            await asyncio.sleep(0.01)
            return STORE.get("k")

        @flow
        async def main() -> tuple[int, int]:
            return await first(), await second()

        def snapshot() -> object:
            return STORE.data
    """,
    "a_method_named_add_replaces": """
        class Current:
            def __init__(self) -> None:
                self.value = "none"

            def add(self, value: str) -> None:
                self.value = value

        CURRENT: Current = Current()

        @node
        async def set_to(value: str, delay: float) -> str:
            await asyncio.sleep(delay)
            CURRENT.add(value)
            return value

        @flow
        async def main() -> list[str]:
            a = await set_to("first", 0.05)
            b = await set_to("second", 0.01)
            return [a, b]

        def snapshot() -> object:
            return CURRENT.value
    """,
    "a_classmethod_sets_what_a_node_reads": """
        class Config:
            mode = "slow"

            @classmethod
            def set(cls, mode: str) -> None:
                cls.mode = mode

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            Config.set("fast")
            return 1

        @node
        async def second() -> str:
            await asyncio.sleep(0.01)
            return Config.mode

        @flow
        async def main() -> tuple[int, str]:
            return await first(), await second()

        def snapshot() -> object:
            return Config.mode
    """,
    "a_method_counts_through_its_class": """
        class Counter:
            count = 0

            def bump(self) -> None:
                type(self).count += 5

        class Registry:
            names: list[str] = []

            def register(self, name: str) -> None:
                self.__class__.names = [*self.__class__.names, name]

        COUNTER = Counter()
        REGISTRY = Registry()

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            COUNTER.bump()
            REGISTRY.register("a")
            return 1

        @node
        async def second() -> tuple[int, int]:
            await asyncio.sleep(0.01)
            return Counter.count, len(Registry.names)

        @flow
        async def main() -> tuple[int, tuple[int, int]]:
            return await first(), await second()

        def snapshot() -> object:
            return [Counter.count, Registry.names]
    """,
    "a_client_switched_then_used": """
        class Client:
            def __init__(self) -> None:
                self.model = "small"
                self.calls = 0

            def use_model(self, model: str) -> None:
                self.model = model

            async def complete(self, prompt: str) -> str:
                self.calls += 1
                await asyncio.sleep(0.01)
                return f"{self.model}:{prompt}"

        CLIENT = Client()

        @node
        async def configure() -> int:
            await asyncio.sleep(0.05)
            CLIENT.use_model("large")
            return 1

        @node
        async def summarize(text: str) -> str:
            return await CLIENT.complete(text)

        @flow
        async def main(text: str = "hello") -> tuple[int, str]:
            ready = await configure()
            return ready, await summarize(text)

        def snapshot() -> object:
            return [CLIENT.model, CLIENT.calls]
    """,
    "a_fold_into_one_key_of_another": """
        COUNTS: dict[str, int] = {}

        @node
        async def count_a() -> int:
            await asyncio.sleep(0.05)
            COUNTS["a"] = COUNTS.get("a", 0) + 1
            return 1

        @node
        async def count_b() -> int:
            await asyncio.sleep(0.01)
            COUNTS["b"] = COUNTS.get("a", 0) + 1
            return 2

        @flow
        async def main() -> tuple[int, int]:
            return await count_a(), await count_b()

        def snapshot() -> object:
            return COUNTS
    """,
    "a_helper_method_changes_through_self": """
        class Pool:
            def __init__(self) -> None:
                self.free = [0, 1, 2, 3]

            def _take(self) -> int:
                return self.free.pop()

            def acquire(self) -> int:
                return self._take()

            def release(self, slot: int) -> None:
                self.free.append(slot)

        POOL = Pool()

        @node
        async def query(delay: float) -> int:
            slot = POOL.acquire()
            await asyncio.sleep(delay)
            POOL.release(slot)
            return slot

        @flow
        async def main() -> list[int]:
            a = await query(0.05)
            b = await query(0.01)
            c = await query(0.02)
            return [a, b, c]

        def snapshot() -> object:
            return POOL.free
    """,
    "an_alias_of_the_object": """
        class Store:
            def __init__(self) -> None:
                self.data: dict[str, int] = {}

            def put(self, key: str, value: int) -> None:
                self.data[key] = value

        STORE = Store()

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            STORE.put("k", 7)
            return 1

        @node
        async def second() -> int:
            await asyncio.sleep(0.01)
            return STORE.data.get("k", 0)

        @flow
        async def main() -> tuple[int, int]:
            return await first(), await second()

        def snapshot() -> object:
            return STORE.data
    """,
    "a_counter_drawn_by_next": """
        import itertools

        IDS = itertools.count(1)

        @node
        async def new_id(delay: float) -> int:
            await asyncio.sleep(delay)
            return next(IDS)

        @flow
        async def main() -> tuple[int, int]:
            return await new_id(0.05), await new_id(0.01)
    """,
    "a_second_name_for_one_dict": """
        CACHE: dict[str, int] = {}
        VIEW = CACHE

        @node
        async def warm(key: str) -> int:
            await asyncio.sleep(0.05)
            CACHE[key] = 1
            return 1

        @node
        async def check(key: str) -> int:
            await asyncio.sleep(0.01)
            return VIEW.get(key, 0)

        @flow
        async def main() -> tuple[int, int]:
            return await warm("k"), await check("k")

        def snapshot() -> object:
            return CACHE
    """,
    "one_list_held_by_two_dicts": """
        SHARED: list[str] = []
        A = {"items": SHARED}
        B = {"items": SHARED}

        @node
        async def add(item: str) -> int:
            await asyncio.sleep(0.05)
            A["items"].append(item)
            return 1

        @node
        async def size() -> int:
            await asyncio.sleep(0.01)
            return len(B["items"])

        @flow
        async def main() -> tuple[int, int]:
            return await add("x"), await size()

        def snapshot() -> object:
            return SHARED
    """,
    "a_helper_hands_out_the_store": """
        STORE: dict[str, int] = {}

        def get_store() -> dict[str, int]:
            return STORE

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            get_store()["k"] = 1
            return 1

        @node
        async def second() -> int:
            await asyncio.sleep(0.01)
            return STORE.get("k", 0)

        @flow
        async def main() -> tuple[int, int]:
            return await first(), await second()

        def snapshot() -> object:
            return STORE
    """,
    "a_method_on_what_a_helper_returns": """
        class Registry:
            def __init__(self) -> None:
                self.items: dict[str, int] = {}

            def add(self, key: str) -> None:
                self.items[key] = 1

            def has(self, key: str) -> int:
                return self.items.get(key, 0)

        REGISTRY = Registry()

        def registry() -> Registry:
            return REGISTRY

        @node
        async def warm(key: str) -> int:
            await asyncio.sleep(0.05)
            registry().add(key)
            return 1

        @node
        async def check(key: str) -> int:
            await asyncio.sleep(0.01)
            return REGISTRY.has(key)

        @flow
        async def main() -> tuple[int, int]:
            return await warm("k"), await check("k")

        def snapshot() -> object:
            return REGISTRY.items
    """,
    "a_cached_settings_dict": """
        import functools

        @functools.lru_cache(maxsize=None)
        def settings() -> dict[str, str]:
            return {"mode": "slow"}

        @node
        async def set_fast() -> int:
            await asyncio.sleep(0.05)
            settings()["mode"] = "fast"
            return 1

        @node
        async def mode() -> str:
            await asyncio.sleep(0.01)
            return settings()["mode"]

        @flow
        async def main() -> tuple[int, str]:
            return await set_fast(), await mode()
    """,
    "a_builtin_method_called_through_its_class": """
        LOG: list[int] = []

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            list.append(LOG, 1)
            return 1

        @node
        async def second() -> int:
            await asyncio.sleep(0.01)
            return len(LOG)

        @flow
        async def main() -> tuple[int, int]:
            return await first(), await second()

        def snapshot() -> object:
            return LOG
    """,
    "setattr_and_getattr_on_a_class": """
        class Config:
            mode = "slow"

        @node
        async def set_mode(mode: str) -> str:
            await asyncio.sleep(0.05)
            setattr(Config, "mode", mode)
            return mode

        @node
        async def get_mode() -> str:
            await asyncio.sleep(0.01)
            return str(getattr(Config, "mode"))

        @flow
        async def main() -> tuple[str, str]:
            return await set_mode("fast"), await get_mode()

        def snapshot() -> object:
            return Config.mode
    """,
    "an_object_changed_through_vars": """
        class Config:
            mode = "slow"

        CONFIG = Config()

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            vars(CONFIG)["mode"] = "fast"
            return 1

        @node
        async def second() -> str:
            await asyncio.sleep(0.01)
            return CONFIG.mode

        @flow
        async def main() -> tuple[int, str]:
            return await first(), await second()

        def snapshot() -> object:
            return CONFIG.mode
    """,
    "a_global_set_through_globals": """
        MODE = "slow"

        @node
        async def set_mode(mode: str) -> str:
            await asyncio.sleep(0.05)
            globals()["MODE"] = mode
            return mode

        @node
        async def get_mode() -> str:
            await asyncio.sleep(0.01)
            return MODE

        @flow
        async def main() -> tuple[str, str]:
            return await set_mode("fast"), await get_mode()

        def snapshot() -> object:
            return MODE
    """,
    "a_base_s_attribute_read_through_a_subclass": """
        class Base:
            mode = "slow"

        class Child(Base):
            pass

        @node
        async def set_mode(mode: str) -> str:
            await asyncio.sleep(0.05)
            Base.mode = mode
            return mode

        @node
        async def get_mode() -> str:
            await asyncio.sleep(0.01)
            return Child.mode

        @flow
        async def main() -> tuple[str, str]:
            return await set_mode("fast"), await get_mode()

        def snapshot() -> object:
            return Base.mode
    """,
    "a_class_attribute_read_through_an_instance": """
        class Store:
            mode = 0

            @classmethod
            def switch(cls, mode: int) -> None:
                cls.mode = mode

            def current(self) -> int:
                return self.mode

        STORE = Store()

        @node
        async def switch(mode: int) -> int:
            await asyncio.sleep(0.05)
            Store.switch(mode)
            return mode

        @node
        async def read() -> tuple[int, int]:
            await asyncio.sleep(0.01)
            return STORE.mode, STORE.current()

        @flow
        async def main() -> tuple[int, tuple[int, int]]:
            return await switch(3), await read()

        def snapshot() -> object:
            return Store.mode
    """,
    "a_memo_that_reads_the_cache_size": """
        CACHE: dict[int, int] = {}

        @node
        async def memo(x: int) -> int:
            if x in CACHE:
                return CACHE[x]
            await asyncio.sleep(0.02 * (4 - x))
            CACHE[x] = x * x
            return len(CACHE)

        @flow
        async def main() -> list[int]:
            return [await memo(x) for x in [1, 2, 3]]

        def snapshot() -> object:
            return CACHE
    """,
    "a_memo_whose_miss_counts_in_a_fan_out_of_one_key_twice": """
        RESULTS: dict[str, int] = {}
        COUNTERS: dict[str, int] = {}

        @node
        async def extract(source: str) -> int:
            if source in RESULTS:
                return RESULTS[source]
            await asyncio.sleep(0.02)
            RESULTS[source] = len(source)
            COUNTERS["rows"] = COUNTERS.get("rows", 0) + len(source)
            return len(source)

        @node
        async def stats() -> dict[str, int]:
            return dict(COUNTERS)

        @flow
        async def main() -> tuple[list[int], dict[str, int]]:
            sizes = [await extract(s) for s in ["a", "bb", "a"]]
            return sizes, await stats()

        def snapshot() -> object:
            return COUNTERS
    """,
    "a_name_a_node_imports_itself": """
        import store

        @node
        async def warm(key: str) -> int:
            await asyncio.sleep(0.05)
            store.CACHE[key] = 1
            return 1

        @node
        async def check(key: str) -> int:
            await asyncio.sleep(0.01)
            from store import CACHE

            return CACHE.get(key, 0)

        @flow
        async def main() -> tuple[int, int]:
            return await warm("k"), await check("k")

        def snapshot() -> object:
            return store.CACHE
    """,
    "an_object_made_by_an_unannotated_factory": """
        class Store:
            def __init__(self) -> None:
                self.data: dict[str, int] = {}

            def put(self, key: str, value: int) -> None:
                self.data[key] = value

            def get(self, key: str) -> int:
                return self.data.get(key, 0)

        def make_store():
            return Store()

        STORE = make_store()

        @node
        async def first() -> int:
            await asyncio.sleep(0.05)
            STORE.put("k", 7)
            return 1

        @node
        async def second() -> int:
            await asyncio.sleep(0.01)
            return STORE.get("k")

        @flow
        async def main() -> tuple[int, int]:
            return await first(), await second()

        def snapshot() -> object:
            return STORE.data
    """,
}

# Uses that commute: both calls start before either ends.
OVERLAPPING = {
    "a_gauge_both_calls_count_into": """
        import threading

        class Gauge:
            def __init__(self) -> None:
                self.lock = threading.Lock()
                self.now = 0
                self.peak = 0
                self.starts: list[str] = []

            def enter(self, name: str) -> None:
                with self.lock:
                    self.now += 1
                    self.peak = max(self.peak, self.now)
                    self.starts.append(name)

            def leave(self) -> None:
                with self.lock:
                    self.now -= 1

        GAUGE = Gauge()

        @node
        async def work(name: str) -> str:
            GAUGE.enter(name)
            EVENTS.append(f"start {name}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {name}")
            GAUGE.leave()
            return name

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
    """,
    "a_metrics_object_both_calls_count_into": """
        class Metrics:
            def __init__(self) -> None:
                self.counts: dict[str, int] = {}

            def inc(self, name: str) -> None:
                self.counts[name] = self.counts.get(name, 0) + 1

        METRICS = Metrics()

        @node
        async def work(name: str) -> str:
            EVENTS.append(f"start {name}")
            METRICS.inc("work")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {name}")
            return name

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
    """,
    "a_client_wrapper_counting_its_calls": """
        class Session:
            async def post(self, prompt: str) -> str:
                await asyncio.sleep(0.05)
                return prompt

        class LLM:
            def __init__(self) -> None:
                self.session = Session()
                self.calls = 0

            async def complete(self, prompt: str) -> str:
                self.calls += 1
                return await self.session.post(prompt)

        LLM_CLIENT = LLM()

        @node
        async def work(name: str) -> str:
            EVENTS.append(f"start {name}")
            got = await LLM_CLIENT.complete(name)
            EVENTS.append(f"end {name}")
            return got

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
    """,
    "a_cached_client_both_call": """
        import functools

        import fakeclient

        @functools.cache
        def client() -> fakeclient.Client:
            return fakeclient.Client()

        @node
        async def work(name: str) -> str:
            EVENTS.append(f"start {name}")
            got = await client().get(name)
            EVENTS.append(f"end {name}")
            return got

        @flow
        async def main() -> list[str]:
            return [await work("a"), await work("b")]
    """,
    "two_attributes_one_written_one_read": """
        class Settings:
            def __init__(self) -> None:
                self.theme = "light"
                self.seen: list[str] = []

            def set_theme(self, theme: str) -> None:
                self.theme = theme

            def size(self) -> int:
                return len(self.seen)

        SETTINGS = Settings()

        @node
        async def theme(name: str) -> str:
            EVENTS.append(f"start {name}")
            SETTINGS.set_theme("dark")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {name}")
            return name

        @node
        async def size(name: str) -> str:
            EVENTS.append(f"start {name}")
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {name}")
            return name + str(SETTINGS.size())

        @flow
        async def main() -> list[str]:
            return [await theme("a"), await size("b")]
    """,
}

HEADER = """
import asyncio

from kiln import flow, node

EVENTS: list[str] = []
"""

RUNNER = """
import asyncio, importlib, inspect, json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
runs = int(sys.argv[3])


def fresh(module):
    for loaded in ("case", "compiled_case", "store"):
        sys.modules.pop(loaded, None)
    return importlib.import_module(module)


def snapshot(module, source):
    # The compiled module keeps only what its flows use: it is read by the
    # expression the source's `snapshot` returns.
    if not hasattr(source, "snapshot"):
        return None
    returned = inspect.getsource(source.snapshot).split("return ", 1)[1]
    return eval(returned, vars(module))


found = {"source": [], "compiled": [], "events": []}
for _ in range(runs):
    source = fresh("case")
    found["source"].append([asyncio.run(source.main()), snapshot(source, source)])
    compiled = fresh("compiled_case")
    found["compiled"].append([compiled.main(), snapshot(compiled, source)])
    found["events"].append(getattr(compiled, "EVENTS", []))
print(json.dumps(found))
"""


# A module of the project's, beside the case's.
STORE_MODULE = """
CACHE: dict[str, int] = {}
LOG: list[int] = []


def make_registry():
    items: list[str] = []

    def register(x: str) -> None:
        items.append(x)

    def registered() -> list[str]:
        return list(items)

    return register, registered


register, registered = make_registry()
record = LOG.append  # a method of the module's state, under a name of its own
HOOKS = {"log": LOG.append}  # and one held in a table
"""

# A client of a library kiln cannot see into, beside the case's module.
FAKE_CLIENT = """
import asyncio


class Client:
    async def get(self, url: str) -> str:
        await asyncio.sleep(0.05)
        return url


class VectorStore:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def add_texts(self, texts: list[str]) -> None:
        self.texts.extend(texts)

    def similarity_search(self, query: str) -> list[str]:
        return [text for text in self.texts if query in text]
"""


FAKE_DATA = """
import random


class Array:
    def __init__(self, values: list[float]) -> None:
        self.values = list(values)

    def fill(self, value: float) -> None:
        self.values = [value] * len(self.values)

    def sum(self) -> float:
        return sum(self.values)

    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    def sort_values(self, inplace: bool = False) -> "Array | None":
        if inplace:
            self.values.sort()
            return None
        return Array(sorted(self.values))

    def clip(self, low: float, high: float, out: "Array | None" = None) -> "Array":
        clipped = [min(max(v, low), high) for v in self.values]
        if out is None:
            return Array(clipped)
        out.values[:] = clipped
        return out

    def reshape(self) -> "View":
        return View(self)

    def __getitem__(self, index: int) -> float:
        return self.values[index]


class View:
    def __init__(self, base: Array) -> None:
        self.base = base

    def __setitem__(self, index: int, value: float) -> None:
        self.base.values[index] = value


def array(values: list[float]) -> Array:
    return Array(values)


def copyto(destination: Array, source: list[float]) -> None:
    destination.values[:] = source


class Generator:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def normal(self) -> float:
        return round(self._random.random(), 6)


def default_rng(seed: int) -> Generator:
    return Generator(seed)


class ApiClient:
    async def fetch(self, url: str) -> str:
        return url
"""

# Modules installed outside the project, beside the case: by their names.
# `openai`: a package of the clients kiln knows (data_holders.CLIENT_PACKAGES).
LIBRARIES = {
    "fakeclient": FAKE_CLIENT,
    "fakedata": FAKE_DATA,
    "openai": "class AsyncOpenAI:\n    async def complete(self, p: str) -> str:\n"
    "        return p\n",
    # numpy's functions, over fakedata's arrays.
    "numpy": "from fakedata import Array, array, copyto\n\n\n"
    "def zeros(n: int) -> Array:\n    return Array([0.0] * n)\n\n\n"
    "def tanh(a: Array) -> Array:\n    return Array([v / 2 for v in a.values])\n",
}


def compile_and_run(
    tmp_path: Path, body: str
) -> tuple[dict[str, list[object]], list[str]]:
    """The case's source and compiled runs, and its KLN311 messages."""
    library = tmp_path / "lib"
    library.mkdir()
    for name, text in LIBRARIES.items():
        (library / f"{name}.py").write_text(text, encoding="utf-8")
    (tmp_path / "store.py").write_text(STORE_MODULE, encoding="utf-8")
    source = tmp_path / "case.py"
    source.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    compilation = compile_file(source)
    assert compilation.output is not None, compilation.diagnostics
    (tmp_path / "compiled_case.py").write_text(compilation.output, encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path), str(library), str(RUNS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    warnings = [
        d.message for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER
    ]
    found: dict[str, list[object]] = json.loads(ran.stdout)
    return found, warnings


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_a_change_of_state_reached_so_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


def test_the_warning_names_the_attribute_and_the_method_s_line(
    tmp_path: Path,
) -> None:
    case = ORDERED["a_method_stores_and_another_reads"]
    _, [message] = compile_and_run(tmp_path, case)
    lines = (HEADER + textwrap.dedent(case)).splitlines()
    put = lines.index("        self.data[key] = value") + 1
    get = lines.index("        return self.data.get(key, 0)") + 1
    flow = lines.index("    return await first(), await second()") + 1
    where = tmp_path / "case.py"
    assert message == (
        f"'second' waits for 'first' (line {flow}) because 'first' changes the "
        f"module state 'case.STORE.data' (assigns self.data[key], at {where}:{put}), "
        f"which 'second' reads (calls self.data.get, at {where}:{get})"
    )


def write_then_read(setup: str, write: str, read: str, *, fresh: bool = False) -> str:
    """A case: after `setup`, a node that sleeps, then runs `write` (its lines),
    and a node the flow calls after it, which returns `read`; `fresh`: as
    `repr(read)`, a new value that no module state holds, whatever it reads."""
    body = "\n".join(f"    {line}" for line in write.strip().splitlines())
    returned, kind = (f"repr({read})", "str") if fresh else (read, "int")
    return (
        f"{setup}\n\n@node\nasync def write() -> None:\n"
        f"    await asyncio.sleep(0.05)\n{body}\n\n"
        f"@node\nasync def read() -> {kind}:\n    return {returned}\n\n"
        f"@flow\nasync def main() -> {kind}:\n    await write()\n"
        "    return await read()\n"
    )


def both_overlap(setup: str, first: str, second: str) -> str:
    """A case for `assert_overlapped`: after `setup`, two nodes the flow awaits one
    after the other, each logging its start, sleeping, running its line (`first`,
    `second`) and logging its end."""
    return f"""
{setup}

@node
async def first(name: str) -> str:
    EVENTS.append(f"start {{name}}")
    await asyncio.sleep(0.05)
    {first}
    EVENTS.append(f"end {{name}}")
    return name

@node
async def second(name: str) -> str:
    EVENTS.append(f"start {{name}}")
    await asyncio.sleep(0.05)
    {second}
    EVENTS.append(f"end {{name}}")
    return name

@flow
async def main() -> list[str]:
    return [await first("a"), await second("b")]
"""


def assert_kept_in_order(tmp_path: Path, body: str, case: str = "") -> list[str]:
    """The case's calls keep the source's order: its result, every run, and a
    KLN311 that says what the kept order costs (its messages, returned)."""
    found, warnings = compile_and_run(tmp_path, body)
    assert found["compiled"] == found["source"], case
    assert warnings, "the kept order is said"
    return warnings


def assert_overlapped(tmp_path: Path, body: str) -> None:
    """The case's calls commute: no KLN311, the source's result (none of its
    state is compared), and both calls started before either ended, every run."""
    found, warnings = compile_and_run(tmp_path, body)
    assert warnings == []
    assert found["compiled"] == [[value, None] for value, _ in found["source"]]
    for events in found["events"]:
        assert isinstance(events, list)
        assert {event.split()[0] for event in events[:2]} == {"start"}, events


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_methods_whose_uses_commute_still_overlap(case: str, tmp_path: Path) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])
