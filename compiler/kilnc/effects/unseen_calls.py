"""Calls of builtins and of code kiln cannot see into, each recorded as its effect.

Example input: `sorted(rows, key=rank)`, `next(lines)`, `setattr(box, "x",
v)`, `print(x, file=out)`, `tool(state)` of a function the body was given.
Output, on the `Body`: `rows` iterated, `rank` called on what kiln does not
follow, `lines` consumed, `box` changed and keeping `v`, `out` written, and
`state` and `tool` maybe changed by code kiln cannot see into.
"""

from __future__ import annotations

from typing import Final

import libcst as cst

from kilnc.effect_ir import ANY_KEY, UNSEEN, Access, MemoryUse
from kilnc.effects.body import Body
from kilnc.effects.implicit import BUILTIN_DUNDERS, implicit_call
from kilnc.effects.kept import keep
from kilnc.effects.library_objects import only_read, opaque
from kilnc.effects.project_calls import beyond_parameters
from kilnc.effects.state_uses import record, working_directory
from kilnc.mutability import (
    ARGUMENT_MUTATING_METHODS,
    BUILTIN_EXCEPTIONS,
    EXTERNAL_BUILTINS,
    ITERATING_BUILTINS,
    MUTATING_METHODS,
    PURE_BUILTINS,
    PURE_METHODS,
)
from kilnc.names import root_names
from kilnc.syntax import chain_root, code

_RUNS_CODE: Final = ("exec", "eval")  # the names they are given, the code may change


def builtin_call(body: Body, node: cst.Call, name: str) -> None:
    """A call of the builtin `name`."""
    if name in ("object.__setattr__", "object.__delattr__"):
        name = name.partition(".")[2].strip("_")  # a frozen dataclass's own setattr
    if name in BUILTIN_DUNDERS and node.args:  # `len(box)` runs `Box.__len__`
        implicit_call(body, node, node.args[0].value, BUILTIN_DUNDERS[name])
    if name in ("getattr", "hasattr", "vars") and node.args:  # `Config.mode` read
        record(body, named_attribute(node), Access.READ, f"calls {name}()", node)
    if name in ("getattr", "hasattr") and len(node.args) > 1:
        # `getattr(memory, key)`: a read of that key, as `memory[key]` is.
        token = body.token(node.args[0].value)
        if token is not None:
            keys = body.keys_at(node.args[1].value)
            body.memory(token, MemoryUse(global_reads=keys, local_reads=keys))
    elif name not in ("setattr", "delattr"):
        reads_whole(body, node)
    method = name.partition(".")[2]
    if method and node.args and method in MUTATING_METHODS:
        # `list.append(LOG, x)`: the method on its first argument.
        reason = f"calls {name}() on it"
        body.change(node.args[0].value, reason, node, itself=True)
        return
    if name in PURE_BUILTINS or name in BUILTIN_EXCEPTIONS or method in PURE_METHODS:
        return
    if name in ITERATING_BUILTINS:
        for arg in node.args:
            if arg.keyword is None:
                iterate(body, arg.value)
            else:  # `key=rank`: called, and kiln does not follow the call
                shown = f"{name}(..., {arg.keyword.value}={code(arg.value)})"
                body.change(arg.value, f"calls {shown}", node)
        return
    if name == "next" and node.args:
        iterator = node.args[0].value
        body.change(iterator, "calls next() on it", node, by_iteration=True)
        # Of module state, an iterator it changes (`next(IDS)` of `itertools.count`).
        record(body, iterator, Access.WRITE, "calls next() on it", node)
        return
    if name in ("setattr", "delattr") and node.args:
        token = body.token(node.args[0].value)
        if token is not None:
            keys = body.keys_at(node.args[1].value if len(node.args) > 1 else None)
            body.memory(token, MemoryUse(global_writes=keys, local_writes=keys))
        else:
            reason = f"calls {name}() on it"
            stored = named_attribute(node)
            body.change(node.args[0].value, reason, node, itself=True, stored=stored)
        if name == "setattr" and len(node.args) == 3:  # `holder[key] = value`
            held, key, value = (arg.value for arg in node.args)
            into = cst.Subscript(held, [cst.SubscriptElement(cst.Index(key))])
            keep(body, into, value)
        return
    for index, arg in enumerate(node.args):  # `print(x, file=out)`, `exec(c, ns)`
        keyword = arg.keyword.value if arg.keyword is not None else None
        if (name, keyword) == ("print", "file") or (name in _RUNS_CODE and index):
            body.change(arg.value, f"passes it to {name}()", node)
    if name in EXTERNAL_BUILTINS:
        working_directory(body, node, f"builtins.{name}")  # `open("out.csv")`
        body.external(f"calls {name}()", node)
        return
    unknown_call(body, node, name)


