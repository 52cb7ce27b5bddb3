"""@node, @flow and Limit: transparent decorators with validated options."""

from __future__ import annotations

import asyncio
import functools
import pickle
from collections.abc import AsyncIterator, Iterator
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from kiln import (
    FlowOptions,
    KilnError,
    Limit,
    NodeOptions,
    OptionError,
    VisitLimitError,
    flow,
    node,
    visits,
)


def test_bare_node_returns_the_same_function_with_default_options() -> None:
    def load(path: str) -> str:
        return path.upper()

    assert node(load) is load
    assert load("a") == "A"
    assert load.__kiln_node__ == NodeOptions(name="load")  # type: ignore[attr-defined]


def test_node_with_options_returns_the_same_function() -> None:
    def fallback(x: int, error: BaseException) -> int:
        return -1

    async def fetch(x: int) -> int:
        return x + 1

    decorated = node(
        name="fetcher",
        retries=3,
        wait=1,
        backoff=2,
        retry_on=(TimeoutError, ConnectionError),
        timeout=30,
        fallback=fallback,
        limit="llm",
        cache=True,
        max_visits=7,
    )(fetch)
    assert decorated is fetch
    assert asyncio.run(fetch(1)) == 2
    options = fetch.__kiln_node__  # type: ignore[attr-defined]
    assert options == NodeOptions(
        name="fetcher",
        retries=3,
        wait=1.0,
        backoff=2.0,
        retry_on=(TimeoutError, ConnectionError),
        timeout=30.0,
        fallback=fallback,
        limit="llm",
        cache=True,
        max_visits=7,
    )
    # Seconds are stored as floats whatever number was written.
    assert isinstance(options.wait, float)
    assert isinstance(options.timeout, float)


def test_decorated_functions_keep_their_metadata_and_kind() -> None:
    @node
    def gen(n: int) -> Iterator[int]:
        """Count to n."""
        yield from range(n)

    @node(thread=True)
    def blocking() -> int:
        return 1

    @node
    async def agen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def collect() -> list[int]:
        return [v async for v in agen(3)]

    assert list(gen(3)) == [0, 1, 2]
    assert gen.__doc__ == "Count to n."
    assert gen.__name__ == "gen"
    assert blocking() == 1
    assert asyncio.run(collect()) == [0, 1, 2]


def test_flow_returns_the_same_function_and_runs_sequentially() -> None:
    calls: list[str] = []

    @node
    def double(x: int) -> int:
        calls.append(f"double {x}")
        return 2 * x

    @node
    async def inc(x: int) -> int:
        calls.append(f"inc {x}")
        return x + 1

    @flow(limits={"llm": Limit(8, refresh=1.0)}, concurrency=4)
    async def pipeline(x: int) -> list[int]:
        return [await inc(double(v)) for v in range(x)]

    assert asyncio.run(pipeline(2)) == [1, 3]
    assert calls == ["double 0", "inc 0", "double 1", "inc 2"]
    options = pipeline.__kiln_flow__  # type: ignore[attr-defined]
    assert options.name == "pipeline"
    assert options.max_visits == 5
    assert options.concurrency == 4
    assert dict(options.limits) == {"llm": Limit(8, refresh=1.0)}


def test_bare_flow_and_named_flow() -> None:
    @flow
    def plain() -> int:
        return 1

    @flow(name="renamed", max_visits=2)
    def other() -> int:
        return 2

    assert plain() == 1
    assert plain.__kiln_flow__ == FlowOptions(name="plain")  # type: ignore[attr-defined]
    assert other.__kiln_flow__ == FlowOptions(name="renamed", max_visits=2)  # type: ignore[attr-defined]


def test_options_are_frozen_slotted_and_hashable() -> None:
    options = NodeOptions(name="x")
    with pytest.raises(FrozenInstanceError):
        options.retries = 2  # type: ignore[misc]
    assert not hasattr(options, "__dict__")
    flow_options = FlowOptions(name="f", limits={"a": Limit(1)})
    assert hash(flow_options) == hash(FlowOptions(name="f", limits={"a": Limit(1)}))
    assert hash(options) == hash(NodeOptions(name="x"))
    assert hash(Limit(3, refresh=2)) == hash(Limit(3, refresh=2.0))


def test_flow_limits_are_a_read_only_copy() -> None:
    limits = {"llm": Limit(2)}

    @flow(limits=limits)
    def f() -> None:
        return None

    limits["other"] = Limit(5)
    stored = f.__kiln_flow__.limits  # type: ignore[attr-defined]
    assert dict(stored) == {"llm": Limit(2)}
    with pytest.raises(TypeError):
        stored["x"] = Limit(1)


BAD_NODE_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name must be a non-empty string"),
    ({"name": "  "}, "name must be a non-empty string"),
    ({"name": 3}, "name must be a non-empty string"),
    ({"retries": -1}, "retries must be an integer >= 0"),
    ({"retries": 1.5}, "retries must be an integer >= 0"),
    ({"retries": True}, "retries must be an integer >= 0"),
    ({"wait": -0.1}, "wait must be a finite number of seconds >= 0"),
    ({"wait": float("inf")}, "wait must be a finite number"),
    ({"wait": "1"}, "wait must be a finite number"),
    ({"backoff": 0.5}, "backoff must be a finite number >= 1"),
    ({"backoff": float("nan")}, "backoff must be a finite number >= 1"),
    (
        {"retry_on": ValueError},
        "retry_on must be a non-empty tuple of exception classes",
    ),
    ({"retry_on": ()}, "retry_on must be a non-empty tuple"),
    ({"retry_on": (ValueError, int)}, "retry_on must be a non-empty tuple"),
    ({"retry_on": ("ValueError",)}, "retry_on must be a non-empty tuple"),
    ({"timeout": 0}, "timeout must be a finite number of seconds > 0"),
    ({"timeout": -1}, "timeout must be a finite number of seconds > 0"),
    ({"timeout": False}, "timeout must be a finite number of seconds > 0"),
    ({"fallback": 3}, "fallback must be a function"),
    (
        {"fallback": "keep_going"},
        r"fallback must be a function defined with def beside the node: give the "
        r"function itself \(fallback=keep_going\), not its name as a string; got",
    ),
    ({"limit": ""}, "limit must be a non-empty group name"),
    ({"cache": 1}, "cache must be True or False"),
    ({"thread": "yes"}, "thread must be True or False"),
    ({"max_visits": 0}, "max_visits must be an integer >= 1"),
    ({"max_visits": 2.0}, "max_visits must be an integer >= 1"),
]


