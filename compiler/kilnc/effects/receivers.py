"""What type a method call's receiver has, as far as the body says, and so whether
the builtin containers' method tables describe its methods.

Example input::

    def summarize(paragraph: Paragraph, q: queue.Queue[str], rows: list[Row]):
        paragraph.text.count("a")     # a str's count: Paragraph declares text: str
        q.get()                       # a queue's get, which takes an item
        for row in rows:
            row.cells.copy()          # Row declares cells: list[str]: a list's copy

A method named as a dict's, a list's or a str's read-only one may be another
type's that changes its object (`Queue.get`, a document class's `replace`),
so the tables answer only for a receiver of a builtin type.
"""

from __future__ import annotations

from typing import Final

import libcst as cst

from kilnc.effects.body import Body
from kilnc.front import ModuleDefs
from kilnc.mutability import is_builtin_type
from kilnc.names import identifier
from kilnc.syntax import chain_root, code, dotted

Typed = tuple[ModuleDefs, str]  # an annotation, and the module whose names it uses

# Generic containers whose items are their first type argument when iterated.
_ITEMS_FIRST: Final = frozenset(
    {"list", "List", "Sequence", "MutableSequence", "Iterable", "Iterator"}
    | {"set", "Set", "frozenset", "FrozenSet", "AbstractSet", "MutableSet"}
    | {"Collection", "deque", "Deque", "tuple", "Tuple", "Counter"}
    | {"dict", "Dict", "Mapping", "MutableMapping", "defaultdict", "OrderedDict"}
)
_MAPPINGS: Final = frozenset(
    {"dict", "Dict", "Mapping", "MutableMapping", "defaultdict", "OrderedDict"}
)


def tables_describe(body: Body, receiver: cst.BaseExpression, call: cst.Call) -> bool:
    """Whether the method tables describe `receiver.method(...)`: its type is a
    builtin container or an immutable value (or a `TypedDict`)."""
    if body.is_module_state(receiver):
        # A module's own value: a constant's methods are a str's or a number's.
        return not body.reader.is_state(body.defs, chain_root(receiver), called=False)
    typed = type_of(body, receiver)
    if typed is not None:
        defs, annotation = typed
        return is_builtin_type(annotation, deep=False) or body.reader.is_typed_dict(
            defs, annotation
        )
    # Its type unknown: by what it may hold.
    direct = isinstance(receiver, cst.Name)
    for origin in body.origins(receiver):
        if not isinstance(origin, str) or body.params[origin].memory:
            continue  # a value a Memory holds, or a Memory's own method
        declared = body.params[origin].annotation
        if declared is None or body.reader.is_typed_dict(body.defs, declared):
            # Read as a dict, which an unannotated value most often is; but a
            # `.get()` without a key is no dict's: a queue's takes an item.
            method = (
                call.func.attr.value if isinstance(call.func, cst.Attribute) else ""
            )
            if method == "get" and not any(arg.keyword is None for arg in call.args):
                return False
        elif not is_builtin_type(declared, deep=not direct):
            return False
    return True


def inserts_on_read(body: Body, container: cst.BaseExpression) -> bool:
    """Whether reading a missing item of `container` stores it: a defaultdict's."""
    typed = type_of(body, container)
    if typed is None:
        return False
    head = typed[1].partition("[")[0]
    return head.rpartition(".")[2] == "defaultdict"


def type_of(body: Body, node: cst.BaseExpression) -> Typed | None:
    """The declared type of a parameter, an annotated local, a loop's target over
    a typed iterable, and an attribute or item of one of those; None if unknown."""
    if isinstance(node, cst.Attribute):
        owner = type_of(body, node.value)
        if owner is None:
            return None
        return body.reader.attribute_type(*owner, node.attr.value)
    if isinstance(node, cst.Subscript):
        container = type_of(body, node.value)
        return _item(container, subscript=True) if container is not None else None
    if not isinstance(node, cst.Name):
        return None
    name = identifier(node.value)
    bindings = body.bindings
    declared = set(bindings.annotated.get(name, ()))
    if name in body.params and name not in body.local_names:
        annotation = body.params[name].annotation
        return (body.defs, annotation) if annotation is not None else None
    if len(declared) == 1:
        return body.defs, declared.pop()
    loops = [value for targets, value in bindings.items if targets == {name}]
    if not loops or any(name in targets for targets, _ in bindings.bound):
        return None
    # Each loop binding it (`for d in docs` twice, say) must give one type.
    first, *others = [_item_of(body, iterable) for iterable in loops]
    if first is None or any(
        other is None or other[0] is not first[0] or other[1] != first[1]
        for other in others
    ):
        return None
    return first


def _item_of(body: Body, iterable: cst.BaseExpression) -> Typed | None:
    iterated = type_of(body, iterable)
    return _item(iterated, subscript=False) if iterated is not None else None


def _item(container: Typed, *, subscript: bool) -> Typed | None:
    """The type of an item of a generic container: iterated, a mapping's key;
    subscripted, its value."""
    defs, annotation = container
    try:
        expression = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return None
    if not isinstance(expression, cst.Subscript):
        return None
    head = (dotted(expression.value) or "").split(".")[-1]
    if head not in _ITEMS_FIRST:
        return None
    arguments = [
        code(e.slice.value) for e in expression.slice if isinstance(e.slice, cst.Index)
    ]
    if head in ("tuple", "Tuple") and arguments[-1:] == ["..."]:
        arguments = arguments[:-1]  # `tuple[str, ...]`: every item a str
    if subscript and head in _MAPPINGS:
        arguments = arguments[1:]  # `table[key]`: the value
    # A tuple's items may differ: one type only if all are the same.
    return (defs, arguments[0]) if len(set(arguments)) == 1 else None
