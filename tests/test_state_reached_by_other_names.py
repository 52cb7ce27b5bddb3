"""Module state reached under another name than its own: an item, an alias, an import.

A Hamilton-style project (trial Q3) changed module state in ways kiln read
as no change at all, so a later node that read it ran at once and saw the
old value, silently:

- an item handed out by a container: `for buf in BUFFERS.values()`,
  `BUFFERS.get(k, [])`, `next(iter(...))`, `for i, m in enumerate(MODELS)`,
  a copy's item (`list(GROUPS.values())[0]`), an item a project generator
  yields or a project function returns, bound to a local first (trial Q5);
- a method kiln cannot see into, on a standard-library object that holds
  data (`CFG.set(...)` of a ConfigParser, `REPORT.write(...)` of a StringIO),
  or on an item of module state (`model.fit()`);
- a helper held in an attribute its class's `__init__` makes without an
  annotation (`self.counter = Counter()`);
- the name imported inside the node's body (`import app.store as s`);
- a function called through a value kiln cannot resolve (`REGISTRY[name](x)`
  filled by a `@tool` decorator, a handler a node kept on a bus, a bound
  method held in a local), which may be any function the project names as a
  value: it uses what they use (effects/escaped.py, trial Q5);
- a parameter whose default is the module's object (`log: list[str] = LOG`),
  a class attribute bound to it (`class Svc: store = BOX`), `globals()["BOX"]`,
  another module's name for it (`CURRENT = db.STATE`), `sys.modules["db"]`,
  `sys.modules[__name__]`, a local bound to `vars(USAGE)` (trial Q8);
- a class's state through its object (`type(cfg).level = v`,
  `cfg.__class__.level = v`, trial Q2);
- a `deque(maxlen=n)` appended to, which drops its oldest item: which it
  keeps depends on the order (trial Q8);
- the `random` module's one generator, which a seed makes draw the same
  numbers in the same order (trial Q8); a `random.Random()` of a node's own
  still overlaps.

Each is now the piece of state it is. Methods that only read or coordinate
(a compiled pattern, a lock, an installed library's client) still overlap;
so does a copy made to be changed (`dict(DEFAULTS)`, then a store into it).

Each case runs its source and its compiled flow in fresh interpreters
(tests/test_state_reach_order.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
    both_overlap,
    write_then_read,
)

GROUPS = 'GROUPS: dict[str, list[int]] = {"a": [], "b": []}'
MODELS = """
class Model:
    def __init__(self) -> None:
        self.fitted = 0

    def fit(self, n: int) -> None:
        self.fitted = n

MODELS = [Model(), Model()]
REGISTRY = {"m": Model()}
"""

ORDERED = {
    "a_loop_over_a_dict_s_values": write_then_read(
        GROUPS, "for group in GROUPS.values():\n    group.append(1)", 'len(GROUPS["a"])'
    ),
    "a_loop_over_a_dict_s_items": write_then_read(
        GROUPS,
        "for _, group in GROUPS.items():\n    group.append(1)",
        'len(GROUPS["b"])',
    ),
    "the_item_get_hands_out": write_then_read(
        GROUPS, 'GROUPS.get("a", []).append(1)', 'len(GROUPS["a"])'
    ),
    "the_first_item_of_an_iterator": write_then_read(
        GROUPS, "next(iter(GROUPS.values())).append(1)", 'len(GROUPS["a"])'
    ),
    "an_item_of_a_copy": write_then_read(
        GROUPS,
        "groups = list(GROUPS.values())\ngroups[0].append(1)",
        'len(GROUPS["a"])',
    ),
    "a_method_of_each_item_under_enumerate": write_then_read(
        MODELS,
        "for i, model in enumerate(MODELS):\n    model.fit(5 + i)",
        "MODELS[1].fitted",
    ),
    "a_method_of_each_value_of_a_registry": write_then_read(
        MODELS,
        "for model in REGISTRY.values():\n    model.fit(5)",
        'REGISTRY["m"].fitted',
    ),
    "a_config_parser_s_set": write_then_read(
        "import configparser\n\nCFG = configparser.ConfigParser()\n"
        'CFG["report"] = {"currency": "EUR"}',
        'CFG.set("report", "currency", "USD")',
        'len(CFG.get("report", "currency"))',
    ),
    "a_string_buffer_s_write": write_then_read(
        "import io\n\nREPORT = io.StringIO()",
        'REPORT.write("## Revenue")',
        "len(REPORT.getvalue())",
    ),
    "a_helper_an_init_makes_without_an_annotation": write_then_read(
        """
