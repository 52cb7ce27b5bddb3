"""Module-level objects of installed libraries that hold data, not clients.

kiln read a method of an installed library's object as a client's request (a
read, so nodes that call it overlap). A new user's numpy and pandas pipelines
showed the cost: a lookup table refreshed in place (`PRICES.fill(x)`,
`np.copyto(PRICES, x)`, `RATES.sort_values(..., inplace=True)`), a seeded
`default_rng` two sampling nodes draw from, an in-memory sqlite3 database one
node fills and the next queries: the reader ran at once and saw the old
data, with no warning. Now an installed library's object holds data unless it
is a client's (by its package or its type's name, `data_holders.py`): its
methods change it, except those named as reads (`sum`, `describe`,
`predict`) called without `inplace=True` or `out=`; handed to library code, it
may be changed there; a store into a view a method made changes it.

`fakedata` (tests/test_state_reach_order.py) is an installed library shaped
like numpy's and pandas's, and `numpy` there a few of numpy's functions over
it. A parameter's array the nodes only read (`a.sum()`, `a[0]`) is read by
them, and they overlap; a numerical library's function makes a new value
(`np.tanh(a)`, `np.zeros(3)`) and orders nothing, but the few that fill what
they are given (`np.copyto`) and any call told `out=`. Each case runs its
source and its compiled flow in fresh interpreters and compares their results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
    both_overlap,
    write_then_read,
)

# Two nodes the flow hands one array, as `both_overlap`'s: each logs its start,
# sleeps, runs its line (`first`, `second`) and logs its end; `between` is a
# statement of the flow's between the two calls.
PASSED = """
import fakedata
import numpy

@node
async def first(a: fakedata.Array, name: str) -> str:
    EVENTS.append(f"start {{name}}")
    await asyncio.sleep(0.05)
    {first}
    EVENTS.append(f"end {{name}}")
    return name

@node
async def second(a: fakedata.Array, name: str) -> str:
    EVENTS.append(f"start {{name}}")
    await asyncio.sleep(0.01)
    {second}
    EVENTS.append(f"end {{name}}")
    return name

@flow
async def main() -> list[object]:
    a = fakedata.array([3.0, 1.0, 2.0])
    done = await first(a, "a")
    {between}
    return [done, await second(a, "b"), a.values]
"""


def passed(first: str, second: str, between: str = "pass") -> str:
    return PASSED.format(first=first, second=second, between=between)


TABLE = "import fakedata\nPRICES = fakedata.array([3.0, 1.0, 2.0])"

ORDERED = {
    "a_method_that_changes_its_array": write_then_read(
        TABLE, "PRICES.fill(9.0)", "PRICES[0]", fresh=True
    ),
    "a_sort_in_place": write_then_read(
        TABLE, "PRICES.sort_values(inplace=True)", "PRICES[0]", fresh=True
    ),
    "a_read_named_method_told_to_write_out": write_then_read(
        TABLE, "PRICES.clip(0.0, 1.0, out=PRICES)", "PRICES.sum()", fresh=True
    ),
    "handed_to_a_library_function": write_then_read(
        TABLE, "fakedata.copyto(PRICES, [7.0, 7.0, 7.0])", "PRICES[0]", fresh=True
    ),
    "a_store_into_a_view_a_method_made": write_then_read(
        TABLE, "PRICES.reshape()[0] = 5.0", "PRICES.sum()", fresh=True
    ),
    "draws_from_a_seeded_generator": write_then_read(
        "import fakedata\nRNG = fakedata.default_rng(42)",
        "RNG.normal()",
        "RNG.normal()",
        fresh=True,
    ),
    "an_in_memory_sqlite_database": write_then_read(
        "import sqlite3\nDB = sqlite3.connect(':memory:')\n"
        "DB.execute('create table t (x)')",
        "DB.execute('insert into t values (1)')",
        "DB.execute('select count(*) from t').fetchone()",
        fresh=True,
    ),
    "a_project_class_holding_the_table": write_then_read(
        "import fakedata\n\nclass Store:\n    def __init__(self) -> None:\n"
        "        self.table = fakedata.array([3.0, 1.0])\n\nSTORE = Store()",
        "STORE.table.fill(0.0)",
        "STORE.table.sum()",
        fresh=True,
    ),
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_a_change_of_a_library_object_holding_data_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


OVERLAPPING = {
    # Named as reads, and not told to work in place: they commute.
    "reads_of_one_array": both_overlap(
        TABLE, "name = name + str(PRICES.sum())", "name = name + str(PRICES.mean())"
    ),
    # A client by its type's name, of no package kiln knows.
    "requests_of_a_client_by_its_name": both_overlap(
        "import fakedata\nAPI = fakedata.ApiClient()",
        "name = await API.fetch(name)",
        "name = await API.fetch(name)",
    ),
    # A client of an installed package of kiln's list.
    "requests_of_a_known_client_package": both_overlap(
        "import openai\nLLM = openai.AsyncOpenAI()",
        "name = await LLM.complete(name)",
        "name = await LLM.complete(name)",
    ),
    # A parameter's array, read by both: a reduction, an item's, a read made of a read.
    "reads_of_an_array_both_nodes_are_passed": passed(
        "name = name + str(a.sum())", "name = name + str(a[0] + a.sort_values().mean())"
    ),
    # A numerical library's function makes a new value: no step waits for it.
    "a_numerical_function_between_them": passed(
        "name = name + str(numpy.tanh(a).sum())",
        "name = name + str(a.mean())",
        "b = numpy.zeros(2)",
    ),
}

PASSED_CHANGED = {
    "a_method_not_named_as_a_read": passed("a.fill(0.0)", "name = str(a.sum())"),
    "a_read_named_method_told_to_work_in_place": passed(
        "a.sort_values(inplace=True)", "name = str(a[0])"
    ),
    "an_out_argument": passed("a.clip(0.0, 1.5, out=a)", "name = str(a.sum())"),
    "a_numerical_function_that_fills_it": passed(
        "numpy.copyto(a, [9.0, 9.0, 9.0])", "name = str(a.sum())"
    ),
}


@pytest.mark.parametrize("case", sorted(PASSED_CHANGED))
def test_a_change_of_an_array_the_flow_passes_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, PASSED_CHANGED[case], case)


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_reads_of_data_and_requests_of_clients_still_overlap(
    case: str, tmp_path: Path
) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])
