"""A Hypothesis strategy for random DAG-shaped flows, written as source text.

Every generated module has nodes `n0..nK` (sync or async, some sleeping a
little so that interleavings vary) and one flow `main(x: int, memory: Memory)`
whose statements wire them: plain calls on earlier values, fan-outs over a
range, `if`/`else` on an earlier value, inline glue, Memory writes whose
order the compiled flow must keep, `while` loops that stay within the flow's
`max_visits`, calls of nodes that fail a few times before their retries
make them succeed, calls of a subflow, alone or fanned out, fan-outs over an
async stream fed by earlier values (inside another call, as `total([...])`),
tuple unpacking, names rebound after earlier steps read them (plainly, by
unpacking, or in one arm of a branch), branches whose arms call nodes of
both kinds or whose `elif` reads an earlier value, names bound by `:=` in
a call's arguments and in a `while` test, a `match` with a guarded case, and
lambdas whose defaults are read as they are made and whose bodies read a
name when called, after a step binds it again.
The flow returns every value no later statement reads, and some that one
does, so the differential test compares the whole computation, not only its
end, while values read once make chains of steps across statements, as
hand-written flows have.

With `flows(counted=True)`, every node call records itself in the module's
`executed` just before it returns, so a test can compare the calls a
compiled flow makes with its source's (as a multiset: a node called twice
where the source calls it once computes the same values from pure nodes).
`flows(durable=True)` counts too, and makes a flow a durable run journals and
replays as it is: no Memory writes (a replayed call writes nothing), no
streams (not journaled) and no module state its nodes change (a durable run
refuses those): each call logs itself as a line of `$KILN_TEST_RUNS`, the call
whose place in the log the file `$KILN_TEST_RUNS.fail_at` holds raises
`Injected` instead, once, and attempts are counted in `$KILN_TEST_RUNS.attempts`.

With `flows(broken=True)`, some nodes are broken: a call raises `Broken`
(naming the node and its arguments) when its arguments meet the node's
condition, after its delay, so that calls fail in another order in time than
in source order; the source run raises the first in source order.

A node with retries fails only while the module's `planned_failures` is true:
a plain run of the source has no retries, so the reference run turns the
failures off (`plain_run_without_failures`) and computes the value the retries
eventually reach. Attempts are counted per call (node and arguments) in the
module's `attempts`, and each such call's planned failures are in `planned`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from types import ModuleType

from hypothesis import strategies as st


@dataclass(frozen=True)
class NodeSpec:
    is_async: bool
    delay: float
    weight: int
    fails: int = 0  # planned failures of each call (a call: the node and its arguments)
    retries: int = 0  # >= fails, so that every call succeeds in the end
    thread: bool = False  # a sync node with retries may run in a worker thread
    breaks: int = 0  # a call breaks when (sum of its arguments + index) % breaks == 0
    # The call records itself in `executed`: flows(counted=True), flows(durable=True).
    counted: bool = False
    durable: bool = False  # its records are in files: flows(durable=True)

    def source(self, index: int) -> str:
        head = "async def" if self.is_async else "def"
        sleep = (
            f"    await asyncio.sleep({self.delay})\n"
            if self.is_async and self.delay
            else ""
        )
        options = [f"retries={self.retries}"] if self.retries else []
        if self.thread:
            options.append("thread=True")
        decorator = f"@node({', '.join(options)})" if options else "@node"
        failing = (
            f'    key = f"n{index}{{values}}"\n'
            f"    attempts[key] = attempts.get(key, 0) + 1\n"
            f"    planned[key] = {self.fails}\n"
            f"    if planned_failures and attempts[key] <= {self.fails}:\n"
            f'        raise Planned(f"{{key}}: planned failure {{attempts[key]}}")\n'
            if self.fails
            else ""
        )
        if self.fails and self.durable:
            failing = (
                f'    key = f"n{index}{{values}}"\n'
                f"    if planned_failures and attempt(key) <= {self.fails}:\n"
                f'        raise Planned(f"{{key}}: planned failure")\n'
            )
        breaking = (
            f"    if (sum(values) + {index}) % {self.breaks} == 0:\n"
            f'        raise Broken(f"n{index}{{values}}")\n'
            if self.breaks
            else ""
        )
        counting = f'    ran("n{index}", values)\n' if self.counted else ""
        return (
            f"{decorator}\n{head} n{index}(*values: int) -> int:\n{failing}{sleep}"
            f"{breaking}{counting}"
            f"    return (sum(values) * {self.weight} + {index}) % 1000003\n"
        )


def plain_run_without_failures(module: ModuleType) -> ModuleType:
    """Make the source `module`'s nodes succeed at once, for the plain reference run."""
    setattr(module, "planned_failures", False)  # noqa: B010 - a module's variable
    return module


