"""Effects: the compiler orders what nodes and statements change, and says so.

The cases are the shapes users write in LangGraph and BrainyFlow style: a node
fills a dict it is passed, appends to a list, consumes an iterator; clones of
a Memory report back through its shared global store; log lines sit between
steps; a guard stops the flow before a side effect. Each compiled flow must
compute what its source computes, keep the concurrency that nothing forbids,
and warn (KLN311) at each place where an effect costs an overlap.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from kiln import Memory
from kilnc.collect import collect_definitions
from kilnc.diagnostics import Code, Severity
from kilnc.effect_ir import Effects
from kilnc.effects import EffectReader
from kilnc.front import ParsedModule
from kilnc.parse import parse_source
from kilnc.pipeline import FRONT_END, compile_file
from kilnc.project import Project, Reader
from kilnc.resolve import locate
from kilnc.source import SourceFile
from tests.test_differential import compiled_and_source


def build(source: str, tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(dedent(source), tmp_path)


def warnings_of(source: str, tmp_path: Path) -> list[tuple[int, str]]:
    path = tmp_path / "flow.py"
    path.write_text(dedent(source), encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    return [
        (d.span.line, d.message)
        for d in compilation.diagnostics
        if d.severity is Severity.WARNING and d.code is Code.EFFECT_ORDER
    ]


def effects_of(source: str, function: str, tmp_path: Path) -> Effects:
    path = tmp_path / "module.py"
    path.write_text(dedent(source), encoding="utf-8")
    location = locate(path)
    source_file = SourceFile.from_bytes("module.py", location.name, path.read_bytes())
    parsed = parse_source(source_file)
    assert isinstance(parsed, ParsedModule)
    defs, _ = collect_definitions(parsed, location)
    project = Project(defs, Reader(location.root, FRONT_END))
    return EffectReader(project).of_function(location.name, function)


# --- reading effects ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "changed"),
    [
        ('state["answer"] = 42', {"state"}),
        ("state.answer = 42", {"state"}),
        ("del state['x']", {"state"}),
        ("state.update(a=1)", {"state"}),
        ("items.append(1)", {"items"}),
        ("items += [1]", {"items"}),
        ("view = items\n        view.append(1)", {"items"}),
        ("helper(state)", {"state"}),  # followed into the project
        ("unknown_library.send(state)", {"state"}),  # cannot see: a change
        ("setattr(state, 'x', 1)", {"state"}),
        ("n = len(items) + len(state)", set()),
        ("text = ', '.join(str(i) for i in items)", set()),
        ("copied = copy.deepcopy(state)\n        copied['x'] = 1", set()),
        # A shallow copy shares the items: kiln counts a change of it as one of state.
        ("copied = dict(state)\n        copied['x'] = 1", {"state"}),
        ("print(state, items)", set()),
        ("log.info('%s', state)", set()),
        ("name.upper()", set()),  # a str never changes
        ("operator.setitem(state, 'k', 1)", {"state"}),
        ("operator.iadd(items, [1])", {"items"}),
        ("heapq.heappush(items, 1)", {"items"}),
        ("list(map(lambda item: item.append(1), items))", {"items"}),
        ("items.sort(key=lambda item: item.pop())", {"items"}),
        ("ordered = sorted(items, key=lambda item: len(item))", set()),
        ("list(map(items.append, [1, 2]))", {"items"}),
        ("for state['last'] in range(3):\n            pass", {"state"}),
        ("n = [0 for state['c'] in range(2)]", {"state"}),
        ("getattr(state, 'update')({'g': 1})", {"state"}),
        ("functools.partial(dict.__setitem__, state)('p', 1)", {"state"}),
        ("time.sleep(state['delay'])", set()),
        ("n = len(state.keys)", set()),
    ],
)
def test_what_a_body_may_change(body: str, changed: set[str], tmp_path: Path) -> None:
    source = f"""
    import copy
    import functools
    import heapq
    import logging
    import operator
    import time
    import unknown_library

    log = logging.getLogger(__name__)

    def helper(target: dict) -> None:
        target.clear()

    def f(state: dict, items: list, name: str) -> None:
        {body}
    """
    effects = effects_of(source, "f", tmp_path)
    assert {name for name, _ in effects.changes} == changed


def test_an_object_made_from_values_that_never_change_shares_nothing(
    tmp_path: Path,
) -> None:
    """`Batch(source=page.url)` holds a `str`, no part of `page`: changing the
    batch changes nothing the node was passed (trial Q2: a false KLN110)."""
    source = """
    from dataclasses import dataclass, field

    @dataclass
    class Page:
        url: str
        status: int

    @dataclass
    class Batch:
        source: str
        rows: list[int] = field(default_factory=list)

    def parse(page: Page) -> Batch:
        batch = Batch(source=page.url)
        batch.rows.append(page.status)
        return batch

    def parse_bound(page: Page) -> Batch:
        url = page.url
        batch = Batch(url)
        batch.rows.append(1)
        return batch

    def shares(page: Page, rows: list[int]) -> Batch:
        batch = Batch(page.url, rows)
        batch.rows.append(1)
        return batch
    """
    assert effects_of(source, "parse", tmp_path).changes == ()
    assert effects_of(source, "parse_bound", tmp_path).changes == ()
    assert {name for name, _ in effects_of(source, "shares", tmp_path).changes} == {
        "rows"
    }


def test_recursion_reaches_a_fixed_point(tmp_path: Path) -> None:
    source = """
    def down(d: dict, n: int) -> None:
        if n:
            up(d, n - 1)

    def up(d: dict, n: int) -> None:
        down(d, n)
        d.clear()
    """
    effects = effects_of(source, "down", tmp_path)
    (change,) = (c for _, c in effects.changes)
    assert change.reason == "passes it to up, which calls d.clear"


def test_iterating_changes_only_an_iterator(tmp_path: Path) -> None:
    source = """
    from collections.abc import Iterable

    def f(rows: list[int], stream: Iterable[int]) -> int:
        return sum(rows) + sum(stream)
    """
    effects = effects_of(source, "f", tmp_path)
    changes = dict(effects.changes)
    assert set(changes) == {"stream"}
    assert changes["stream"].by_iteration


@pytest.mark.parametrize(
    "made", ["list(words)", "sorted(set(words))", "tuple(words)", "[*words]"]
)
def test_a_fan_out_over_a_container_the_flow_made_changes_nothing(
    made: str, tmp_path: Path
) -> None:
    # A durable run refuses a call that may change what it is passed: iterating
    # a new list is no such change, where iterating an iterator would be.
    path = tmp_path / "words.py"
    path.write_text(
        dedent(f"""
            from kiln import flow, node

            @node
            async def up(word: str) -> str:
                return word.upper()

            @flow
            async def shout(words: list[str]) -> list[str]:
                chosen = {made}
                return [await up(word) for word in chosen]
            """),
        encoding="utf-8",
    )
    output = compile_file(path).output
    assert output is not None
    assert "changes=" not in output


def test_memory_keys_read_and_written(tmp_path: Path) -> None:
    source = """
    from kiln import Memory

    def f(memory: Memory, key: str) -> None:
        memory.done = memory.count + 1
        memory.local.mine = 1
        memory[key] = memory.get("other")
    """
    effects = effects_of(source, "f", tmp_path)
    use = dict(effects.memory)["memory"]
    assert use.global_writes.names == {"done"}
    assert use.global_writes.params == {"key"}  # the caller's argument names it
    assert {"count", "other"} <= use.global_reads.names
    assert "mine" in use.local_writes.names
    assert not use.global_writes.any


# --- the compiled flow computes what the source computes ---------------------------


def test_a_node_that_fills_its_argument_is_ordered_and_warned(tmp_path: Path) -> None:
    source = """
    import asyncio
    from kiln import flow, node

    @node
    async def fill(state: dict[str, int]) -> None:
        await asyncio.sleep(0.02)
        state["answer"] = 42

    @node
    async def read(state: dict[str, int]) -> int:
        return state.get("answer", -1)

    @flow
    async def f() -> int:
        state: dict[str, int] = {}
        await fill(state)
        return await read(state)
    """
    compiled, reference = build(source, tmp_path)
    assert compiled.f() == asyncio.run(reference.f()) == 42
    ((line, message),) = warnings_of(source, tmp_path)
    assert line == 18
    assert "'read' waits for 'fill' (line 17)" in message
    assert "may change 'state': it assigns state[\"answer\"]" in message


def test_a_wait_a_step_inherits_from_what_it_reads_is_not_warned_again(
    tmp_path: Path,
) -> None:
    """`answer(ctx)` waits for `ingest` only through `retrieve`, which the warning
    at `retrieve` already names: that wait costs `answer` nothing (trial F)."""
    source = """
    from kiln import flow, node

    @node
    async def ingest(store: list[str], d: str) -> None:
        store.append(d)

    @node
    async def retrieve(store: list[str], q: str) -> list[str]:
        return [d for d in store if q in d]

    @node
    async def answer(q: str, ctx: list[str]) -> str:
        return q + ":" + ",".join(ctx)

    @flow
    async def f() -> str:
        store: list[str] = []
        await ingest(store, "cat sat")
        ctx = await retrieve(store, "cat")
        return await answer("cat", ctx)
    """
    ((line, message),) = warnings_of(source, tmp_path)
    assert line == 20
    assert message.startswith("'retrieve' waits for 'ingest' (line 19)")


def test_the_warning_names_what_the_call_changes_not_a_bystander(
    tmp_path: Path,
) -> None:
    """Names the statements between the calls assign (`a`, `b`) explain nothing."""
    source = """
    from kiln import flow, node

    @node
    async def grow(log: list[str], item: str) -> int:
        log.append(item)
        return len(log)

    @flow
    async def f(log: list[str]) -> object:
        a = len(log) + await grow(log, "a")
        b = len(log) + await grow(log, "b")
        c = (len(log), await grow(log, "c"), len(log))
        return a, b, c
    """
    compiled, reference = build(source, tmp_path)
    assert compiled.f([]) == asyncio.run(reference.f([])) == (1, 3, (2, 3, 3))
    warned = warnings_of(source, tmp_path)
    assert [line for line, _ in warned] == [12, 13]
    for _, message in warned:
        assert "may change 'log': it calls log.append" in message, message


def test_aliases_of_a_changed_object_are_ordered_too(tmp_path: Path) -> None:
    compiled, reference = build(
        """
        import asyncio
        from kiln import flow, node

        @node
        async def push(box: list[int], value: int) -> None:
            await asyncio.sleep(0.02)
            box.append(value)

        @node
        async def count(box: list[int]) -> int:
            return len(box)

        @flow
        async def f() -> int:
            box: list[int] = []
            same = box
            await push(same, 1)
            return await count(box)
        """,
        tmp_path,
    )
    assert compiled.f() == asyncio.run(reference.f()) == 1


def test_a_name_bound_final_has_the_type_of_its_value(tmp_path: Path) -> None:
    """`LIMIT: Final = 3` is an int, as a type checker infers it: a node given it
    (here one that calls what it is handed) cannot change it (trial H, 08)."""
    source = """
    from collections.abc import Awaitable, Callable
    from typing import Final, ParamSpec, TypeVar

    from kiln import flow, node

    P = ParamSpec("P")
    R = TypeVar("R")

    @node
    async def call(fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
        return await fn(*args, **kwargs)

    async def plus(x: int, *, y: int = 1) -> int:
        return x + y

    @node
    async def weigh(k: int, *, factor: int = 2) -> int:
        return k * factor

    @flow
    async def f(ks: list[int]) -> tuple[int, list[int]]:
        LIMIT: Final = 3
        r = await call(plus, 1, y=LIMIT)
        ws = [await weigh(k, factor=LIMIT) for k in ks]
        return r, ws
    """
    assert warnings_of(source, tmp_path) == []
    compiled, reference = build(source, tmp_path)
    assert compiled.f([1, 2]) == asyncio.run(reference.f([1, 2])) == (4, [3, 6])


def test_an_iterator_two_fan_outs_consume_keeps_its_order(tmp_path: Path) -> None:
    compiled, reference = build(
        """
        import asyncio
        from kiln import flow, node

        @node
        async def f(x: int) -> int:
            await asyncio.sleep(0.01 * (5 - x))
            return x

        @flow
        async def split() -> tuple[list[int], list[int]]:
            it = iter(range(5))
            head = [await f(x) for x, _ in zip(it, range(2))]
            rest = [await f(x) for x in it]
            return head, rest
        """,
        tmp_path,
    )
    # zip takes a third item from `it` before it sees range(2) end: 2 is gone.
    assert compiled.split() == asyncio.run(reference.split()) == ([0, 1], [3, 4])


@pytest.mark.parametrize("fallback", ["", "(fallback=gave_up)"])
def test_a_fan_outs_clause_sees_what_the_elements_before_it_changed(
    fallback: str, tmp_path: Path
) -> None:
    """Each element appends to `acc`, which the `if` reads: the source asks the
    clause again after each element, and so must the compiled flow."""
    compiled, reference = build(
        f"""
        from kiln import flow, node

        @node
        async def inc(x: int) -> int:
            return x + 1

        def gave_up(x: int, acc: list[int]) -> int:
            return -1

        @node{fallback}
        async def add(x: int, acc: list[int]) -> int:
            acc.append(x)
            return x

        @flow
        async def upto_two(n: int) -> list[int]:
            acc: list[int] = []
            return [await add(await inc(x), acc) for x in range(n) if len(acc) < 2]
        """,
        tmp_path,
    )
    assert compiled.upto_two(5) == asyncio.run(reference.upto_two(5)) == [1, 2]


def test_a_clone_reports_back_through_the_global_store(tmp_path: Path) -> None:
    source = """
    import asyncio
    from kiln import Memory, flow, node

    @node
    async def work(memory: Memory) -> None:
        await asyncio.sleep(0.02)
        memory.done = memory.tag

    @node
    async def read(memory: Memory) -> str:
        return str(memory.done)

    @flow
    async def f(memory: Memory) -> str:
        await work(memory.clone({"tag": "branch"}))
        return await read(memory)

    @flow
    async def made() -> str:
        memory = Memory()
        await work(memory.clone({"tag": "made here"}))
        return await read(memory)
    """
    compiled, reference = build(source, tmp_path)
    assert compiled.f(Memory()) == asyncio.run(reference.f(Memory())) == "branch"
    assert compiled.made() == asyncio.run(reference.made()) == "made here"
    lines = [line for line, _ in warnings_of(source, tmp_path)]
    assert lines == [17, 23]


@pytest.mark.parametrize(
    "signature", ["memory: Memory, key: str, *rest: int", "*args: Any, **kwargs: Any"]
)
def test_keys_named_by_a_variadic_helpers_parameter_are_the_callers(
    signature: str, tmp_path: Path
) -> None:
    # `put` writes "fixed" through a helper kiln cannot bind argument by argument:
    # its key is the helper's argument (or any key), never `put`'s own `key`.
    body = (
        "memory[key] = 1" if signature.startswith("memory") else "args[0][args[1]] = 1"
    )
    source = f"""
    import asyncio
    from typing import Any
    from kiln import Memory, flow, node

    def inner({signature}) -> None:
        {body}

    @node
    async def put(memory: Memory, key: str) -> None:
        await asyncio.sleep(0.02)
        inner(memory, "fixed")

    @node
    async def peek(memory: Memory) -> int:
        return int(memory["fixed"])

    @flow
    async def f(memory: Memory) -> int:
        await put(memory, "a")
        return await peek(memory)
    """
    compiled, reference = build(source, tmp_path)
    assert compiled.f(Memory()) == asyncio.run(reference.f(Memory())) == 1


@pytest.mark.parametrize(
    ("signature", "body", "call"),
    [
        ("memory: Memory, key: str", "memory[key] = 1", 'inner(*(memory, "fixed"))'),
        ("memory: Memory, key: str", "memory[key] = 1", 'inner(*[memory, "fixed"])'),
        ("*args: Any", "args[0][args[1]] = 1", 'inner(*(memory, "fixed"))'),
        (
            "**kwargs: Any",
            'kwargs["m"][kwargs["k"]] = 1',
            'inner(**{"m": memory, "k": "fixed"})',
        ),
    ],
)
def test_a_literal_tuple_unpacked_into_a_helper_passes_its_elements(
    signature: str, body: str, call: str, tmp_path: Path
) -> None:
    """Found by the fuzz: `store(*(memory, key, value))` wrote no key kiln saw."""
    source = f"""
    import asyncio
    from typing import Any
    from kiln import Memory, flow, node

    def inner({signature}) -> None:
        {body}

    @node
    async def put(memory: Memory) -> None:
        await asyncio.sleep(0.02)
        {call}

    @node
    async def peek(memory: Memory) -> int:
        return int(memory.get("fixed", -1))

    @flow
    async def f(memory: Memory) -> int:
        await put(memory)
        return await peek(memory)
    """
    compiled, reference = build(source, tmp_path)
    assert compiled.f(Memory()) == asyncio.run(reference.f(Memory())) == 1


def test_clones_appending_to_one_global_list_keep_source_order(tmp_path: Path) -> None:
    compiled, reference = build(
        """
        import asyncio
        from kiln import Memory, flow, node

        @node
        async def add(memory: Memory, item: str, delay: float) -> None:
            await asyncio.sleep(delay)
            memory.log.append(item)

        @flow
        async def f(memory: Memory) -> list[str]:
            await add(memory.clone({}), "A", 0.03)
            await add(memory.clone({}), "B", 0.0)
            await add(memory.clone({}), "C", 0.01)
            return list(memory.log)
        """,
        tmp_path,
    )
    expected = asyncio.run(reference.f(Memory({"log": []})))
    assert compiled.f(Memory({"log": []})) == expected == ["A", "B", "C"]


def test_clones_writing_distinct_literal_keys_overlap(tmp_path: Path) -> None:
    source = """
    import asyncio
    from kiln import Memory, flow, node

    trace: list[str] = []

    @node
    async def left(memory: Memory) -> None:
        trace.append("start left")
        await asyncio.sleep(0.02)
        memory.left = memory.side
        trace.append("end left")

    @node
    async def right(memory: Memory) -> None:
        trace.append("start right")
        await asyncio.sleep(0.02)
        memory.right = memory.side
        trace.append("end right")

    @flow
    async def f(memory: Memory) -> tuple[str, str]:
        await left(memory.clone({"side": "L"}))
        await right(memory.clone({"side": "R"}))
        return memory.left, memory.right
    """
    compiled, _ = build(source, tmp_path)
    assert compiled.f(Memory()) == ("L", "R")
    assert compiled.trace.index("start right") < compiled.trace.index("end left")
    assert warnings_of(source, tmp_path) == []


def test_a_log_line_stays_after_the_steps_before_it(tmp_path: Path) -> None:
    compiled, reference = build(
        """
        import asyncio
        from kiln import flow, node

        events: list[str] = []

        @node
        async def fetch(n: int, delay: float) -> int:
            await asyncio.sleep(delay)
            events.append(f"fetched {n}")
            return n

        @flow
        async def f() -> int:
            a = await fetch(3, 0.03)
            events.append("got a")
            b = await fetch(4, 0.0)
            return a + b
        """,
        tmp_path,
    )
    assert compiled.f() == 7
    # fetch(4) may start before the log line (it does not depend on it), but
    # the line is never written before fetch(3), which precedes it, is done.
    assert compiled.events.index("got a") > compiled.events.index("fetched 3")
    assert asyncio.run(reference.f()) == 7


def test_a_guard_stops_the_flow_before_a_side_effect(tmp_path: Path) -> None:
    compiled, _ = build(
        """
        from kiln import flow, node

        charged: list[str] = []

        @node
        async def load_status(order: str) -> str:
            return "closed"

        @node
        async def charge(order: str) -> None:
            charged.append(order)

        @flow
        async def assert_guard(order: str) -> None:
            status = await load_status(order)
            assert status == "open"
            await charge(order)

        @flow
        async def raise_guard(order: str) -> None:
            status = await load_status(order)
            if status != "open":
                raise ValueError(status)
            await charge(order)
        """,
        tmp_path,
    )
    with pytest.raises(AssertionError):
        compiled.assert_guard("o1")
    with pytest.raises(ValueError, match="closed"):
        compiled.raise_guard("o2")
    assert compiled.charged == []


def test_tidy_flows_compile_to_the_same_schedule(tmp_path: Path) -> None:
    """No effect, no order: independent calls still overlap, and nothing is warned."""
    source = """
    import asyncio
    from kiln import flow, node

    @node
    async def fetch(url: str) -> str:
        await asyncio.sleep(0.01)
        return url.upper()

    @node
    def merge(a: str, b: str) -> str:
        return a + b

    @flow
    async def f(x: str, y: str) -> str:
        a = await fetch(x)
        b = await fetch(y)
        pages = [await fetch(u) for u in (x, y)]
        return merge(a, b) + "".join(pages)
    """
    assert warnings_of(source, tmp_path) == []
    path = tmp_path / "flow.py"
    listing = "\n".join(compile_file(path, dump="ir").dumps).splitlines()
    calls = [line for line in listing if "Call" in line or "FanOut" in line]
    assert len(calls) == 4
    assert not [line for line in calls if "uses=" in line or "key_" in line]


def test_the_dumps_name_what_orders_each_edge(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(
        dedent("""
            import asyncio
            from kiln import Memory, flow, node

            @node
            async def fill(state: dict[str, int]) -> None:
                state["answer"] = 42

            @node
            async def work(memory: Memory) -> None:
                await asyncio.sleep(0.01)
                memory.done = 1

            @node
            async def read(state: dict[str, int], memory: Memory) -> int:
                return state["answer"] + memory.done

            @flow
            async def f(memory: Memory) -> int:
                state: dict[str, int] = {}
                await work(memory.clone({}))
                await fill(state)
                return await read(state, memory)
            """),
        encoding="utf-8",
    )
    graph = "\n".join(compile_file(path, dump="graph").dumps)
    assert "s2 -> s3  (state)" in graph
    assert "s1 -> s3  (@g:@passed:done)" in graph
    plan = "\n".join(compile_file(path, dump="plan").dumps)
    assert "# for Memory key 'done'" in plan, plan


def test_the_reasons_and_so_the_output_do_not_depend_on_the_hash_seed(
    tmp_path: Path,
) -> None:
    # A call that changes two of its arguments has two reasons; which one the
    # site table and KLN311 name once came from a set, so the output's bytes,
    # and `kiln compile --check`, changed with PYTHONHASHSEED.
    (tmp_path / "two.py").write_text(
        dedent("""
            from kiln import flow, node

            @node
            async def grow(a: list[int], b: list[int]) -> int:
                a.append(1)
                b.append(2)
                return 0

            @node
            async def size(a: list[int], b: list[int]) -> int:
                return len(a) + len(b)

            @flow
            async def both(a: list[int], b: list[int]) -> int:
                await grow(a, b)
                return await size(a, b)
            """),
        encoding="utf-8",
    )
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        done = subprocess.run(
            [sys.executable, "-m", "kilnc", "compile", "two.py", "-o", "out"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=False,
        )
        assert done.returncode == 0, done.stdout
        outputs.add((tmp_path / "out" / "two.py").read_text() + done.stdout)
    assert len(outputs) == 1
