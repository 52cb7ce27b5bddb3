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
from kilnc.effects.methods import Target
from kilnc.front import ModuleDefs
from kilnc.mutability import is_builtin_type
from kilnc.names import identifier, root_names
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


def called_method(body: Body, func: cst.Attribute) -> Target | None:
    """The project method `receiver.name(...)` runs, where the receiver's type is a
    project class (or `super()` in a method); None where kiln cannot tell."""
    receiver, name = func.value, func.attr.value
    if _is_super(receiver):
        if body.owner is None:
            return None
        method = body.reader.method(body.defs, body.owner, name, skip=1)
        if method is None:
            return None
        if name == "__init__":  # what making the base runs, on the object made
            return method.module, method.qualname.partition(".")[0], None
        self_name = body.made or next(iter(body.params), None)
        bound = cst.Name(self_name) if self_name and method.kind == "method" else None
        return method.module, method.qualname, bound
    typed = type_of(body, receiver)
    if typed is None:
        return None
    defs, annotation = typed
    of_class = _class_of(annotation)
    method = body.reader.method(defs, of_class or annotation, name)
    if method is None:
        return None
    binds = method.kind == "method" and of_class is None
    return method.module, method.qualname, receiver if binds else None


def _is_super(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value == "super"
        and not node.args
    )


def _class_of(annotation: str) -> str | None:
    """`Agent` of `type[Agent]`: a classmethod's `cls`."""
    head, bracket, rest = annotation.partition("[")
    if bracket and head.rpartition(".")[2] in ("type", "Type"):
        return rest.removesuffix("]")
    return None


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
    if isinstance(node, cst.Call):
        return _result_type(body, node)
    if not isinstance(node, cst.Name):
        return None
    name = identifier(node.value)
    bindings = body.bindings
    declared = set(bindings.annotated.get(name, ()))
    if name in body.params and name not in body.local_names:
        annotation = body.params[name].annotation
        return (body.defs, annotation) if annotation is not None else None
    if name == body.made and body.owner is not None and name not in body.local_names:
        return body.defs, body.owner
    if len(declared) == 1:
        return body.defs, declared.pop()
    made = _made(body, name)
    if made is not None:
        return body.defs, made
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


def _result_type(body: Body, call: cst.Call) -> Typed | None:
    """`Agent(...)` of a project class, and what a project method declares it
    returns (`a.describe()` a `str`)."""
    func = call.func
    local = root_names(func) & (body.params.keys() | body.local_names)
    if not local and body.reader.is_class(body.defs, code(func)):
        return body.defs, code(func)
    qualified = None if local else body.reader.resolve(body.defs, func)
    found = body.reader.project_function(qualified) if qualified else None
    if found is not None:  # `Agent.make(...)`, a module's function
        return body.reader.returns(*found)
    target = called_method(body, func) if isinstance(func, cst.Attribute) else None
    return body.reader.returns(*target[:2]) if target is not None else None


def _made(body: Body, name: str) -> str | None:
    """`Agent` where every binding of `name` is `name = Agent(...)`, a project class."""
    made = {
        code(value.func) if isinstance(value, cst.Call) else ""
        for targets, value in body.bindings.bound
        if name in targets
    }
    if len(made) != 1 or any(name in targets for targets, _ in body.bindings.items):
        return None
    called = made.pop()
    return called if called and body.reader.is_class(body.defs, called) else None


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
