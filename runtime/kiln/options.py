"""The validated options of `@node` and `@flow`, and capacity `Limit`s.

The compiler reads decorator options from the source without running it; these
classes check the same options when the source runs as plain Python, so a bad
value fails at import time, at the decorator, rather than deep inside a run.
Each class validates itself in `__post_init__`, so an instance that exists is
valid however it was built.

`NODE_RULES`, `FLOW_RULES` and `LIMIT_RULES` are the one table of what each
option accepts and of what is said when a value does not fit (`Rule.message`),
`LIMIT_GROUP` and `LIMIT_CALL` what a flow's `limits` maps, and
`DEFAULT_MAX_VISITS` the visits of a flow that sets none (`kiln.node_kinds`
holds the rules between a node's options and the function it decorates).
The decorators check values with them when the source is imported, and `kiln compile` checks the
literals it reads with them, saying the same at the value's position (it
imports this module, never the reverse): a value one accepts, the other
accepts, in the same words. `tests/test_options_agree.py` holds them to it.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeGuard

from kiln.errors import OptionError

if TYPE_CHECKING:  # made on first use: the compiler reads this module, never asyncio
    from kiln.processor import Processor

__all__ = [
    "DEFAULT_MAX_VISITS",
    "FLOW_RULES",
    "LIMIT_CALL",
    "LIMIT_GROUP",
    "LIMIT_RULES",
    "NODE_RULES",
    "FlowOptions",
    "Limit",
    "NodeOptions",
    "Rule",
    "by_name",
    "check_int",
    "checked_limits",
    "must_be",
]

Kind = Literal[
    "int", "real", "name", "bool", "exceptions", "function", "limits", "ledger"
]


@dataclass(frozen=True, slots=True)
class Rule:
    """What one option accepts.

    `requirement` completes "<option> must be ...", in `OptionError` and in the
    compiler's diagnostics alike (`message`); `hint` is said after it by the
    runtime only.
    A number is an int or a float, never a bool; a `real` one is finite.
    """

    kind: Kind
    requirement: str
    minimum: float = 0
    above: bool = False  # strictly above `minimum`
    optional: bool = False  # None is accepted
    hint: str = ""

    def has_type(self, value: object) -> bool:
        if value is None:
            return self.optional
        return _TYPES[self.kind](value)

    def in_range(self, value: object) -> bool:
        """Whether a value of the right type is in range."""
        if value is None:
            return True
        if self.kind in ("int", "real"):
            assert isinstance(value, int | float)
            if self.kind == "real" and not _finite(value):
                return False
            return value > self.minimum if self.above else value >= self.minimum
        if self.kind == "name":
            return isinstance(value, str) and bool(value.strip())
        if self.kind == "ledger" and not isinstance(value, bool):
            assert isinstance(value, str | os.PathLike)
            path = os.fspath(value)
            return isinstance(path, str) and bool(path)  # not bytes, nor "" (the cwd)
        if self.kind == "exceptions":
            return (
                isinstance(value, tuple)
                and bool(value)
                and all(_is_exception_class(k) for k in value)
            )
        return True

    def accepts(self, value: object) -> bool:
        return self.has_type(value) and self.in_range(value)

    def message(self, option: str) -> str:
        """What `option` must be: "retries must be an integer >= 0"."""
        return must_be(option, self.requirement)

    def check(self, option: str, value: object) -> None:
        if self.kind == "function" and isinstance(value, str):
            detail = by_name(option, value)
            raise OptionError(f"{self.message(option)}: {detail}; got {value!r}")
        if not self.accepts(value):
            raise OptionError(f"{self.message(option)}{self.hint}; got {value!r}")


def by_name(option: str, text: str) -> str:
    """What is said of a string where a function goes (`fallback="keep_going"`)."""
    if text.isidentifier():
        return f"give the function itself ({option}={text}), not its name as a string"
    return "give the function itself, not a string"


def must_be(option: str, requirement: str) -> str:
    """The sentence every refusal of an option's value starts with."""
    return f"{option} must be {requirement}"


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass, but `retries=True` is a mistake, not a count.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float: no number of seconds
        return False


def _is_exception_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


_TYPES: Final[Mapping[Kind, Callable[[object], bool]]] = {
    "int": _is_int,
    "real": _is_number,
    "name": lambda value: isinstance(value, str),
    "bool": lambda value: isinstance(value, bool),
    "exceptions": lambda value: isinstance(value, tuple),
    "function": callable,
    "limits": lambda value: isinstance(value, Mapping),
    "ledger": lambda value: isinstance(value, bool | str | os.PathLike),
}


def _integer(minimum: int, *, optional: bool = False, hint: str = "") -> Rule:
    return Rule(
        "int", f"an integer >= {minimum}", minimum, optional=optional, hint=hint
    )


_NAME: Final = Rule("name", "a non-empty string", optional=True, hint=", or None")
DEFAULT_MAX_VISITS: Final = 5  # the visits of a flow that sets none ([tool.kiln] may)

# What a flow's `limits` maps: each group's name (as `@node(limit=...)` names
# it) to a Limit, written as the call that makes one.
LIMIT_GROUP: Final = Rule("name", "a non-empty group name")
LIMIT_CALL: Final = "Limit(capacity) or Limit(capacity, refresh=seconds)"

