"""The calls of a subflow belong to the run that calls it.

A configured instance (observed, limited, capped, with a ledger or a backend)
passes what it was given to the subflows it calls: their node calls are
events of its run, pass its capacity groups and its concurrency cap, keep
their results in its ledger and run on its backend. An instance that needs
nothing calls the module's own subflow instance.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest

from kiln import Limit, NodeEvent, OptionError, Site
from tests.test_differential import compiled_and_source
from tests.test_limits import GAUGE, fresh_gauge

FLOWS = """
@node
async def double(x: int) -> int:
    await asyncio.sleep(0.001)
    return 2 * x

@node(cache=True)
async def square(x: int) -> int:
    return x * x

@flow(limits={"api": Limit(10)})
async def inner(x: int) -> int:
    limited = await call(x)
    return await double(limited)

@flow
async def middle(x: int) -> int:
    return await inner(x) + await square(x)

@flow
async def outer(n: int) -> list[int]:
    values = [await middle(i) for i in range(n)]
    return [await inner(v) for v in values]

@flow(concurrency=2)
async def capped(n: int) -> list[int]:
    return [await inner(i) for i in range(n)]

@flow(limits={"api": Limit(3)})
async def narrow(n: int) -> list[int]:
    return [await inner(i) for i in range(n)]
"""


def expected(n: int) -> list[int]:
    return [2 * (2 * i + i * i) for i in range(n)]


@pytest.fixture
def module(tmp_path: Path) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(GAUGE) + dedent(FLOWS), tmp_path)
    return compiled


def test_an_instance_that_needs_nothing_calls_the_module_subflow(
    module: ModuleType,
) -> None:
    plain = module.outer._kiln_calls
    assert module.outer._kiln_bind(plain).calls is plain
    assert plain == (module.middle, module.inner)


def test_every_node_call_of_every_subflow_is_an_event_of_the_run(
    module: ModuleType,
) -> None:
    ended: list[NodeEvent] = []

    def on_event(event: NodeEvent) -> None:
        if event.ended is not None:
            ended.append(event)

    observed = type(module.outer)(on_event=on_event, record=True, ledger=False)
    assert observed(3) == expected(3)
    # Per outer run: middle 3 times (inner's call and double, square), inner 3 more.
    per_run = {"call": 6, "double": 6, "square": 3}
    counted = {node: sum(e.node == node for e in ended) for node in per_run}
    assert counted == per_run
    assert {e.run for e in ended} == {ended[0].run}
    # One name per call: a site's visits count on across the subflow's runs.
    names = [(e.run, e.site, e.node, e.visit) for e in ended]
    assert len(set(names)) == len(names)
    assert observed.executor is not None
    recorded = list(observed.executor.completed_events)
    assert sorted(id(e) for e in recorded) == sorted(id(e) for e in ended)
    assert observed(1) == expected(1)
    assert len({e.run for e in ended}) == 2  # the next run has a number of its own


def test_the_run_s_concurrency_cap_holds_the_subflows_calls(
    module: ModuleType,
) -> None:
    gauge = fresh_gauge(module)
    assert module.capped(8) == [2 * i for i in range(8)]
    assert gauge.peak == 2
    gauge = fresh_gauge(module)
    assert type(module.capped)(concurrency=5)(8) == [2 * i for i in range(8)]
    assert gauge.peak == 5


def test_the_run_s_limit_of_a_group_is_the_subflows_limit(module: ModuleType) -> None:
    gauge = fresh_gauge(module)
    assert module.narrow(9) == [2 * i for i in range(9)]
    assert gauge.peak == 3  # narrow's Limit(3), not inner's Limit(10)
    gauge = fresh_gauge(module)
    assert module.inner(4) == 8
    assert type(module.narrow)(limits={"api": Limit(4)})(9) == [2 * i for i in range(9)]
    assert gauge.peak == 4


def test_limits_may_name_the_groups_of_the_flows_a_flow_calls(
    module: ModuleType,
) -> None:
    gauge = fresh_gauge(module)
    # Only inner declares "api": outer's runs take the group by name.
    configured = type(module.outer)(limits={"api": Limit(1)}, ledger=False)
    assert configured(3) == expected(3)
    assert gauge.peak == 1
    with pytest.raises(OptionError, match=r"'nope'.*\(its groups: 'api'\)"):
        type(module.outer)(limits={"nope": Limit(1)})


def test_the_run_s_ledger_keeps_the_subflows_results(
    module: ModuleType, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    hits: list[bool] = []

    def on_event(event: NodeEvent) -> None:
        if event.node == "square" and event.ended is not None:
            hits.append(event.cache_hit)

    flow = type(module.outer)(ledger=str(ledger), on_event=on_event)
    assert flow(3) == expected(3)
    assert flow(3) == expected(3)
    assert hits == [False] * 3 + [True] * 3
    from kiln.ledger import Ledger  # noqa: PLC0415

    entries = {n.node: n.entries for n in Ledger.at(ledger).stats().nodes}
    assert entries == {"square": 3}


class Recording:
    """A backend that runs each attempt in the loop, and notes which node it ran."""

    def __init__(self) -> None:
        self.nodes: list[str] = []

    async def run(
        self, site: Site, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self.nodes.append(site.node)
        await asyncio.sleep(0)
        return await site.fn(*args, **kwargs)


def test_the_run_s_backend_runs_the_subflows_calls(module: ModuleType) -> None:
    backend = Recording()
    assert type(module.outer)(backend=backend, ledger=False)(2) == expected(2)
    assert sorted(backend.nodes) == sorted(["call", "double"] * 4 + ["square"] * 2)


def test_a_cancelled_run_cancels_its_subflows_calls(module: ModuleType) -> None:
    seen: list[NodeEvent] = []
    gauge = fresh_gauge(module)

    async def cancelled() -> None:
        task = asyncio.create_task(
            type(module.capped)(on_event=seen.append).aforward(6)
        )
        while gauge.now < 2:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    assert gauge.now == 0
    # Every call of the run, the two admitted and the four waiting for the cap.
    calls = {id(e): e for e in seen}.values()
    assert [e.status.name for e in calls] == ["CANCELLED"] * 6
    assert sorted(e.attempts for e in calls) == [0, 0, 0, 0, 1, 1]
