"""State changed through code the call names only indirectly.

An agent engineer's project (trial Q5) changed state through code no call in
the node names, and kiln read it as no change: a later node that read the
state ran at once and saw the old value, silently.

- a property's getter: `IDS.next_id` that counts (`self._n += 1`), on a
  module's object or on one the flow passes to two nodes;
- a class's attribute reached through its instance, in `__init__` too:
  `self.registry.append(name)` (a `ClassVar` list every instance shares),
  `type(self).count += 1`, `self.__class__.count += 1`;
- a module-level name for a method of module state or a partial bound to
  it: `emit = EVENTS.append`, `remember = partial(_set, STATE, "k")`,
  `set_user = USER.set` of a `ContextVar` (whose set a task's copy of the
  context would lose for good, not only reorder), or another module's such
  name (`from store import record`);
- a node's `fallback`, which runs as part of a call that failed;
- the methods Python calls for code that names none: `STORE[k]`
  (`__getitem__`, a dict subclass's `__missing__`), `len(STORE)`, `k in
  STORE`, `for k in STORE`, `next(IDS)`, and any of them on a local alias
  (`s = STORE; s[k] = v`) or a `global` name (`BOX += [x]`), trial Q8;
- a class's `__new__` (a singleton that logs what it creates), which making
  the object runs;
- a dataclass field's `default_factory` (`lambda: next(_IDS)`, a function,
  `_IDS.__next__`), which making the object runs (trial Q8);
- a function the module defines again below (a call runs the last `def`);
- a handler whoever holds it calls: a lambda kept on a bus, a list's
  `append` kept in a hook list or another module's table (trial Q8);
- a decorator factory given module state (`@audited(AUDIT)`, whose wrapper
  appends to the factory's `sink`; `@partial(audit_into, AUDIT)`; `@limited`
  of `limited = audited(AUDIT)`, on several nodes), or a module-level call
  of a factory
  given it (`put = make_putter(STATE)`);
- a method of an object kiln cannot type as one class: through a
  `Protocol`-typed name (`tool: Runner = get_tool()`), a class held in a
  variable (`cls = Save; cls().run(x)`), an item of a list of classes. It
  may be any project class's method of that name;

Each case runs its source and its compiled flow in fresh interpreters
(tests/test_state_reach_order.py) and compares their results.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from tests.test_differential import compiled_and_source
from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
    both_overlap,
    write_then_read,
)

# The reader returns its value's repr: a new value, no module state's.
_case = partial(write_then_read, fresh=True)


ID_GENERATOR = """
class IdGen:
    def __init__(self) -> None:
        self._n = 0

    @property
    def next_id(self) -> int:
        self._n += 1
        return self._n

IDS = IdGen()
"""

AGENT = """
import functools

class Agent:
    def __init__(self) -> None:
        self.turns = 0
        self.seen: list[int] = []

    @property
    def turn(self) -> int:
        self.turns += 1
        self.seen.append(self.turns)
        return self.turns

    @functools.cached_property
    def first(self) -> int:
        self.seen.append(-1)
        return len(self.seen)
"""

REGISTERED = """
from typing import ClassVar

class Agent:
    registry: ClassVar[list[str]] = []
    count: ClassVar[int] = 0
    made = 0

    def __init__(self, name: str) -> None:
        self.name = name
        {init}

    def again(self) -> None:
        {again}
"""


def _registered(init: str, again: str = "pass") -> str:
    return REGISTERED.format(init=init, again=again)


HOOKS = """
import contextvars
import functools
from collections.abc import Callable

STATE: dict[str, str] = {}
USER: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="none")

def _set(d: dict[str, str], k: str, v: str) -> None:
    d[k] = v

def _note(sink: list[str], e: str) -> None:
    sink.append(e)

emit = EVENTS.append
typed_emit: Callable[[str], None] = EVENTS.append
remember = functools.partial(_set, STATE, "k")
remember_by_name = functools.partial(_set, k="k", d=STATE)
note = functools.partial(_note, EVENTS)
put = functools.partial(STATE.__setitem__, "k")
set_user = USER.set
lookup = STATE.get
"""

TOOLS = """
from typing import Protocol