def retried_as_planned(module: ModuleType) -> bool:
    """Whether every call of a compiled `module` took its planned failures, then one more."""
    # Tree-shaken away when no node of the flow fails.
    attempts: dict[str, int] = getattr(module, "attempts", {})
    planned: dict[str, int] = getattr(module, "planned", {})
    return attempts.keys() == planned.keys() and all(
        attempts[key] == planned[key] + 1 for key in attempts
    )


def _call(index: int, spec: NodeSpec, args: list[str]) -> str:
    call = f"n{index}({', '.join(args)})"
    return f"await {call}" if spec.is_async else call


def _with_retries(draw: st.DrawFn, spec: NodeSpec) -> NodeSpec:
    """`spec` failing 1-3 times per call, with enough retries to succeed."""
    fails = draw(st.integers(min_value=1, max_value=3))
    return replace(
        spec,
        fails=fails,
        retries=fails + draw(st.integers(min_value=0, max_value=1)),
        thread=not spec.is_async and draw(st.booleans()),
    )


def _while_loop(
    draw: st.DrawFn,
    index: int,
    spec: NodeSpec,
    name: str,
    inputs: list[str],
    bound: int,
    memory: bool,
) -> list[str]:
    """A `while` loop whose call sites each run `rounds` times: never past `bound`."""
    rounds = draw(st.integers(min_value=0, max_value=bound))
    lines = [
        f"{name} = {inputs[0]}",
        f"{name}_i = 0",
        f"while {name}_i < {rounds}:",
        f"    {name} = {_call(index, spec, [name, *inputs[1:]])}",
    ]
    if memory and draw(st.booleans()):
        lines.append(f"    await record(memory, {name})")
    if draw(st.booleans()):
        lines.append(f"    {name}_i = await step({name}_i)")
    else:
        lines.append(f"    {name}_i += 1")
    return lines


HEADER = """\
import asyncio
from collections.abc import AsyncIterator

from kiln import Memory, flow, node

planned_failures = True
attempts: dict[str, int] = {}
planned: dict[str, int] = {}


class Planned(Exception):
    pass


class Broken(Exception):
    pass


@node
async def record(memory: Memory, value: int) -> None:
    await asyncio.sleep(0)
    memory.log = [*memory.log, value]


@node
async def step(i: int) -> int:
    return i + 1


@node
async def upto(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@node
def total(values: list[int]) -> int:
    return sum(values) % 1000003


@node
async def pair(a: int, b: int) -> tuple[int, int]:
    await asyncio.sleep(0.001 * (a % 2))
    return (a + b) % 1000003, (a * 3 - b) % 1000003


@flow
async def sub(a: int, b: int) -> int:
    left = await step(a)
    right = await step(b)
    return (left * 7 + right) % 1000003


"""


SHAPES = (
    "call",
    "call",
    "fan_out",
    "branch",
    "two_arms",
    "loop",
    "memory",
    "glue",
    "while",
    "retry",
    "subflow",
    "stream_fan_out",
    "rebind",
    "unpack",
    "arms_call",
    "rebind_in_arm",
    "elif",
    "walrus",
    "walrus_while",
    "stream_join",
    "match",
    "closure",
)


