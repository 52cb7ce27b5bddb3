"""BrainyFlow's own test suite, ported to kiln flows: every capability has a home.

Someone moving from BrainyFlow (``python/tests/test_{memory,node,flow,
parallel_flow}.py`` in zvictor/BrainyFlow) should find each behaviour its suite
checks here, written the kiln way: a source text of ``@node`` functions and
``@flow`` functions, compiled with kiln and, wherever the source terminates, run
as plain Python too. The source run is the reference semantics: the compiled
result must equal it. Where a behaviour only exists compiled (retries,
timeouts, visit limits), the test says what the plain run does instead.

BrainyFlow test behaviour                          kiln test here
-------------------------------------------------  ------------------------------------------
Memory: reads local then global; writes go to      test_memory_reads_local_then_global_and_
global and drop a local shadow; a global write     writes_global
is seen by the next node (TestMemoryHandling::
propagate_global_memory_changes); nodes run in
sequence following default actions
(TestSequentialExecution)
Memory.clone / forking data isolates local         test_clone_isolation_across_parallel_
memory (isolate_local_memory_using_forking_data);  branches
ParallelFlow runs triggered branches concurrently
and mixes parallel and sequential steps
several triggers of one node, each with its own    test_fan_out_gives_each_branch_a_clone,
forking data (TestResultAggregation::multi_        test_fan_out_over_one_shared_memory_
trigger)                                           keeps_source_order
Node retries: ``max_retries=3`` succeeds after     test_retries_succeed_when_they_cover_every_
two failures (test_retry_exec_on_failure)          failure
exec_fallback called after the last retry, with    test_giving_up_raises_the_original_exception,
the error (and ``error.retry_count``); the         test_fallback_receives_the_error,
fallback's own error propagates                    test_a_failing_fallback_propagates
wait between retries (test_wait_between_retries)   test_wait_between_retries
conditional branching on a triggered action        test_branching_on_a_returned_action
(TestConditionalBranching)
Flow as a node, nested flows, a sub-flow's         test_nested_flows
terminal action steering the parent
(TestFlowAsNode)
cycle detection: a loop runs max_visits times,     test_loop_within_its_bound_equals_the_source,
then ``AssertionError: Maximum cycle count``       test_loop_past_its_bound_raises_one_visit_
(TestCycleDetection)                               late, test_visit_limit_survives_python_O
(parity notes) a 200-iteration loop dies with      test_long_loops_run_without_recursion
RecursionError whatever max_visits says
(parity notes) 20 parallel triggers of one node    test_fan_out_in_a_loop_is_one_visit
count as 20 visits
ParallelFlow: independent work overlaps, in a      test_independent_calls_overlap_with_fresh_
loop body too                                      names, test_independent_calls_overlap_when_
                                                   they_rebind_their_inputs
(kiln additions users of BrainyFlow ask for)       test_timeout_stops_a_slow_node,
                                                   test_timeout_of_a_thread_node_bounds_the_
                                                   sync_entry_point,
                                                   test_retry_on_limits_what_is_retried,
                                                   test_thread_nodes_overlap,
                                                   test_cancelling_during_retries_stops_the_flow

What differs on purpose:

- ``retries=k`` means k *extra* attempts (k + 1 in all); BrainyFlow's
  ``max_retries=k`` counts every attempt. kiln's default is 0 retries, one
  attempt, as BrainyFlow's default ``max_retries=1``.
- The error that leaves after the last attempt is the original exception
  object, never wrapped, with a note naming the node and the attempts instead
  of a ``retry_count`` attribute. The fallback is ``fallback(*args,
  error=exc)``: it receives the node's arguments, not a ``prep_res``.
- The visit bound raises ``kiln.VisitLimitError`` (node, limit, source line)
  on the visit past the bound, not ``AssertionError``, so it survives
  ``python -O``; loops are ``while`` loops, not recursion; a visit is one
  execution of a call site, so a 20-way fan-out is one visit.
- Reading a missing Memory key raises ``KeyError``/``AttributeError`` (use
  ``memory.get``), as BrainyFlow's Memory does now.
- No prep/exec/post lifecycle, ``>>``/``- "action" >>`` wiring, node cloning
  or ExecutionTree: a node is a function, wiring is Python control flow, and
  a flow returns what it returns. Those BrainyFlow tests have no counterpart.
  Memory unit behaviour (deletion, reserved names, deep copies) is tested on
  the runtime in tests/runtime/test_runtime_memory.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest

from kiln import Memory, VisitLimitError
from tests.probes import library_module
from tests.test_differential import compiled_and_source


def build(source: str, tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(dedent(source), tmp_path)


def line_of(source: str, text: str) -> int:
    """The 1-based line of the only line of the dedented `source` containing `text`."""
    lines = [i for i, line in enumerate(dedent(source).splitlines(), 1) if text in line]
    assert len(lines) == 1, (text, lines)
    return lines[0]


def notes(error: BaseException) -> list[str]:
    return list(getattr(error, "__notes__", []))


def other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


# --- Memory ------------------------------------------------------------------------------

MEMORY = """
from kiln import Memory, flow, node