NOTES: dict[str, str] = {}

class Runner(Protocol):
    def run(self, arg: str) -> str: ...

class Save:
    def run(self, arg: str) -> str:
        NOTES["saved"] = arg
        return "ok"

class Greeter:
    def greet(self, name: str) -> str:
        return "hello " + name

def get_tool() -> Runner:
    return Save()
"""


DRAWN = """
import itertools
from dataclasses import dataclass, field

_IDS = itertools.count(1)

def new_id() -> int:
    return next(_IDS)

@dataclass
class Message:
    text: str
    id: int = field(default_factory={factory})
"""


DUNDERS = """
LOG: list[str] = []

class Store:
    def __init__(self) -> None:
        self.data = {"k": "v"}

    def __getitem__(self, key: str) -> str:
        LOG.append("get")
        return self.data[key]

    def __setitem__(self, key: str, value: str) -> None:
        LOG.append("set")
        self.data[key] = value

    def __len__(self) -> int:
        LOG.append("len")
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        LOG.append("in")
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        LOG.append("iter")
        return iter(list(self.data))

class Threads(dict[str, list[str]]):
    def __missing__(self, key: str) -> list[str]:
        LOG.append("missing")
        self[key] = []
        return self[key]

class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __next__(self) -> int:
        LOG.append("next")
        self.n += 1
        return self.n

class Box:
    def __init__(self) -> None:
        self.items: list[str] = []

    def __iadd__(self, other: list[str]) -> "Box":
        LOG.append("iadd")
        self.items += other
        return self

STORE = Store()
THREADS = Threads()
IDS = Ids()
BOX = Box()
"""


def _dunder(write: str) -> str:
    return _case("from collections.abc import Iterator\n" + DUNDERS, write, "len(LOG)")


def _passed(getter: str) -> str:
    """A flow's own object, passed to a node that reads a property and to a
    later one that reads what the getter changed."""
    return f"""
{AGENT}

@node
async def take(a: Agent) -> int:
    await asyncio.sleep(0.05)
    return a.{getter}

@node
async def history(a: Agent) -> list[int]:
    return list(a.seen)

@flow
async def main() -> object:
    agent = Agent()
    return [await take(agent), await history(agent)]