class Counter:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}

    def hit(self, key: str) -> None:
        self.hits[key] = self.hits.get(key, 0) + 10

    def value(self, key: str) -> int:
        return self.hits.get(key, -1)

class Tracker:
    def __init__(self) -> None:
        self.counter = Counter()

TRACKER = Tracker()
""",
        'TRACKER.counter.hit("x")',
        'TRACKER.counter.value("x")',
    ),
    "a_module_imported_in_the_node_s_body": write_then_read(
        "from store import CACHE",
        "import store as s\ns.CACHE['k'] = 1",
        "CACHE.get('k', 0)",
    ),
    "a_default_that_is_the_module_s_object": write_then_read(
        "BOX = {'n': 0}\n\ndef peek(box: dict[str, int] = BOX) -> int:\n    return box['n']",
        "BOX['n'] = 1",
        "peek()",
    ),
    "a_class_attribute_bound_to_it": write_then_read(
        "BOX = {'n': 0}\n\nclass Service:\n    store = BOX",
        "BOX['n'] = 1",
        "Service.store['n']",
    ),
    "an_item_a_project_generator_yields": write_then_read(
        MODELS + """
def each_model():
    for model in MODELS:
        yield model
""",
        "for model in each_model():\n    model.fit(7)",
        "MODELS[0].fitted",
    ),
    "an_item_a_project_function_returns_bound_to_a_local": write_then_read(
        MODELS + """
def latest() -> Model:
    return MODELS[-1]
""",
        "model = latest()\nmodel.fitted = 9",
        "MODELS[1].fitted",
    ),
    "a_tool_a_registration_decorator_keeps": """
from collections.abc import Callable

REGISTRY: dict[str, Callable[[str], str]] = {}
NOTES: dict[str, str] = {}

def tool(fn: Callable[[str], str]) -> Callable[[str], str]:
    REGISTRY[fn.__name__] = fn
    return fn

@tool
def remember(arg: str) -> str:
    NOTES["fact"] = arg
    return "ok"

@node
async def run_tool(name: str, arg: str) -> str:
    await asyncio.sleep(0.05)
    return REGISTRY[name](arg)

@node
async def read() -> str:
    return str(NOTES.get("fact"))

@flow
async def main() -> list[str]:
    return [await run_tool("remember", "sky"), await read()]
""",
    "a_callback_one_node_keeps_and_a_later_one_calls": """
from collections.abc import Callable

STATE: dict[str, str] = {}

def remember(e: str) -> None:
    STATE["last"] = e

class Bus:
    def __init__(self) -> None:
        self.handlers: list[Callable[[str], None]] = []

@node
async def subscribe(bus: Bus, handler: Callable[[str], None]) -> None:
    bus.handlers.append(handler)

@node
async def publish(bus: Bus, e: str) -> int:
    await asyncio.sleep(0.05)
    for handle in bus.handlers:
        handle(e)
    return len(bus.handlers)

@node
async def read() -> str:
    return str(STATE.get("last"))

@flow
async def main() -> list[str]:
    bus = Bus()
    await subscribe(bus, remember)
    n = await publish(bus, "hello")
    return [str(n), await read()]
""",
    "a_bound_method_held_in_a_local": """
NOTES: dict[str, str] = {}

class Tools:
    def save(self, arg: str) -> str:
        NOTES["saved"] = arg
        return "ok"

TOOLS = Tools()

@node
async def work(arg: str) -> str:
    await asyncio.sleep(0.05)
    act = TOOLS.save
    return act(arg)

@node
async def read() -> str:
    return str(NOTES.get("saved"))

@flow
async def main() -> list[str]:
    return [await work("v1"), await read()]
""",
    "a_memory_s_global_store_by_its_slot": """
from kiln import Memory

@node
async def write(m: Memory) -> None:
    await asyncio.sleep(0.05)
    m._global["flag"] = 3

@node
async def read(m: Memory) -> object:
    return m.get("flag")

@flow
async def main() -> object:
    memory = Memory()
    await write(memory.clone())
    return await read(memory.clone())
