"""A class's method definitions: which `def` a name means, and how it binds.

Example input::

    class IdGen:
        @property
        def next_id(self) -> int: ...
        @next_id.setter
        def next_id(self, value: int) -> None: ...
        @staticmethod
        def parse(text: str) -> int: ...

Output: `method_def(IdGen, "next_id.getter")` is the first `next_id`, and
`method_kind` of it `"method"` (reading `ids.next_id` runs it on `ids`);
`"next_id.setter"` is the second; `"parse"` is a `"static"` method. A
decorator other than these may wrap the method in anything, and a stub
(`...`, `pass`, `raise NotImplementedError`) is an interface's: kiln reads
neither (`method_kind` is None). What `__init__` declares of its object
(`self.docs: dict[str, str] = {}`, `self.counter = Counter()`) types the
object's attributes (`Classes.attribute_type`).
"""

from __future__ import annotations

from typing import Final, Literal

import libcst as cst

from kilnc.syntax import dotted

Kind = Literal["method", "static", "class"]
_DATACLASS: Final = frozenset({"dataclass", "dataclasses.dataclass"})
_GETTERS: Final = frozenset(
    {"property", "cached_property", "functools.cached_property"}
)


def method_kind(function: cst.FunctionDef, name: str = "") -> Kind | None:
    """How the method `name` (`mode.getter` of a property) binds what it is
    called on; None where kiln cannot read it."""
    if _is_stub(function):
        return None
    names = [dotted(d.decorator) for d in function.decorators]
    if not names or names == [f"{function.name.value}.setter"] or _getter(name, names):
        return "method"  # a property's getter and setter run as methods of the object
    if names == ["staticmethod"]:
        return "static"
    if names == ["classmethod"]:
        return "class"
    return None  # a property, a wrapper, an abstract method


def _is_stub(function: cst.FunctionDef) -> bool:
    """A body that does nothing but say so: an interface's."""
    body = function.body
    if not isinstance(body, cst.IndentedBlock):
        return _stub_statement(body)
    return all(_stub_statement(statement) for statement in body.body)


def _stub_statement(statement: cst.CSTNode) -> bool:
    if isinstance(statement, cst.SimpleStatementLine | cst.SimpleStatementSuite):
        return all(_stub_small(small) for small in statement.body)
    return False


def _stub_small(small: cst.BaseSmallStatement) -> bool:
    if isinstance(small, cst.Pass):
        return True
    if isinstance(small, cst.Expr):
        return isinstance(small.value, cst.Ellipsis | cst.BaseString)
    if isinstance(small, cst.Raise) and small.exc is not None:
        raised = small.exc.func if isinstance(small.exc, cst.Call) else small.exc
        return dotted(raised) == "NotImplementedError"
    return False


def method_def(cls: cst.ClassDef, name: str) -> cst.FunctionDef | None:
    """The class's method `name`; of `mode.setter`, the `mode` that `@mode.setter`
    decorates, of `mode.getter` the `@property` `mode` (also the plain `mode`)."""
    base, _, role = name.partition(".")
    for statement in class_statements(cls):
        if not isinstance(statement, cst.FunctionDef) or statement.name.value != base:
            continue
        decorators = [dotted(d.decorator) for d in statement.decorators]
        if not role or decorators == [name] or _getter(name, decorators):
            return statement
    return None


def _getter(name: str, decorators: list[str | None]) -> bool:
    """Whether a method of these decorators is what reading `name`'s attribute
    runs (`mode.getter` of a `@property` or `@cached_property` `mode`)."""
    return (
        name.endswith(".getter") and len(decorators) == 1 and decorators[0] in _GETTERS
    )


def class_statements(cls: cst.ClassDef) -> list[cst.CSTNode]:
    body = cls.body
    if not isinstance(body, cst.IndentedBlock):
        return []
    found: list[cst.CSTNode] = []
    for statement in body.body:
        if isinstance(statement, cst.SimpleStatementLine):
            found += statement.body
        else:
            found.append(statement)
    return found


def default_factories(cls: cst.ClassDef) -> list[cst.BaseExpression]:
    """What a dataclass's fields are made by: `f` of `x: T = field(default_factory=f)`."""
    found: list[cst.BaseExpression] = []
    for statement in class_statements(cls):
        value = statement.value if isinstance(statement, cst.AnnAssign) else None
        if isinstance(value, cst.Call) and (dotted(value.func) or "").endswith("field"):
            found += [
                arg.value
                for arg in value.args
                if arg.keyword is not None and arg.keyword.value == "default_factory"
            ]
    return found


def is_dataclass(cls: cst.ClassDef) -> bool:
    for decorator in cls.decorators:
        made = decorator.decorator
        arguments: list[cst.Arg] = []
        if isinstance(made, cst.Call):
            arguments, made = list(made.args), made.func
        if dotted(made) not in _DATACLASS:
            continue
        return not any(
            a.keyword is not None
            and a.keyword.value == "init"
            and dotted(a.value) == "False"
            for a in arguments
        )
    return False


def init_annotations(init: cst.FunctionDef | None) -> list[cst.AnnAssign]:
    """`self.docs: dict[str, str] = {}` in `__init__`: an attribute declared there."""
    if init is None or not isinstance(init.body, cst.IndentedBlock):
        return []
    return [
        small
        for line in init.body.body
        if isinstance(line, cst.SimpleStatementLine)
        for small in line.body
        if isinstance(small, cst.AnnAssign)
    ]


def made_in_init(
    init: cst.FunctionDef | None, made: str | None, attribute: str
) -> str | None:
    """`Counter` where `__init__` binds `self.<attribute>` only to `Counter(...)`."""
    if init is None or not isinstance(init.body, cst.IndentedBlock):
        return None
    classes = {
        dotted(small.value.func)
        for line in init.body.body
        if isinstance(line, cst.SimpleStatementLine)
        for small in line.body
        if isinstance(small, cst.Assign)
        and isinstance(small.value, cst.Call)
        and any(
            isinstance(t.target, cst.Attribute)
            and attribute_name(t.target, made) == attribute
            for t in small.targets
        )
    }
    return classes.pop() if len(classes) == 1 else None


def attribute_name(target: cst.BaseExpression, made: str | None) -> str | None:
    """`docs` of a class body's `docs` and of `self.docs` in `__init__`."""
    if isinstance(target, cst.Name):
        return target.value
    if (
        isinstance(target, cst.Attribute)
        and isinstance(target.value, cst.Name)
        and target.value.value == made
    ):
        return target.attr.value
    return None
