"""A value module state holds, reached through a part of what the flow holds.

A node that stores a new list in module state and returns it (`OPEN[name] =
rows; return rows`), or returns what module state holds (`return OPEN[name]`,
`return list(OPEN.values())`): its result is module state's, so a later node
that reads or clears that state (`flush_all`, iterating `OPEN.values()`) must
wait for a node that changes the result (`load_rows`). kiln marked the result
so only where the flow bound it by its own name; reached through a part of
what the flow holds, it was not, and `flush_all` ran beside `load_rows`,
silently (trial Q10, finding 1): a fan-out's elements (`bs = [open_batch(x)
for x in names]`, then `bs[0]`, a loop over `bs`, a second fan-out over it),
a dict fan-out's values, the names a tuple is unpacked into (`name, rows =
await open_pair("a")`), an attribute (`res.rows` of a dataclass), a list
built from the state's values, and an object whose `__init__` keeps `self` in
a module-level list, made by a node's fan-out or by the flow itself. So are a
loop's targets over module state (`for rows in OPEN.values()`), a value built
of such values (`[rows for rows in OPEN.values()]`, a list a node appends
them to and returns), and a container the flow stores one into
(`workers.append(Worker(x))`).

Each case runs its source and its compiled flow in fresh interpreters and
compares the result and the state left, in async flows and in sync flows of
thread nodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file

RUNS = 3

# `{a}`: `async ` or nothing; `{w}`: `await ` or nothing; `{t}`: `thread=True`
# or nothing. `load_rows` waits, so running `flush_all` beside it flushes nothing.
NODES = """
import asyncio
import threading
import time
from dataclasses import dataclass

from kiln import flow, node

OPEN: dict[str, list[int]] = {{}}
ALL: list["Worker"] = []
_LOCK = threading.Lock()


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.processed = 0
        with _LOCK:
            ALL.append(self)


@dataclass
class Res:
    name: str
    rows: list[int]


@node({t})
{a}def open_batch(name: str) -> list[int]:
    rows: list[int] = []
    OPEN[name] = rows
    return rows


@node({t})
{a}def get_batch(name: str) -> list[int]:
    return OPEN.setdefault(name, [])


@node({t})
{a}def open_pair(name: str) -> tuple[str, list[int]]:
    rows: list[int] = []
    OPEN[name] = rows
    return (name, rows)


@node({t})
{a}def open_res(name: str) -> Res:
    rows: list[int] = []
    OPEN[name] = rows
    return Res(name, rows)


@node({t})
{a}def one_batch(name: str) -> list[int]:
    return OPEN[name]


@node({t})
{a}def all_batches(tag: str) -> list[list[int]]:
    return list(OPEN.values())


@node({t})
{a}def collect(tag: str) -> list[list[int]]:
    out = []
    for rows in OPEN.values():
        out.append(rows)
    return out


@node({t})
{a}def largest(tag: str) -> list[int]:
    return sorted(OPEN.values(), key=len)[-1]


@node({t})
{a}def open_dict(name: str) -> dict[str, list[int]]:
    rows: list[int] = []
    OPEN[name] = rows
    return {{"rows": rows}}


@node({t})
{a}def make_worker(name: str) -> Worker:
    return Worker(name)


@node({t})
{a}def load_rows(rows: list[int], n: int) -> int:
    {sleep}
    rows.extend(range(n))
    return n


@node({t})
{a}def run_worker(w: Worker, n: int) -> int:
    {sleep}
    w.processed += n
    return n


@node({t})
{a}def flush_all(tag: str) -> int:
    total = 0
    for rows in OPEN.values():
        total += len(rows)
        rows.clear()
    return total


@node({t})
{a}def summarize_all(tag: str) -> int:
    with _LOCK:
        return sum(w.processed for w in ALL)

