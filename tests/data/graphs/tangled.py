"""A flow the random flow generator made: Graphviz's older ranking fails on its edges."""

import asyncio

from kiln import Memory, flow, node


@node
async def record(memory: Memory, value: int) -> None:
    await asyncio.sleep(0)
    memory.log = [*memory.log, value]


@node
async def step(i: int) -> int:
    return i + 1


@node
def n0(*values: int) -> int:
    return (sum(values) * 1 + 0) % 1000003


@node
def n1(*values: int) -> int:
    return (sum(values) * 1 + 1) % 1000003


@node
def n2(*values: int) -> int:
    return (sum(values) * 1 + 2) % 1000003


@node
def n3(*values: int) -> int:
    return (sum(values) * 1 + 3) % 1000003


@node
def n4(*values: int) -> int:
    return (sum(values) * 1 + 4) % 1000003


@node
def n5(*values: int) -> int:
    return (sum(values) * 1 + 5) % 1000003


@node
def n6(*values: int) -> int:
    return (sum(values) * 1 + 6) % 1000003


@node
def n7(*values: int) -> int:
    return (sum(values) * 1 + 7) % 1000003


@flow
async def main(x: int, memory: Memory) -> tuple[tuple[int, ...], list[int]]:
    if x % 3 == 0:
        v0_a = n0(x)
        v0_b = n0(x)
        v0 = v0_a - v0_b
    elif n0(x) % 2 == 0:
        v0 = n0(x, x)
    else:
        v0 = x
    v1 = x
    for k in range(0):
        v1_k = n1(x, v0, k)
        v1_j = n1(k)
        v1 = v1 + v1_k * v1_j
    v2 = n2(x)
    v3 = n3(v2)
    await record(memory, v3)
    v4 = n4(v3)
    v5 = x
    for k in range(0):
        v5_k = n5(x, v0, v2, k)
        v5_j = n5(k)
        v5 = v5 + v5_k * v5_j
    v6 = n6(v1, v2)
    if x % 3 == 0:
        v7_a = n7(v2)
        v7_b = n7(v5)
        v7 = v7_a - v7_b
    elif n7(x) % 2 == 0:
        v7 = n7(v5, x)
    else:
        v7 = v5
    return (
        v0,
        v1,
        v2,
        v3,
        v4,
        v5,
        v6,
        v7,
    ), list(memory.log)
