"""The validated options of `@node` and `@flow`, and capacity `Limit`s.

The compiler reads decorator options from the source without running it; these
classes check the same options when the source runs as plain Python, so a bad
value fails at import time, at the decorator, rather than deep inside a run.
Each class validates itself in `__post_init__`, so an instance that exists is
valid however it was built.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeGuard

from kiln.errors import OptionError
from kiln.processor import Processor

__all__ = ["FlowOptions", "Limit", "NodeOptions"]


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
        _check_int("Limit capacity", self.capacity, minimum=1, hint="")
        if self.refresh is not None:
            _check_seconds(
                "Limit refresh",
                self.refresh,
                positive=True,
                hint=", or None for a cap on calls in flight",
            )
            object.__setattr__(self, "refresh", float(self.refresh))

    @property
    def processor(self) -> Processor:
        """The group's admission gate: a window of starts with `refresh`, else a cap."""
        processor = self._processor
        if processor is None:
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
        _check_optional_name("name", self.name, hint="")
        _check_int(
            "retries", self.retries, minimum=0, hint=" (extra attempts after a failure)"
        )
        _check_seconds("wait", self.wait, positive=False, hint="")
        _check_backoff(self.backoff)
        _check_retry_on(self.retry_on)
        if self.timeout is not None:
            _check_seconds(
                "timeout", self.timeout, positive=True, hint=", or None for no timeout"
            )
        if self.fallback is not None and not callable(self.fallback):
            raise OptionError(
                "fallback must be a function, called as fallback(*args, error=exc) "
                f"after the last failure, or None; got {self.fallback!r}"
            )
        _check_optional_name(
            "limit",
            self.limit,
            hint=" (a capacity group declared in the flow's limits)",
        )
        _check_bool("cache", self.cache)
        _check_bool("thread", self.thread)
        _check_bool("local", self.local)
        if self.max_visits is not None:
            _check_int(
                "max_visits",
                self.max_visits,
                minimum=1,
                hint=", or None for the flow's",
            )
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
    max_visits: int = 5
    limits: Mapping[str, Limit] | None = field(default=None, hash=False)
    concurrency: int | None = None

    def __post_init__(self) -> None:
        _check_optional_name("name", self.name, hint="")
        _check_int("max_visits", self.max_visits, minimum=1, hint="")
        if self.limits is not None:
            object.__setattr__(self, "limits", _checked_limits(self.limits))
        if self.concurrency is not None:
            _check_int(
                "concurrency",
                self.concurrency,
                minimum=1,
                hint=" (the most node calls in flight), or None for no bound",
            )


def _check_int(option: str, value: object, *, minimum: int, hint: str) -> None:
    # bool is an int subclass, but `retries=True` is a mistake, not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(f"{option} must be an int >= {minimum}{hint}; got {value!r}")


def _is_real(value: object) -> TypeGuard[float]:
    # A number of seconds or a factor: int or float, never bool, never inf or nan.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check_seconds(option: str, value: object, *, positive: bool, hint: str) -> None:
    bound = "> 0" if positive else ">= 0"
    if not _is_real(value) or value < 0 or (positive and value == 0):
        raise OptionError(
            f"{option} must be a finite number of seconds {bound}{hint}; got {value!r}"
        )


def _check_backoff(value: object) -> None:
    if not _is_real(value) or value < 1:
        raise OptionError(
            "backoff must be a finite number >= 1 (the multiplier on wait for each "
            f"further retry; 1 keeps the wait constant); got {value!r}"
        )


def _check_retry_on(value: object) -> None:
    if (
        not isinstance(value, tuple)
        or not value
        or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in value
        )
    ):
        raise OptionError(
            "retry_on must be a non-empty tuple of exception classes, like "
            f"(TimeoutError, ConnectionError) or (ValueError,); got {value!r}"
        )


def _check_optional_name(option: str, value: object, *, hint: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise OptionError(
            f"{option} must be a non-empty string{hint}, or None; got {value!r}"
        )


def _check_bool(option: str, value: object) -> None:
    if not isinstance(value, bool):
        raise OptionError(f"{option} must be True or False; got {value!r}")


def _checked_limits(limits: object) -> Mapping[str, Limit]:
    if not isinstance(limits, Mapping):
        raise OptionError(
            f"limits must map group names to Limit(...), like {{'llm': Limit(8)}}; got {limits!r}"
        )
    for group, limit in limits.items():
        if not isinstance(group, str) or not group.strip():
            raise OptionError(
                f"limits keys must be non-empty group names; got {group!r}"
            )
        if not isinstance(limit, Limit):
            raise OptionError(
                f"limits[{group!r}] must be a Limit, like Limit(8) or Limit(8, refresh=1.0); "
                f"got {limit!r}"
            )
    return MappingProxyType(dict(limits))
