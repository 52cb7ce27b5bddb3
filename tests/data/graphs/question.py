from kiln import ask, flow, node


@node
async def write(doc: str) -> str:
    return doc.upper()


@node
async def post(text: str) -> str:
    return "posted " + text


@node
async def audit(doc: str) -> int:
    return len(doc)


@flow
async def publish(doc: str) -> str:
    draft = await write(doc)
    ok = await ask("review", bool, draft)
    n = await audit(doc)
    if ok:
        return await post(draft)
    return f"rejected {n}"
