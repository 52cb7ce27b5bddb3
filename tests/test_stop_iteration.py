"""A StopIteration leaves a compiled flow as it leaves the source, and never hangs it.

Python turns a StopIteration into RuntimeError where it would end a generator
or a coroutine (PEP 479): so a flow's source raises it as itself from a plain
`def` and a list comprehension, and as RuntimeError from a generator
expression or an `async def`. kiln runs a sync flow's thread=True nodes from a
coroutine, reads a generator of node calls into a list, and hands a thread's
outcome over a future (which refuses a StopIteration); each must still give
the source's exception. Every flow runs in a process of its own, with a
timeout, as source and compiled.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

NODES = """\
from collections.abc import AsyncIterator, Iterator

from kiln import flow, node


@node(thread=True)
def stops_in_thread(x: int) -> int:
    raise StopIteration(f"stop {x}")


@node(thread=True)
def plus_in_thread(x: int) -> int:
    return x + 1


@node
def stops(x: int) -> int:
    if x == 2:
        raise StopIteration(f"stop {x}")
    return x


@node(retries=1, wait=0.001)
def stops_waiting(x: int) -> int:
    raise StopIteration(f"stop {x}")


@node(thread=True)
def stops_async_in_thread(x: int) -> int:
    raise StopAsyncIteration(f"stop {x}")


@node
def stream_stops(xs: list[int]) -> Iterator[int]:
    yield xs[0]
    raise StopIteration("in a stream")


@node
async def astream_stops(xs: list[int]) -> AsyncIterator[int]:
    yield xs[0]
    next(iter([]))


@flow
def sub(x: int) -> int:
    return stops_in_thread(x)
"""

FLOWS = {
    "thread_node_in_a_sync_flow": """
@flow
def main(xs: list[int]) -> int:
    return stops_in_thread(xs[0])
""",
    "thread_node_in_an_async_flow": """
@flow
async def main(xs: list[int]) -> int:
    return plus_in_thread(xs[0]) + stops_in_thread(xs[0])
""",
    "thread_nodes_in_a_fan_out": """
@flow
async def main(xs: list[int]) -> list[int]:
    return [stops_in_thread(x) for x in xs]
""",
    "exhausted_iterator_in_a_sync_flow_that_awaits": """
@flow
def main(xs: list[int]) -> int:
    first = plus_in_thread(xs[0])
    return first + next(iter([]))
""",
    "generator_read_whole": """
@flow
def main(xs: list[int]) -> int:
    return sum(stops(x) for x in xs)
""",
    "generator_sorted": """
@flow
def main(xs: list[int]) -> list[int]:
    return sorted(stops(x) for x in xs)
""",
    "list_comprehension": """
@flow
def main(xs: list[int]) -> list[int]:
    return [stops(x) for x in xs]
""",
    "thread_nodes_in_a_fan_out_of_a_sync_flow": """
@flow
def main(xs: list[int]) -> list[int]:
    return [stops_in_thread(x) for x in xs]
""",
    "waiting_node_in_an_async_flow": """
@flow
async def main(xs: list[int]) -> int:
    return stops_waiting(xs[0])
""",
    "waiting_node_in_a_sync_flow": """
@flow
def main(xs: list[int]) -> int:
    return plus_in_thread(xs[0]) + stops_waiting(xs[0])
""",
    "stop_async_iteration_from_a_thread_node": """
@flow
async def main(xs: list[int]) -> int:
    return stops_async_in_thread(xs[0])
""",
    "stop_async_iteration_from_a_thread_node_in_a_sync_flow": """
@flow
def main(xs: list[int]) -> int:
    return stops_async_in_thread(xs[0])
""",
    "sync_stream_in_an_async_flow": """
@flow
async def main(xs: list[int]) -> list[int]:
    return [x for x in stream_stops(xs)]
""",
    "sync_stream_in_a_sync_flow": """
@flow
def main(xs: list[int]) -> list[int]:
    first = plus_in_thread(xs[0])
    return [first + x for x in stream_stops(xs)]
""",
    "async_stream": """
@flow
async def main(xs: list[int]) -> list[int]:
    return [x async for x in astream_stops(xs)]
""",
    "streaming_sync_flow": """