"""

# Each case: the body of `{a}def main(names: list[str], n: int) -> list[int]`.
FLOWS = {
    "a_fan_out_s_elements_then_a_fan_out_over_them": """
        bs = [{w}open_batch(x) for x in names]
        loaded = [{w}load_rows(b, n) for b in bs]
        flushed = {w}flush_all("t")
        return [sum(loaded), flushed] + [len(b) for b in bs]
    """,
    "an_item_of_a_fan_out": """
        bs = [{w}open_batch(x) for x in names]
        first = bs[0]
        loaded = {w}load_rows(first, n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(first)]
    """,
    "a_loop_over_a_fan_out": """
        bs = [{w}open_batch(x) for x in names]
        total = 0
        for b in bs:
            total += {w}load_rows(b, n)
        flushed = {w}flush_all("t")
        return [total, flushed] + [len(b) for b in bs]
    """,
    "a_fan_out_of_setdefault": """
        bs = [{w}get_batch(x) for x in names]
        loaded = [{w}load_rows(b, n) for b in bs]
        flushed = {w}flush_all("t")
        return [sum(loaded), flushed] + [len(b) for b in bs]
    """,
    "a_dict_fan_out_s_value": """
        by = {{x: {w}get_batch(x) for x in names}}
        loaded = {w}load_rows(by[names[0]], n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(by[names[0]])]
    """,
    "a_tuple_unpacked": """
        name, rows = {w}open_pair(names[0])
        loaded = {w}load_rows(rows, n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(rows), len(name)]
    """,
    "an_attribute_bound": """
        res = {w}open_res(names[0])
        rows = res.rows
        loaded = {w}load_rows(rows, n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(rows)]
    """,
    "an_attribute_passed": """
        res = {w}open_res(names[0])
        loaded = {w}load_rows(res.rows, n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(res.rows)]
    """,
    "a_list_of_the_state_s_values": """
        {w}open_batch(names[0])
        bs = {w}all_batches("t")
        loaded = {w}load_rows(bs[0], n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(bs[0])]
    """,
    "a_fan_out_over_a_list_of_the_state_s_values": """
        [{w}open_batch(x) for x in names]
        bs = {w}all_batches("t")
        loaded = [{w}load_rows(b, n) for b in bs]
        flushed = {w}flush_all("t")
        return [sum(loaded), flushed] + [len(b) for b in bs]
    """,
    "a_fan_out_of_the_state_s_items": """
        [{w}open_batch(x) for x in names]
        bs = [{w}one_batch(x) for x in names]
        loaded = [{w}load_rows(b, n) for b in bs]
        flushed = {w}flush_all("t")
        return [sum(loaded), flushed] + [len(b) for b in bs]
    """,
    "the_flow_s_own_list_of_the_state_s_values": """
        {w}open_batch(names[0])
        bs = list(OPEN.values())
        loaded = {w}load_rows(bs[0], n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(bs[0])]
    """,
    "a_list_a_node_appends_the_state_s_values_to": """
        {w}open_batch(names[0])
        bs = {w}collect("t")
        loaded = {w}load_rows(bs[0], n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(bs[0])]
    """,
    "an_item_of_a_sorted_list_of_the_state_s_values": """
        {w}open_batch(names[0])
        b = {w}largest("t")
        loaded = {w}load_rows(b, n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(b)]
    """,
    "an_item_of_a_dict_a_node_returns": """
        d = {w}open_dict(names[0])
        loaded = {w}load_rows(d["rows"], n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(d["rows"])]
    """,
    "the_flow_s_comprehension_over_the_state_s_values": """
        {w}open_batch(names[0])
        bs = [rows for rows in OPEN.values()]
        loaded = {w}load_rows(bs[0], n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(bs[0])]
    """,
    "the_flow_s_loop_over_the_state_s_values": """
        {w}open_batch(names[0])
        kept = []
        for rows in OPEN.values():
            kept.append(rows)
        loaded = {w}load_rows(kept[0], n)
        flushed = {w}flush_all("t")
        return [loaded, flushed, len(kept[0])]
    """,
    "self_registering_objects_the_flow_appends": """
        workers = []
        for x in names:
            workers.append(Worker(x))
        done = [{w}run_worker(w, n) for w in workers]
        total = {w}summarize_all("t")
        return [sum(done), total]
    """,
    "self_registering_objects_a_fan_out_makes": """
        workers = [{w}make_worker(x) for x in names]
        done = [{w}run_worker(w, n) for w in workers]
        total = {w}summarize_all("t")
        return [sum(done), total]
    """,
    "self_registering_objects_the_flow_makes": """
        workers = [Worker(x) for x in names]
        done = [{w}run_worker(w, n) for w in workers]
        total = {w}summarize_all("t")
        return [sum(done), total]
    """,
}

RUNNER = """
import asyncio, importlib, inspect, json, sys
sys.path[:0] = [sys.argv[1]]
runs = int(sys.argv[2])


def fresh(module):
    for loaded in ("case", "compiled_case"):
        sys.modules.pop(loaded, None)
    return importlib.import_module(module)


def run(module):
    value = module.main(["a", "b"], 3)
    return asyncio.run(value) if inspect.iscoroutine(value) else value


def snapshot(module, names):
    # The compiled module keeps only the names its flows use: the state of those.
    held = vars(module)
    return {
        name: sorted(held[name].items()) if name == "OPEN"
        else [w.processed for w in held[name]]
        for name in names
    }


found = {"source": [], "compiled": []}
for _ in range(runs):
    source = fresh("case")
    ran = run(source)
    compiled = fresh("compiled_case")
    names = [name for name in ("OPEN", "ALL") if name in vars(compiled)]
    found["source"].append([ran, snapshot(source, names)])
    found["compiled"].append([run(compiled), snapshot(compiled, names)])
print(json.dumps(found))
"""


def module_of(flow_body: str, *, sync: bool) -> str:
    """The case's module: the nodes and a flow `main` of `flow_body`, async or
    sync (of thread nodes)."""
    words = (
        {"a": "", "w": "", "t": "thread=True"}
        if sync
        else {"a": "async ", "w": "await ", "t": ""}
    )
    sleep = "time.sleep(0.05)" if sync else "await asyncio.sleep(0.05)"
    nodes = NODES.format(sleep=sleep, **words)
    body = textwrap.indent(textwrap.dedent(flow_body).format(**words).strip(), "    ")
    signature = f"{words['a']}def main(names: list[str], n: int) -> list[int]:"
    return f"{nodes}\n\n@flow\n{signature}\n{body}\n"


def compile_and_run(
    tmp_path: Path, module: str
) -> tuple[dict[str, list[object]], list[str]]:
    """The case's source and compiled runs, in fresh interpreters, and its KLN311s."""
    source = tmp_path / "case.py"
    source.write_text(module, encoding="utf-8")
    compilation = compile_file(source)
    assert compilation.output is not None, [d.message for d in compilation.diagnostics]
    (tmp_path / "compiled_case.py").write_text(compilation.output, encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path), str(RUNS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    warnings = [
        d.message for d in compilation.diagnostics if d.code is Code.EFFECT_ORDER
    ]
    found: dict[str, list[object]] = json.loads(ran.stdout)
    return found, warnings


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("case", sorted(FLOWS))
def test_a_later_reach_of_the_state_waits_for_the_change(
    case: str, sync: bool, tmp_path: Path
) -> None:
    found, warnings = compile_and_run(tmp_path, module_of(FLOWS[case], sync=sync))
    assert found["compiled"] == found["source"], case
    assert warnings, "the kept order is said"