@node
async def peek(memory: Memory) -> list[str]:
    return [memory.common, memory.g1, memory.l1]

@node
async def write_a(memory: Memory) -> None:
    memory.global_A = "set_by_A"
    memory.common = "written globally"

@node
async def read_b(memory: Memory) -> list[str]:
    return [memory.global_A, memory.common, memory["l1"], str("common" in memory.local)]

@flow
async def chain(memory: Memory) -> list[str]:
    before = await peek(memory)
    await write_a(memory)
    after = await read_b(memory)
    return before + after
"""


def test_memory_reads_local_then_global_and_writes_global(tmp_path: Path) -> None:
    compiled, source = build(MEMORY, tmp_path)

    def fresh() -> tuple[dict[str, Any], dict[str, Any], Memory]:
        global_store = {"g1": "global1", "common": "global_common"}
        local_store = {"l1": "local1", "common": "local_common"}
        return global_store, local_store, Memory(global_store, local_store)

    _, _, memory = fresh()
    expected = asyncio.run(source.chain(memory))
    assert expected == [
        "local_common",  # local shadows global
        "global1",  # falls back to global
        "local1",
        "set_by_A",  # a global write is seen by the next node
        "written globally",  # the write dropped the local shadow
        "local1",
        "False",
    ]
    for run in (compiled.chain, compiled.chain.aforward):
        global_store, local_store, memory = fresh()
        result = run(memory) if run is compiled.chain else asyncio.run(run(memory))
        assert result == expected
        assert global_store == {
            "g1": "global1",
            "common": "written globally",
            "global_A": "set_by_A",
        }
        assert local_store == {"l1": "local1"}


CLONES = """
import asyncio
from kiln import Memory, flow, node

trace: list[str] = []

@node
async def branch(memory: Memory) -> str:
    side = memory.side
    trace.append(f"start {side}")
    memory.local["scratch"] = f"private to {side}"
    # Yield until the other branch has started too, or give up: a plain run,
    # one call at a time, never sees it start.
    for _ in range(100):
        if len([t for t in trace if t.startswith("start")]) >= 2:
            break
        await asyncio.sleep(0)
    memory[f"seen_{side}"] = memory.shared
    trace.append(f"end {side}")
    return f"{side}: {memory.scratch} / {memory.base}"

@node
async def finish(memory: Memory, result: str) -> str:
    await asyncio.sleep(0)
    return f"{result} / {memory.side} finished, {memory.scratch}"

@flow
async def fork(memory: Memory) -> tuple[list[str], bool, bool, dict[str, str]]:
    left_memory = memory.clone({"side": "left"})
    right_memory = memory.clone({"side": "right"})
    left = await branch(left_memory)
    right = await branch(right_memory)
    left_done = await finish(left_memory, left)
    right_done = await finish(right_memory, right)
    leaked = "scratch" in memory
    sided = "side" in memory
    return [left_done, right_done], leaked, sided, dict(memory.local)
