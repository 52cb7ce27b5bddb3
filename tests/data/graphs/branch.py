"""Branches: a test that calls a node, elif, else, and an arm that only returns."""

from kiln import flow, node


@node
async def classify(text: str) -> str:
    return "long" if len(text) > 10 else "short"


@node
def shorten(text: str) -> str:
    return text[:10]


@node
def pad(text: str, width: int) -> str:
    return text.ljust(width)


@flow
async def tidy(text: str, width: int) -> str:
    if await classify(text) == "long":
        text = shorten(text)
    elif not text:
        return ""
    else:
        text = pad(text, width)
    return text
