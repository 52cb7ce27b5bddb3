"""Options a drawing shows: retries, timeout, fallback, limit groups, cache, thread, subflows."""

from kiln import Limit, flow, node


def offline(prompt: str, error: Exception) -> str:
    return f"(offline: {prompt})"


@node(retries=3, wait=0.5, timeout=30, fallback=offline)
async def ask(prompt: str) -> str:
    return prompt


@node(limit="llm", cache=True)
async def summarize(text: str) -> str:
    return text[:80]


@node(thread=True, limit="disk")
def store(text: str) -> int:
    return len(text)


@flow(limits={"llm": Limit(8, refresh=1.0), "disk": Limit(2)})
async def answer(prompt: str) -> int:
    text = await ask(prompt)
    short = await summarize(text)
    return store(short)


@flow(limits={"llm": Limit(8, refresh=1.0), "disk": Limit(2)})
async def twice(prompt: str) -> int:
    first = await answer(prompt)
    return first + await answer(prompt + "?")
