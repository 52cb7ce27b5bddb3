"""Module state that library code changes for the node: what it is handed,
what a logging call runs, what a method of `object` or `super()` sets.

kiln reads a module-level object handed to code it cannot see into as a
client is (`run_in_executor(POOL, ...)`): shared by design, so a read. That
holds for a client, a pool, a logger, but not for an object that holds the
program's data. A probe of the standard library found these changed without
kiln knowing, and a later node that read the state ran at once and saw the
old value:

- a buffer handed to a writer: `json.dump(row, BUF)`, `pickle.dump`,
  `csv.writer(BUF).writerow(...)`, `struct.pack_into(fmt, BUF, ...)`;
- a container the module makes (`ROWS = []`) handed to a callable kiln
  cannot follow, `operator.methodcaller("append", x)(ROWS)`;
- a logging call that reaches a handler, filter or formatter class of the
  project's, which keeps the records (in module state, or in the handler);
- `object.__setattr__(FROZEN, "x", v)`, and `super().__setattr__(...)` in a
  method of the object;
- an installed library's object whose method's name says it stores
  (`STORE.add_texts(docs)`, `INDEX.upsert(...)`), where a later node asks
  it (`STORE.similarity_search(q)`): a request (`CLIENT.get(url)`) is still
  a read, and requests overlap;
- a module's generator that `send`, `throw` or `close` moves on, and the
  cache of a `functools.cache` function that `cache_clear` empties (its
  calls still overlap).

Each case runs its source and its compiled flow in fresh interpreters
(tests/test_state_reach_order.py) and compares their results.
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

LIST_HANDLER = """
import logging

class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

CAPTURED = ListHandler()
logging.getLogger().addHandler(CAPTURED)
logging.getLogger().setLevel(logging.INFO)
log = logging.getLogger("app")
"""

SEEN_FILTER = """
import logging

SEEN: list[str] = []

class Seen(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        SEEN.append(record.getMessage())
        return True

log = logging.getLogger("app")
log.addFilter(Seen())
"""

GENERATOR = """
from collections.abc import Generator

def numbers() -> Generator[int, int, None]:
    total = 0
    while True:
        total += (yield total) or 0

NUMBERS = numbers()
next(NUMBERS)
"""

ORDERED = {
    "json_dump_into_a_module_s_buffer": write_then_read(
        "import io, json\nBUF = io.StringIO()", "json.dump([1], BUF)", "BUF.getvalue()"
    ),
    "pickle_dump_into_a_module_s_buffer": write_then_read(
        "import io, pickle\nBUF = io.BytesIO()",
        "pickle.dump(1, BUF)",
        "len(BUF.getvalue())",
        fresh=True,
    ),
    "a_csv_writer_made_in_the_node": write_then_read(
        "import csv, io\nBUF = io.StringIO()",
        "csv.writer(BUF).writerow([1])",
        "BUF.getvalue()",
    ),
    "struct_pack_into_a_module_s_bytearray": write_then_read(
        "import struct\nBUF = bytearray(4)",
        "struct.pack_into('i', BUF, 0, 7)",
        "bytes(BUF)",
        fresh=True,
    ),
    "a_method_caller_handed_a_module_s_list": write_then_read(
        "import operator\nROWS: list[int] = []",
        "operator.methodcaller('append', 1)(ROWS)",
        "list(ROWS)",
        fresh=True,
    ),
    "a_logging_call_whose_handler_keeps_the_record": write_then_read(
        LIST_HANDLER, "log.info('written')", "list(CAPTURED.records)", fresh=True
    ),
    "a_logging_call_whose_filter_adds_to_module_state": write_then_read(
        SEEN_FILTER, "log.warning('written')", "list(SEEN)", fresh=True
    ),
    # An installed library's object: the name says the method stores.
    "an_installed_vector_store_s_add_texts": write_then_read(
        "import fakeclient\nSTORE = fakeclient.VectorStore()",
        "await STORE.add_texts(['a doc'])",
        "STORE.similarity_search('doc')",
        fresh=True,
    ),
    "object_setattr_on_a_frozen_dataclass": write_then_read(
        "from dataclasses import dataclass\n\n"
        "@dataclass(frozen=True)\nclass Frozen:\n    x: int\n\nFROZEN = Frozen(0)",
        "object.__setattr__(FROZEN, 'x', 1)",
        "FROZEN.x",
    ),
    # A generator of the module's: `send`, `throw` and `close` move it on.
    "send_to_a_module_s_generator": write_then_read(
        GENERATOR, "NUMBERS.send(5)", "NUMBERS.send(0)"
    ),
    "close_a_module_s_generator_expression": write_then_read(
        "NUMBERS = (n for n in range(3))",
        "NUMBERS.close()",
        "next(NUMBERS, -1)",
    ),
    # A cache `cache_clear` empties: what `cache_info` reads.
    "cache_clear_of_a_cached_function": write_then_read(
        "import functools\n\n@functools.lru_cache\n"
        "def load(x: int) -> int:\n    return x\n\nload(1)",
        "load.cache_clear()",
        "load.cache_info().currsize",
    ),
    "super_setattr_in_a_method_of_a_module_s_object": write_then_read(
        "class Box:\n    def mark(self) -> None:\n"
        "        super().__setattr__('x', 1)\n\nBOX = Box()",
        "BOX.mark()",
        "getattr(BOX, 'x', 0)",
    ),
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_state_library_code_changes_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)


OVERLAPPING = {
    # No class of the project's is a logging one: a logging call runs none of it.
    "logging_calls_with_no_handler_of_the_project_s": both_overlap(
        "import logging\nlog = logging.getLogger('app')",
        "log.warning(name)",
        "log.warning(name)",
    ),
    # A request of a client: no name of storing.
    "an_installed_client_s_requests": both_overlap(
        "import fakeclient\nCLIENT = fakeclient.Client()",
        "name = await CLIENT.get(name)",
        "name = await CLIENT.get(name)",
    ),
    # A cached function's calls read no cache state: a cached client is shared.
    "calls_of_a_cached_function": both_overlap(
        "import functools\n\n@functools.cache\ndef client() -> list[str]:\n"
        "    return []",
        "name = str(len(client()) + len(name))",
        "name = str(len(client()) + len(name))",
    ),
    "a_pool_handed_to_a_library_call": both_overlap(
        "import concurrent.futures\nPOOL = concurrent.futures.ThreadPoolExecutor(2)",
        "await asyncio.get_running_loop().run_in_executor(POOL, len, name)",
        "await asyncio.get_running_loop().run_in_executor(POOL, len, name)",
    ),
}


@pytest.mark.parametrize("case", sorted(OVERLAPPING))
def test_a_client_or_a_logger_handed_on_still_overlaps(
    case: str, tmp_path: Path
) -> None:
    assert_overlapped(tmp_path, OVERLAPPING[case])
