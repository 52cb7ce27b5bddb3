"""Module state a node reaches without naming it in a call kiln reads directly.

A new user's trial (trial K) wrote 89 flows the way LangGraph and Prefect
users do; 15 gave another result than their source, silently, each the same
shape: node A changes module state through a path kiln did not follow, so
node B, which reads it, ran while A was still running. The paths:

- a project function handed on: `asyncio.to_thread(save, x)`,
  `loop.run_in_executor(None, record, x)`, `map(record, xs)`, a node's
  argument (`await call_with(record, "p")`);
- a call through a module-level name: `HOOK = on_start`, a
  `functools.partial`, a lambda, a bound method (`BOUND = AGENTS["a"].run`),
  a dispatch table (`HANDLERS[kind](x)`);
- a method of an object held in a module-level container
  (`AGENTS: dict[str, Agent]`, `AGENTS["a"].run(x)`);
- a classmethod singleton (`Registry.get().add(x)`, `return cls._inst`);
- a subclass's override of the method a node calls on its parameter, typed
  as the base (`agent: BaseAgent`, passed a `LoggingAgent`);
- a library method that changes its argument (`random.Random(7).shuffle(DECK)`);
- the process's environment (`os.environ[k] = v`, then `os.getenv(k)`);
- two names bound from one value (`a, b = await pair()`, one list twice);
- a class attribute every instance shares (`history: list[str] = []`),
  changed through one instance and read through another (trial L);
- module state imported from another module, changed by its container
  methods (`from store import LOG; LOG.clear()`, `store.CACHE.update(...)`),
  and state reached by name (`getattr(Config, "items")`, `vars(store)["CACHE"]`,
  `store.__dict__["LOG"]`, `globals()["LAST"]`) (trial M).

Each case runs its source and its compiled flow in fresh interpreters and
compares the result and the state left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
)

# Each case's `first` changes what `second` reads, through one of the paths; the
# first waits longer, so a lost order shows in every run.
ORDERED = {
    "a_function_run_in_a_thread": """
        SAVED: list[str] = []

        def save(x: str) -> None:
            SAVED.append(x)

        @node
        async def first() -> None:
            await asyncio.sleep(0.05)
            await asyncio.to_thread(save, "row")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, save, "again")

        @node
        async def second() -> int:
            return len(SAVED)

        @flow
        async def main() -> int:
            await first()
            return await second()
    """,
    "a_function_handed_to_a_node_and_to_map": """
        from collections.abc import Callable

        LOG: list[str] = []

        def record(x: str) -> None:
            LOG.append(x)

        @node
        async def call_with(fn: Callable[[str], None], x: str) -> None:
            await asyncio.sleep(0.05)
            fn(x)
            list(map(fn, ["m", "n"]))

        @node
        async def second() -> int:
            return len(LOG)

        @flow
        async def main() -> int:
            await call_with(record, "p")
            return await second()
    """,
    "calls_through_module_level_names": """
        import functools
        from collections.abc import Callable

        EVENTS: list[str] = []

        def on_start(x: str) -> None:
            EVENTS.append(x)

        class Agent:
            def __init__(self) -> None:
                self.seen: list[str] = []

            def run(self, x: str) -> None:
                self.seen.append(x)

        HOOK: Callable[[str], None] = on_start
        PARTIAL = functools.partial(on_start, "p")
        RECORD = lambda x: EVENTS.append(x)  # noqa: E731
        HANDLERS = {"start": on_start}
        AGENTS: dict[str, Agent] = {"a": Agent()}
        BOUND = AGENTS["a"].run

        @node
        async def first() -> None:
            await asyncio.sleep(0.05)
            HOOK("h")
            PARTIAL()
            RECORD("l")
            HANDLERS["start"]("d")
            AGENTS["a"].run("a")
            BOUND("b")

        @node
        async def second() -> str:
            return ",".join(EVENTS) + "|" + ",".join(AGENTS["a"].seen)

        @flow
        async def main() -> str:
            await first()
            return await second()
    """,
    "a_classmethod_singleton": """
        class Registry:
            _instance: "Registry | None" = None

            def __init__(self) -> None:
                self.items: list[str] = []

            @classmethod
            def get(cls) -> "Registry":
                if cls._instance is None:
                    cls._instance = cls()
                return cls._instance

            def add(self, x: str) -> None:
                self.items.append(x)

        @node
        async def first() -> None:
            await asyncio.sleep(0.05)
            Registry.get().add("r")

        @node
        async def second() -> int:
            return len(Registry.get().items)

        @flow
        async def main() -> int:
            await first()
            return await second()
    """,
    "a_library_method_that_changes_its_argument": """
        import random

        DECK: list[int] = [0, 1, 2, 3, 4, 5, 6, 7]

        @node
        async def first() -> None:
            await asyncio.sleep(0.05)
            random.Random(7).shuffle(DECK)

        @node
        async def second() -> int:
            return DECK[0]

        @flow
        async def main() -> int:
            await first()
            return await second()

        def snapshot() -> object:
            return DECK
    """,
    "the_process_environment": """
        import os

        @node
        async def first() -> None:
            await asyncio.sleep(0.05)
            os.environ["KILN_TRIAL_KEY"] = "secret"

        @node
        async def second() -> str:
            return os.environ.get("KILN_TRIAL_KEY", "") + "/" + str(os.getenv("KILN_TRIAL_KEY"))

        @flow
        async def main() -> str:
            await first()
            return await second()
    """,
    "an_override_in_a_subclass_of_the_annotated_class": """
        AUDIT: list[str] = []

        class BaseAgent:
            def run(self, x: str) -> str:
                return x

        class LoggingAgent(BaseAgent):
            def run(self, x: str) -> str:
                AUDIT.append(x)
                return x

        @node
        async def first(agent: BaseAgent) -> str:
            await asyncio.sleep(0.05)
            return agent.run("x")

        @node
        async def second() -> int:
            return len(AUDIT)

        @flow
        async def main() -> tuple[str, int]:
            a = await first(LoggingAgent())
            return a, await second()
    """,
    "an_abstract_method_and_agents_in_a_module_level_list": """
        from abc import ABC, abstractmethod

        AUDIT: list[str] = []

        class Agent(ABC):
            @abstractmethod
            def run(self, x: str) -> str: ...

        class LoggingAgent(Agent):
            def run(self, x: str) -> str:
                AUDIT.append(x)
                return x

        AGENTS: list[Agent] = [LoggingAgent()]

        @node
        async def first(x: str) -> int:
            await asyncio.sleep(0.05)
            for agent in AGENTS:
                agent.run(x)
            return len(AGENTS)

        @node
        async def second() -> int:
            return len(AUDIT)

        @flow
        async def main() -> tuple[int, int]:
            a = await first("x")
            return a, await second()
    """,
    "a_class_attribute_read_through_another_instance": """
        class Bot:
            history: list[str] = []

            def say(self, x: str) -> None:
                self.history.append(x)

        @node
        async def first(bot: Bot) -> None:
            await asyncio.sleep(0.05)
            bot.say("hi")

        @node
        async def second(bot: Bot) -> list[str]:
            return list(bot.history)

        @flow
        async def main() -> list[str]:
            await first(Bot())
            return await second(Bot())

        def snapshot() -> object:
            return Bot.history
    """,
    "two_names_bound_from_one_value": """
        @node
        async def pair() -> tuple[list[str], list[str]]:
            x: list[str] = []
            return x, x

        @node
        async def grow(xs: list[str]) -> None:
            await asyncio.sleep(0.05)
            xs.append("g")

        @node
        async def size(xs: list[str]) -> int:
            return len(xs)

        @flow
        async def main() -> int:
            a, b = await pair()
            await grow(a)
            return await size(b)
    """,
}


# Module state imported from another module, changed by its container methods
# (trial M): `from store import LOG` once read as a module, `LOG.clear()` as a
# function kiln resolved by name, a read.
for _imported, _prefix in (
    ("from store import CACHE, LOG", ""),
    ("import store", "store."),
):
    ORDERED[f"imported_state_changed_by_its_methods ({_imported})"] = f"""
        {_imported}

        @node
        async def fill() -> None:
            await asyncio.sleep(0.05)
            {_prefix}CACHE.update(a=1)
            {_prefix}LOG.extend([1, 2])

        @node
        async def empty() -> None:
            await asyncio.sleep(0.05)
            {_prefix}CACHE.pop("a", None)
            {_prefix}LOG.clear()

        @node
        async def look() -> str:
            return f"{{sorted({_prefix}CACHE.items())}}{{{_prefix}LOG}}"

        @flow
        async def main() -> list[str]:
            await fill()
            seen = await look()
            await empty()
            return [seen, await look()]
    """


# Module state reached by name at run time (trial M): once read as the value
# of a call kiln could not follow, so no state at all.
REFLECTED = {
    "getattr": ('getattr(Config, "items").append(x)', "len(Config.items)"),
    "getattr_by_a_name": ("getattr(Config, field).append(x)", "len(Config.items)"),
    "vars": ('vars(store)["CACHE"][x] = 4', "store.CACHE.get(x, -1)"),
    "__dict__": ('store.__dict__["LOG"].append(4)', "len(store.LOG)"),
    "globals": ('globals()["LAST"] = x', "len(LAST)"),
}
for _case, (_change, _read) in REFLECTED.items():
    ORDERED[f"state_reached_by_name ({_case})"] = f"""
        import store

        LAST = ""
        field = "items"

        class Config:
            items: list[str] = []

        @node
        async def change(x: str) -> None:
            await asyncio.sleep(0.05)
            {_change}

        @node
        async def look(x: str) -> int:
            return {_read}

        @flow
        async def main() -> list[int]:
            before = await look("k")
            await change("k")
            return [before, await look("k")]
    """


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_state_reached_indirectly_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


def test_a_function_handed_on_that_touches_no_state_still_overlaps(
    tmp_path: Path,
) -> None:
    """Handed to a thread, a pure function orders nothing."""
    assert_overlapped(
        tmp_path,
        """
        def parse(text: str) -> int:
            return len(text)

        @node
        async def work(name: str) -> int:
            EVENTS.append(f"start {name}")
            got = await asyncio.to_thread(parse, name)
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {name}")
            return got

        @flow
        async def main() -> list[int]:
            return [await work("a"), await work("bb")]
        """,
    )
