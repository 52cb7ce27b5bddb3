"""Labels with quotes, brackets, #, |, <, &, backslashes and unicode names."""

from kiln import flow, node


@node
def étiquette(texte: str) -> str:
    return texte


@node(name='say "hi" [1] <b>')
async def greet(who: str) -> str:
    return who


@flow(name="ﬂux | #1")
async def flux(texte: str) -> str:
    label = texte + ' "#|<&>` \\ [x] {y} \n'
    marked = étiquette(label)
    if marked == "a|b" or "#" in marked:
        marked = await greet(marked)
    return marked
