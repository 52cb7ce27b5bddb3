"""The code Python runs for an attribute a descriptor holds: a class attribute
whose value is an object of a project class with `__get__`, `__set__` or
`__delete__`, or a `property(...)` made of project functions.

Example input (the module `app`)::

    AUDIT: list[str] = []

    class Audited:
        def __set_name__(self, owner: type, name: str) -> None:
            self.name = "_" + name

        def __get__(self, obj: object, owner: type | None = None) -> str:
            return getattr(obj, self.name, "")

        def __set__(self, obj: object, value: str) -> None:
            AUDIT.append(value)
            setattr(obj, self.name, value)

    def _bump(self: "Agent") -> int:
        self.turns += 1
        return self.turns

    class Agent:
        model = Audited()
        turn = property(_bump)

    AGENT = Agent()

Output: in a node, `AGENT.model = "big"` runs `Audited.__set__` on the
descriptor `app.Agent.model`, the class's, which every `Agent` shares, with
`obj` the object `AGENT`: it adds to `app.AUDIT` and changes `AGENT`;
reading `AGENT.model` runs `Audited.__get__`, and `AGENT.turn` runs `_bump`
on `AGENT`. Through the class (`Agent.model`) only `__get__` runs, with no
object. The attribute is found through the class's method resolution order
over the classes kiln can read; a descriptor's method kiln cannot read (one
a decorator wraps) may do what any code of its class may (class_code.py).
`class_binds` says whether a read finds the attribute without the class's
`__getattr__`: `PROXY.anything` of a `Proxy` that binds no `anything`
runs it (implicit.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final
from weakref import WeakKeyDictionary

import libcst as cst

from kilnc.effect_ir import Change, Effects
from kilnc.effects.body import Body
from kilnc.effects.class_code import any_code, defines, on_instance
from kilnc.effects.method_defs import class_statements
from kilnc.effects.methods import ClassFound, not_none
from kilnc.effects.module_names import made_by_calls
from kilnc.effects.project_calls import beyond_parameters, project_call
from kilnc.effects.receivers import type_of
from kilnc.front import ModuleDefs
from kilnc.names import identifier, root_names
from kilnc.syntax import code
from kilnc.walk import walk

# Which function of `property(fget, fset, fdel)` each method is, by position.
_PROPERTY_ROLES: Final = {
    "__get__": (0, "fget"),
    "__set__": (1, "fset"),
    "__delete__": (2, "fdel"),
}
_NONE = cst.Name("None")  # what a call passes where kiln has no value to show
Owner = tuple[ClassFound, bool] | None  # a class, and whether the value is it
_OWNERS: Final[WeakKeyDictionary[Body, dict[str, Owner]]] = WeakKeyDictionary()


def descriptor_call(
    body: Body, where: cst.CSTNode, attribute: cst.Attribute, method: str
) -> bool:
    """`attribute` read (`__get__`), assigned (`__set__`) or deleted
    (`__delete__`) at `where`, read as the call Python makes of its class's
    descriptor; whether one is."""
    owner = _owner(body, attribute.value)
    if owner is None:
        return False
    found, of_class = owner
    if of_class and method != "__get__":
        return False  # `Agent.model = m` binds the class's attribute anew
    name = identifier(attribute.attr.value)
    held = _held(body, found, name)
    if held is None:
        return False
    defs, cls, value = held
    piece = body.reader.classes.pieces.of_attribute(defs, cls.name.value, name)
    piece = piece or f"{defs.location.name}.{cls.name.value}.{name}"
    obj = _NONE if of_class else attribute.value
    shown = code(attribute)
    if _property(body, defs, value):
        return _property_call(body, where, defs, value, method, obj, attribute)
    descriptor = _descriptor_class(body, defs, value)
    if descriptor is None:
        return False
    target = body.reader.classes.method(descriptor, method)
    if target is None:
        if not defines(body.reader, descriptor, method):
            return False
        why = Change(f"{method} of {shown}", body.defs.parsed.span(where))
        effects = any_code(body.reader, descriptor, piece, why)
        beyond_parameters(body, where, effects, shown, None)
        return True
    effects = body.reader.of_function(target.module, target.qualname)
    passed = [_NONE, obj, attribute.value] if of_class else [_NONE, obj]
    call = cst.Call(func=attribute, args=[cst.Arg(value=v) for v in passed])
    project_call(body, call, on_instance(effects, piece), shown, None, where)
    return True


def instance_class(body: Body, value: cst.BaseExpression) -> ClassFound | None:
    """The project class `value` is an object of, where kiln can tell."""
    owner = _owner(body, value)
    return owner[0] if owner is not None and not owner[1] else None


def class_binds(body: Body, found: ClassFound, name: str) -> bool:
    """Whether reading `<name>` of an object of the class `found` finds it
    without `__getattr__`: the class (or a base) binds it in its body or as
    `self.<name>` in a method."""
    order, _ = body.reader.classes.linearize(found)
    return any(
        _class_binding(cls, name) is not None or name in _instance_attributes(cls)
        for _, cls in order
    )


@lru_cache(maxsize=1024)
def _instance_attributes(cls: cst.ClassDef) -> frozenset[str]:
    """The attributes the class's methods assign on their object (`self.x = v`)."""
    found: set[str] = set()
    for statement in class_statements(cls):
        if isinstance(statement, cst.FunctionDef):
            every = (*statement.params.posonly_params, *statement.params.params)
            if every:
                finder = _SelfStores(identifier(every[0].name.value))
                walk(statement.body, finder)
                found |= finder.names
    return frozenset(found)


