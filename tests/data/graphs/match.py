"""A match: captures, a guard, and a wildcard arm that does nothing."""

from kiln import flow, node


@node
def parse(raw: str) -> tuple[str, int]:
    name, _, size = raw.partition("=")
    return name, int(size or 0)


@node
async def grow(size: int) -> int:
    return size * 2


@node
async def rename(name: str) -> str:
    return name.upper()


@flow
async def adjust(raw: str) -> str:
    pair = parse(raw)
    result = raw
    match pair:
        case (name, 0):
            result = await rename(name)
        case (name, size) if size > 100:
            result = f"{name}={await grow(size)}"
        case _:
            pass
    return result
