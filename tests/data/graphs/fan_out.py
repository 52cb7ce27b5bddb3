"""Fan-outs: a list, a dict with a filter, an async stream, and lifted arguments."""

from collections.abc import AsyncIterator

from kiln import flow, node


@node
def split(text: str) -> list[str]:
    return text.split()


@node
async def score(word: str) -> int:
    return len(word)


@node
async def normalize(word: str) -> str:
    return word.lower()


@node
async def words(text: str) -> AsyncIterator[str]:
    for word in text.split():
        yield word


@node
def total(scores: list[int]) -> int:
    return sum(scores)


@flow
async def scores(text: str) -> int:
    parts = split(text)
    each = [await score(p) for p in parts]
    by_word = {w: await score(w) for w in parts if w}
    streamed = [await score(w) async for w in words(text)]
    lifted = [await score(await normalize(p)) for p in parts]
    return total(each + streamed + lifted) + len(by_word)
