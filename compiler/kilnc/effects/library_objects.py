"""What a method kiln cannot see into does to the object it is called on, by the
object's library type: reads it, changes it, or sets a `ContextVar`.

Example input (a node's body; module-level `CLIENT = httpx.AsyncClient()`,
`CFG = configparser.ConfigParser()`, `WORD = re.compile(...)`,
`USER: ContextVar[str]`)::

    await CLIENT.post(url)        # an installed library's client: a read
    CFG.set("a", "b", "c")        # a standard-library object holding data
    WORD.findall(text)            # a compiled pattern: it only computes
    USER.set(name)                # a ContextVar, set for the code after

Output: `opaque` is True for the client's and the pattern's calls (they only
read the module state they are methods of) and False for the ConfigParser's;
`sets_context` is True for `USER`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

import libcst as cst

from kilnc.effects.module_names import declared_global
from kilnc.effects.receivers import type_of
from kilnc.mutability import MUTATING_METHODS, READING_LIBRARY, READING_METHODS
from kilnc.names import identifier
from kilnc.syntax import chain_root

if TYPE_CHECKING:  # the body asks this module about its calls: a cycle
    from kilnc.effects.body import Body


def opaque(body: Body, func: cst.BaseExpression) -> bool:
    """Whether a call of `func`, a method kiln cannot see into, only reads the
    module state it is a method of: an installed library's object (`client.post`,
    a session, a logger), or an object kiln cannot type at all, which it takes
    for a client. Not a container's change (`LOG.clear`); not a method of a
    standard-library object that holds data (`CFG.set` of a ConfigParser,
    `REPORT.write` of a StringIO, `QUEUE.put_nowait` of an asyncio.Queue),
    unless the library's type only reads or coordinates (a compiled pattern,
    a lock); not a method of an item of module state kiln cannot type
    (`for model in MODELS: model.fit()`): data, not a client."""
    if not isinstance(func, cst.Attribute) or func.attr.value in MUTATING_METHODS:
        return False
    receiver = func.value
    typed = type_of(body, receiver)
    library = (
        body.reader.library_name(typed[0].location.name, typed[1].partition("[")[0])
        if typed is not None
        else None
    )
    root = chain_root(receiver)
    if library is None and isinstance(root, cst.Name) and receiver is root:
        library = _library_type(body, identifier(root.value))
    if library is not None:
        return _only_reads(library) or func.attr.value in READING_METHODS
    return not _an_item(body, receiver)


def _only_reads(library: str) -> bool:
    """Whether the methods of an object of this library type leave its state as it
    is, as far as ordering goes: any installed library's (a client's), and the
    standard library's that compute or coordinate, not those that hold data."""
    if library in _STATEFUL:
        return False
    if library.partition(".")[0] not in sys.stdlib_module_names:
        return True
    return any(
        library == name or (name.endswith(".") and library.startswith(name))
        for name in READING_LIBRARY
    )


def _an_item(body: Body, receiver: cst.BaseExpression) -> bool:
    """Whether `receiver` is an item of a container: `MODELS[0]`, or a local bound
    to one (`for model in MODELS`, `model = REGISTRY.get(name)`)."""
    node = receiver
    while isinstance(node, cst.Attribute | cst.Subscript):
        if isinstance(node, cst.Subscript):
            return True
        node = node.value
    return isinstance(node, cst.Name) and identifier(node.value) in body.idioms.items


def sets_context(body: Body, receiver: cst.BaseExpression) -> bool:
    """Whether `receiver.set(...)` sets a module-level `ContextVar` for the code after
    the body: one the body does not also `reset` (a token's scope, as a tracer's)."""
    if not isinstance(receiver, cst.Name):
        return False
    name = identifier(receiver.value)
    if _library_type(body, name) != "contextvars.ContextVar":
        return False
    return name not in body.idioms.resets


def _library_type(body: Body, name: str) -> str | None:
    """The standard-library or installed type a module-level name is declared or
    made as (`contextvars.ContextVar` of `USER: ContextVar[str] = ...`)."""
    declared = declared_global(body, name)
    if declared is None:
        return None
    defs, made = declared
    return body.reader.library_name(defs.location.name, made.partition("[")[0])


# Standard-library objects whose every method may change them: a queue, an event,
# a random generator, a counter, an ordered dict's `move_to_end`. Not a
# `ContextVar`: a node run as a task sets it in a context of its own, so a set
# reaches the code after the node only (`sets_context`), never a sibling.
_STATEFUL: Final = frozenset(
    {f"asyncio.{kind}" for kind in ("Queue", "LifoQueue", "PriorityQueue", "Event")}
    | {f"queue.{kind}" for kind in ("Queue", "SimpleQueue", "LifoQueue")}
    | {"threading.Event", "random.Random", "itertools.count"}
    | {"collections.OrderedDict"}
)