"""


def test_clone_isolation_across_parallel_branches(tmp_path: Path) -> None:
    compiled, source = build(CLONES, tmp_path)

    def fresh() -> tuple[dict[str, Any], Memory]:
        global_store = {"shared": "g"}
        return global_store, Memory(global_store, {"base": "L"})

    source_store, memory = fresh()
    expected = asyncio.run(source.fork(memory))
    assert expected == (
        [
            "left: private to left / L / left finished, private to left",
            "right: private to right / L / right finished, private to right",
        ],
        False,  # local writes of a clone do not leak into the parent
        False,  # nor does the forking data
        {"base": "L"},
    )
    assert source.trace == ["start left", "end left", "start right", "end right"]

    compiled_store, memory = fresh()
    assert compiled.fork(memory) == expected
    # Global writes are shared: both branches wrote to the caller's dict.
    assert (
        compiled_store
        == source_store
        == {"shared": "g", "seen_left": "g", "seen_right": "g"}
    )
    # Each branch writes a global key it computes (f"seen_{side}"): kiln cannot
    # tell the keys apart, so the branches keep the source's order (KLN311).
    assert compiled.trace == source.trace


FAN_OUT_CLONES = """
import asyncio
from kiln import Memory, flow, node

trace: list[str] = []

@node
async def branch(memory: Memory) -> str:
    trace.append(f"start {memory.item}")
    memory.local["scratch"] = memory.item * 2
    await asyncio.sleep(0)
    memory[f"seen_{memory.item}"] = memory.scratch
    trace.append(f"end {memory.item}")
    return f"{memory.item}: {memory.scratch}"

@flow
async def fan(memory: Memory, n: int) -> tuple[list[str], bool]:
    results = [await branch(memory.clone({"item": i})) for i in range(n)]
    return results, "scratch" in memory or "item" in memory
"""


def test_fan_out_gives_each_branch_a_clone(tmp_path: Path) -> None:
    # BrainyFlow's multiple triggers with forking data: one clone per branch.
    compiled, source = build(FAN_OUT_CLONES, tmp_path)
    source_store: dict[str, Any] = {}
    expected = asyncio.run(source.fan(Memory(source_store), 5))
    assert expected == ([f"{i}: {2 * i}" for i in range(5)], False)
    compiled_store: dict[str, Any] = {}
    assert compiled.fan(Memory(compiled_store), 5) == expected
    assert compiled_store == source_store == {f"seen_{i}": 2 * i for i in range(5)}
    # Each element writes a global key it computes: they run in source order.
    assert compiled.trace == source.trace


SHARED_FAN_OUT = """
import asyncio
from kiln import Memory, flow, node

@node
async def append(memory: Memory, i: int) -> int:
    log = memory.log
    await asyncio.sleep(0)
    memory.log = [*log, i]
    return i

@flow
async def fan(memory: Memory, n: int) -> list[int]:
    done = [await append(memory, i) for i in range(n)]
    return done + list(memory.log)
"""


def test_fan_out_over_one_shared_memory_keeps_source_order(tmp_path: Path) -> None:
    compiled, source = build(SHARED_FAN_OUT, tmp_path)
    expected = asyncio.run(source.fan(Memory({"log": []}), 4))
    assert expected == [0, 1, 2, 3, 0, 1, 2, 3]
    assert compiled.fan(Memory({"log": []}), 4) == expected  # compiled: [0, 1, 2, 3, 3]


# --- retries, fallbacks, waits -----------------------------------------------------------

FLAKY = """
import asyncio
import time
from kiln import flow, node

attempts: dict[str, int] = {{}}
raised: list[Exception] = []
stamps: list[float] = []

class Planned(Exception):
    pass

given: list[Exception] = []

def rescue(key: str, *, error: Exception) -> str:
    given.append(error)
    return f"fallback for {{key}} after {{error}}"