"""


ORDERED = {
    "a_property_getter_of_a_module_s_object": _case(
        ID_GENERATOR, "EVENTS.append(f'id {IDS.next_id}')", "IDS._n"
    ),
    "a_property_getter_in_an_expression": _case(
        ID_GENERATOR, "EVENTS.append(str(IDS.next_id + 1))", "IDS._n"
    ),
    "a_property_getter_of_an_object_the_flow_passes": _passed("turn"),
    "a_cached_property_of_an_object_the_flow_passes": _passed("first"),
    "a_module_name_for_a_list_s_append": _case(HOOKS, "emit('x')", "len(EVENTS)"),
    "an_annotated_module_name_for_a_list_s_append": _case(
        HOOKS, "typed_emit('x')", "len(EVENTS)"
    ),
    "another_module_s_name_for_a_list_s_append": _case(
        "import store\nfrom store import record", "record(1)", "len(store.LOG)"
    ),
    "a_partial_of_a_project_function_given_state": _case(
        HOOKS, "remember('x')", "STATE.get('k')"
    ),
    "a_partial_given_state_by_keyword": _case(
        HOOKS, "remember_by_name(v='x')", "STATE.get('k')"
    ),
    "a_partial_given_a_module_list": _case(HOOKS, "note('x')", "len(EVENTS)"),
    "a_partial_of_a_method_of_state": _case(HOOKS, "put('x')", "STATE.get('k')"),
    "a_module_name_for_a_context_variable_s_set": _case(
        HOOKS, "set_user('ann')", "USER.get()"
    ),
    "a_method_through_a_protocol_typed_name": _case(
        TOOLS, "tool: Runner = get_tool()\ntool.run('x')", "NOTES.get('saved')"
    ),
    "a_method_of_a_class_held_in_a_variable": _case(
        TOOLS, "cls = Save\ncls().run('x')", "NOTES.get('saved')"
    ),
    "a_method_of_a_class_in_a_list": _case(
        TOOLS, "[Save][0]().run('x')", "NOTES.get('saved')"
    ),
    "a_lambda_handler_kept_on_a_bus": _case(
        "from typing import Any\n\nSTATUS = {'phase': 'idle'}\nSUBS: list[Any] = []\n\n"
        "def subscribe(fn: Any) -> None:\n    SUBS.append(fn)\n\n"
        "subscribe(lambda p: STATUS.__setitem__('phase', p))",
        "for handler in SUBS:\n    handler('planned')",
        "STATUS['phase']",
    ),
    "a_list_s_append_kept_in_a_hook_list": _case(
        "from typing import Any\n\nSEEN: list[str] = []\nSINKS: list[Any] = []\n"
        "SINKS.append(SEEN.append)",
        "SINKS[0]('x')",
        "len(SEEN)",
    ),
    "a_list_s_append_in_another_module_s_table": _case(
        "import store", "store.HOOKS['log'](1)", "len(store.LOG)"
    ),
    "a_function_defined_again_below": _case(
        "STATE: dict[str, int] = {}\n\ndef helper() -> None:\n    pass\n\n"
        "def helper() -> None:  # the last binding: what a call runs\n"
        "    STATE['k'] = 1",
        "helper()",
        "STATE.get('k', 0)",
    ),
    "a_dataclass_field_s_factory_draws_an_id": _case(
        DRAWN.format(factory="lambda: next(_IDS)"), "Message('a')", "next(_IDS)"
    ),
    "a_dataclass_field_s_factory_a_function": _case(
        DRAWN.format(factory="new_id"), "Message('a')", "next(_IDS)"
    ),
    "a_dataclass_field_s_factory_a_bound_method": _case(
        DRAWN.format(factory="_IDS.__next__"), "Message('a')", "next(_IDS)"
    ),
    "an_item_read_runs_getitem": _dunder("STORE['k']"),
    "len_runs_len": _dunder("len(STORE)"),
    "in_runs_contains": _dunder("'k' in STORE"),
    "a_loop_runs_iter": _dunder("for key in STORE:\n    pass"),
    "a_miss_runs_a_dict_subclass_s_missing": _dunder("THREADS['u1'].append('hi')"),
    "next_runs_next": _dunder("next(IDS)"),
    "a_store_through_a_local_alias_runs_setitem": _dunder("s = STORE\ns['k'] = 'w'"),
    "an_in_place_add_to_a_global_runs_iadd": _dunder("global BOX\nBOX += ['x']"),
    "making_an_object_runs_its_new": _case(
        "from typing import ClassVar\n\nCREATED: list[str] = []\n\n"
        "class Client:\n    _instance: ClassVar['Client | None'] = None\n\n"
        "    def __new__(cls) -> 'Client':\n        if cls._instance is None:\n"
        "            CREATED.append('client')\n"
        "            cls._instance = super().__new__(cls)\n        return cls._instance",
        "Client()",
        "list(CREATED)",
    ),
    "a_class_list_appended_through_self_in_init": _case(
        _registered("self.registry.append(name)"),
        "Agent('x')",
        "list(Agent.registry)",
    ),
    "a_class_count_through_type_of_self_in_init": _case(
        _registered("type(self).count += 1"), "Agent('x')", "Agent.count"
    ),
    "a_class_count_through_dunder_class_in_init": _case(
        _registered("self.__class__.made += 1"), "Agent('x')", "Agent.made"
    ),
    "a_class_list_appended_through_self_in_a_method": _case(
        _registered("pass", "self.registry.append(self.name)"),
        "Agent('x').again()",
        "list(Agent.registry)",
    ),
}


FACTORIES = """
import functools
from collections.abc import Awaitable, Callable

AUDIT: list[str] = []
STATE: dict[str, str] = {}
Step = Callable[[], Awaitable[None]]

def audit_into(sink: list[str], fn: Step) -> Step:
    async def wrapper() -> None:
        await fn()
        sink.append("ran")
    return wrapper