def reads_whole(body: Body, node: cst.Call) -> None:
    """A Memory handed to code that reads what it is given (`repr(memory)`,
    `copy.deepcopy(memory)`, `json.dumps(memory)`): a read of every key."""
    for arg in node.args:
        token = body.token(arg.value)
        if token is not None:
            body.memory(token, MemoryUse(global_reads=ANY_KEY, local_reads=ANY_KEY))


def named_attribute(node: cst.Call) -> cst.Attribute:
    """`Config.mode` of `setattr(Config, "mode", m)`; `Config.__dict__` where the
    name is no literal, and of `vars(Config)`."""
    held = node.args[0].value
    key = node.args[1].value if len(node.args) > 1 else None
    name = key.evaluated_value if isinstance(key, cst.SimpleString) else None
    if not isinstance(name, str) or not name.isidentifier():
        name = "__dict__"
    return cst.Attribute(held, cst.Name(name))


def unknown_call(body: Body, node: cst.Call, shown: str) -> None:
    """A call of code kiln cannot see into: it may change what it is given. An
    object of a project class is called through its `__call__`, as well."""
    func = node.func
    implicit_call(body, node, func, "__call__", [arg.value for arg in node.args])
    if (
        isinstance(func, cst.Attribute)
        and func.attr.value in ARGUMENT_MUTATING_METHODS
        and node.args
    ):  # `random.Random(seed).shuffle(DECK)` changes DECK, module state or not
        body.change(node.args[0].value, f"passes it to {shown}", node, itself=True)
    for arg in node.args:  # module state handed over: a client, a pool, read
        reason = f"passes it to {shown}, {UNSEEN}"
        read = only_read(body, arg.value) and not _out(arg)
        body.change(arg.value, reason, node, opaque=read)
    local = root_names(node.func) & (body.params.keys() | body.local_names)
    # It may store any argument in another, or in what the function came from.
    handed = [arg.value for arg in node.args] + ([func] if local else [])
    if len(handed) > 1:
        body.found.keeps |= {
            origin
            for value in handed
            for origin in body.origins(value)
            if isinstance(origin, str)
        }
    if local:
        # A function it was given (a parameter, a local, one in a container,
        # `tools[name]`) may be a bound method (`tokens.append`), or hold what it
        # changes: calling it may change what it came from.
        body.change(func, f"calls {shown}", node, opaque=opaque(body, func))
    else:
        body.external(f"calls {shown}", node)
    held = not isinstance(func, cst.Name) and not _container_method(func)
    if local or (held and body.is_module_state(func)):
        # Any function the project names as a value may be what it calls
        # (`TOOLS[name](x)`, `handler(e)`): it uses what they use (escaped.py),
        # in the modules read so far, the one the value comes from among them.
        qualified = body.reader.resolve(body.defs, chain_root(func)) or ""
        for module in (qualified, qualified.rpartition(".")[0]):
            if module:
                body.reader.module_defs(module)  # `store.HOOKS`: read `store`
        beyond_parameters(body, node, body.reader.escaped(), shown, None)


def _container_method(func: cst.BaseExpression) -> bool:
    """`LOG.append`: a builtin container's method, not a function a value holds."""
    return isinstance(func, cst.Attribute) and (
        func.attr.value in MUTATING_METHODS or func.attr.value in PURE_METHODS
    )


def iterate(body: Body, iterable: cst.BaseExpression) -> None:
    """`iterable` read to its end, or to an item: an iterator it names is consumed."""
    if isinstance(iterable, cst.Name):
        reason = f"iterates {code(iterable)}"
        body.change(iterable, reason, iterable, by_iteration=True)


def _out(arg: cst.Arg) -> bool:
    """`out=buffer`: what the call writes its result into."""
    return arg.keyword is not None and arg.keyword.value == "out"
