"""Flows whose compiled body runs in an event loop the source has none of.

A flow written as `def` that calls `thread=True` nodes awaits them: its body
runs in an event loop, and its sync entry point starts one. A new user's
trial (trial Q10) found where that showed, each compared here with the
source run in fresh interpreters:

- a ContextVar a thread node set stayed in the thread's copy of the context;
- an async flow calling a sync subflow that shares a `Limit` hung: the
  subflow ran on a loop of its own and blocked the caller's, whose call held
  the slot (the same iterating a sync streaming subflow);
- a thread node that ended in its time failed with TimeoutError when a
  plain sync node held the loop past its deadline;
- a plain sync node that runs an event loop of its own (`asyncio.run`)
  failed once the flow had a thread node;
- calling the flow unset the event loop the caller had set;
- a sync streaming flow did not see what its consumer set between items.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from kilnc.pipeline import compile_file

RUN = """
import asyncio
import sys
import warnings

warnings.simplefilter("ignore", DeprecationWarning)
sys.path.insert(0, sys.argv[1])
import {module} as flows


def run(result):
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


"""


def both_runs(
    tmp_path: Path, source: str, script: str, *, modules: dict[str, str] | None = None
) -> tuple[str, str]:
    """What `script` prints against the source module and the compiled one, each
    in a fresh interpreter (`flows`; `run(...)` runs a flow's call either way)."""
    for name, text in (modules or {}).items():
        (tmp_path / f"{name}.py").write_text(dedent(text), encoding="utf-8")
    path = tmp_path / "flows.py"
    path.write_text(dedent(source), encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, [d.message for d in compilation.diagnostics]
    build = tmp_path / "build"
    build.mkdir()
    (build / "__init__.py").write_text("", encoding="utf-8")
    (build / "flows.py").write_text(compilation.output, encoding="utf-8")
    outputs = []
    for module in ("flows", "build.flows"):
        program = RUN.format(module=module) + dedent(script)
        ran = subprocess.run(
            [sys.executable, "-c", program, str(tmp_path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, f"{module}: {ran.stderr}"
        outputs.append(ran.stdout)
    return outputs[0], outputs[1]


# --- a ContextVar a thread node sets ---------------------------------------------------

CONTEXT = """
import contextvars
import time

from kiln import flow, node

TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("TENANT", default="-")


@node(thread=True)
def set_tenant(name: str) -> str:
    time.sleep(0.01)
    TENANT.set(name)
    return name


@node
def read_tenant(tag: str) -> str:
    return f"{tag}@{TENANT.get()}"


@flow
def sync_flow(name: str) -> list[str]:
    t = set_tenant(name)
    return [t, read_tenant("x")]


@flow
async def async_flow(name: str) -> list[str]:
    t = set_tenant(name)
    return [t, read_tenant("x")]
"""


def test_a_context_variable_a_thread_node_sets_reaches_the_nodes_after_it(
    tmp_path: Path,
) -> None:
    source, compiled = both_runs(
        tmp_path,
        CONTEXT,
        """
        print(run(flows.sync_flow("acme")))
        print(run(flows.async_flow("beta")))
        if hasattr(flows.sync_flow, "_kiln_sites"):  # a configured run's calls too
            print(type(flows.sync_flow)(record=True)("acme"))
            print(run(type(flows.async_flow)(record=True).aforward("beta")))
        else:
            print(flows.sync_flow("acme"))
            print(run(flows.async_flow("beta")))
        """,
    )
    assert compiled == source
    assert source.splitlines()[:2] == ["['acme', 'x@acme']", "['beta', 'x@beta']"]


# --- a sync subflow sharing a Limit ----------------------------------------------------

SUBFLOW = """
import asyncio
from collections.abc import Iterator

from kiln import Limit, flow, node


@node(limit="db")
async def fetch(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


@node
async def quick(x: int) -> int:
    await asyncio.sleep(0.001)
    return x + 1


@node(thread=True, limit="db")
def store(x: int) -> int:
    return x * 10


@flow(limits={"db": Limit(1)})
def inner(x: int) -> int:
    return store(x)


@flow(limits={"db": Limit(1)})
def items(n: int) -> Iterator[int]:
    for i in range(n):
        yield store(i)


@flow(limits={"db": Limit(1)})
async def outer(x: int) -> int:
    a = await fetch(x)
    c = await quick(x)
    b = inner(c)
    return a + b


@flow(limits={"db": Limit(1)})
async def outer_stream(x: int) -> int:
    a = await fetch(x)
    c = await quick(x)
    total = 0
    for v in items(c):
        total += v
    return a + total


@flow(limits={"db": Limit(1)})
async def outer_stream_kept(x: int) -> int:
    a = await fetch(x)
    c = await quick(x)
    values = items(c)
    total = sum(values)
    return a + total


@flow(limits={"db": Limit(1)})
def outer_sync(x: int) -> int:
    a = store(x)
    return a + inner(x)
"""


@pytest.mark.parametrize(
    "flow", ["outer", "outer_stream", "outer_stream_kept", "outer_sync"]
)
def test_a_sync_subflow_that_shares_a_limit_does_not_hang_its_caller(
    tmp_path: Path, flow: str
) -> None:
    """The caller's call holds the Limit's one slot while the subflow runs: the
    subflow runs on the caller's loop, or on its own groups where it blocks it."""
    source, compiled = both_runs(
        tmp_path,
        SUBFLOW,
        f"""
        print(run(flows.{flow}(1)))
        print(run(flows.{flow}(2)))
        if hasattr(flows.{flow}, "_kiln_sites"):  # the sync entry, a configured run
            print(flows.{flow}.forward(1))
            print(type(flows.{flow})(record=True).forward(2))
        else:
            print(run(flows.{flow}(1)))
            print(run(flows.{flow}(2)))
        """,
    )
    assert compiled == source


def test_an_async_flow_awaits_a_sync_subflow_whose_body_awaits(tmp_path: Path) -> None:
    path = tmp_path / "flows.py"
    path.write_text(dedent(SUBFLOW), encoding="utf-8")
    output = compile_file(path).output
    assert output is not None
    assert "b = await inner.aforward(c)" in output  # in `outer`
    assert "await inner.aforward(x)" in output  # in `outer_sync`, a `def` itself
    assert "inner(" not in output.split("class Outer(")[1]  # no sync entry called


IMPORTED = """
from kiln import Limit, flow, node


@node(thread=True, limit="db")
def store(x: int) -> int:
    return x * 10


@flow(limits={"db": Limit(1)})
def inner(x: int) -> int:
    return store(x)
"""


def test_a_sync_subflow_of_a_module_not_compiled_runs_as_its_source(
    tmp_path: Path,
) -> None:
    source, compiled = both_runs(
        tmp_path,
        """
        import asyncio

        from kiln import Limit, flow, node
        from sub import inner


        @node(limit="db")
        async def fetch(x: int) -> int:
            await asyncio.sleep(0.05)
            return x


        @flow(limits={"db": Limit(1)})
        async def outer(x: int) -> int:
            a = await fetch(x)
            b = inner(x)
            return a + b
        """,
        """
        print(run(flows.outer(1)))
        """,
        modules={"sub": IMPORTED},
    )
    assert compiled == source == "11\n"


# --- a thread node's timeout, while a sync node holds the loop ------------------------

HELD = """
import time

from kiln import flow, node

CALLS: list[str] = []


@node(thread=True, timeout=0.5)
def fetch(url: str) -> str:
    CALLS.append(url)
    time.sleep(0.05)
    return url.upper()


@node(thread=True)
def load(n: int) -> list[int]:
    time.sleep(0.01)
    return list(range(n))


@node
def transform(rows: list[int]) -> int:
    time.sleep(1.0)  # work in a plain sync node: the loop waits
    return sum(rows)


@flow
def job(url: str, n: int) -> str:
    page = fetch(url)
    rows = load(n)
    total = transform(rows)
    return f"{page}:{total}"
"""


def test_a_thread_node_that_ended_in_time_keeps_its_value_past_a_held_loop(
    tmp_path: Path,
) -> None:
    source, compiled = both_runs(
        tmp_path, HELD, 'print(run(flows.job("a", 3)), flows.CALLS)'
    )
    assert compiled == source == "A:3 ['a']\n"


# --- a plain sync node that runs an event loop of its own ------------------------------

OWN_LOOP = """
import asyncio

from kiln import flow, node


async def _sizes(urls: list[str]) -> list[int]:
    await asyncio.sleep(0.001)
    return [len(u) for u in urls]


@node
def fetch_sizes(urls: list[str]) -> list[int]:
    return asyncio.run(_sizes(urls))  # a sync client wrapping an async one


@node(retries=1, wait=0.01)
def fetch_first(urls: list[str]) -> int:
    return asyncio.run(_sizes(urls[:1]))[0]


@node(thread=True)
def count(urls: list[str]) -> int:
    return len(urls)


@flow
def report(urls: list[str]) -> int:
    n = count(urls)
    sizes = fetch_sizes(urls)
    return sum(sizes) + n + fetch_first(urls)
"""


def test_a_plain_sync_node_of_a_def_flow_runs_with_no_event_loop(
    tmp_path: Path,
) -> None:
    source, compiled = both_runs(
        tmp_path,
        OWN_LOOP,
        """
        print(flows.report(["a", "bb"]))
        if hasattr(flows.report, "_kiln_sites"):  # a configured run's calls too
            print(type(flows.report)(record=True)(["a", "bb"]))
        else:
            print(flows.report(["a", "bb"]))
        """,
    )
    assert compiled == source == "6\n6\n"


# --- the caller's current event loop ---------------------------------------------------


def test_calling_a_sync_flow_leaves_the_caller_s_event_loop_set(tmp_path: Path) -> None:
    source, compiled = both_runs(
        tmp_path,
        CONTEXT,
        """
        async def ping() -> str:
            return "pong"

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        print(loop.run_until_complete(ping()))
        print(flows.sync_flow("acme"))
        print(asyncio.get_event_loop() is loop)
        print(asyncio.get_event_loop().run_until_complete(ping()))
        """,
    )
    assert compiled == source
    assert source.splitlines()[2:] == ["True", "pong"]


# --- what a sync stream's consumer sets between items ----------------------------------

STREAM = """
import contextvars
import time
from collections.abc import Iterator

from kiln import flow, node

BATCH: contextvars.ContextVar[str] = contextvars.ContextVar("BATCH", default="-")


@node(thread=True)
def fetch(i: int) -> str:
    time.sleep(0.001)
    return f"{i}@{BATCH.get()}"


@node
def stamp(s: str) -> str:
    return f"{s}/{BATCH.get()}"


@flow
def items(n: int) -> Iterator[str]:
    for i in range(n):
        v = fetch(i)
        yield stamp(v)
"""


def test_a_sync_stream_sees_what_its_consumer_set_between_items(tmp_path: Path) -> None:
    source, compiled = both_runs(
        tmp_path,
        STREAM,
        """
        def consume() -> list[str]:
            out = []
            for k, v in enumerate(flows.items(3)):
                out.append(v)
                flows.BATCH.set(f"b{k}")
            return out

        print(consume())

        async def in_a_loop() -> list[str]:  # the stream on a worker thread
            return consume()

        print(asyncio.run(in_a_loop()))
        """,
    )
    assert compiled == source
    assert source.splitlines()[0] == "['0@-/-', '1@b0/b0', '2@b1/b1']"