def audited(sink: list[str]) -> Callable[[Step], Step]:
    def deco(fn: Step) -> Step:
        async def wrapper() -> None:
            await fn()
            sink.append("ran")
        return wrapper
    return deco

def make_putter(store: dict[str, str]) -> Callable[[str], None]:
    def put(value: str) -> None:
        store["k"] = value
    return put

put = make_putter(STATE)
limited = audited(AUDIT)  # one decorator, made once, for several functions
"""


def _decorated(decorator: str, reader: str, wrapped: int = 1) -> str:
    """`wrapped` nodes the decorator wraps, called in turn, then a reader."""
    nodes = "".join(
        f"@node\n@{decorator}\nasync def write_{n}() -> None:\n"
        f"    await asyncio.sleep(0.05 / {n})\n\n"
        for n in range(1, wrapped + 1)
    )
    calls = "".join(f"    await write_{n}()\n" for n in range(1, wrapped + 1))
    return f"""
{FACTORIES}

{nodes}
@node
async def read() -> str:
    return repr({reader})

@flow
async def main() -> str:
{calls}    return await read()
"""


ORDERED |= {
    "a_decorator_factory_given_module_state": _decorated(
        "audited(AUDIT)", "len(AUDIT)"
    ),
    "a_decorator_factory_given_module_state_by_keyword": _decorated(
        "audited(sink=AUDIT)", "len(AUDIT)"
    ),
    "a_decorator_a_factory_made_once_and_named": _decorated(
        "limited", "len(AUDIT)", wrapped=2
    ),
    "a_partial_decorator_given_module_state": _decorated(
        "functools.partial(audit_into, AUDIT)", "len(AUDIT)"
    ),
    "a_function_a_factory_made_at_module_level_given_state": _case(
        FACTORIES, "put('x')", "STATE.get('k')"
    ),
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_state_changed_through_indirect_code_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


READ_ONLY_PROPERTY = """
class Settings:
    def __init__(self) -> None:
        self.base = "https://example.com"

    @property
    def url(self) -> str:
        return self.base + "/v1"

SETTINGS = Settings()
"""

OVERLAPPING = {
    "a_method_of_an_untyped_object_whose_classes_only_read": both_overlap(
        TOOLS, "name = [Greeter][0]().greet(name)", "name = [Greeter][0]().greet(name)"
    ),
    "a_module_name_for_a_read_only_method": both_overlap(
        HOOKS, "name = lookup(name, name)", "name = lookup(name, name)"
    ),
    "a_property_getter_that_only_reads": both_overlap(
        READ_ONLY_PROPERTY, "name = SETTINGS.url + name", "name = SETTINGS.url + name"
    ),
}


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_indirect_code_that_only_reads_still_overlaps(
    case: str, tmp_path: Path
) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])


FALLBACKS = """
import asyncio

from kiln import flow, node

STATE: dict[str, str] = {}


def degrade(prompt: str, error: Exception) -> str:
    STATE["mode"] = "degraded"
    return "canned answer"


def note_failure(log: list[str], error: Exception) -> str:
    log.append("fell back")
    return "none"


@node(fallback=degrade, timeout=0.05)
async def llm(prompt: str) -> str:
    await asyncio.sleep(1)
    return prompt.upper()


@node(fallback=note_failure, timeout=0.05)
async def search(log: list[str]) -> str:
    await asyncio.sleep(1)
    return "found"


@node
async def mode(tag: str) -> str:
    return f"{tag}:{STATE.get('mode', 'normal')}"


@node
async def size(log: list[str]) -> int:
    return len(log)


@flow
async def main() -> list[object]:
    log: list[str] = []
    answer = await llm("hi")
    current = await mode("m")
    found = await search(log)
    return [answer, current, found, await size(log)]
"""


def test_a_fallback_s_effects_are_its_node_s(tmp_path: Path) -> None:
    """A call that times out runs its fallback, which may change module state or
    what the call was given: a later node that reads either waits for it. The
    source, run as plain Python, has no timeout: the compiled flow is compared
    with what its fallbacks make it."""
    compiled, _ = compiled_and_source(FALLBACKS, tmp_path)
    assert compiled.main() == ["canned answer", "m:degraded", "none", 1]