def _statement(
    draw: st.DrawFn,
    shape: str,
    index: int,
    spec: NodeSpec,
    inputs: list[str],
    values: list[str],
    bound: int,
    memory: bool = True,
) -> list[str]:
    """The lines of one statement of `shape` that computes `v{index}` with node `index`.

    `memory=False`: a `while` loop writes no Memory.
    """
    name = f"v{index}"
    if shape in ("call", "retry"):
        return [f"{name} = {_call(index, spec, inputs)}"]
    if shape == "fan_out":
        width = draw(st.integers(min_value=0, max_value=4))
        element = _call(index, spec, [*inputs, "k"])
        if draw(st.booleans()):  # an element of two calls: a function per element
            element = _call(index, spec, [element, "k"])
        clauses = f"for k in range({width})" + draw(st.sampled_from(["", " if k != 1"]))
        kind = draw(st.sampled_from(["list", "dict", "set"]))
        if kind == "dict":
            return [
                f"{name}_all = {{k: {element} {clauses}}}",
                f"{name} = sum({name}_all.values()) + sum({name}_all)",
            ]
        brackets = "[]" if kind == "list" else "{}"
        return [
            f"{name}_all = {brackets[0]}{element} {clauses}{brackets[1]}",
            f"{name} = sum({name}_all)",
        ]
    if shape == "branch":
        test = draw(st.sampled_from(values))
        return [
            f"if {test} % 2 == 0:",
            f"    {name} = {_call(index, spec, inputs)}",
            "else:",
            f"    {name} = {inputs[0]} + 1",
        ]
    if shape == "two_arms":
        test = draw(st.sampled_from(values))
        other = draw(st.sampled_from(values))
        return [
            f"if {test} % 3 == 0:",
            f"    {name}_a = {_call(index, spec, inputs)}",
            f"    {name}_b = {_call(index, spec, [other])}",
            f"    {name} = {name}_a - {name}_b",
            f"elif {_call(index, spec, [test])} % 2 == 0:",
            f"    {name} = {_call(index, spec, [other, test])}",
            "else:",
            f"    {name} = {other}",
        ]
    if shape == "loop":
        width = draw(st.integers(min_value=0, max_value=3))
        return [
            f"{name} = {inputs[0]}",
            f"for k in range({width}):",
            f"    {name}_k = {_call(index, spec, [*inputs, 'k'])}",
            f"    {name}_j = {_call(index, spec, ['k'])}",
            f"    {name} = {name} + {name}_k * {name}_j",
        ]
    if shape == "while":
        return _while_loop(draw, index, spec, name, inputs, bound, memory)
    if shape == "subflow":
        other = draw(st.sampled_from(values))
        if draw(st.booleans()):
            width = draw(st.integers(min_value=0, max_value=3))
            called = f"sum([await sub(k, {other}) for k in range({width})])"
        else:
            called = f"await sub({inputs[0]}, {other})"
        return [
            f"{name}_s = {called}",
            f"{name} = {_call(index, spec, [f'{name}_s', *inputs[1:]])}",
        ]
    if shape == "stream_fan_out":  # the stream and the element fed by different steps
        element = _call(index, spec, [*inputs, "k"])
        stream = draw(st.sampled_from(values))
        return [f"{name} = total([{element} async for k in upto({stream} % 4)])"]
    if shape == "stream_join":
        # Two chains meet in the fan-out: the stream's, started by an inline step
        # before the element's, which starts from the newest value.
        first, newest = draw(st.sampled_from(values)), values[-1]
        element = _call(index, spec, [f"{name}_d", "k"])
        return [
            f"{name}_a = {first} + {inputs[0]}",
            f"{name}_b = total([{name}_a, {newest}])",
            f"{name}_c = await step({newest})",
            f"{name}_d = {name}_c + {name}_c",
            f"{name} = total([{element} async for k in upto({name}_b % 4)])",
        ]
    if shape == "rebind":  # an earlier value, read before, computed again
        old = draw(st.sampled_from(values))
        return [
            f"{old} = {_call(index, spec, [old, *inputs])}",
            f"{name} = {old} + 1",
        ]
    if shape == "unpack":  # the second name is new, or an earlier value rebound
        other = draw(st.sampled_from([f"{name}_b", *values]))
        first, second = draw(st.sampled_from(values)), draw(st.sampled_from(values))
        return [
            f"{name}, {other} = await pair({first}, {second})",
            f"{name} = {_call(index, spec, [name, other])}",
        ]
    if shape in ARMS:
        call = partial(_call, index, spec)
        return _arms(draw, shape, name, call, inputs, values)
    if shape == "walrus":
        walrus = f"{name}_w := {inputs[0]} + 1"
        return [
            f"{name} = {_call(index, spec, [walrus, *inputs[1:]])}",
            f"{name} = {name} + {name}_w",
        ]
    if shape == "walrus_while":  # `rounds` calls in the test, never past `bound`
        rounds = draw(st.integers(min_value=1, max_value=bound))
        return [
            f"{name}_i = 0",
            f"while ({name} := {_call(index, spec, [f'{name}_i', *inputs])}) "
            f"and {name}_i < {rounds - 1}:",
            f"    {name}_i += 1",
        ]
    if shape == "closure":  # a default read as it is made, another name when called
        old, other = draw(st.sampled_from(values)), draw(st.sampled_from(values))
        return [
            f"{name}_f = lambda k, d={old}: k * 7 + d + {other}",
            f"{old} = {_call(index, spec, [old, *inputs])}",
            f"{name} = {name}_f({inputs[0]})",
        ]
    if shape == "memory":
        return [
            f"{name} = {_call(index, spec, inputs)}",
            f"await record(memory, {name})",
        ]
    return [f"{name} = {' + '.join(inputs)} * 3"]


