"""An `on_event` hook that raises: the error is the hook's, never the node's.

It leaves the run as itself, whatever kind of call the hook was told of,
with a note naming the hook and the event, and none saying that the node
failed; no retry repeats the call for it, and no fallback answers it.
"""

from __future__ import annotations

import re
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest

from kiln import EventStatus, NodeEvent, OptionError
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
from kiln import flow, node

RAN: list[str] = []

def refund(x: int, *, error: Exception) -> int:
    RAN.append("fallback")
    return -1

@node
async def plain(x: int) -> int:
    RAN.append("plain")
    return x * 10

@node(retries=2, fallback=refund)
async def charge(x: int) -> int:
    RAN.append("charge")
    await asyncio.sleep(0)
    return x * 10

@node(retries=2, fallback=refund)
def tally(x: int) -> int:
    RAN.append("tally")
    return x * 10

@node(retries=2, fallback=refund)
def declined(x: int) -> int:
    RAN.append("declined")
    raise ValueError(f"declined {x}")

@flow
async def plain_flow(x: int) -> int:
    return await plain(x)

@flow
async def charge_flow(x: int) -> int:
    return await charge(x)

@flow
def tally_flow(x: int) -> int:
    return tally(x)

@flow
def declined_flow(x: int) -> int:
    return declined(x)
"""

# What the instance adds to on_event: each picks another wrapped call for the node.
CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "on_event alone": {},
    "recorded": {"record": True},
    "capped": {"concurrency": 2},
}


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    compiled, _ = compiled_and_source(dedent(FLOWS), tmp_path_factory.mktemp("hooks"))
    return compiled


class HookDown(Exception):
    pass


def raising_on(status: EventStatus, seen: list[NodeEvent]) -> Any:
    def hook(event: NodeEvent) -> None:
        seen.append(event)
        if event.status is status:
            raise HookDown(f"metrics backend down ({status.value})")

    return hook


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
@pytest.mark.parametrize("node", ["plain", "charge", "tally"])
@pytest.mark.parametrize("status", [EventStatus.PROCESSING, EventStatus.COMPLETED])
def test_a_hook_that_raises_raises_as_itself_and_no_fallback_answers_it(
    module: ModuleType, configuration: str, node: str, status: EventStatus
) -> None:
    module.RAN.clear()
    seen: list[NodeEvent] = []
    flow = type(getattr(module, f"{node}_flow"))(
        on_event=raising_on(status, seen), **CONFIGURATIONS[configuration]
    )
    with pytest.raises(HookDown) as raised:
        flow(3)
    # Neither retried nor answered: the node ran once if it had started, else never.
    ran = [node] if status is EventStatus.COMPLETED else []
    assert ran == module.RAN
    (note,) = raised.value.__notes__  # no note says that the node failed
    assert re.fullmatch(
        rf"kiln: on_event raised on the '{status.value}' event of node '{node}', "
        r"called at \S+:\d+ \(the hook's error, not the node's\)",
        note,
    ), note
    assert len(seen) == (1 if status is EventStatus.PROCESSING else 2)
    event = seen[-1]  # the hook is not told again of the call it stopped
    if status is EventStatus.PROCESSING:
        assert (event.status, event.error) == (EventStatus.FAILED, raised.value)
        assert event.ended is not None
    else:
        assert (event.status, event.error) == (EventStatus.COMPLETED, None)
    if flow.executor is not None:
        assert list(flow.executor.pile) == [event]


def test_a_hook_that_raises_on_a_failed_call_raises_over_the_node_s_error(
    module: ModuleType,
) -> None:
    module.RAN.clear()
    flow = type(module.declined_flow)(on_event=raising_on(EventStatus.FAILED, []))
    with pytest.raises(HookDown) as raised:
        flow(3)
    assert module.RAN == ["declined"] * 3  # its retries, and no fallback
    assert isinstance(raised.value.__context__, ValueError)  # the node's, shown first
    assert [n.split(" event")[0] for n in raised.value.__notes__] == [
        "kiln: on_event raised on the 'failed'"
    ]


class AsyncHook:
    async def __call__(self, event: NodeEvent) -> None:
        pass


async def async_hook(event: NodeEvent) -> None:
    pass


@pytest.mark.parametrize("hook", [async_hook, AsyncHook()])
def test_an_async_hook_is_refused_when_the_instance_is_made(
    module: ModuleType, hook: Any
) -> None:
    """Called as each event happens, its coroutine would never be awaited: only a
    RuntimeWarning said so (trial N)."""
    with pytest.raises(OptionError, match="on_event must be a plain function"):
        type(module.plain_flow)(on_event=hook)
    assert type(module.plain_flow)(on_event=print) is not None  # a builtin's fine
