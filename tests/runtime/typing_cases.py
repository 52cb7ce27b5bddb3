"""Static typing of the runtime, checked by mypy --strict in test_runtime_typing.py.

Not a test module: mypy reads it, pytest never runs it. A line that must be a
mypy error ends with ``# E: <error code>``; every other line must pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, assert_type

from kiln import (
    AsyncFunc,
    AsyncProcess,
    AsyncStreamProcess,
    Child,
    Func,
    Limit,
    Memory,
    Policy,
    Process,
    Scope,
    StreamProcess,
    aforward,
    amap,
    astream,
    call,
    call_in_thread,
    call_sync,
    flow,
    forward,
    gather,
    iterate,
    keyed,
    node,
    run_sync,
    stream,
)

# --- decorators keep the exact type of the function -------------------------


@node
def load(path: str) -> list[str]:
    return [path]


@node(retries=3, wait=0.5, timeout=30, limit="llm", cache=True)
async def summarize(paragraph: str) -> str:
    return paragraph


@node
def count(n: int) -> Iterator[int]:
    yield from range(n)


@flow(limits={"llm": Limit(8, refresh=1.0)})
async def digest(path: str) -> str:
    return "".join([await summarize(p) for p in load(path)])


assert_type(load("x"), list[str])
assert_type(count(2), Iterator[int])


async def awaits_nodes() -> None:
    assert_type(await summarize("x"), str)
    assert_type(await digest("p"), str)


load(3)  # E: arg-type
node(retries="3")  # E: call-overload


# --- processes: fields are typed constructor arguments ----------------------


class Scale(Process):
    factor: int
    offset: int = 0

    def forward(self, x: int) -> int:
        return x * self.factor + self.offset


class Both(AsyncProcess, Process):
    def forward(self, x: int) -> str:
        return str(x)

    async def aforward(self, x: int) -> str:
        return str(x)


class Tokens(AsyncStreamProcess, StreamProcess):
    def stream(self, text: str) -> Iterator[str]:
        yield from text.split()

    async def astream(self, text: str) -> AsyncIterator[str]:
        for word in text.split():
            yield word


scale = Scale(2, offset=1)
assert_type(scale.forward(3), int)
assert_type(scale.factor, int)
Scale()  # E: call-arg
Scale("2")  # E: arg-type
Both(1)  # E: call-arg
assert_type(Both().forward(1), str)
assert_type(Tokens().stream("a b"), Iterator[str])
assert_type(Tokens().astream("a b"), AsyncIterator[str])


def double(x: int, factor: int = 2) -> int:
    return x * factor


async def fetch(url: str) -> bytes:
    return url.encode()


async def words(text: str) -> AsyncIterator[str]:
    for word in text.split():
        yield word


assert_type(Func(double, kwargs={"factor": 3}), Func[int])
assert_type(Func(double)(4), int)
assert_type(AsyncFunc(fetch), AsyncFunc[bytes])

# --- helpers follow the callable's type --------------------------------------

assert_type(forward(double, 1), int)
assert_type(forward(fetch, "u"), bytes)
assert_type(forward(scale, 1), Any)
forward(double, "1")  # E: call-overload
assert_type(stream(count, 3), Iterator[int])
assert_type(astream(words, "a b"), AsyncIterator[str])
assert_type(astream(count, 3), AsyncIterator[int])


async def word_list(text: str) -> list[str]:
    return text.split()


assert_type(astream(word_list, "a b"), AsyncIterator[str])


async def helpers() -> None:
    assert_type(await aforward(fetch, "u"), bytes)
    assert_type(await aforward(double, 1), int)
    assert_type(await aforward(Both(), 1), Any)


# --- the run context ---------------------------------------------------------


async def run_context() -> None:
    async with Scope() as scope:
        task = scope.spawn(fetch("u"))
        assert_type(task, Child[bytes])
    assert_type(await gather([fetch("a"), fetch("b")]), list[bytes])
    assert_type(await gather(asyncio.sleep(0, result=i) for i in range(3)), list[int])
    assert_type(await amap(words("a b"), fetch), list[bytes])
    table = dict(await gather(keyed(word, fetch(word)) for word in ["a", "b"]))
    assert_type(table, dict[str, bytes])


async def returns_from_inside_a_scope() -> bytes:
    # A scope never swallows exceptions, so no "missing return statement" here.
    async with Scope() as scope:
        task = scope.spawn(fetch("u"))
        return await task


assert_type(run_sync(fetch("u")), bytes)
run_sync(fetch)  # E: arg-type

# --- Memory: any attribute, values are Any -----------------------------------

memory = Memory({"a": 1})
memory.anything = 3
assert_type(memory.anything, Any)
assert_type(memory["a"], Any)
assert_type(memory.clone({"b": 2}), Memory)
Memory[int]  # E: misc

# --- retries and timeouts keep the node's signature and return type ----------

policy = Policy("fetch", retries=2, wait=0.5, timeout=10, where="flows.py:12")
Policy("fetch", retries="2")  # E: arg-type
Policy(retries=2)  # E: call-arg


async def resilient() -> None:
    assert_type(await call(policy, fetch, "u"), bytes)
    assert_type(await call(policy, summarize, paragraph="p"), str)
    assert_type(await call_in_thread(policy, double, 1, factor=3), int)
    await call(policy, fetch, 1)  # E: arg-type
    await call(policy, fetch)  # E: call-arg
    await call(policy, double, 1)  # E: arg-type
    await call_in_thread(policy, double, "1")  # E: arg-type


assert_type(call_sync(policy, double, 1), int)
assert_type(call_sync(policy, load, path="p"), list[str])
call_sync(policy, double, "1")  # E: arg-type
call_sync(policy, double, 1, scale=2)  # E: call-arg

# --- iterate: a sync loop over an async stream -------------------------------

assert_type(iterate(words("a b")), Iterator[str])
assert_type([len(w) for w in iterate(Tokens().astream("a b"))], list[int])
iterate(count(2))  # E: arg-type
