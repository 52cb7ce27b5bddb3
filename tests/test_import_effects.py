"""Definitions that run code at import: the compiled module keeps them.

The generated module keeps the module-level code the flows can observe. A
`def`, a `class` or `X = ...` was kept only when kept code read a name it
binds, so code whose one job is to register something was dropped (trial
Q8): a decorator that fills a tool or handler registry, a base class's
`__init_subclass__` that registers each subclass, an agent whose
`__init__` registers itself, `N = load_prompts()` filling a prompt table, a
module-level object whose `__post_init__` draws an id. The compiled flow
raised KeyError or saw an empty registry, or handed out other ids. Such a
definition is now an effect (import_effects.py): kept when what its code
reaches may be seen by the kept code. A decorator or a call known only to
make a value (`@dataclass`, `logging.getLogger`, `TypeVar`) is still dropped
with its unused name.

Each case runs its source and its compiled flow and compares the results.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.test_differential import compiled_and_source

FLOW = """

@node
async def use(kind: str, x: str) -> str:
    return {use}

@flow
async def main() -> list[str]:
    return [await use(kind, "abc") for kind in {kinds}]
"""

REGISTERED = {
    "a_decorator_factory_fills_a_handler_table": (
        """
HANDLERS: dict[str, Callable[[str], str]] = {}

def handles(kind: str) -> Callable[[Callable[[str], str]], Callable[[str], str]]:
    def deco(fn: Callable[[str], str]) -> Callable[[str], str]:
        HANDLERS[kind] = fn
        return fn
    return deco

@handles("greet")
def _greet(x: str) -> str:
    return f"hello {x}"
""",
        "HANDLERS[kind](x)",
        ["greet"],
    ),
    "a_plain_decorator_fills_a_registry": (
        """
TOOLS: dict[str, Callable[[str], str]] = {}

def tool(fn: Callable[[str], str]) -> Callable[[str], str]:
    TOOLS[fn.__name__] = fn
    return fn

@tool
def shout(x: str) -> str:
    return x.upper()
""",
        "TOOLS[kind](x)",
        ["shout"],
    ),
    "a_class_decorator_fills_a_registry": (
        """
CLASSES: dict[str, type] = {}

def registered(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        CLASSES[name] = cls
        return cls
    return deco

@registered("search")
class Search:
    def run(self, x: str) -> str:
        return f"search({x})"
""",
        "CLASSES[kind]().run(x)",
        ["search"],
    ),
    "a_base_s_init_subclass_registers_each_subclass": (
        """
class BaseTool:
    name: ClassVar[str] = ""
    registry: ClassVar[dict[str, type["BaseTool"]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        BaseTool.registry[cls.name] = cls

    def run(self, x: str) -> str:
        raise NotImplementedError

class Search(BaseTool):
    name = "search"

    def run(self, x: str) -> str:
        return f"search({x})"

class Count(Search):
    name = "count"

    def run(self, x: str) -> str:
        return str(len(x))
""",
        "BaseTool.registry[kind]().run(x)",
        ["search", "count"],
    ),
    "an_object_whose_init_registers_itself": (
        """
class Agent:
    registry: ClassVar[dict[str, "Agent"]] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        Agent.registry[name] = self

PLANNER = Agent("planner")
CRITIC = Agent("critic")
""",
        "','.join(sorted(Agent.registry)) + x",
        ["any"],
    ),
    "an_assignment_whose_call_fills_a_table": (
        """
PROMPTS: dict[str, str] = {}

def load_prompts() -> int:
    PROMPTS["critic"] = "Be harsh."
    return len(PROMPTS)

N_PROMPTS = load_prompts()
""",
        "PROMPTS[kind] + x",
        ["critic"],
    ),
    "an_object_whose_post_init_draws_an_id": (
        """
_IDS = itertools.count(1)

@dataclass
class Msg:
    text: str
    id: int = 0

    def __post_init__(self) -> None:
        self.id = next(_IDS)

SYSTEM = Msg("You are a helpful agent.")
""",
        "str(Msg(x).id) + kind",
        ["a", "b"],
    ),
}

HEADER = """
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from kiln import flow, node
"""


@pytest.mark.parametrize("case", sorted(REGISTERED))
def test_code_that_registers_at_import_is_kept(case: str, tmp_path: Path) -> None:
    setup, use, kinds = REGISTERED[case]
    source = HEADER + setup + FLOW.format(use=use, kinds=kinds)
    compiled, reference = compiled_and_source(source, tmp_path)
    assert compiled.main() == asyncio.run(reference.main())


def test_definitions_that_only_make_values_are_still_dropped(tmp_path: Path) -> None:
    source = HEADER + """
import logging
from typing import TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")
SIZES = dict(small=1, large=3)

@dataclass(frozen=True)
class Unused:
    n: int
""" + FLOW.format(use="kind + x", kinds=["a"])
    compiled_and_source(source, tmp_path)
    output = (tmp_path / "out.py").read_text(encoding="utf-8")
    for dropped in ("LOG =", "T = TypeVar", "SIZES =", "class Unused"):
        assert dropped not in output, dropped
