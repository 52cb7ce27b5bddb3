"""Benchmark flow: a fan-out of `n` concurrent waits of `seconds` each.

Compiled, the comprehension is one `gather` of `n` calls; the hand-written
baseline is `asyncio.gather` over the same coroutines (benchmarks/baselines.py).
"""

from __future__ import annotations

import asyncio

from kiln import flow, node


@node
async def wait(index: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return index


@flow
async def fanout(n: int, seconds: float) -> list[int]:
    return [await wait(index, seconds) for index in range(n)]
