"""Methods of the project's own classes are read, as its functions are.

kiln once read a class's own `__init__` and nothing else of it: every other
method of a project class was "a method kiln cannot see into", so two nodes
that only called a read-only method ran one after the other (KLN311), while
an inherited `__init__`, a dataclass's `__post_init__`, a node's `return
Team(a)` and a method changing module state went unseen, and the compiled
flow computed something else. A value handed into module state (`REG.append(a)`)
is the flow's business from then on: a node that reaches module state may
change it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent

import pytest

from tests.test_differential import compiled_and_source
from tests.test_effects import warnings_of

CLASSES = """
import asyncio
from dataclasses import dataclass, field
from kiln import flow, node

HISTORY: list[str] = []
REG: list["Agent"] = []


class Agent:
    count = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.n = 0
        self.items: list[str] = []

    def describe(self) -> str:
        return "agent " + self.name

    def add(self, x: str) -> None:
        self.items.append(x)

    def fill(self, into: list[str]) -> None:
        into.append(self.name)

    def record(self, what: str) -> None:
        HISTORY.append(self.name + ":" + what)

    @staticmethod
    def helper(x: int) -> int:
        return x + 1

    @staticmethod
    def push(into: list[str]) -> None:
        into.append("pushed")

    @classmethod
    def make(cls, name: str) -> "Agent":
        return cls(name)


class Sub(Agent):
    def add(self, x: str) -> None:
        super().add(x + "!")

    def shout(self) -> str:
        return super().describe().upper()


class Team:
    def __init__(self, lead: Agent) -> None:
        self.lead = lead


class Base:
    def __init__(self, name: str, roster: list[str]) -> None:
        self.name = name
        roster.append(name)


class Worker(Base):
    pass


