"""A chain: each step reads what the one before it wrote."""

from kiln import flow, node


@node
def load(path: str) -> str:
    return path


@node
async def clean(text: str) -> str:
    return text.strip()


@node
def count(text: str, minimum: int) -> int:
    return max(len(text.split()), minimum)


@flow
async def words(path: str, minimum: int = 0) -> int:
    text = load(path)
    cleaned = await clean(text)
    return count(cleaned, minimum)