ARMS = ("arms_call", "rebind_in_arm", "elif", "match")


def _arms(
    draw: st.DrawFn,
    shape: str,
    name: str,
    call: Callable[[list[str]], str],
    inputs: list[str],
    values: list[str],
) -> list[str]:
    """A statement of `shape` whose arms bind `name`, one of them by `call` of inputs."""
    if shape == "arms_call":
        test = draw(st.sampled_from(values))
        return [
            f"if {test} % 2 == 0:",
            f"    {name} = {call(inputs)}",
            "else:",
            f"    {name} = await step({inputs[-1]})",
        ]
    if shape == "rebind_in_arm":
        test, old = draw(st.sampled_from(values)), draw(st.sampled_from(values))
        return [
            f"if {test} % 2 == 1:",
            f"    {old} = {call([old, *inputs])}",
            f"{name} = {old} + {inputs[0]}",
        ]
    if shape == "elif":  # a plain `elif` test reading an earlier value
        test, other = draw(st.sampled_from(values)), draw(st.sampled_from(values))
        return [
            f"if {test} % 3 == 0:",
            f"    {name} = {call(inputs)}",
            f"elif {other} % 2 == 0:",
            f"    {name} = await step({other})",
            "else:",
            f"    {name} = {inputs[0]}",
        ]
    assert shape == "match"
    test, other = draw(st.sampled_from(values)), draw(st.sampled_from(values))
    return [
        f"match {test} % 3:",
        "    case 0:",
        f"        {name} = {call(inputs)}",
        f"    case 1 if {other} > 0:",
        f"        {name} = await step({other})",
        "    case _:",
        f"        {name} = {inputs[0]} - 1",
    ]


# What a durable run cannot replay as the source runs it: Memory writes, streams.
DURABLE_SHAPES = tuple(
    shape
    for shape in SHAPES
    if shape not in ("memory", "stream_fan_out", "stream_join")
)

COUNTING_HEADER = """\
executed: list[tuple[str, tuple[int, ...]]] = []
fail_at = -1  # the call that raises Injected instead, once: its place in `executed`


class Injected(Exception):
    pass


def ran(node: str, values: tuple[int, ...]) -> None:
    global fail_at
    if len(executed) == fail_at:
        fail_at = -1
        raise Injected(f"{node}{values}")
    executed.append((node, values))


"""

DURABLE_HEADER = """\
import json
import os


class Injected(Exception):
    pass


def ran(node: str, values: tuple[int, ...]) -> None:
    log = os.environ["KILN_TEST_RUNS"]
    done = 0
    if os.path.exists(log):
        with open(log) as made:
            done = len(made.readlines())
    failing = log + ".fail_at"
    if os.path.exists(failing):
        with open(failing) as place:
            fails = int(place.read()) == done
        if fails:
            os.remove(failing)
            raise Injected(f"{node}{values}")
    with open(log, "a") as made:
        made.write(json.dumps([node, *values]) + "\\n")


def attempt(key: str) -> int:
    tries = os.environ["KILN_TEST_RUNS"] + ".attempts"
    with open(tries, "a") as made:
        made.write(key + "\\n")
    with open(tries) as made:
        return made.read().splitlines().count(key)


"""