@dataclass
class Member:
    name: str
    roster: list[str]
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.roster.append(self.name)
"""


DIFFERENTIAL = {
    "method_changes_self": """
        @node
        async def bump(a: Agent) -> None:
            await asyncio.sleep(0.02)
            a.add("x")

        @node
        async def size(a: Agent) -> int:
            return len(a.items)

        @flow
        async def entry() -> int:
            a = Agent("a")
            await bump(a)
            return await size(a)
    """,
    "inherited_method_through_super": """
        @node
        async def bump(a: Sub) -> None:
            await asyncio.sleep(0.02)
            a.add("x")

        @node
        async def size(a: Sub) -> int:
            return len(a.items)

        @flow
        async def entry() -> int:
            a = Sub("a")
            await bump(a)
            return await size(a)
    """,
    "method_changes_an_argument": """
        @node
        async def give(a: Agent, out: list[str]) -> None:
            await asyncio.sleep(0.02)
            a.fill(out)

        @node
        async def size(out: list[str]) -> int:
            return len(out)

        @flow
        async def entry() -> int:
            out: list[str] = []
            await give(Agent("a"), out)
            return await size(out)
    """,
    "staticmethod_changes_its_argument": """
        @node
        async def give(out: list[str]) -> None:
            await asyncio.sleep(0.02)
            Agent.push(out)

        @node
        async def size(out: list[str]) -> int:
            return len(out)

        @flow
        async def entry() -> int:
            out: list[str] = []
            await give(out)
            return await size(out)
    """,
    "loop_target_method": """
        @node
        async def bump_all(team: list[Agent]) -> None:
            await asyncio.sleep(0.02)
            for a in team:
                a.add("x")

        @node
        async def size(team: list[Agent]) -> int:
            return sum(len(a.items) for a in team)

        @flow
        async def entry() -> int:
            team = [Agent("a"), Agent("b")]
            await bump_all(team)
            return await size(team)
    """,
    "flow_method_changes_module_state": """
        @node
        async def first() -> str:
            await asyncio.sleep(0.02)
            return "x"

        @node
        async def count_history() -> int:
            return len(HISTORY)

        @flow
        async def entry() -> tuple[str, int]:
            HISTORY.clear()
            agent = Agent("a")
            x = await first()
            agent.record(x)
            n = await count_history()
            return x, n
    """,
    "constructor_in_a_node_return": """
        @node
        async def wrap(a: Agent) -> Team:
            return Team(a)

        @node
        async def rally(t: Team) -> None:
            await asyncio.sleep(0.02)
            t.lead.n += 1

        @node
        async def read(a: Agent) -> int:
            return a.n

        @flow
        async def entry() -> int:
            a = Agent("a")
            t = await wrap(a)
            await rally(t)
            return await read(a)
    """,
    "inherited_init_in_the_flow": """
        @node
        async def first() -> str:
            await asyncio.sleep(0.02)
            return "ann"

        @node
        async def count(roster: list[str]) -> int:
            return len(roster)

        @flow
        async def entry() -> int:
            r: list[str] = []
            n = await first()
            Worker(n, r)
            return await count(r)
    """,
    "inherited_init_in_a_node": """
        @node
        async def hire(roster: list[str], name: str) -> None:
            await asyncio.sleep(0.02)
            Worker(name, roster)

        @node
        async def count(roster: list[str]) -> int:
            return len(roster)

        @flow
        async def entry() -> int:
            r: list[str] = []
            await hire(r, "x")
            return await count(r)
    """,
    "dataclass_post_init_in_the_flow": """
        @node
        async def first() -> str:
            await asyncio.sleep(0.02)
            return "ann"

        @node
        async def count(roster: list[str]) -> int:
            return len(roster)

        @flow
        async def entry() -> int:
            r: list[str] = []
            n = await first()
            Member(n, r)
            return await count(r)
    """,
    "dataclass_post_init_in_a_node": """
        @node
        async def join(roster: list[str], name: str) -> None:
            await asyncio.sleep(0.02)
            Member(name, roster)

        @node
        async def count(roster: list[str]) -> int:
            return len(roster)

        @flow
        async def entry() -> int:
            r: list[str] = []
            await join(r, "y")
            return await count(r)
    """,
    "registry_escape_through_a_node": """
        @node
        async def register(a: Agent) -> None:
            REG.append(a)

        @node
        async def boost() -> None:
            await asyncio.sleep(0.02)
            for a in REG:
                a.n += 1

        @node
        async def read(a: Agent) -> int:
            return a.n

        @flow
        async def entry() -> tuple[int, int]:
            REG.clear()
            a = Agent("a")
            await register(a)
            await boost()
            r = await read(a)
            inline = a.n
            return r, inline
    """,
    "registry_escape_in_the_flow": """
        @node
        async def boost() -> None:
            await asyncio.sleep(0.02)
            for a in REG:
                a.n += 1

        @node
        async def read(a: Agent) -> int:
            return a.n

        @flow
        async def entry() -> tuple[int, int]:
            REG.clear()
            a = Agent("a")
            REG.append(a)
            await boost()
            r = await read(a)
            return r, a.n
    """,
    "registry_escape_through_a_method": """
        class Registry:
            def keep(self, a: Agent) -> None:
                REG.append(a)

        @node
        async def register(r: Registry, a: Agent) -> None:
            r.keep(a)

        @node
        async def boost() -> None:
            await asyncio.sleep(0.02)
            for a in REG:
                a.n += 1

        @node
        async def read(a: Agent) -> int:
            return a.n

        @flow
        async def entry() -> int:
            REG.clear()
            a = Agent("a")
            await register(Registry(), a)
            await boost()
            return await read(a)
    """,
    # A node's result that is module state's (trial F): the flow's changes to
    # it and the nodes that reach module state keep the source's order.
    "a_result_held_in_a_module_dict": """
        HISTORIES: dict[str, list[str]] = {}

        @node
        async def load(user: str) -> list[str]:
            await asyncio.sleep(0.02)
            return HISTORIES.setdefault(user, [])

        @node
        async def dump() -> str:
            return str(HISTORIES)

        @flow
        async def entry() -> str:
            HISTORIES.clear()
            history = await load("u")
            history.append("hello")
            return await dump()
    """,
    "a_result_read_from_a_module_dict_through_a_local": """
        BUCKETS: dict[str, list[int]] = {"k": []}

        @node
        async def bucket(key: str) -> list[int]:
            await asyncio.sleep(0.02)
            found = BUCKETS[key]
            return found

        @node
        async def fill_all() -> int:
            for b in BUCKETS.values():
                b.append(1)
            return len(BUCKETS)

        @node
        async def size(b: list[int]) -> int:
            return len(b)

        @flow
        async def entry() -> int:
            BUCKETS["k"] = []
            b = await bucket("k")
            n = await fill_all()
            return n * 10 + await size(b)
    """,
    "an_object_whose_constructor_stores_itself_made_in_the_flow": """
        EVERYONE: list["Subscriber"] = []

        class Subscriber:
            def __init__(self, name: str) -> None:
                self.inbox: list[str] = []
                EVERYONE.append(self)

        @node
        async def broadcast(message: str) -> int:
            await asyncio.sleep(0.02)
            for member in EVERYONE:
                member.inbox.append(message)
            return len(EVERYONE)

        @node
        async def inbox(m: Subscriber) -> str:
            return ",".join(m.inbox)

        @flow
        async def entry() -> str:
            EVERYONE.clear()
            member = Subscriber("x")
            n = await broadcast("hi")
            return f"{n} {await inbox(member)}"
    """,
    "an_object_whose_post_init_stores_itself_made_by_a_node": """
        KNOWN: list["Card"] = []

        @dataclass
        class Card:
            name: str
            marks: list[str] = field(default_factory=list)

            def __post_init__(self) -> None:
                KNOWN.append(self)

        @node
        async def make(name: str) -> Card:
            await asyncio.sleep(0.02)
            return Card(name)

        @node
        async def mark_all() -> None:
            for card in KNOWN:
                card.marks.append("seen")

        @node
        async def marks(c: Card) -> int:
            return len(c.marks)

        @flow
        async def entry() -> int:
            KNOWN.clear()
            card = await make("a")
            await mark_all()
            return await marks(card)
    """,
    "a_result_the_node_stored_in_module_state": """
        SESSIONS: dict[str, Agent] = {}

        @node
        async def open_session(name: str) -> Agent:
            await asyncio.sleep(0.02)
            session = Agent(name)
            SESSIONS[name] = session
            return session

        @node
        async def expire_all() -> None:
            for s in SESSIONS.values():
                s.n = -1

        @node
        async def read(a: Agent) -> int:
            return a.n

        @flow
        async def entry() -> int:
            SESSIONS.clear()
            s = await open_session("a")
            await expire_all()
            return await read(s)
    """,
}


@pytest.mark.parametrize("case", sorted(DIFFERENTIAL))
def test_compiled_computes_what_the_source_does(case: str, tmp_path: Path) -> None:
    source = CLASSES + dedent(DIFFERENTIAL[case])
    compiled, plain = compiled_and_source(source, tmp_path)
    expected = asyncio.run(plain.entry())
    for _ in range(3):
        assert asyncio.run(compiled.entry.aforward()) == expected


READ_ONLY = {
    "annotation": ("a: Agent", "a.describe()", "Agent('x')"),
    "inherited": ("a: Sub", "a.describe()", "Sub('x')"),
    "super": ("a: Sub", "a.shout()", "Sub('x')"),
    "staticmethod_on_the_class": ("a: Agent", "str(Agent.helper(a.n))", "Agent('x')"),
    "staticmethod_on_the_value": ("a: Agent", "str(a.helper(a.n))", "Agent('x')"),
    "classmethod": ("a: Agent", "Agent.make(a.name).describe()", "Agent('x')"),
    "loop_target": (
        "team: list[Agent]",
        "[b.describe() for b in team][0]",
        "[Agent('x')]",
    ),
    "constructed_in_the_node": ("a: Agent", "Agent(a.name).describe()", "Agent('x')"),
}


@pytest.mark.parametrize("case", sorted(READ_ONLY))
def test_read_only_methods_cost_no_overlap(case: str, tmp_path: Path) -> None:
    param, expression, made = READ_ONLY[case]
    name = param.partition(":")[0]
    source = CLASSES + dedent(f"""
        @node
        async def plan({param}) -> str:
            await asyncio.sleep(0.01)
            return "plan " + {expression}

        @node
        async def critique({param}) -> str:
            await asyncio.sleep(0.01)
            return "critique " + {expression}

        @flow
        async def entry() -> tuple[str, str]:
            {name} = {made}
            p = await plan({name})
            c = await critique({name})
            return p, c
    """)
    assert warnings_of(source, tmp_path) == []


def test_a_flow_statement_calling_a_read_only_method_costs_nothing(
    tmp_path: Path,
) -> None:
    source = CLASSES + dedent("""
        @node
        async def plan(a: Agent) -> str:
            await asyncio.sleep(0.01)
            return a.describe()

        @flow
        async def entry() -> tuple[str, str, str]:
            a = Agent("x")
            p = await plan(a)
            d = a.describe()
            c = await plan(a)
            return p, d, c
    """)
    assert warnings_of(source, tmp_path) == []


UNREADABLE = {
    "a base kiln cannot read": """
        import threading

        class Local(threading.local):
            def describe(self) -> str:
                return "x"

        class Agent2(Local):
            pass
    """,
    "a stub": """
        class Agent2:
            def describe(self) -> str:
                raise NotImplementedError
    """,
    "a decorated method": """
        import functools

        class Agent2:
            @functools.lru_cache
            def describe(self) -> str:
                return "x"
    """,
}


@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_a_method_kiln_cannot_read_still_orders(case: str, tmp_path: Path) -> None:
    source = CLASSES + dedent(UNREADABLE[case]) + dedent("""
        @node
        async def plan(a: Agent2) -> str:
            return a.describe()

        @flow
        async def entry() -> tuple[str, str]:
            a = Agent2()
            return await plan(a), await plan(a)
    """)
    assert [m for _, m in warnings_of(source, tmp_path)], case


def test_the_reason_names_what_the_waiting_step_is_given(tmp_path: Path) -> None:
    source = """
        import asyncio
        from typing import Callable
        from kiln import flow, node

        class Notebook:
            def __init__(self) -> None:
                self.notes: list[str] = []
            def remember(self, x: str) -> str:
                self.notes.append(x)
                return x

        @node
        async def call_tool(tools: dict[str, Callable[[str], str]], arg: str) -> str:
            return tools["remember"](arg)

        @node
        async def dump(nb: Notebook) -> list[str]:
            return list(nb.notes)

        @flow
        async def entry() -> tuple[str, list[str]]:
            nb = Notebook()
            tools = {"remember": nb.remember}
            a = await call_tool(tools, "milk")
            d1 = await dump(nb)
            return a, d1
    """
    [(_, message)] = warnings_of(source, tmp_path)
    assert "'nb'" in message, message
    assert "'d1'" not in message, message


def test_the_reason_names_the_value_the_earlier_step_changes(tmp_path: Path) -> None:
    source = CLASSES + dedent("""
        class Store:
            def __init__(self) -> None:
                self.docs: dict[str, str] = {}
            def put(self, k: str) -> None:
                self.docs[k] = k

        @node
        async def ingest(store: Store, k: str) -> None:
            store.put(k)

        @node
        async def answer(store: Store, a: Agent) -> int:
            a.add("q")
            return len(store.docs)

        @flow
        async def entry() -> int:
            store = Store()
            a = Agent("x")
            await ingest(store, "d1")
            return await answer(store, a)
    """)
    [(_, message)] = warnings_of(source, tmp_path)
    assert "'ingest' may change 'store'" in message, message


def test_an_escape_says_where_the_value_went(tmp_path: Path) -> None:
    source = CLASSES + dedent(DIFFERENTIAL["registry_escape_through_a_node"])
    messages = [m for _, m in warnings_of(source, tmp_path)]
    assert any("reaches module state" in m and "'a'" in m for m in messages), messages