async def rescue_async(key: str, *, error: Exception) -> str:
    given.append(error)
    return f"async fallback for {{key}} after {{error}}"

@node({options})
{head} flaky(key: str) -> str:
    stamps.append(time.perf_counter())
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] <= {fails}:
        error = Planned(f"planned failure {{attempts[key]}} of {{key}}")
        raised.append(error)
        raise error
    return f"{{key}} succeeded on attempt {{attempts[key]}}"

@flow
async def run(key: str) -> str:
    return {call}
"""

KINDS = {
    "async": ("async def", "await flaky(key)", ""),
    "sync": ("def", "flaky(key)", ""),
    "thread": ("def", "flaky(key)", "thread=True, "),
}


def flaky_source(kind: str, fails: int, options: str) -> str:
    head, call, extra = KINDS[kind]
    return FLAKY.format(head=head, call=call, fails=fails, options=extra + options)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("fails", [1, 3])
def test_retries_succeed_when_they_cover_every_failure(
    tmp_path: Path, kind: str, fails: int
) -> None:
    compiled, source = build(flaky_source(kind, fails, f"retries={fails}"), tmp_path)
    assert compiled.run("job") == f"job succeeded on attempt {fails + 1}"
    assert compiled.attempts == {"job": fails + 1}
    # A plain run has no retries: the decorator is transparent.
    with pytest.raises(source.Planned, match="planned failure 1 of job"):
        asyncio.run(source.run("job"))
    # Once the failures are used up, the plain run computes what kiln did.
    source.attempts["job"] = fails
    assert asyncio.run(source.run("job")) == f"job succeeded on attempt {fails + 1}"


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("fails", [1, 3])
def test_giving_up_raises_the_original_exception(
    tmp_path: Path, kind: str, fails: int
) -> None:
    compiled, _ = build(flaky_source(kind, fails, f"retries={fails - 1}"), tmp_path)
    with pytest.raises(compiled.Planned) as caught:
        compiled.run("job")
    assert type(caught.value) is compiled.Planned
    assert caught.value is compiled.raised[-1]  # the very object of the last attempt
    assert str(caught.value) == f"planned failure {fails} of job"
    assert compiled.attempts == {"job": fails}
    if fails > 1:  # with retries=0 there is no policy and no count of attempts to note
        assert any(
            f"node 'flaky' failed after {fails} attempts (retries={fails - 1})" in note
            for note in notes(caught.value)
        ), notes(caught.value)
    assert any(
        "'flaky'" in note and "generated_flow.py:" in note
        for note in notes(caught.value)
    ), notes(caught.value)


@pytest.mark.parametrize(
    ("kind", "fallback"),
    [
        ("async", "rescue"),
        ("sync", "rescue"),
        ("thread", "rescue"),
        ("async", "rescue_async"),
    ],
)
def test_fallback_receives_the_error(tmp_path: Path, kind: str, fallback: str) -> None:
    compiled, source = build(
        flaky_source(kind, 10, f"retries=1, fallback={fallback}"), tmp_path
    )
    prefix = "async fallback" if fallback == "rescue_async" else "fallback"
    assert compiled.run("job") == f"{prefix} for job after planned failure 2 of job"
    assert compiled.attempts == {"job": 2}
    # fallback(*args, error=exc): the node's arguments and the last attempt's exception.
    assert compiled.given == [compiled.raised[-1]]
    # A plain run has no fallback: the first failure leaves.
    with pytest.raises(source.Planned, match="planned failure 1 of job"):
        asyncio.run(source.run("job"))


def test_a_failing_fallback_propagates(tmp_path: Path) -> None:
    text = flaky_source("async", 10, "retries=1, fallback=rescue").replace(
        '    return f"fallback for {key} after {error}"',
        '    raise ValueError(f"fallback error: {error}")',
    )
    compiled, _ = build(text, tmp_path)
    with pytest.raises(ValueError, match="fallback error: planned failure 2 of job"):
        compiled.run("job")
    assert compiled.attempts == {"job": 2}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wait_between_retries(tmp_path: Path, kind: str) -> None:
    options = "retries=2, wait=0.05, backoff=2, fallback=rescue"
    compiled, _ = build(flaky_source(kind, 10, options), tmp_path)
    start = time.perf_counter()
    assert compiled.run("job") == "fallback for job after planned failure 3 of job"
    elapsed = time.perf_counter() - start
    first, second, third = compiled.stamps
    assert second - first >= 0.045  # wait
    assert third - second >= 0.095  # wait * backoff
    assert 0.14 <= elapsed < 2.0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_retry_on_limits_what_is_retried(tmp_path: Path, kind: str) -> None:
    compiled, _ = build(
        flaky_source(kind, 2, "retries=3, retry_on=(Planned,)"), tmp_path
    )
    assert compiled.run("job") == "job succeeded on attempt 3"
    text = flaky_source(kind, 2, "retries=3, retry_on=(KeyError,)")
    compiled, _ = build(text, tmp_path / "other")
    with pytest.raises(compiled.Planned, match="planned failure 1 of job"):
        compiled.run("job")
    assert compiled.attempts == {"job": 1}  # not retried: not a KeyError


# --- branching, nesting ------------------------------------------------------------------

BRANCHING = """
from kiln import flow, node