""",
    "the_class_of_a_typed_local_through_type": write_then_read(
        "class Config:\n    level = 0",
        "cfg = Config()\ntype(cfg).level = 1",
        "Config.level",
    ),
    "the_class_of_a_typed_local_through_dunder_class": write_then_read(
        "class Config:\n    level = 0",
        "cfg: Config = Config()\ncfg.__class__.level = 1",
        "Config.level",
    ),
    "the_random_module_s_one_generator": write_then_read(
        "import random\n\nrandom.seed(42)",
        "EVENTS.append(str(random.randint(0, 999)))",
        "random.randint(0, 999)",
    ),
    "the_random_module_s_generator_imported_by_name": write_then_read(
        "import random\nfrom random import choice\n\nrandom.seed(7)",
        "EVENTS.append(choice('abcdefgh'))",
        "ord(choice('abcdefgh'))",
    ),
    # Seeded under another name than `random.seed`: read from the import's
    # binding, not from text (trial finding: only `random.seed(` was seen).
    "the_random_module_imported_under_an_alias_and_seeded": write_then_read(
        "import random as rnd\n\nrnd.seed(42)",
        "EVENTS.append(str(rnd.randint(0, 999)))",
        "rnd.randint(0, 999)",
    ),
    "the_random_module_seeded_by_seed_imported_under_an_alias": write_then_read(
        "import random\nfrom random import seed as s\n\ns(42)",
        "EVENTS.append(str(random.randint(0, 999)))",
        "random.randint(0, 999)",
    ),
    "the_random_module_seeded_in_a_function_s_body": write_then_read(
        "import random\n\ndef setup() -> None:\n    from random import seed as reseed\n"
        "    reseed(3)\n\nsetup()",
        "EVENTS.append(str(random.random()))",
        "int(random.random() * 1000)",
    ),
    "the_random_module_seeded_through_a_module_level_alias": write_then_read(
        "import random\n\nreseed = random.seed\nreseed(5)",
        "EVENTS.append(str(random.random()))",
        "int(random.random() * 1000)",
    ),
    "a_bounded_deque_appended_to": write_then_read(
        "from collections import deque\n\nWINDOW: deque[str] = deque(maxlen=1)\n\n"
        "def snapshot() -> list[str]:\n    return list(WINDOW)",
        "WINDOW.append('old')",
        "WINDOW.append('new')",
    ),
    "a_local_bound_to_vars_of_an_object_folded_across_an_await": write_then_read(
        "class Usage:\n    def __init__(self) -> None:\n        self.tokens = 0\n\n"
        "USAGE = Usage()\n\nasync def fold(n: int) -> None:\n"
        "    d = vars(USAGE)\n    cur = d['tokens']\n    await asyncio.sleep(0.01)\n"
        "    d['tokens'] = cur + n",
        "await fold(1)",
        "USAGE.tokens",
    ),
    "the_module_s_own_entry_in_sys_modules": write_then_read(
        "import sys\n\nSTATUS = {'mode': 'normal'}",
        "me = sys.modules[__name__]\nme.STATUS = {'mode': 'degraded'}",
        "STATUS['mode']",
    ),
    "a_module_by_name_in_sys_modules": write_then_read(
        "import sys\nimport store",
        "sys.modules['store'].LOG.append(1)",
        "len(store.LOG)",
    ),
    "setattr_on_a_module_in_sys_modules": write_then_read(
        "import sys\nimport store",
        "setattr(sys.modules['store'], 'CACHE', {'k': 1})",
        "store.CACHE.get('k', 0)",
    ),
    "globals_by_name": write_then_read(
        "BOX = {'n': 0}", "BOX['n'] = 1", "int(globals()['BOX']['n'])"
    ),
    "another_module_s_name_for_it": write_then_read(
        "from store import CACHE\nimport store\n\nVIEW = store.CACHE",
        "CACHE['k'] = 1",
        "VIEW.get('k', 0)",
    ),
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_state_reached_by_another_name_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


OVERLAPPING = {
    "a_compiled_pattern": both_overlap(
        "import re\n\nWORD = re.compile(r'\\w+')",
        "WORD.findall(name)",
        "WORD.match(name)",
    ),
    "a_copy_made_to_be_changed": both_overlap(
        "DEFAULTS = {'accept': 'json'}",
        "headers = dict(DEFAULTS)\n    headers['auth'] = name",
        "headers = dict(DEFAULTS)\n    headers['auth'] = name",
    ),
    "an_installed_library_s_client": both_overlap(
        "import fakeclient\n\nCLIENT = fakeclient.Client()",
        "await CLIENT.get(name)",
        "await CLIENT.get(name)",
    ),
    "a_method_of_a_module_level_object_that_returns_a_new_list": """