@pytest.mark.parametrize(("options", "message"), BAD_NODE_OPTIONS)
def test_bad_node_options_fail_at_decoration(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(OptionError, match=message) as caught:
        node(**options)
    assert repr(next(iter(options.values()))) in str(caught.value)


BAD_FLOW_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name must be a non-empty string"),
    ({"max_visits": 0}, "max_visits must be an integer >= 1"),
    ({"max_visits": None}, "max_visits must be an integer >= 1"),
    ({"limits": [("llm", 1)]}, "limits must be a dict of group names to Limit"),
    ({"limits": {"llm": 8}}, r"limits\['llm'\] must be Limit\(capacity\)"),
    ({"limits": {"": Limit(1)}}, "each key of limits must be a non-empty group name"),
    ({"concurrency": 0}, "concurrency must be an integer >= 1"),
    ({"concurrency": True}, "concurrency must be an integer >= 1"),
]


@pytest.mark.parametrize(("options", "message"), BAD_FLOW_OPTIONS)
def test_bad_flow_options_fail_at_decoration(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(OptionError, match=message):
        flow(**options)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), "Limit capacity must be an integer >= 1"),
        ((2.5,), "Limit capacity must be an integer >= 1"),
        ((True,), "Limit capacity must be an integer >= 1"),
        ((1, 0), "Limit refresh must be a finite number of seconds > 0"),
        ((1, -1.0), "Limit refresh must be a finite number of seconds > 0"),
        ((1, "1"), "Limit refresh must be a finite number"),
    ],
)
def test_bad_limits(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        Limit(*args)


def test_limit_defaults() -> None:
    assert Limit(3) == Limit(capacity=3, refresh=None)
    assert Limit(3, refresh=1).refresh == 1.0


def test_option_error_is_a_value_error_and_a_kiln_error() -> None:
    with pytest.raises(ValueError, match="retries"):
        node(retries=-1)
    assert issubclass(OptionError, KilnError)


def test_thread_on_an_async_node_is_refused() -> None:
    async def fetch() -> int:
        return 1

    with pytest.raises(OptionError, match="thread=True applies to sync nodes"):
        node(thread=True)(fetch)
    with pytest.raises(OptionError, match="thread=True applies to sync nodes"):
        node(thread=True, name="partial")(functools.partial(fetch))


def test_a_wait_between_retries_of_a_sync_node_is_accepted() -> None:
    # Compiled, the pause is awaited (a site of kind "waiting"): it blocks no call
    # the flow runs beside the node.
    def parse(text: str) -> float:
        return float(text)

    node(retries=2, wait=0.5)(parse)
    node(retries=2, wait=0.5, thread=True)(parse)


def test_a_function_is_a_node_or_a_flow_not_both() -> None:
    def f() -> None:
        return None

    node(f)
    with pytest.raises(OptionError, match="already marked as a node"):
        flow(f)

    def g() -> None:
        return None

    flow(g)
    with pytest.raises(OptionError, match="already marked as a flow"):
        node(g)


def test_redecorating_a_node_replaces_its_options() -> None:
    def f() -> None:
        return None

    node(retries=1)(f)
    node(retries=2)(f)
    assert f.__kiln_node__.retries == 2  # type: ignore[attr-defined]


def test_a_name_where_the_function_goes_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match=r"write @node\(name='fetch'\)"):
        node("fetch")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="@flow decorates a function"):
        flow(42)  # type: ignore[call-overload]


def test_targets_without_attributes_or_names() -> None:
    with pytest.raises(TypeError, match="needs a function defined with def"):
        node(len)
    partial = functools.partial(int, base=2)
    with pytest.raises(OptionError, match="has no __name__"):
        node(partial)
    assert node(name="parse_binary")(partial) is partial


def test_visit_limit_error_names_node_limit_and_place() -> None:
    error = VisitLimitError("poll", 5, "flows.py:12")
    assert (error.node, error.limit, error.where) == ("poll", 5, "flows.py:12")
    assert str(error) == (
        "node 'poll' exceeded its visit limit of 5 (called at flows.py:12); "
        "raise max_visits or check the loop's exit condition"
    )
    assert isinstance(error, KilnError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.node, copy.limit, copy.where, str(copy)) == (
        "poll",
        5,
        "flows.py:12",
        str(error),
    )


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_visits_counts_to_the_limit_and_raises_on_the_visit_past_it(limit: int) -> None:
    counter = visits("poll", limit, "flows.py:12")
    assert [next(counter) for _ in range(limit)] == list(range(1, limit + 1))
    with pytest.raises(VisitLimitError) as raised:
        next(counter)
    assert (raised.value.node, raised.value.limit, raised.value.where) == (
        "poll",
        limit,
        "flows.py:12",
    )
