"""Code of a project class that Python runs for an operation naming none of it.

An LLM-app project (trial Q8) changed module state in code a node runs only
implicitly, and kiln read none of it: a node reading that state ran beside
the one changing it and saw the old value, silently.

- a class-based decorator: `@RateLimiter(1)`, or `limiter = RateLimiter(1)`
  then `@limiter` on several nodes, whose `__call__` returns a wrapper that
  counts into module state; a class named as the decorator (`@Counted`),
  whose `__call__` runs on each call; a `__call__` that returns something
  kiln cannot follow (a `partial` of a method);
- a plain decorator that hands the function on to a factory's
  (`return budget(1)(fn)`), and a factory that returns one (`return
  budget(n)`);
- making an object: its metaclass's `__call__` (a registry of what is made),
  and the `__init__` Python runs after a singleton's `__new__`;
- a descriptor held as a class attribute: reading it runs its `__get__`,
  assigning it `__set__`, deleting it `__delete__` (an audited field), and a
  `property(...)` made without the decorator;
- `__getattr__` (an attribute the class does not bind) and `__getattribute__`;
- operators, tests and conversions: `a + b`, `-a`, `a == b`, `a < b`,
  `if a:`, `not a`, `f"{a}"`, `str(a)`, `print(a)`, `abs(a)`, `a, b = x`,
  `[*x]`, `await x`, and `x -= y` of a class with `__sub__` only.

Each case runs its source and its compiled flow in fresh interpreters
(tests/test_state_reach_order.py) and compares their results; what only
reads still overlaps.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
    both_overlap,
    write_then_read,
)

# The reader returns its value's repr: a new value, no module state's.
_case = partial(write_then_read, fresh=True)

DECORATORS = """
import functools
from collections.abc import Awaitable, Callable
from typing import Any

USED: list[str] = []
Step = Callable[[], Awaitable[None]]


class Limiter:
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, fn: Step) -> Step:
        @functools.wraps(fn)
        async def wrapper() -> None:
            await fn()
            USED.append(fn.__name__)
            if len(USED) > 5 * self.n:
                raise RuntimeError("over budget")

        return wrapper


class Later:
    def __call__(self, fn: Step) -> Any:
        run = functools.partial(self._run, fn)  # no function kiln can follow
        return functools.update_wrapper(run, fn)

    async def _run(self, fn: Step) -> None:
        await fn()
        USED.append("later")


class Counted:
    def __init__(self, fn: Step) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)

    async def __call__(self) -> None:
        await self.fn()
        USED.append("counted")


def budget(n: int) -> Callable[[Step], Step]:
    def deco(fn: Step) -> Step:
        async def wrapper() -> None:
            await fn()
            USED.append(fn.__name__)

        return wrapper

    return deco


def limited(fn: Step) -> Step:
    return budget(1)(fn)


def limit(n: int) -> Callable[[Step], Step]:
    return budget(n)


limiter = Limiter(1)
later = Later()
"""


def _decorated(decorator: str, wrapped: int = 1) -> str:
    """`wrapped` nodes the decorator wraps, called in turn, then a reader."""
    nodes = "".join(
        f"@node\n@{decorator}\nasync def write_{n}() -> None:\n"
        f"    await asyncio.sleep(0.05 / {n})\n\n"
        for n in range(1, wrapped + 1)
    )
    calls = "".join(f"    await write_{n}()\n" for n in range(1, wrapped + 1))
    return f"""
{DECORATORS}

{nodes}
@node
async def read() -> str:
    return repr(len(USED))

@flow
async def main() -> str:
{calls}    return await read()
"""


MADE = """
from typing import Any, ClassVar

CREATED: list[str] = []