@flow
def main(xs: list[int]) -> Iterator[int]:
    yield plus_in_thread(xs[0])
    yield stops_in_thread(xs[0])
""",
    "streaming_sync_flow_with_a_sync_node": """
@flow
def main(xs: list[int]) -> Iterator[int]:
    yield plus_in_thread(xs[0])
    yield stops(2)
""",
    "streaming_async_flow": """
@flow
async def main(xs: list[int]) -> AsyncIterator[int]:
    yield plus_in_thread(xs[0])
    yield stops_in_thread(xs[0])
""",
    "sync_subflow_in_a_sync_flow": """
@flow
def main(xs: list[int]) -> int:
    return plus_in_thread(xs[0]) + sub(xs[0])
""",
    "sync_subflow_in_an_async_flow": """
@flow
async def main(xs: list[int]) -> int:
    return plus_in_thread(xs[0]) + sub(xs[0])
""",
}

RUN = """\
import asyncio, inspect, json, sys
sys.path.insert(0, sys.argv[1])
import flow_source as m

async def whole(stream):
    return [item async for item in stream]

main = type(m.main)(record=True) if sys.argv[2] == "observed" else m.main
try:
    result = main([1, 2, 3])
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    elif inspect.isasyncgen(result) or hasattr(result, "__anext__"):
        result = asyncio.run(whole(result))
    elif not isinstance(result, (int, list)):
        result = list(result)
    print(json.dumps(["returned", result]))
except BaseException as error:
    print(json.dumps(["raised", type(error).__name__, str(error)]))
"""


def outcome(directory: Path, how: str = "plain") -> object:
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(directory), how],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,  # a hang is a failure, not a stuck suite
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("how", ["plain", "observed"])
@pytest.mark.parametrize("name", sorted(FLOWS))
def test_a_stop_iteration_leaves_the_compiled_flow_as_it_leaves_the_source(
    tmp_path: Path, name: str, how: str
) -> None:
    (tmp_path / "flow_source.py").write_text(NODES + FLOWS[name], encoding="utf-8")
    compilation = compile_file(tmp_path / "flow_source.py")
    assert compilation.output is not None, compilation.diagnostics
    out = tmp_path / "out"
    out.mkdir()
    (out / "flow_source.py").write_text(compilation.output, encoding="utf-8")
    expected = outcome(tmp_path)
    assert expected[0] == "raised", expected
    assert outcome(out, how) == expected


# What kiln adds around a node's call sees the node's StopIteration as itself,
# though it crosses kiln's coroutines as the RuntimeError of PEP 479: its
# notes, the retries' `retry_on`, a fallback's `error`, a run's events.
OWN = """\
from kiln import flow, node

SEEN: list[int] = []


@node(thread=True)
def stops_in_thread(x: int) -> int:
    raise StopIteration(f"stop {x}")


@node(thread=True)
def fails_in_thread(x: int) -> int:
    raise ValueError(f"fail {x}")


@node
def stops(x: int) -> int:
    raise StopIteration(f"stop {x}")


@node(thread=True, retries=1, retry_on=(StopIteration,))
def flaky_in_thread(x: int) -> int:
    SEEN.append(x)
    if len(SEEN) == 1:
        raise StopIteration("first")
    return x


@node(retries=1, wait=0.001, retry_on=(StopIteration,))
def flaky_waiting(x: int) -> int:
    SEEN.append(x)
    if len(SEEN) == 1:
        raise StopIteration("first")
    return x


@node(thread=True, retries=1, retry_on=(RuntimeError,))
def stops_not_retried(x: int) -> int:
    SEEN.append(x)
    raise StopIteration("again")


