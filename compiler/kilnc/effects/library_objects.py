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

from typing import TYPE_CHECKING, Final

import libcst as cst

from kilnc.effects.data_holders import (
    DATA_READING_METHODS,
    in_place,
    is_client,
    library_type,
    standard,
)
from kilnc.effects.module_names import (
    bound_once,
    declared_global,
    defining_module,
    module_functions,
)
from kilnc.mutability import (
    MUTATING_METHODS,
    READING_LIBRARY,
    READING_METHODS,
    STORING_VERBS,
)
from kilnc.names import identifier
from kilnc.syntax import chain_root, dotted, yields

if TYPE_CHECKING:  # the body asks this module about its calls: a cycle
    from kilnc.effects.body import Body


def opaque(body: Body, func: cst.BaseExpression, call: cst.Call | None = None) -> bool:
    """Whether a call of `func`, a method kiln cannot see into, only reads the
    module state it is a method of: an installed library's object (`client.post`,
    a session, a logger), or an object kiln cannot type at all, which it takes
    for a client. Not a container's change (`LOG.clear`); not a method of a
    standard-library object that holds data (`CFG.set` of a ConfigParser,
    `REPORT.write` of a StringIO, `QUEUE.put_nowait` of an asyncio.Queue),
    unless the library's type only reads or coordinates (a compiled pattern,
    a lock); not a method of an item of module state kiln cannot type
    (`for model in MODELS: model.fit()`): data, not a client. Nor a method of
    an installed library's object, or one kiln cannot type, whose name says
    it stores (`STORE.add_texts(docs)`, `INDEX.upsert(...)`): a later node
    that asks the object (`STORE.similarity_search(q)`) waits for it. Nor a
    method of an installed library's object that holds data (an array, a
    frame, a random generator: `data_holders.py`) not named as a read, nor one
    whose `call` says it works in place (`inplace=True`, `out=`)."""
    if not isinstance(func, cst.Attribute) or func.attr.value in MUTATING_METHODS:
        return False
    if call is not None and in_place(call):
        return False
    return only_read(body, func.value, func.attr.value)


def _stores(method: str) -> bool:
    """Whether a method's name says it stores in its object (`upsert`,
    `add_texts`, `save_context`, `set_state`), or drops what it holds."""
    return method in STORING_VERBS or method.startswith(_STORING_PREFIXES)


def only_read(body: Body, value: cst.BaseExpression, method: str = "") -> bool:
    """Whether code kiln cannot see into, handed the module state `value` (or
    calling its `method`), only reads it: a client, a pool, a logger, or an
    object kiln cannot type; not one that holds data, a standard-library
    object's (`json.dump(row, REPORT)` of a StringIO) or an installed
    library's that is no client's (`np.copyto(PRICES, x)`, `RNG.normal()`), a
    container the module makes (`ROWS = []`, `ROWS = list()`), an item of
    module state."""
    if isinstance(value, cst.Call) and dotted(value.func) == "super":
        return False  # `super().__setattr__(k, v)`: a method of its own object
    library = library_type(body, value)
    root = chain_root(value)
    if library is None and isinstance(root, cst.Name) and value is root:
        library = _library_type(body, identifier(root.value))
        if library is None and _made_as_container(body, identifier(root.value)):
            return False
    if library is not None and standard(library):
        if method in _UNDOES and library in _LOCKS:
            # Held past the call, unless this body undoes it: another node's
            # `release` needs it.
            name = identifier(root.value) if isinstance(root, cst.Name) else ""
            return f"{name}.{_UNDOES[method]}" in body.idioms.paired
        return _only_reads(library) or method in READING_METHODS
    if library is None and _an_item(body, value):
        return False
    if library is not None and not is_client(library):
        return method in DATA_READING_METHODS  # data: its reads only
    return not _stores(method)  # a client's request reads; a store changes it


def _made_as_container(body: Body, name: str) -> bool:
    """Whether a module-level name is bound to a display of a builtin container
    (`ROWS = []`, `{k: [] for k in KINDS}`), whose type no call names, or to a
    generator: `(x for x in ITEMS)`, or a call of a generator function of its
    module (`NUMBERS = numbers()`), which its `send`, `throw` and `close` change."""
    defining = defining_module(body, name)
    if defining is None:
        return False
    defs, name = defining
    module = defs.parsed.module
    binding = bound_once(module).get(name)
    if binding is None:
        return False
    made = binding.value
    if isinstance(made, _CONTAINER_DISPLAYS):
        return True
    if not isinstance(made, cst.Call) or not isinstance(made.func, cst.Name):
        return False
    function = module_functions(module).get(identifier(made.func.value))
    return function is not None and yields(function.body)


def _only_reads(library: str) -> bool:
    """Whether the methods of an object of this standard-library type leave its
    state as it is, as far as ordering goes: those that compute or coordinate,
    not those that hold data."""
    if library in _STATEFUL:
        return False
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
    return f"{name}.reset" not in body.idioms.paired


def _library_type(body: Body, name: str) -> str | None:
    """The standard-library or installed type a module-level name is declared or
    made as (`contextvars.ContextVar` of `USER: ContextVar[str] = ...`)."""
    declared = declared_global(body, name)
    if declared is None:
        return None
    defs, made = declared
    return body.reader.library_name(defs.location.name, made.partition("[")[0])


# Locks, whose `acquire` and `release` called as methods change them: a lock one
# node acquires and the next releases keeps their order. `with LOCK:`, or both in
# one body, pair them, and read.
_LOCKS: Final = frozenset(
    f"{module}.{kind}"
    for module in ("threading", "asyncio")
    for kind in ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition")
)
_UNDOES: Final = {"acquire": "release", "release": "acquire"}
# Not `set` alone, a ContextVar's (`sets_context`), but `set_state`.
_STORING_PREFIXES: Final = tuple(f"{verb}_" for verb in (*STORING_VERBS, "set"))
_CONTAINER_DISPLAYS: Final = (
    cst.List,
    cst.Dict,
    cst.Set,
    cst.ListComp,
    cst.DictComp,
    cst.SetComp,
    cst.GeneratorExp,
)

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
