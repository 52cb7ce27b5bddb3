"""A fill of module state in a `thread=True` node: a change, not a fill.

`global _client; if _client is None: _client = Client()` tests the state,
makes the value and stores it. In the event loop nothing runs between the
test and the store unless the value awaits; in a thread, another thread's
call may, and each makes its own client: the source made one client for
four `send` calls and a later `current`, the compiled flow four or five,
each call's session thrown away when the next store won (trial Q10). A
thread node's fills are changes, as its folds are (tests/test_thread_folds.py):
its calls keep the source's order. In an `async def` or a plain sync node
the test and the store are one step of the loop's, and fills still overlap.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import (
    assert_kept_in_order,
    assert_overlapped,
)

CLIENT = """
        import time
        from typing import Optional

        class Client:
            def __init__(self, name: str = "") -> None:
                time.sleep(0.02)  # connects
                self.name = name

        _client: Optional[Client] = None
        CLIENTS: dict[str, Client] = {}

        def get_client() -> Client:
            global _client
            if _client is None:
                _client = Client()
            return _client
"""

FILLED = {
    "a_lazily_made_client_in_a_fan_out_and_after_it": """
        @node(thread=True)
        def send(msg: str) -> int:
            return id(get_client())

        @node(thread=True)
        def current(tag: str) -> int:
            return id(get_client())

        @flow
        async def main() -> list[int]:
            ids = [send(m) for m in ["a", "b", "c", "d"]]
            now = current("x")
            return [len(set(ids)), len(set(ids + [now]))]
    """,
    "a_memo_of_clients_by_key": """
        @node(thread=True)
        def connect(host: str) -> int:
            if host not in CLIENTS:
                CLIENTS[host] = Client()
            return id(CLIENTS[host])

        @flow
        async def main() -> list[int]:
            ids = [connect(h) for h in ["db", "db", "db"]]
            return [len(set(ids))]
    """,
    "two_calls_written_apart": """
        @node(thread=True)
        def send(msg: str) -> int:
            return id(get_client())

        @flow
        async def main() -> list[int]:
            a = send("a")
            b = send("b")
            return [len({a, b})]
    """,
}


@pytest.mark.parametrize("case", sorted(FILLED))
def test_a_fill_in_thread_nodes_keeps_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, CLIENT + FILLED[case], case)


def test_fills_in_async_nodes_still_overlap(tmp_path: Path) -> None:
    assert_overlapped(
        tmp_path,
        CLIENT + """
        @node
        async def send(msg: str) -> str:
            EVENTS.append(f"start {msg}")
            client = get_client()
            await asyncio.sleep(0.05)
            EVENTS.append(f"end {msg}")
            return client.name + msg

        @flow
        async def main() -> list[str]:
            return [await send(m) for m in ["a", "b"]]
        """,
    )