@st.composite
def flows(
    draw: st.DrawFn,
    *,
    broken: bool = False,
    durable: bool = False,
    counted: bool = False,
) -> str:
    count = draw(st.integers(min_value=1, max_value=9))
    max_visits = draw(st.sampled_from([None, 2, 8]))  # None: the default, 5
    bound = 5 if max_visits is None else max_visits
    nodes = [
        NodeSpec(
            is_async=draw(st.booleans()),
            delay=draw(st.sampled_from([0, 0, 0.001, 0.003])),
            weight=draw(st.integers(min_value=1, max_value=7)),
            breaks=draw(st.sampled_from([0, 0, 1, 2, 3])) if broken else 0,
            counted=durable or counted,
            durable=durable,
        )
        for _ in range(count)
    ]
    values = ["x"]
    lines: list[str] = []
    read_later: list[set[str]] = []  # the values each statement reads
    for index in range(count):
        inputs = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
        shape = draw(st.sampled_from(DURABLE_SHAPES if durable else SHAPES))
        if shape == "retry":
            nodes[index] = _with_retries(draw, nodes[index])
        statement = _statement(
            draw, shape, index, nodes[index], inputs, values, bound, memory=not durable
        )
        lines += statement
        read_later.append(_mentioned(statement, values))
        values.append(f"v{index}")
    # The log is read apart: `list(...)` in the `return` could mutate what it
    # reads, so the `return` would wait for every reader of every value there.
    returned = ", ".join(_returned(draw, values, read_later))
    lines += ["log = list(memory.log)", f"return ({returned},), log"]
    body = "\n".join(f"    {line}" for line in lines)
    nodes_source = "\n\n".join(spec.source(i) for i, spec in enumerate(nodes))
    decorator = "@flow" if max_visits is None else f"@flow(max_visits={max_visits})"
    return (
        f"{HEADER}{_counting(durable=durable, counted=counted)}{nodes_source}\n\n"
        f"{decorator}\n"
        "async def main(x: int, memory: Memory) -> tuple[tuple[int, ...], list[int]]:\n"
        f"{body}\n"
    )


def _counting(*, durable: bool, counted: bool) -> str:
    if durable:
        return DURABLE_HEADER
    return COUNTING_HEADER if counted else ""


def _mentioned(lines: list[str], values: list[str]) -> set[str]:
    words = set(re.findall(r"\w+", "\n".join(lines)))
    return {value for value in values if value in words}


def _returned(draw: st.DrawFn, values: list[str], read: list[set[str]]) -> list[str]:
    """Every value no later statement reads, and some of those that one does.

    A value read once and not returned is a step with one consumer: the
    scheduler fuses such steps into chains across statements, a shape a flow
    returning everything it computed never has. What such a value computes
    still reaches the result through the statement reading it.
    """
    later = set().union(*read) if read else set()
    return [
        value for value in values[1:] if value not in later or draw(st.booleans())
    ] or values[1:]


def _regression(body: str, *specs: NodeSpec) -> str:
    """A module of `flows()`'s shape with the flow body given, for @example."""
    nodes_source = "\n\n".join(spec.source(i) for i, spec in enumerate(specs))
    lines = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return (
        f"{HEADER}{nodes_source}\n\n@flow\n"
        "async def main(x: int, memory: Memory) -> tuple[tuple[int, ...], list[int]]:\n"
        f"{lines}\n"
    )


# Once stopped the compiler (KLN999): the chain ending in v9 starts at `v2`,
# before the chain of v4 that it waits for, and every step left in the flow's
# coroutine waited for it.
SCHEDULER_REGRESSION = _regression(
    """
v0 = total([await n0(x, k) async for k in upto(x % 4)])
if x % 2 == 0:
    v1 = n1(x)
else:
    v1 = await step(v0)
v2 = x * 3
v0 = n1(v0)
v3 = n2(v0, v2)
v4 = await n0(v0)
v5 = n2(v4, v4)
v7 = x + 1
v9 = total([await n0(v5, k) async for k in upto(v3 % 4)])
log = list(memory.log)
return (v7, v0, v9), log
""",
    NodeSpec(is_async=True, delay=0.001, weight=3),
    NodeSpec(is_async=False, delay=0, weight=2),
    NodeSpec(is_async=False, delay=0, weight=1),
)