class Database:
    def fetch(self, region: str) -> list[str]:
        return [region]

DB = Database()

@node
async def load(name: str) -> list[str]:
    EVENTS.append(f"start {name}")
    await asyncio.sleep(0.05)
    EVENTS.append(f"end {name}")
    return DB.fetch(name)

@flow
async def main() -> list[list[str]]:
    return [await load("a"), await load("b")]
""",
    "a_generator_of_the_node_s_own": both_overlap(
        "import random",
        "name = str(random.Random(1).random())",
        "name = str(random.Random(2).random())",
    ),
    "a_lock": both_overlap(
        "import threading\n\nLOCK = threading.Lock()",
        "LOCK.acquire()\n    LOCK.release()",
        "LOCK.acquire()\n    LOCK.release()",
    ),
}


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_uses_that_change_nothing_another_reads_still_overlap(
    case: str, tmp_path: Path
) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])


# Whether the project seeds a generator is read from what its calls name
# through their imports, in any module of the project kiln reads: numpy,
# which the tests do not install, is compiled only (kiln never imports it).
_DRAWS = """
import asyncio

from kiln import flow, node

{setup}


@node
async def first() -> int:
    await asyncio.sleep(0.01)
    return int({draw})


@node
async def second() -> int:
    return int({draw})


@flow
async def main() -> list[int]:
    return [await first(), await second()]
"""

SEEDED = {
    "numpy_under_an_alias": (
        "import numpy as np\n\nnp.random.seed(0)",
        "np.random.randint(0, 9)",
        {},
    ),
    "numpy_s_random_module_under_an_alias": (
        "from numpy import random as npr\n\nnpr.seed(0)",
        "npr.randint(0, 9)",
        {},
    ),
    "numpy_s_seed_imported_by_name": (
        "import numpy\nfrom numpy.random import seed as reseed\n\nreseed(0)",
        "numpy.random.randint(0, 9)",
        {},
    ),
    "random_seeded_by_another_module_of_the_project": (
        "import random\n\nimport seeding",
        "seeding.draw() + random.randint(0, 9)",
        {
            "seeding.py": "import random as rnd\n\nrnd.seed(1)\n\n\n"
            "def draw() -> int:\n    return rnd.randint(0, 9)\n"
        },
    ),
    "random_seeded_by_a_name_another_module_re_exports": (
        "import random\n\nfrom rng import reseed\n\nreseed(1)",
        "random.randint(0, 9)",
        {"rng.py": "from random import seed as reseed\n"},
    ),
}

UNSEEDED = {
    "a_seed_only_in_a_comment": (
        "import random\n\n# random.seed(1) would repeat a run's draws",
        "random.randint(0, 9)",
    ),
    "a_seed_only_in_a_string": (
        'import random\n\nHINT = "call random.seed(1) to repeat a run"',
        "random.randint(0, 9)",
    ),
    "the_seed_of_a_generator_of_the_module_s_own": (
        "import random\nfrom random import choice\n\nRNG = random.Random()\nRNG.seed(1)",
        "choice([1, 2, 3])",
    ),
    "the_seed_of_another_module_s_function_of_that_name": (
        "import random\nimport torch as random_seeder\n\nrandom_seeder.seed()",
        "random.randint(0, 9)",
    ),
}


def _draw_order(
    tmp_path: Path, setup: str, draw: str, others: dict[str, str]
) -> list[str]:
    """The KLN311 messages of a flow whose two nodes draw, the first waiting first."""
    for name, text in others.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    source = tmp_path / "flow.py"
    source.write_text(_DRAWS.format(setup=setup, draw=draw), encoding="utf-8")
    compilation = compile_file(source)
    assert compilation.output is not None, compilation.diagnostics
    return [d.message for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER]


@pytest.mark.parametrize("case", sorted(SEEDED))
def test_a_generator_seeded_under_any_name_keeps_the_draws_in_order(
    case: str, tmp_path: Path
) -> None:
    setup, draw, others = SEEDED[case]
    [message] = _draw_order(tmp_path, setup, draw, others)
    assert "'second' waits for 'first'" in message
    assert "random" in message


@pytest.mark.parametrize("case", sorted(UNSEEDED))
def test_text_that_only_looks_like_a_seed_leaves_the_draws_overlapping(
    case: str, tmp_path: Path
) -> None:
    setup, draw = UNSEEDED[case]
    assert _draw_order(tmp_path, setup, draw, {}) == []