@node
async def decide(x: int) -> str:
    if x > 0:
        return "path_B"
    if x < 0:
        return "path_C"
    return "default"

@node
async def on_b(x: int) -> str:
    return f"B({x})"

@node
def on_c(x: int) -> str:
    return f"C({x})"

@node
async def shout(text: str) -> str:
    return text.upper() + "!"

@flow
async def route(x: int) -> list[str]:
    action = await decide(x)
    if action == "path_B":
        result = await on_b(x)
    elif action == "path_C":
        result = on_c(x)
    else:
        result = "nothing"
    match action:
        case "path_B":
            loud = await shout(result)
        case "path_C" | "default":
            loud = result
    return [action, result, loud]
"""


@pytest.mark.parametrize("x", [-2, 0, 3])
def test_branching_on_a_returned_action(tmp_path: Path, x: int) -> None:
    compiled, source = build(BRANCHING, tmp_path)
    expected = asyncio.run(source.route(x))
    assert expected[0] == {-2: "path_C", 0: "default", 3: "path_B"}[x]
    assert compiled.route(x) == expected
    assert asyncio.run(compiled.route.aforward(x)) == expected


NESTED = """
import asyncio
from kiln import Memory, flow, node

@node
async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x

@node
async def record(memory: Memory, entry: str) -> None:
    await asyncio.sleep(0)
    memory.log = [*memory.log, entry]

@node
async def finish(memory: Memory, action: str) -> str:
    return f"{action} after {len(memory.log)} entries"

@flow
async def inner(x: int) -> str:
    y = await double(x)
    if y > 10:
        return "sub_flow_completed"
    return "small"

@flow
async def middle(x: int, memory: Memory) -> str:
    action = await inner(x)
    await record(memory, f"middle {x}: {action}")
    return action

@flow
async def outer(xs: list[int], memory: Memory) -> list[str]:
    first = await middle(xs[0], memory)
    second = await middle(xs[1], memory)
    if first == "sub_flow_completed":
        end = await finish(memory, first)
    else:
        end = "stopped"
    return [first, second, end, *memory.log]
"""


@pytest.mark.parametrize("xs", [[7, 1], [1, 7]])
def test_nested_flows(tmp_path: Path, xs: list[int]) -> None:
    compiled, source = build(NESTED, tmp_path)
    expected = asyncio.run(source.outer(xs, Memory({"log": []})))
    assert compiled.outer(xs, Memory({"log": []})) == expected
    assert asyncio.run(compiled.outer.aforward(xs, Memory({"log": []}))) == expected
    # Each sub-flow is usable alone, compiled as well.
    assert compiled.inner(xs[0]) == asyncio.run(source.inner(xs[0]))


# --- loops and visit limits --------------------------------------------------------------

REVIEW = """
from kiln import flow, node