class Registry(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        CREATED.append(cls.__name__)
        return super().__call__(*args, **kwargs)


class Tracked(metaclass=Registry):
    pass


class Child(Tracked):  # its class is its base's metaclass
    pass


def traced(fn: Any) -> Any:  # any decorator: kiln cannot tell what it makes
    return fn


class Wrapping(type):
    @traced
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        CREATED.append("wrapped")
        return super().__call__(*args, **kwargs)


class Opaque(metaclass=Wrapping):
    pass


class Client:
    _instance: ClassVar["Client | None"] = None

    def __new__(cls) -> "Client":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __init__(self) -> None:
        CREATED.append("init")
"""

DESCRIPTORS = """
from typing import Any

AUDIT: list[str] = []


class Audited:
    def __set_name__(self, owner: type, name: str) -> None:
        self.name = "_" + name

    def __get__(self, obj: object, owner: type | None = None) -> str:
        AUDIT.append("get")
        return str(getattr(obj, self.name, ""))

    def __set__(self, obj: object, value: str) -> None:
        AUDIT.append(f"{self.name}={value}")
        setattr(obj, self.name, value)

    def __delete__(self, obj: object) -> None:
        AUDIT.append("del")


def _bump(agent: "Agent") -> int:
    AUDIT.append("bump")
    return len(AUDIT)


def _set_turn(agent: "Agent", value: int) -> None:
    AUDIT.append(f"turn={value}")


class Agent:
    model = Audited()
    turn = property(_bump, _set_turn)

    def configure(self, model: str) -> None:
        self.model = model


class Proxy:
    def __init__(self) -> None:
        self.target = "t"

    def __getattr__(self, name: str) -> str:
        AUDIT.append(f"missing {name}")
        return name


class Watched:
    def __getattribute__(self, name: str) -> object:
        AUDIT.append(f"read {name}")
        return object.__getattribute__(self, name)


class Opaque:
    @staticmethod
    def _traced(fn: Any) -> Any:
        return fn

    @_traced
    def __set__(self, obj: object, value: str) -> None:
        AUDIT.append("opaque")


class Holder:
    field = Opaque()


AGENT = Agent()
HOLDER = Holder()
PROXY = Proxy()
WATCHED = Watched()
"""

OPERATORS = """
import io
from collections.abc import Generator, Iterator
from typing import Any

LOG: list[str] = []


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __add__(self, other: Any) -> "Money":
        LOG.append("add")
        return Money(self.cents)

    def __rsub__(self, other: Any) -> "Money":
        LOG.append("rsub")
        return Money(self.cents)

    def __sub__(self, other: Any) -> "Money":
        LOG.append("sub")
        return Money(self.cents)

    def __neg__(self) -> "Money":
        LOG.append("neg")
        return Money(-self.cents)

    def __eq__(self, other: object) -> bool:
        LOG.append("eq")
        return False

    def __lt__(self, other: Any) -> bool:
        LOG.append("lt")
        return False

    def __bool__(self) -> bool:
        LOG.append("bool")
        return True

    def __format__(self, spec: str) -> str:
        LOG.append("format")
        return "m"

    def __str__(self) -> str:
        LOG.append("str")
        return "m"

    def __abs__(self) -> "Money":
        LOG.append("abs")
        return self

    def __iter__(self) -> Iterator[int]:
        LOG.append("iter")
        return iter([1, 2])

    def __await__(self) -> Generator[Any, None, int]:
        LOG.append("await")
        return asyncio.sleep(0, 1).__await__()


WALLET = Money(5)
"""


ORDERED = {
    "a_class_s_object_as_the_decorator": _decorated("Limiter(1)", wrapped=2),
    "an_object_made_once_decorating_two_nodes": _decorated("limiter", wrapped=2),
    "a_class_named_as_the_decorator": _decorated("Counted"),
    "a_decorator_object_whose_call_kiln_cannot_follow": _decorated("later"),
    "a_decorator_handing_the_function_to_a_factory_s": _decorated("limited", 2),
    "a_factory_returning_a_factory_s_decorator": _decorated("limit(2)"),
    "making_an_object_runs_its_metaclass_s_call": _case(
        MADE, "Tracked()", "list(CREATED)"
    ),
    "making_a_subclass_runs_its_base_s_metaclass_s_call": _case(
        MADE, "Child()", "list(CREATED)"
    ),
    "making_an_object_runs_a_metaclass_s_call_kiln_cannot_read": _case(
        MADE, "Opaque()", "list(CREATED)"
    ),
    "making_a_singleton_runs_init_after_new": _case(MADE, "Client()", "list(CREATED)"),
    "assigning_a_descriptor_runs_its_set": _case(
        DESCRIPTORS, "AGENT.model = 'big'", "list(AUDIT)"
    ),
    "reading_a_descriptor_runs_its_get": _case(
        DESCRIPTORS, "_ = AGENT.model", "list(AUDIT)"
    ),
    "reading_a_descriptor_through_its_class_runs_its_get": _case(
        DESCRIPTORS, "_ = Agent.model", "list(AUDIT)"
    ),
    "deleting_a_descriptor_runs_its_delete": _case(
        DESCRIPTORS, "del AGENT.model", "list(AUDIT)"
    ),
    "a_method_assigning_its_descriptor_runs_its_set": _case(
        DESCRIPTORS, "AGENT.configure('big')", "list(AUDIT)"
    ),
    "a_descriptor_s_set_kiln_cannot_read": _case(
        DESCRIPTORS, "HOLDER.field = 'x'", "list(AUDIT)"
    ),
    "reading_a_property_made_by_a_call_runs_its_getter": _case(
        DESCRIPTORS, "_ = AGENT.turn", "list(AUDIT)"
    ),
    "assigning_a_property_made_by_a_call_runs_its_setter": _case(
        DESCRIPTORS, "AGENT.turn = 3", "list(AUDIT)"
    ),
    "an_attribute_the_class_lacks_runs_getattr": _case(
        DESCRIPTORS, "_ = PROXY.anything", "list(AUDIT)"
    ),
    "any_attribute_read_runs_getattribute": _case(
        DESCRIPTORS, "_ = WATCHED.__class__", "list(AUDIT)"
    ),
    "a_sum_runs_add": _case(OPERATORS, "_ = WALLET + 1", "list(LOG)"),
    "a_reflected_difference_runs_rsub": _case(OPERATORS, "_ = 1 - WALLET", "list(LOG)"),
    "an_in_place_difference_runs_sub": _case(
        OPERATORS, "global WALLET\nWALLET -= 1", "list(LOG)"
    ),
    "a_negation_runs_neg": _case(OPERATORS, "_ = -WALLET", "list(LOG)"),
    "an_equality_runs_eq": _case(OPERATORS, "_ = 1 == WALLET", "list(LOG)"),
    "an_order_test_runs_lt": _case(OPERATORS, "_ = WALLET < 1", "list(LOG)"),
    "a_test_runs_bool": _case(OPERATORS, "if WALLET:\n    pass", "list(LOG)"),
    "not_runs_bool": _case(OPERATORS, "_ = not WALLET", "list(LOG)"),
    "a_formatted_value_runs_format": _case(OPERATORS, "_ = f'{WALLET}'", "list(LOG)"),
    "str_runs_str": _case(OPERATORS, "_ = str(WALLET)", "list(LOG)"),
    "print_runs_str": _case(
        OPERATORS, "print(WALLET, file=io.StringIO())", "list(LOG)"
    ),
    "abs_runs_abs": _case(OPERATORS, "_ = abs(WALLET)", "list(LOG)"),
    "unpacking_runs_iter": _case(OPERATORS, "a, b = WALLET", "list(LOG)"),
    "a_starred_value_runs_iter": _case(OPERATORS, "_ = [*WALLET]", "list(LOG)"),
    "await_runs_await": _case(OPERATORS, "_ = await WALLET", "list(LOG)"),
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_code_python_runs_implicitly_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


READING = """
class Field:
    def __get__(self, obj: object, owner: type | None = None) -> str:
        return "v"


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __add__(self, other: int) -> "Money":
        return Money(self.cents + other)

    def __bool__(self) -> bool:
        return self.cents > 0


class Config:
    field = Field()


CONFIG = Config()
WALLET = Money(5)
"""

OVERLAPPING = {
    "a_descriptor_whose_get_only_reads": both_overlap(
        READING, "name = CONFIG.field + name", "name = CONFIG.field + name"
    ),
    "operators_that_only_read": both_overlap(
        READING,
        "name = name + str((WALLET + 1).cents)",
        "name = name if WALLET else ''",
    ),
}


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_implicit_code_that_only_reads_still_overlaps(
    case: str, tmp_path: Path
) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])
