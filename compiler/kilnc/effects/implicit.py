"""The methods Python calls for code that names none, read as the calls they are.

Example input (a node's body; `t: Txn`, `box: Box`, `cfg: Config`, and
`TOOL = Tool()` at module level, all classes of the project)::

    with t:                   # Txn.__enter__(t), then Txn.__exit__(t, ...)
        ...
    async with Session(log):  # Session.__aenter__, then Session.__aexit__
    TOOL("hello")             # Tool.__call__(TOOL, "hello")
    box[k] = v                # Box.__setitem__(box, k, v)
    del box[k]                # Box.__delitem__(box, k)
    cfg.mode = m              # the setter of the property `mode`, or __setattr__
    cfg.mode                  # the getter of the property `mode`, a descriptor's
                              # __get__ (descriptors.py), __getattribute__, and
                              # __getattr__ where the class binds no `mode`
    box[k]                    # Box.__getitem__, and __missing__ of a dict subclass
    k in box, len(box)        # Box.__contains__, Box.__len__
    next(ids), for i in ids:  # Ids.__next__; Ids.__iter__ and __next__
    acc += x                  # Acc.__iadd__(acc, x)

Output, on the `Body`: what each method does, as a call of it would: a
`__exit__` that commits (`self.commits += 1`) changes `t`, a `__call__` that
counts tokens into module state writes it. Where kiln cannot type the
object, or its class defines no such method, the statement is read as before
(a store changes the object it stores into; a call of an object kiln cannot
see into may change what it is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import libcst as cst

from kilnc.effects.body import Body
from kilnc.effects.descriptors import class_binds, descriptor_call, instance_class
from kilnc.effects.project_calls import project_method
from kilnc.effects.receivers import method_of, overriding

# The method `x op= y` calls first, by operator.
IN_PLACE: Final = {
    "+=": "__iadd__",
    "-=": "__isub__",
    "*=": "__imul__",
    "@=": "__imatmul__",
    "/=": "__itruediv__",
    "//=": "__ifloordiv__",
    "%=": "__imod__",
    "**=": "__ipow__",
    "<<=": "__ilshift__",
    ">>=": "__irshift__",
    "&=": "__iand__",
    "|=": "__ior__",
    "^=": "__ixor__",
}


def implicit_call(
    body: Body,
    where: cst.CSTNode,
    receiver: cst.BaseExpression,
    method: str,
    args: Sequence[cst.BaseExpression] = (),
) -> bool:
    """`receiver.method(*args)` as Python calls it for the statement `where`,
    where the receiver is of a project class that defines it (or may be of a
    subclass that does); whether it is."""
    target = method_of(body, receiver, method)
    overrides = overriding(body, receiver, method)
    if target is None and not overrides:
        return False
    shown = method.partition(".")[0]  # `cfg.mode` for a property's `mode.setter`
    func = cst.Attribute(value=receiver, attr=cst.Name(shown))
    call = cst.Call(func=func, args=[cst.Arg(value=arg) for arg in args])
    project_method(body, call, func, target, overrides, where)
    return True


def entered(body: Body, statement: cst.With) -> None:
    """`with a, b as c:`: each context's `__enter__` and `__exit__` (their async
    twins under `async with`)."""
    prefix = "__a" if statement.asynchronous is not None else "__"
    for item in statement.items:
        for method in (f"{prefix}enter__", f"{prefix}exit__"):
            implicit_call(body, item, item.item, method)


def got(body: Body, attribute: cst.Attribute) -> None:
    """`ids.next_id`: the getter of the property `next_id`, where the object's
    class makes the attribute one, or a descriptor's `__get__` (descriptors.py),
    and the class's `__getattribute__` or `__getattr__`."""
    implicit_call(body, attribute, attribute.value, f"{attribute.attr.value}.getter")
    descriptor_call(body, attribute, attribute, "__get__")
    # `__getattribute__` runs for every read; `__getattr__` where the class
    # binds no such attribute kiln can see.
    found = instance_class(body, attribute.value)
    if found is None:
        return
    name = cst.SimpleString(repr(attribute.attr.value))
    implicit_call(body, attribute, attribute.value, "__getattribute__", [name])
    if not class_binds(body, found, attribute.attr.value):
        implicit_call(body, attribute, attribute.value, "__getattr__", [name])


def stored(body: Body, target: cst.Attribute | cst.Subscript, verb: str) -> bool:
    """`box[k] = v`, `del box[k]`, `cfg.mode = m`: the method Python calls for the
    store, where the object's class defines one; whether it does."""
    if isinstance(target, cst.Subscript):
        method = "__delitem__" if verb == "deletes" else "__setitem__"
        keys = [e.slice.value for e in target.slice if isinstance(e.slice, cst.Index)]
        return implicit_call(body, target, target.value, method, keys)
    described = descriptor_call(  # `__set__`, `__delete__` of a descriptor
        body, target, target, "__delete__" if verb == "deletes" else "__set__"
    )
    if verb == "deletes":
        return implicit_call(body, target, target.value, "__delattr__") or described
    name = target.attr.value
    return (
        implicit_call(body, target, target.value, f"{name}.setter")
        or implicit_call(body, target, target.value, "__setattr__")
        or described
    )


def item_read(body: Body, node: cst.Subscript) -> None:
    """`box[k]` read: `__getitem__`, and a dict subclass's `__missing__`."""
    keys = [e.slice.value for e in node.slice if isinstance(e.slice, cst.Index)]
    for method in ("__getitem__", "__missing__"):
        implicit_call(body, node, node.value, method, keys)


def iterated(body: Body, where: cst.CSTNode, iterable: cst.BaseExpression) -> None:
    """`for i in ids` (`async for`): `__iter__`, then `__next__` (their async twins)."""
    prefix = "__a" if getattr(where, "asynchronous", None) is not None else "__"
    for method in (f"{prefix}iter__", f"{prefix}next__"):
        implicit_call(body, where, iterable, method)


# The method a builtin calls on its first argument.
BUILTIN_DUNDERS: Final = {
    "len": "__len__",
    "next": "__next__",
    "iter": "__iter__",
    "anext": "__anext__",
    "aiter": "__aiter__",
}