class _SelfStores(cst.CSTVisitor):
    def __init__(self, own: str) -> None:
        self.own = own
        self.names: set[str] = set()

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._stored(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._stored(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._stored(node.target)

    def _stored(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._stored(element.value)
        elif (
            isinstance(target, cst.Attribute)
            and isinstance(target.value, cst.Name)
            and target.value.value == self.own
        ):
            self.names.add(target.attr.value)


def _owner(body: Body, value: cst.BaseExpression) -> Owner:
    """The project class whose attribute `value.<name>` is read: `value`'s type
    (an object of it), or `value` itself (True: the class). Asked once per name
    of a body: every attribute read asks."""
    if not isinstance(value, cst.Name):
        return _of(body, value)
    known = _OWNERS.setdefault(body, {})
    if value.value not in known:
        known[value.value] = _of(body, value)
    return known[value.value]


def _of(body: Body, value: cst.BaseExpression) -> Owner:
    reader = body.reader
    typed = type_of(body, value)
    if typed is not None:
        defs, annotation = typed
        head, bracket, rest = not_none(annotation).partition("[")
        of_class = bool(bracket) and head.rpartition(".")[2] in ("type", "Type")
        named = rest.removesuffix("]") if of_class else head
        found = reader.classes.find(defs, named)
        return (found, of_class) if found is not None else None
    if root_names(value) & (body.params.keys() | body.local_names):
        return None
    qualified = reader.resolve(body.defs, value)
    target = reader.project_function(qualified) if qualified else None
    found = reader.classes.find_in(*target) if target is not None else None
    return (found, True) if found is not None else None


def _held(
    body: Body, found: ClassFound, name: str
) -> tuple[ModuleDefs, cst.ClassDef, cst.BaseExpression] | None:
    """The class of `found`'s order that binds `name` first, and the value it
    binds there; None where a method or none of them binds it."""
    order, _ = body.reader.classes.linearize(found)
    for defs, cls in order:
        bound = _class_binding(cls, name)
        if bound is not None:
            return (defs, cls, bound) if isinstance(bound, cst.BaseExpression) else None
    return None


@lru_cache(maxsize=4096)  # every attribute read of a project class's object asks
def _class_binding(
    cls: cst.ClassDef, name: str
) -> cst.BaseExpression | cst.FunctionDef | None:
    """What the class's own body binds `name` to: a value, or a `def`."""
    found: cst.BaseExpression | cst.FunctionDef | None = None
    for statement in class_statements(cls):
        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
            found = statement
        elif isinstance(statement, cst.Assign | cst.AnnAssign) and name in _names(
            statement
        ):
            found = statement.value
    return found


def _names(statement: cst.Assign | cst.AnnAssign) -> set[str]:
    """The names an assignment of a class body binds whole (`model = ...`)."""
    if isinstance(statement, cst.AnnAssign):
        targets = [statement.target] if statement.value is not None else []
    else:
        targets = [target.target for target in statement.targets]
    return {t.value for t in targets if isinstance(t, cst.Name)}


def _descriptor_class(
    body: Body, defs: ModuleDefs, value: cst.BaseExpression
) -> ClassFound | None:
    """The project class whose object `value` is: `Audited()`, or a module-level
    name bound once to one (`AUDITED = Audited()`, then `model = AUDITED`)."""
    if isinstance(value, cst.Name):
        value = made_by_calls(defs.parsed.module).get(identifier(value.value), value)
    if not isinstance(value, cst.Call):
        return None
    qualified = body.reader.resolve(defs, value.func)
    target = body.reader.project_function(qualified) if qualified else None
    return body.reader.classes.find_in(*target) if target is not None else None


def _property(body: Body, defs: ModuleDefs, value: cst.BaseExpression) -> bool:
    return (
        isinstance(value, cst.Call)
        and body.reader.resolve(defs, value.func) == "builtins.property"
    )


def _property_call(
    body: Body,
    where: cst.CSTNode,
    defs: ModuleDefs,
    made: cst.BaseExpression,
    method: str,
    obj: cst.BaseExpression,
    attribute: cst.Attribute,
) -> bool:
    """`property(_bump)`'s `fget` (`fset`, `fdel`) called on `obj`, where it is a
    project function or a lambda."""
    assert isinstance(made, cst.Call), "a property is made by a call"
    if obj is _NONE:
        return False  # `Agent.turn`: the property itself
    position, keyword = _PROPERTY_ROLES[method]
    positional = [arg.value for arg in made.args if arg.keyword is None]
    named = {arg.keyword.value: arg.value for arg in made.args if arg.keyword}
    function = named.get(keyword)
    if function is None and position < len(positional):
        function = positional[position]
    effects: Effects | None = None
    if isinstance(function, cst.Lambda):
        effects = body.reader.of_lambda(defs, function)
    elif function is not None:
        qualified = body.reader.resolve(defs, function)
        target = body.reader.project_function(qualified) if qualified else None
        effects = body.reader.of_function(*target) if target is not None else None
    if effects is None:
        return False
    call = cst.Call(func=attribute, args=[cst.Arg(value=obj)])
    project_call(body, call, effects, code(attribute), None, where)
    return True
