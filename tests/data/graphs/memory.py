"""Memory: the steps handed one token keep source order; a clone runs beside them."""

from kiln import Memory, flow, node


@node
async def remember(memory: Memory, fact: str) -> Memory:
    memory.facts = [*memory.facts, fact]
    return memory


@node
async def recall(memory: Memory) -> str:
    return ", ".join(memory.facts)


@flow
async def notes(memory: Memory, first: str, second: str) -> str:
    memory = await remember(memory, first)
    side = memory.clone()
    side = await remember(side, "aside")
    memory = await remember(memory, second)
    return await recall(memory) + await recall(side)
