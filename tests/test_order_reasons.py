"""KLN311 gives the reason that orders the pair, KLN317 the node the value holds.

A trial (Q11) found the right order explained by the wrong reason:

- `think(state)` appends `state["q"]` to a module-level `TRANSCRIPT`, which
  `count(q)` reads: "'count' waits for 'think' because 'think' may change
  'state'", though `count` is never given `state` (it only reaches module
  state, which holds part of it). The module state both use orders them.
- An inline `log.append(...)` between `record(log)` and `remember(state)`:
  "'remember' waits for 'record' because 'record' may change 'log'", the
  first edge of the path through the statement. `remember` changes what the
  caller passed in, so it waits for every step before it: that is the reason.
- A call that waits for another only as the calls it reads from do was
  warned again, naming a change it never sees (`set_shared` after a loop
  that waited for `think`): what a call it reads from waits for is said
  where that call, or the first call of the chain, is.
- A Memory made over a dict (`Memory(shared)`) written by `post`, and
  `query(shared, ds[0])`: the reason named `ds`, not the dict the Memory was
  made over.
- `[await branch({**state, "i": i}) for i in range(n)]`: "'branch' may change
  'i', which the elements share", the loop target each element has its own
  of; the elements share `state`'s list.
- `await TOOLS["rev"](x)`: KLN317 named `t_upper`, the first node of the
  dict, where the key is known to hold `t_rev`.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source


def _messages(tmp_path: Path, source: str, code: Code = Code.EFFECT_ORDER) -> list[str]:
    path = tmp_path / "case.py"
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    return [
        f"{d.span.line}: {d.message}" for d in compilation.diagnostics if d.code is code
    ]


def test_a_local_that_keeps_a_str_of_a_parameter_holds_nothing_of_it(
    tmp_path: Path,
) -> None:
    """`pad` keeps `tasks[0]`, a `str`: changing `pad` later waits for `think`,
    which changes it too, and for nothing that reads `tasks`."""
    source = """
    import asyncio
    from typing import Any

    from kiln import flow, node


    @node
    async def think(pad: dict[str, list[str]], task: str) -> str:
        await asyncio.sleep(0.02)
        pad["thoughts"].append(task)
        return "t:" + task


    @node
    async def act(arg: str) -> str:
        await asyncio.sleep(0.02)
        return arg.upper()


    @flow
    async def react(tasks: list[str], extra: bool) -> dict[str, Any]:
        pad: dict[str, list[str]] = {"thoughts": []}
        thought = await think(pad, tasks[0])
        result = await act(tasks[1])
        if extra:
            more = await act(tasks[0])
            pad["thoughts"].append(more)
        return {"thought": thought, "result": result, "pad": pad}
    """
    assert _messages(tmp_path, source) == [
        "25: the statement at line 25 waits for 'think' (line 23) because 'think' "
        "may change 'pad': it calls pad[\"thoughts\"].append"
    ]


TRANSCRIPT = """\
from typing import Any

from kiln import flow, node

TRANSCRIPT: list[str] = []


@node
async def think(state: dict[str, Any]) -> str:
    TRANSCRIPT.append(state["q"])
    state["msgs"].append("m")
    return "t"


@node
async def count(q: str) -> int:
    return len(TRANSCRIPT)


@flow
async def inner(state: dict[str, Any]) -> str:
    return await think(state)


@flow
async def outer(q: str) -> int:
    state: dict[str, Any] = {"q": q, "msgs": []}
    await CALLED(state)
    return await count(q)
"""


def test_an_order_on_module_state_names_the_state(tmp_path: Path) -> None:
    for called in ("think", "inner"):
        source = TRANSCRIPT.replace("CALLED", called)
        where = tmp_path / "case.py"
        assert _messages(tmp_path, source) == [
            f"29: 'count' waits for '{called}' (line 28) because '{called}' adds to "
            f"the module state 'case.TRANSCRIPT' (calls TRANSCRIPT.append, at "
            f"{where}:10), which 'count' reads (reads TRANSCRIPT, at {where}:17)"
        ]


INLINE_BETWEEN = """
    import asyncio
    from typing import Any

    from kiln import flow, node


    @node
    async def slow_llm(p: str) -> str:
        await asyncio.sleep(0.03)
        return p * 2


    @node
    async def record(log: list[str], x: str) -> None:
        log.append(x)


    @node
    async def remember(state: dict[str, Any], x: str) -> None:
        state["note"] = x


    @flow
    async def caller_sees(p: str, log: list[str], state: dict[str, Any]) -> str:
        a = await slow_llm(p)
        await record(log, "after-llm")
        log.append("inline")
        await remember(state, "note")
        return a
