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
so the tables answer only for a receiver of a builtin type: one whose
annotation names the builtin or standard-library type (a project class named
`Counter` is the project's), or an unannotated value, read as a dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Final, final

import libcst as cst

from kilnc.effects.methods import Method, Target
from kilnc.effects.module_names import annotated_global, declared_global
from kilnc.front import ModuleDefs
from kilnc.mutability import (
    DEFAULT_DICTS,
    DISTINCTIVE_METHODS,
    MUTATING_METHODS,
    PURE_METHODS,
    Qualify,
    holds_immutable,
    is_builtin_type,
    is_immutable,
    names_in,
    type_name,
)
from kilnc.names import identifier, root_names
from kilnc.syntax import chain_root, code

if TYPE_CHECKING:  # body.py asks this module about receivers: the type alone
    from kilnc.effects.body import Body

Typed = tuple[ModuleDefs, str]  # an annotation, and the module whose names it uses


_ABSTRACT = "typing typing_extensions collections.abc"
_MAPPINGS: Final = (
    names_in("builtins", "dict")
    | names_in("typing typing_extensions", "Dict DefaultDict OrderedDict")
    | names_in(_ABSTRACT, "Mapping MutableMapping")
    | names_in("collections", "defaultdict OrderedDict")
)
# Generic containers whose items are their first type argument when iterated.
_ITEMS_FIRST: Final = (
    _MAPPINGS
    | names_in("builtins", "list set frozenset tuple")
    | names_in("typing typing_extensions", "List Set FrozenSet Tuple Deque Counter")
    | names_in("typing typing_extensions", "AbstractSet")
    | names_in(_ABSTRACT, "Sequence MutableSequence Iterable Iterator Collection")
    | names_in(_ABSTRACT, "MutableSet")
    | names_in("collections.abc", "Set")
    | names_in("collections", "deque Counter")
)
_TUPLES: Final = names_in("builtins", "tuple") | names_in("typing", "Tuple")


@final
@dataclass(frozen=True, slots=True)
class Described:
    """The builtin method tables describe a value: its type is a builtin's, known, or
    for these unannotated parameters assumed: a dict, which such a value most
    often is (the caller, which may know better, decides: `Reads.as_dict`)."""

    assumed: frozenset[str] = frozenset()


def describe(body: Body, func: cst.Attribute, call: cst.Call) -> Described | None:
    """Whether the method tables describe `receiver.method(...)`; None where they do
    not: a module's function (`dataclasses.replace(...)`), or a receiver whose
    type is no builtin's (a project class's `get`, a `queue.Queue`'s)."""
    receiver = func.value
    if is_module(body, receiver):
        return None
    if func.attr.value in DISTINCTIVE_METHODS or isinstance(receiver, cst.BaseString):
        return Described()
    described = value_described(body, receiver)
    if described is None or not described.assumed:
        return described
    # A `.get()` without a key is no dict's: a queue's takes an item.
    if func.attr.value == "get" and not any(arg.keyword is None for arg in call.args):
        return None
    return described


def value_described(body: Body, value: cst.BaseExpression) -> Described | None:
    """Whether a value is a builtin container or an immutable value (or a
    `TypedDict`), whose methods the tables describe; None where it is not."""
    if body.is_module_state(value):
        # A module's own value: a constant's methods are a str's or a number's.
        state = body.reader.state_name(body.defs, chain_root(value), called=False)
        return None if state is not None else Described()
    typed = type_of(body, value)
    if typed is not None:
        defs, annotation = typed
        builtin = is_builtin_type(annotation, qualify(body, defs), deep=False)
        return Described() if builtin or body.reader.is_typed_dict(*typed) else None
    # Its type unknown: by what it may hold.
    direct = isinstance(value, cst.Name)
    assumed: set[str] = set()
    for origin in body.origins(value):
        if not isinstance(origin, str) or body.params[origin].memory:
            continue  # a value a Memory holds, or a Memory's own method
        declared = body.params[origin].annotation
        if declared is None:
            assumed.add(origin)
        elif not (
            body.reader.is_typed_dict(body.defs, declared)
            or is_builtin_type(declared, body.qualify, deep=not direct)
        ):
            return None
    return Described(frozenset(assumed))


def called_method(body: Body, func: cst.Attribute) -> Target | None:
    """The project method `receiver.name(...)` runs, where the receiver's type is a
    project class (or `super()` in a method); None where kiln cannot tell."""
    return method_of(body, func.value, func.attr.value)


def method_of(body: Body, receiver: cst.BaseExpression, name: str) -> Target | None:
    """`called_method` of `receiver.name`, the name any a class defines: a dunder
    Python calls for a statement (`__exit__`), a property's `x.setter`."""
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


def copy_shares(body: Body, call: cst.Call, qualified: str) -> bool:
    """Whether `copy.deepcopy(a)` (or `copy.copy(a)`) runs the `__deepcopy__` (or
    `__copy__`) of `a`'s project class, whose copy may share what `a` holds."""
    method = {"copy.copy": "__copy__", "copy.deepcopy": "__deepcopy__"}.get(qualified)
    if method is None or not call.args:
        return False
    copied = call.args[0].value
    return method_of(body, copied, method) is not None or bool(
        overriding(body, copied, method)
    )


def overriding(body: Body, receiver: cst.BaseExpression, name: str) -> list[Method]:
    """The overrides of `receiver.name` in the project's subclasses of the
    receiver's class: the object may be one of them."""
    if _is_super(receiver):
        return []
    typed = type_of(body, receiver)
    if typed is None:
        return []
    defs, annotation = typed
    return body.reader.overrides(defs, _class_of(annotation) or annotation, name)


def candidates(body: Body, func: cst.Attribute) -> tuple[Target | None, list[Method]]:
    """The code `func(...)` may run: the method kiln resolves it to, if any, and
    the project's others it may be (overrides, or any class's where kiln cannot
    type its object)."""
    receiver, name = func.value, func.attr.value
    target = body.reader.called(body, func)
    overrides = overriding(body, receiver, name)
    if target is None and not overrides:  # `cls().run(x)`: any class's `run`
        overrides = _of_any_class(body, receiver, name)
    return target, overrides


def _of_any_class(body: Body, receiver: cst.BaseExpression, name: str) -> list[Method]:
    """The project's methods `name`, where `receiver.name(...)` is called on a
    value of a type kiln cannot tell (`cls().run(x)`, `tools[0].run(x)`) and
    `name` is no builtin container's method (an untyped value is read as a
    dict): it may be an object of any project class that defines one."""
    if name in PURE_METHODS or name in MUTATING_METHODS or _is_super(receiver):
        return []
    if type_of(body, receiver) is not None or body.is_module_state(receiver):
        return []
    return body.reader.overrides(body.defs, None, name)


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
    return type_name(typed[1], qualify(body, typed[0])) in DEFAULT_DICTS


def qualify(body: Body, defs: ModuleDefs) -> Qualify:
    """What the names of `defs`' annotations mean outside the project."""
    return partial(body.reader.library_name, defs.location.name)


def of_immutable_type(body: Body, node: cst.BaseExpression) -> bool:
    """Whether `node` is of a type that never changes (`page.url` of a `str`
    field, `CACHE[key]` of a `dict[str, str]`): no code can change it, and what
    is made from it shares nothing that can."""
    typed = type_of(body, node)
    return typed is not None and is_immutable(typed[1], qualify(body, typed[0]))


def of_immutable_items(body: Body, node: cst.BaseExpression) -> bool:
    """Whether every item of `node` is of a type that never changes (`COUNTS` of
    a `dict[str, int]`): a shallow copy of it shares nothing that can change."""
    typed = type_of(body, node)
    return typed is not None and holds_immutable(typed[1], qualify(body, typed[0]))


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
        return _item(body, container, subscript=True) if container is not None else None
    if isinstance(node, cst.Call):
        return _result_type(body, node)
    if not isinstance(node, cst.Name):
        return None
    name = identifier(node.value)
    bindings = body.bindings
    declared = set(bindings.annotated.get(name, ()))
    # `acc += x` binds `acc` again, to what `Acc.__iadd__` returns: itself.
    if name in body.params and (
        name not in body.local_names
        or not any(name in t for t, _ in (*bindings.bound, *bindings.items))
    ):
        annotation = body.params[name].annotation
        return (body.defs, annotation) if annotation is not None else None
    if name == body.made and body.owner is not None and name not in body.local_names:
        return body.defs, body.owner
    global_ = name not in body.local_names or name in body.global_names
    held = _global_type(body, name) if global_ else None
    if held is not None and name not in body.params:
        return held  # a module-level object (`STORE = Store()`): its class's methods
    if len(declared) == 1:
        return body.defs, declared.pop()
    made = _made(body, name)
    if made is not None:
        return body.defs, made
    alias = _alias(body, name)  # `s = STORE`: `STORE`'s type
    if alias is not None:
        return type_of(body, alias)
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


def _global_type(body: Body, name: str) -> Typed | None:
    """The type of a module-level object, where kiln can tell: a project class it
    is made by, or that a project function that makes it returns (`STORE =
    make_store()`, whether or not it says so in an annotation); else what its
    annotation declares."""
    declared = declared_global(body, name)
    if declared is None or body.reader.is_class(*declared):
        return declared
    defs, made = declared
    qualified = body.reader.resolve(defs, _expression(made))
    found = body.reader.project_function(qualified) if qualified else None
    returned = body.reader.returns(*found) if found is not None else None
    if returned and body.reader.is_class(*returned):
        return returned
    # A container of the project's objects, as declared (`dict[str, Agent]`).
    return annotated_global(body, name)


@lru_cache(maxsize=1024)
def _expression(text: str) -> cst.BaseExpression:
    """What a module-level object is made by (`make_store`), parsed once."""
    return cst.parse_expression(text)


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


def _alias(body: Body, name: str) -> cst.Name | None:
    """`STORE` where every binding of `name` is `name = STORE`, another name."""
    other = _bound_alike(
        body, name, lambda v: identifier(v.value) if isinstance(v, cst.Name) else ""
    )
    return cst.Name(other) if other and other != name else None


def _made(body: Body, name: str) -> str | None:
    """`Agent` where every binding of `name` is `name = Agent(...)`, a project class."""
    called = _bound_alike(
        body, name, lambda v: code(v.func) if isinstance(v, cst.Call) else ""
    )
    return called if called and body.reader.is_class(body.defs, called) else None


def _bound_alike(
    body: Body, name: str, text: Callable[[cst.BaseExpression], str]
) -> str | None:
    """The one `text` of what every binding of `name` binds it to (no loop's);
    None where the bindings differ, or a loop binds it."""
    found = {text(value) for targets, value in body.bindings.bound if name in targets}
    if len(found) != 1 or any(name in targets for targets, _ in body.bindings.items):
        return None
    return found.pop()


def _item_of(body: Body, iterable: cst.BaseExpression) -> Typed | None:
    iterated = type_of(body, iterable)
    return _item(body, iterated, subscript=False) if iterated is not None else None


def _item(body: Body, container: Typed, *, subscript: bool) -> Typed | None:
    """The type of an item of a generic container: iterated, a mapping's key;
    subscripted, its value."""
    defs, annotation = container
    try:
        expression = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return None
    if not isinstance(expression, cst.Subscript):
        return None
    head = type_name(annotation, qualify(body, defs))
    if head not in _ITEMS_FIRST:
        return None
    arguments = [
        code(e.slice.value) for e in expression.slice if isinstance(e.slice, cst.Index)
    ]
    if head in _TUPLES and arguments[-1:] == ["..."]:
        arguments = arguments[:-1]  # `tuple[str, ...]`: every item a str
    if subscript and head in _MAPPINGS:
        arguments = arguments[1:]  # `table[key]`: the value
    # A tuple's items may differ: one type only if all are the same.
    return (defs, arguments[0]) if len(set(arguments)) == 1 else None


def is_module(body: Body, node: cst.BaseExpression) -> bool:
    """Whether a dotted expression starts at an imported module, or at a name
    imported from one that is no module state of the project's: `LOG` of
    `from app.state import LOG` is a list whose `clear` changes it, not a
    function kiln resolves by name; nor is `store.LOG` of `import store`."""
    root = chain_root(node)
    if (
        not isinstance(root, cst.Name)
        or identifier(root.value) not in body.defs.imports
    ):
        return False
    return body.reader.state_name(body.defs, node, called=False) is None


def class_receiver(body: Body, node: cst.BaseExpression) -> bool:
    """Whether `node` is a classmethod's `cls`."""
    name = identifier(node.value) if isinstance(node, cst.Name) else None
    holder = body.params.get(name or "") if name == body.receiver else None
    return holder is not None and (holder.annotation or "").startswith("type[")


def through_class(body: Body, func: cst.Attribute) -> bool:
    """`Agent.helper`, `models.Agent.helper`: a method of a project class named
    at module level (not a value the body holds)."""
    if root_names(func) & (body.params.keys() | body.local_names):
        return False
    qualified = body.reader.resolve(body.defs, func)
    if qualified is None or qualified.startswith("builtins."):
        return False
    return body.reader.project_function(qualified) is not None


def into_state(body: Body, receiver: cst.BaseExpression, method: str) -> bool:
    """Whether a method of a module's changing value (not a logger's) may
    keep what it is given."""
    return (
        method not in PURE_METHODS
        and body.is_module_state(receiver)
        and body.reader.state_name(body.defs, receiver, called=False) is not None
        and not body.reader.is_logger(body.defs, receiver)
    )
