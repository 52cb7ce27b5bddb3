"""resolve_name: what a name in an annotation means, read from the project's source.

Example input: ``geometry.Point`` in a module holding ``import geometry``,
where the project's ``geometry.py`` defines ``class Point``. Output:
``Defined(defs of geometry, the ClassDef)``. ``Point`` after ``from .shapes
import Point`` follows the import into the project; ``datetime.date`` after
``import datetime`` is ``External("datetime", "date")`` (a module outside the
project); ``list`` is ``Builtin("list")``; ``Vector = list[float]`` is
``Alias`` of the value; anything else the source cannot tell (a name bound
by code, a nested class) is ``None``.

The annotation walkers (`storable`, `schema`, `result_classes`) each judge
what these mean; this module only finds them, with the definitions a name has
in a module (`definitions`, `function_named`) and whether a field is a
`ClassVar` (`class_var`). It also tells which names of a callee's return
annotation are type variables (`type_variables`): ``T`` after ``T =
TypeVar("T")``, there or in the project module it is imported from, or a
type parameter of the function itself (``def first[T](xs: list[T]) -> T``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, final

import libcst as cst

from kilnc.front import ModuleDefs
from kilnc.ir import Callee
from kilnc.names import identifier
from kilnc.project import Project
from kilnc.syntax import dotted
from kilnc.walk import walk

__all__ = [
    "Alias",
    "Builtin",
    "Defined",
    "External",
    "Meaning",
    "class_var",
    "definitions",
    "function_named",
    "library_name",
    "parse_string_annotation",
    "reads_types",
    "resolve_name",
    "type_names",
    "type_variables",
]

# What makes a type variable, by module and name; `AnyStr` is one already.
_TYPE_VARIABLES = frozenset(
    (module, name)
    for module in ("typing", "typing_extensions")
    for name in ("TypeVar", "ParamSpec", "TypeVarTuple", "AnyStr")
)


@final
@dataclass(frozen=True, slots=True)
class Defined:
    """A class the project defines: its module and its definition."""

    defs: ModuleDefs
    definition: cst.ClassDef


@final
@dataclass(frozen=True, slots=True)
class Alias:
    """A type alias of the project: the value it names, read in its module."""

    defs: ModuleDefs
    value: cst.BaseExpression


@final
@dataclass(frozen=True, slots=True)
class External:
    """A name of a module outside the project: the standard library's, a package's."""

    module: str
    name: str


@final
@dataclass(frozen=True, slots=True)
class Builtin:
    name: str


Meaning = Defined | Alias | External | Builtin


def resolve_name(project: Project, defs: ModuleDefs, name: str) -> Meaning | None:
    """What the dotted `name` means in `defs`' module; None if the source cannot tell."""
    head, _, rest = name.partition(".")
    head = identifier(head)
    found = list(definitions(defs, head))
    if found:
        definition = found[-1]  # the last binding is the one the annotation sees
        if isinstance(definition, cst.ClassDef):
            return None if rest else Defined(defs, definition)
        return None if rest else Alias(defs, definition)
    imported = defs.imports.get(head)
    if imported is None:
        return Builtin(head) if not rest and head in vars(builtins) else None
    if imported.attribute is None:  # `import datetime`: datetime.date
        module, _, attribute = rest.rpartition(".")
        module = f"{imported.module}.{module}" if module else imported.module
    else:  # `from geometry import Point`: Point
        module, attribute = imported.module, f"{imported.attribute}.{rest}".rstrip(".")
    if not attribute:
        return None
    target = project.load(module)
    if target is None:
        return External(module, attribute)
    return resolve_name(project, target, attribute)


def library_name(project: Project, defs: ModuleDefs, name: str) -> str | None:
    """The qualified name the dotted `name` means in `defs`' module when that is
    no name of the project's: `builtins.int`, `collections.Counter` (of
    ``Counter`` after ``from collections import Counter``, of
    ``collections.Counter`` after ``import collections``), `pydantic.BaseModel`.
    None for a class or an alias the project defines, wherever it is imported
    from, and for a name the source cannot tell."""
    meaning = resolve_name(project, defs, name)
    if isinstance(meaning, External):
        return f"{meaning.module}.{meaning.name}"
    # A builtin's name bound at module level some other way (`def list():`) is that.
    if isinstance(meaning, Builtin) and meaning.name not in defs.parsed.global_names:
        return f"builtins.{meaning.name}"
    return None


def parse_string_annotation(
    node: cst.SimpleString | cst.ConcatenatedString,
) -> cst.BaseExpression | None:
    """The annotation a string holds (``"Shape | None"``); None if Python could not read it."""
    text = node.evaluated_value
    if not isinstance(text, str):
        return None
    try:
        return cst.parse_expression(text.strip())
    except (cst.ParserSyntaxError, RecursionError, ValueError):
        return None


def type_names(node: cst.CSTNode) -> set[str]:
    """The names a type reads, those its strings spell too, as typing reads them.

    `Optional` and `Shape` of ``Optional["Shape"]`` and of ``"Optional[Shape]"``,
    `collections` of ``"collections.abc.Sequence[int]"``, `Shape` of
    ``"list['Shape']"``. A string that is no expression (``"a sentence."``)
    spells none: typing could not read it either.
    """
    finder = _TypeNames()
    walk(node, finder)
    return finder.names