"""
VISIBLE = (
    "which holds what the caller passed in: the caller sees the change even when "
    "the flow fails, and the source makes it only once every step before it has "
    "succeeded"
)


def test_a_change_the_caller_sees_is_the_reason_through_a_statement(
    tmp_path: Path,
) -> None:
    assert _messages(tmp_path, INLINE_BETWEEN) == [
        f"26: 'record' waits for 'slow_llm' (line 25) because 'record' may change "
        f"'log', {VISIBLE}",
        f"28: 'remember' waits for 'record' (line 26) because 'remember' may change "
        f"'state', {VISIBLE}",
    ]
    compiled, source = compiled_and_source(
        textwrap.dedent(INLINE_BETWEEN), tmp_path / "run"
    )
    runs = []
    for module, run in ((compiled, compiled.caller_sees), (source, None)):
        log: list[str] = []
        state: dict[str, str] = {}
        args = ("p", log, state)
        value = run(*args) if run else asyncio.run(module.caller_sees(*args))
        runs.append((value, log, state))
    assert runs[0] == runs[1]


def test_a_wait_inherited_through_a_chain_of_calls_is_said_once(
    tmp_path: Path,
) -> None:
    """`step(m)` waits for `fill` only as `step(n)` does, which waits for it only
    as `use`, warned, does."""
    source = """
    import asyncio

    from kiln import flow, node


    @node
    async def fill(pad: dict[str, list[int]]) -> None:
        await asyncio.sleep(0.01)
        pad["n"].append(1)


    @node
    async def use(pad: dict[str, list[int]]) -> int:
        return len(pad["n"])


    @node
    async def step(n: int) -> int:
        await asyncio.sleep(0.01)
        return n + 1


    @flow
    async def main() -> int:
        pad: dict[str, list[int]] = {"n": []}
        await fill(pad)
        n = await use(pad)
        m = await step(n)
        return await step(m)
    """
    assert _messages(tmp_path, source) == [
        "27: 'use' waits for 'fill' (line 26) because 'fill' may change 'pad': it "
        'calls pad["n"].append'
    ]


def test_a_key_written_names_the_dict_the_memory_was_made_over(
    tmp_path: Path,
) -> None:
    """`ds` shares a class of names with `shared` (it is read in a key of the
    Memory, `memory["emb_" + ds[0]]`), but the dict `post` changes is `shared`."""
    source = """
    import asyncio
    from typing import Any

    from kiln import Memory, flow, node


    @node
    async def prep(memory: Memory) -> list[str]:
        return list(memory.docs)


    @node
    async def embed(memory: Memory, doc: str) -> None:
        memory[f"emb_{doc}"] = len(doc)


    @node
    async def post(memory: Memory) -> str:
        await asyncio.sleep(0.01)
        memory.status = "indexed"
        return "ok"


    @node
    async def query(shared: dict[str, Any], q: str) -> int:
        return int(shared.get(f"emb_{q}", -1))


    @flow
    async def index() -> list[object]:
        shared: dict[str, Any] = {"docs": ["a", "b"]}
        memory = Memory(shared)
        ds = await prep(memory)
        for d in ds:
            await embed(memory, d)
        st = await post(memory)
        hit = await query(shared, ds[0])
        v = memory["emb_" + ds[0]]
        return [st, hit, v]
    """
    assert _messages(tmp_path, source) == [
        "37: 'query' waits for 'post' (line 36) because 'post' may change 'shared': "
        "it writes the key 'status' of the Memory made over it"
    ]


def test_a_fan_out_names_what_its_elements_share_not_its_loop_target(
    tmp_path: Path,
) -> None:
    source = """
    from typing import Any

    from kiln import flow, node


    @node
    async def branch(s: dict[str, Any]) -> int:
        s["messages"].append(s["i"])
        return len(s["messages"])


    @flow
    async def copies(n: int) -> list[int]:
        state: dict[str, Any] = {"messages": []}
        return [await branch({**state, "i": i}) for i in range(n)]
    """
    assert _messages(tmp_path, source) == [
        "15: the elements of this fan-out run one after another: 'branch' may "
        "change 'state', which the elements share (passes it to branch, which "
        'calls s["messages"].append)'
    ]


TOOLS = """
    from collections.abc import Awaitable, Callable

    from kiln import flow, node


    @node
    async def t_upper(x: str) -> str:
        return x.upper()


    @node
    async def t_rev(x: str) -> str:
        return x[::-1]


    @node
    async def t_low(x: str) -> str:
        return x.lower()


    TOOLS: dict[str, Callable[[str], Awaitable[str]]] = {"upper": t_upper, "rev": t_rev}
    MORE = {"upper": t_upper, "rev": t_rev}
    MORE["rev"] = t_low


    @flow
    async def run(x: str, kind: str) -> str:
        a = await TOOLS["rev"](x)
        b = await TOOLS.get("up", t_low)(a)
        c = await TOOLS[kind](b)
        return await MORE["rev"](c)
"""


def test_kln317_names_the_node_at_a_literal_key_or_every_node(
    tmp_path: Path,
) -> None:
    """A literal key names the node the display holds there (or the default);
    another key, or a dict the module stores into, every node it may hold."""
    found = _messages(tmp_path, TOOLS, Code.NODE_AS_VALUE)
    assert [message.split(", through")[0] for message in found] == [
        "28: flow 'run' calls 'TOOLS[\"rev\"]', which may be node 't_rev'",
        "29: flow 'run' calls 'TOOLS.get(\"up\", t_low)', which may be node 't_low'",
        "30: flow 'run' calls 'TOOLS[kind]', which may be node 't_upper' or 't_rev'",
        "31: flow 'run' calls 'MORE[\"rev\"]', which may be node 't_upper', 't_rev' "
        "or 't_low'",
    ]