NODE_RULES: Final[Mapping[str, Rule]] = {
    "name": _NAME,
    "retries": _integer(0, hint=" (extra attempts after a failure)"),
    "wait": Rule("real", "a finite number of seconds >= 0"),
    "backoff": Rule(
        "real",
        "a finite number >= 1",
        minimum=1,
        hint=" (the multiplier on wait for each further retry; 1 keeps the wait constant)",
    ),
    "retry_on": Rule(
        "exceptions",
        "a non-empty tuple of exception classes, like (TimeoutError, ConnectionError)",
    ),
    "timeout": Rule(
        "real",
        "a finite number of seconds > 0",
        above=True,
        optional=True,
        hint=", or None for no timeout",
    ),
    "fallback": Rule(
        "function",
        "a function defined with def beside the node",
        optional=True,
        hint=", called as fallback(*args, error=exc) after the last failure, or None",
    ),
    "limit": Rule(
        "name",
        LIMIT_GROUP.requirement,
        optional=True,
        hint=" (a capacity group declared in the flow's limits), or None",
    ),
    "cache": Rule("bool", "True or False"),
    "thread": Rule("bool", "True or False"),
    "max_visits": _integer(1, optional=True, hint=", or None for the flow's"),
    "local": Rule("bool", "True or False"),
}

FLOW_RULES: Final[Mapping[str, Rule]] = {
    "name": _NAME,
    "max_visits": _integer(1),
    "limits": Rule(
        "limits",
        "a dict of group names to Limit(...), like {'llm': Limit(8)}",
        optional=True,
    ),
    "concurrency": _integer(
        1,
        optional=True,
        hint=" (the most node calls in flight), or None for no bound",
    ),
}

LIMIT_RULES: Final[Mapping[str, Rule]] = {
    "capacity": _integer(1),
    "refresh": Rule(
        "real",
        "a finite number of seconds > 0",
        above=True,
        optional=True,
        hint=", or None for a cap on calls in flight",
    ),
}


@dataclass(frozen=True, slots=True)
class Limit:
    """A capacity group that nodes share through `@node(limit="group")`.

    Without `refresh`, at most `capacity` calls of the group are in flight at
    once. With `refresh`, at most `capacity` calls start in any `refresh`
    seconds (a rate limit, as an API quota counts them).

    The capacity lives in `processor`, made on first use and shared by every
    run, flow and thread holding this same object. Equal Limits are separate
    groups; a copy or an unpickled Limit is a new group with its own capacity.
    """

    capacity: int
    refresh: float | None = None
    _processor: Processor | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        LIMIT_RULES["capacity"].check("Limit capacity", self.capacity)
        LIMIT_RULES["refresh"].check("Limit refresh", self.refresh)
        if self.refresh is not None:
            object.__setattr__(self, "refresh", float(self.refresh))

    @property
    def processor(self) -> Processor:
        """The group's admission gate: a window of starts with `refresh`, else a cap."""
        processor = self._processor
        if processor is None:
            from kiln.processor import Processor  # noqa: PLC0415 - see the imports

            with _PROCESSOR_CREATION:  # two threads' first calls must get one processor
                processor = self._processor
                if processor is None:
                    processor = (
                        Processor.capped(self.capacity)
                        if self.refresh is None
                        else Processor(self.capacity, self.refresh)
                    )
                    object.__setattr__(self, "_processor", processor)
        return processor

    def __reduce__(self) -> tuple[type[Limit], tuple[int, float | None]]:
        # A processor holds locks and waiters, which neither pickle nor copy.
        return (type(self), (self.capacity, self.refresh))


_PROCESSOR_CREATION = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeOptions:
    """The options of one `@node`, stored on the function as `__kiln_node__`.

    `name` is None only on an instance built by hand: the decorator fills in
    the function's name.
    """

    name: str | None = None
    retries: int = 0
    wait: float = 0.0
    backoff: float = 1.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = None
    fallback: Callable[..., Any] | None = None
    limit: str | None = None
    cache: bool = False
    thread: bool = False
    max_visits: int | None = None
    local: bool = False

    def __post_init__(self) -> None:
        for option, rule in NODE_RULES.items():
            rule.check(option, getattr(self, option))
        # Store seconds as floats, so equal options compare and print alike.
        object.__setattr__(self, "wait", float(self.wait))
        object.__setattr__(self, "backoff", float(self.backoff))
        if self.timeout is not None:
            object.__setattr__(self, "timeout", float(self.timeout))


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowOptions:
    """The options of one `@flow`, stored on the function as `__kiln_flow__`.

    `limits` is kept as a read-only copy, so changing the dict passed to the
    decorator afterwards cannot change the flow. It takes no part in hashing,
    since a mapping is not hashable; equality still compares it.
    """

    name: str | None = None
    max_visits: int = DEFAULT_MAX_VISITS
    limits: Mapping[str, Limit] | None = field(default=None, hash=False)
    concurrency: int | None = None

    def __post_init__(self) -> None:
        for option, rule in FLOW_RULES.items():
            if option != "limits":
                rule.check(option, getattr(self, option))
        if self.limits is not None:
            object.__setattr__(self, "limits", checked_limits(self.limits))


def check_int(option: str, value: object, *, minimum: int, hint: str) -> None:
    """Refuse an `option` that is not an int of at least `minimum` (OptionError)."""
    _integer(minimum, hint=hint).check(option, value)


def checked_limits(limits: object) -> Mapping[str, Limit]:
    """`limits` as given to a flow, checked, as a read-only mapping of group to Limit."""
    FLOW_RULES["limits"].check("limits", limits)
    assert isinstance(limits, Mapping)
    for group, limit in limits.items():
        LIMIT_GROUP.check("each key of limits", group)
        if not isinstance(limit, Limit):
            raise OptionError(
                f"{must_be(f'limits[{group!r}]', LIMIT_CALL)}; got {limit!r}"
            )
    return MappingProxyType(dict(limits))