revisions: list[str] = []

@node
async def draft(topic: str) -> str:
    return f"a draft about {topic}"

@node(max_visits=50)
async def review(text: str, need: int) -> bool:
    return text.count("!") >= need

@node
async def revise(text: str) -> str:
    revisions.append(text)
    return text + "!"

@flow(max_visits=4)
async def write(topic: str, need: int) -> str:
    text = await draft(topic)
    while not await review(text, need):
        text = await revise(text)
    return text
"""


@pytest.mark.parametrize("need", [0, 1, 4])
def test_loop_within_its_bound_equals_the_source(tmp_path: Path, need: int) -> None:
    compiled, source = build(REVIEW, tmp_path)
    expected = asyncio.run(source.write("kiln", need))
    assert expected == "a draft about kiln" + "!" * need
    assert compiled.write("kiln", need) == expected
    # Visits are counted per run: a second run has its whole bound again.
    assert compiled.write("kiln", need) == expected
    assert len(compiled.revisions) == 2 * need


@pytest.mark.parametrize("need", [5, 50])
def test_loop_past_its_bound_raises_one_visit_late(tmp_path: Path, need: int) -> None:
    compiled, source = build(REVIEW, tmp_path)
    # The plain run terminates (it has no bound) ...
    assert asyncio.run(source.write("kiln", need)) == "a draft about kiln" + "!" * need
    # ... the compiled one stops on the visit past revise's bound of 4.
    with pytest.raises(VisitLimitError) as caught:
        compiled.write("kiln", need)
    error = caught.value
    assert (error.node, error.limit) == ("revise", 4)
    assert error.where.endswith(
        f"generated_flow.py:{line_of(REVIEW, '= await revise(')}"
    )
    assert "'revise'" in str(error)
    assert "4" in str(error)
    assert len(compiled.revisions) == 4  # four visits ran, the fifth did not
    # BrainyFlow: `AssertionError: Maximum cycle count (4) reached`. kiln's is no assert:
    assert not isinstance(error, AssertionError)


def test_visit_limit_survives_python_O(tmp_path: Path) -> None:
    build(REVIEW, tmp_path)
    script = dedent(f"""
        import importlib.util, sys
        from kiln import VisitLimitError
        assert sys.flags.optimize == 1
        assert False, "asserts are stripped under -O, so this line does nothing"
        spec = importlib.util.spec_from_file_location("compiled", {str(tmp_path / "out.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(module.write("kiln", 2))
        try:
            module.write("kiln", 10)
        except VisitLimitError as error:
            print(error.node, error.limit)
        else:
            print("no limit")
        """)
    done = subprocess.run(
        [sys.executable, "-O", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["a draft about kiln!!", "revise 4"]


LONG_LOOPS = """
from kiln import flow, node

@node
async def a(x: int) -> int:
    return x + 2

@node
async def b(i: int) -> int:
    return i + 1

@flow(max_visits=200)
async def two_hundred(n: int) -> tuple[int, int]:
    i = 0
    x = 0
    while i < n:
        x = await a(x)
        i = await b(i)
    return x, i

@flow(max_visits=5000)
async def five_thousand(n: int) -> tuple[int, int]:
    i = 0
    x = 0
    while i < n:
        x = await a(x)
        i = await b(i)
    return x, i
"""


def test_long_loops_run_without_recursion(tmp_path: Path) -> None:
    compiled, source = build(LONG_LOOPS, tmp_path)
    expected = asyncio.run(source.two_hundred(200))
    assert expected == (400, 200)
    assert compiled.two_hundred(200) == expected
    with pytest.raises(VisitLimitError) as caught:
        compiled.two_hundred(201)
    assert (caught.value.node, caught.value.limit) == ("a", 200)
    # Far past the recursion limit, which would end a loop that recursed.
    n = 4000  # past Python's default recursion limit of 1000, which a recursing loop hits
    assert (
        compiled.five_thousand(n) == asyncio.run(source.five_thousand(n)) == (2 * n, n)
    )


FAN_OUT_LOOP = """
from kiln import flow, node

@node
async def work(i: int, k: int) -> int:
    return i * k

@node
async def step(i: int) -> int:
    return i + 1

@flow(max_visits=3)
async def rounds(n: int) -> list[int]:
    i = 0
    totals: list[int] = []
    while i < n:
        parts = [await work(i, k) for k in range(20)]
        totals.append(sum(parts))
        i = await step(i)
    return totals
"""


def test_fan_out_in_a_loop_is_one_visit(tmp_path: Path) -> None:
    compiled, source = build(FAN_OUT_LOOP, tmp_path)
    # 3 rounds of 20 calls: 60 calls of `work`, 3 visits of its call site.
    expected = asyncio.run(source.rounds(3))
    assert expected == [0, 190, 380]
    assert compiled.rounds(3) == expected
    with pytest.raises(VisitLimitError) as caught:
        compiled.rounds(4)
    error = caught.value
    assert (error.node, error.limit) == ("work", 3)
    assert error.where.endswith(
        f"generated_flow.py:{line_of(FAN_OUT_LOOP, 'await work(')}"
    )


REBOUND = """
import asyncio
from kiln import flow, node
from overlaps import overlap

@node
async def a(x: int) -> int:
    await overlap("a", "b")
    return x + 2

@node
async def b(i: int) -> int:
    await overlap("b", "a")
    return i + 1

@flow
async def fresh_names(x: int, i: int) -> tuple[int, int]:
    y = await a(x)
    j = await b(i)
    return y, j

@flow
async def rebound_names(x: int, i: int) -> tuple[int, int]:
    x = await a(x)
    i = await b(i)
    return x, i

@flow
async def rebound_in_a_loop(n: int) -> tuple[int, int]:
    x = 0
    i = 0
    while i < n:
        x = await a(x)
        i = await b(i)
    return x, i
"""


# What watches the calls overlap: a library kiln does not read, whose calls are
# outside effects (a node reading events another sets, in the project's own
# module state, would wait for it, as the source runs them).
OVERLAPS = """
import asyncio

trace: list[str] = []
started: dict[str, asyncio.Event] = {}


async def overlap(me: str, other: str) -> None:
    trace.append(f"start {me}")
    started.setdefault(me, asyncio.Event()).set()
    for _ in range(100):  # until the other call started too, or give up
        if started.setdefault(other, asyncio.Event()).is_set():
            break
        await asyncio.sleep(0)
    trace.append(f"end {me}")


def reset() -> None:
    trace.clear()
    started.clear()
"""


@pytest.fixture
def overlaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return library_module(tmp_path, monkeypatch, "overlaps", OVERLAPS)


def overlapped(trace: list[str]) -> bool:
    return max(trace.index("start a"), trace.index("start b")) < min(
        trace.index("end a"), trace.index("end b")
    )


def test_independent_calls_overlap_with_fresh_names(
    tmp_path: Path, overlaps: ModuleType
) -> None:
    compiled, source = build(REBOUND, tmp_path / "project")
    expected = asyncio.run(source.fresh_names(1, 1))
    assert not overlapped(overlaps.trace)
    overlaps.reset()
    assert compiled.fresh_names(1, 1) == expected == (3, 2)
    assert overlapped(overlaps.trace), overlaps.trace


@pytest.mark.parametrize("name", ["rebound_names", "rebound_in_a_loop"])
def test_independent_calls_overlap_when_they_rebind_their_inputs(
    tmp_path: Path, name: str, overlaps: ModuleType
) -> None:
    compiled, source = build(REBOUND, tmp_path / "project")
    args = (1, 1) if name == "rebound_names" else (1,)
    expected = asyncio.run(getattr(source, name)(*args))
    overlaps.reset()
    assert getattr(compiled, name)(*args) == expected
    assert overlapped(overlaps.trace), overlaps.trace


# --- timeouts, threads, cancellation -----------------------------------------------------

TIMEOUTS = """
import asyncio
import time
from kiln import flow, node

@node(timeout=0.05)
async def slow(x: int) -> int:
    await asyncio.sleep(0.5)
    return x

@node(thread=True, timeout=0.05)
def slow_thread(x: int) -> int:
    time.sleep(0.5)
    return x

@flow
async def run_slow(x: int) -> int:
    return await slow(x)

@flow
async def run_slow_thread(x: int) -> int:
    return slow_thread(x)
"""


@pytest.mark.parametrize("name", ["run_slow", "run_slow_thread"])
def test_timeout_stops_a_slow_node(tmp_path: Path, name: str) -> None:
    compiled, _ = build(TIMEOUTS, tmp_path)

    async def run() -> float:
        start = time.perf_counter()
        with pytest.raises(TimeoutError) as caught:
            await getattr(compiled, name).aforward(1)
        elapsed = time.perf_counter() - start
        assert any(
            "exceeded its timeout of 0.05s" in note for note in notes(caught.value)
        )
        assert other_tasks() == set()
        return elapsed

    elapsed = asyncio.run(run())  # measured inside: a timed-out thread finishes later
    assert 0.04 <= elapsed < 0.3


def test_timeout_of_a_thread_node_bounds_the_sync_entry_point(tmp_path: Path) -> None:
    compiled, _ = build(TIMEOUTS, tmp_path)
    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        compiled.run_slow_thread(1)
    assert (
        time.perf_counter() - start < 0.3
    )  # measured: ~0.5 s, the thread's whole sleep


THREADS = """
import threading
import time
from kiln import flow, node

barrier = threading.Barrier(2, timeout=5)

@node(thread=True)
def blocking(x: int, rendezvous: bool) -> int:
    if rendezvous:
        barrier.wait()  # returns only once the other call is in a thread too
    time.sleep(0.001)
    return x * 10

@flow
async def both(rendezvous: bool) -> list[int]:
    a = blocking(1, rendezvous)
    b = blocking(2, rendezvous)
    return [a, b]

@flow
async def many(n: int) -> list[int]:
    return [blocking(k, False) for k in range(n)]
"""


def test_thread_nodes_overlap(tmp_path: Path) -> None:
    compiled, source = build(THREADS, tmp_path)
    # A two-party barrier passes only if both blocking calls run at once.
    assert compiled.both(True) == [10, 20]
    assert asyncio.run(source.both(False)) == compiled.both(False) == [10, 20]
    assert compiled.many(8) == asyncio.run(source.many(8)) == [10 * k for k in range(8)]


CANCEL = """
import time
from kiln import flow, node

attempts: list[float] = []

class Down(Exception):
    pass

@node(retries=5, wait=30)
async def fetch(x: int) -> int:
    attempts.append(time.perf_counter())
    raise Down(f"attempt {len(attempts)}")

@node(retries=5, wait=30, thread=True)
def fetch_thread(x: int) -> int:
    attempts.append(time.perf_counter())
    raise Down(f"attempt {len(attempts)}")

@flow
async def run(x: int) -> int:
    return await fetch(x)

@flow
async def run_thread(x: int) -> int:
    return fetch_thread(x)
"""


@pytest.mark.parametrize("name", ["run", "run_thread"])
def test_cancelling_during_retries_stops_the_flow(tmp_path: Path, name: str) -> None:
    compiled, _ = build(CANCEL, tmp_path)

    async def run() -> None:
        task = asyncio.create_task(getattr(compiled, name).aforward(1))
        for _ in range(500):  # until the first attempt failed: now it waits 30 s
            if compiled.attempts:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert len(compiled.attempts) == 1
        start = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.perf_counter() - start < 0.5
        assert other_tasks() == set()  # nothing left running
        await asyncio.sleep(0.1)
        assert len(compiled.attempts) == 1  # and no retry came later

    asyncio.run(run())