def named(x: int, error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


@node(thread=True, fallback=named)
def stops_with_fallback(x: int) -> str:
    raise StopIteration(f"stop {x}")


@node(retries=1, wait=0.001, fallback=named)
def stops_waiting_with_fallback(x: int) -> str:
    raise StopIteration(f"stop {x}")


@flow
def sync_thread(x: int) -> int:
    return stops_in_thread(x)


@flow
def sync_fails(x: int) -> int:
    return fails_in_thread(x)


@flow
def sync_plain(x: int) -> int:
    return stops(x)


@flow
async def async_thread(x: int) -> int:
    return stops_in_thread(x)


@flow
def retried_in_thread(x: int) -> int:
    return flaky_in_thread(x)


@flow
async def retried_waiting(x: int) -> int:
    return flaky_waiting(x)


@flow
def not_retried(x: int) -> int:
    return stops_not_retried(x)


@flow
def fell_back_in_thread(x: int) -> str:
    return stops_with_fallback(x)


@flow
async def fell_back_waiting(x: int) -> str:
    return stops_waiting_with_fallback(x)
"""


@pytest.fixture
def own(tmp_path: Path) -> ModuleType:
    compiled, _ = compiled_and_source(OWN, tmp_path)
    return compiled


def configured(flow: Any, observed: bool) -> Any:
    return type(flow)(record=True) if observed else flow


def kiln_notes(error: BaseException) -> list[str]:
    return [note for note in getattr(error, "__notes__", ()) if "kiln:" in note]


@pytest.mark.parametrize("observed", [False, True])
def test_a_thread_node_s_stop_iteration_has_the_notes_any_failure_has(
    own: ModuleType, observed: bool
) -> None:
    """From a flow written as a `def`: the StopIteration itself, noted as a ValueError is."""
    with pytest.raises(ValueError, match="fail 1") as failed:
        configured(own.sync_fails, observed)(1)
    with pytest.raises(StopIteration) as stopped:
        configured(own.sync_thread, observed)(1)
    for error, node in [
        (failed.value, "fails_in_thread"),
        (stopped.value, "stops_in_thread"),
    ]:
        attempts, call = kiln_notes(error)
        assert attempts.startswith(f"kiln: node '{node}' failed after 1 attempt")
        assert call.startswith(f"kiln: node '{node}' failed; defined at")


@pytest.mark.parametrize("observed", [False, True])
@pytest.mark.parametrize(
    ("flow", "node"), [("sync_thread", "stops_in_thread"), ("sync_plain", "stops")]
)
def test_aforward_of_a_flow_written_as_a_def_raises_what_an_await_can(
    own: ModuleType, observed: bool, flow: str, node: str
) -> None:
    """An await cannot raise StopIteration (it means "returned"), nor can a
    future hold one: `aforward` raises the RuntimeError every coroutine makes
    of it, with the node's StopIteration, noted, as its cause."""
    instance = configured(getattr(own, flow), observed)
    with pytest.raises(RuntimeError) as raised:
        asyncio.run(instance.aforward(1))
    assert str(raised.value) == "coroutine raised StopIteration"
    cause = raised.value.__cause__
    assert isinstance(cause, StopIteration)
    assert str(cause) == "stop 1"
    assert f"kiln: node '{node}' failed; defined at" in "\n".join(kiln_notes(cause))
    with pytest.raises(StopIteration) as itself:  # the sync entry point: as the source
        instance(1)
    assert str(itself.value) == "stop 1"


@pytest.mark.parametrize("observed", [False, True])
@pytest.mark.parametrize("flow", ["retried_in_thread", "retried_waiting"])
def test_retry_on_stop_iteration_retries_a_node_s_stop_iteration(
    own: ModuleType, observed: bool, flow: str
) -> None:
    result = configured(getattr(own, flow), observed)(7)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    assert (result, own.SEEN) == (7, [7, 7])


@pytest.mark.parametrize("observed", [False, True])
def test_retry_on_runtime_error_does_not_retry_a_stop_iteration(
    own: ModuleType, observed: bool
) -> None:
    with pytest.raises(StopIteration) as raised:
        configured(own.not_retried, observed)(1)
    assert own.SEEN == [1]
    assert "StopIteration is not in its retry_on" in kiln_notes(raised.value)[0]


@pytest.mark.parametrize("observed", [False, True])
@pytest.mark.parametrize("flow", ["fell_back_in_thread", "fell_back_waiting"])
def test_a_fallback_is_handed_the_node_s_stop_iteration(
    own: ModuleType, observed: bool, flow: str
) -> None:
    result = configured(getattr(own, flow), observed)(3)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    assert result == "StopIteration: stop 3"


def test_the_event_of_a_call_records_the_node_s_stop_iteration(own: ModuleType) -> None:
    instance = type(own.async_thread)(record=True)
    with pytest.raises(RuntimeError):
        asyncio.run(instance.aforward(1))
    [event] = instance.executor.pile
    assert type(event.error) is StopIteration