class _TypeNames(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(identifier(node.value))

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False

    def visit_SimpleString(self, node: cst.SimpleString) -> bool:
        return self._spelled(node)

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> bool:
        return self._spelled(node)

    def _spelled(self, node: cst.SimpleString | cst.ConcatenatedString) -> bool:
        text = node.evaluated_value
        if isinstance(text, str) and text.isidentifier():  # most: no parse needed
            self.names.add(identifier(text))
            return False
        parsed = parse_string_annotation(node)
        if parsed is not None:
            walk(parsed, self)
        return False


# Calls whose string arguments typing reads as types: `TypeVar("T", bound="Shape")`,
# `cast("list[Shape]", v)`, `NewType`, `ForwardRef("Shape")`, a functional
# `TypedDict("Row", {"note": "Optional[str]"})` or `NamedTuple`, `TypeAliasType`,
# `make_dataclass`'s fields. Known by the name called, wherever it comes from:
# a user's function of the same name keeps a name too many, never one too few.
_TYPING_CALLS: Final = frozenset(
    {
        *("TypeVar", "ParamSpec", "TypeVarTuple", "NewType", "ForwardRef"),
        *("cast", "assert_type", "TypedDict", "NamedTuple", "TypeAliasType"),
        "make_dataclass",
    }
)


def reads_types(node: cst.CSTNode) -> bool:
    """Whether typing may read the strings below `node` as types (`type_names`).

    An annotation; an element of a subscript (``Optional["Shape"]`` as a value,
    a base class ``Box["Shape"]``); the arguments of a call in `_TYPING_CALLS`;
    the value of ``Name: TypeAlias = "..."`` and of ``type Name = ...``.
    """
    if isinstance(node, cst.Annotation | cst.SubscriptElement | cst.TypeAlias):
        return True
    if isinstance(node, cst.Call):
        return (dotted(node.func) or "").rpartition(".")[2] in _TYPING_CALLS
    if isinstance(node, cst.AnnAssign):
        annotation = dotted(node.annotation.annotation) or ""
        return annotation.rpartition(".")[2] == "TypeAlias"
    return False


def function_named(defs: ModuleDefs, name: str) -> cst.FunctionDef | None:
    """The module-level function `name` of `defs`' module, if there is one."""
    for statement in defs.parsed.module.body:
        if (
            isinstance(statement, cst.FunctionDef)
            and identifier(statement.name.value) == name
        ):
            return statement
    return None


def definitions(
    defs: ModuleDefs, name: str
) -> Iterator[cst.ClassDef | cst.BaseExpression]:
    """The module-level class definitions and alias values of `name` in `defs`' module."""
    for statement in defs.parsed.module.body:
        if isinstance(statement, cst.ClassDef):
            if identifier(statement.name.value) == name:
                yield statement
        elif isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                value = _alias_value(small, name)
                if value is not None:
                    yield value


def _alias_value(small: cst.BaseSmallStatement, name: str) -> cst.BaseExpression | None:
    """The value of `Name = value` or `Name: TypeAlias = value` (and `type Name = ...`)."""
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        if isinstance(target, cst.Name) and identifier(target.value) == name:
            return small.value
    if (
        isinstance(small, cst.AnnAssign)
        and isinstance(small.target, cst.Name)
        and identifier(small.target.value) == name
    ):
        return small.value
    if isinstance(small, cst.TypeAlias) and identifier(small.name.value) == name:
        return small.value
    return None


def class_var(annotation: cst.Annotation) -> bool:
    """Whether a field's annotation is ``ClassVar[...]``: a class attribute, not a field."""
    node = annotation.annotation
    head = node.value if isinstance(node, cst.Subscript) else node
    return (dotted(head) or "").rpartition(".")[2] == "ClassVar"


def type_variables(project: Project, callee: Callee) -> frozenset[str]:
    """The names of the callee's return annotation that are type variables, which
    each call binds to a type of its own."""
    defs = project.load(callee.module)
    if callee.returns is None or defs is None:
        return frozenset()
    function = function_named(defs, callee.identifier)
    parameters = function.type_parameters if function is not None else None
    own = {
        identifier(parameter.param.name.value)
        for parameter in (parameters.params if parameters is not None else ())
    }
    return frozenset(
        name
        for name in type_names(cst.parse_expression(callee.returns))
        if name in own or _is_type_variable(project, defs, name)
    )


def _is_type_variable(project: Project, defs: ModuleDefs, name: str) -> bool:
    meaning = resolve_name(project, defs, name)
    if isinstance(meaning, Alias) and isinstance(meaning.value, cst.Call):
        maker = dotted(meaning.value.func)
        if maker is not None:  # `T = TypeVar("T")`: what its module calls TypeVar
            meaning = resolve_name(project, meaning.defs, maker)
    return isinstance(meaning, External) and (meaning.module, meaning.name) in (
        _TYPE_VARIABLES
    )
