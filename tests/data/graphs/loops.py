"""Loops: a while loop whose test calls a node, with visit bounds, and a for loop."""

from kiln import flow, node


@node
async def good(draft: str) -> bool:
    return len(draft) > 20


@node(max_visits=3)
async def revise(draft: str) -> str:
    return draft + " and more"


@node
def publish(draft: str) -> str:
    return draft


@flow(max_visits=8)
async def write(draft: str, topics: list[str]) -> list[str]:
    while not await good(draft):
        draft = await revise(draft)
    posts = []
    for topic in topics:
        posts.append(publish(f"{topic}: {draft}"))
    return posts


@node
async def fetch(page: int) -> list[str]:
    return [str(page)] if page < 3 else []


@flow
async def crawl(pages: int) -> list[str]:
    found: list[str] = []
    page = 0
    while True:
        items = await fetch(page)
        if not items or page >= pages:
            break
        found += items
        page += 1
    else:
        found = []
    return found
