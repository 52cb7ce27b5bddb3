"""find_result_classes: the classes a cached node's stored results may rebuild.

Example input::

    # pipelines/shapes.py                   # pipelines/geometry.py
    from .geometry import Point             @dataclass
                                            class Point:
    @dataclass                                  x: float
    class Shape:                                unit: Unit      # an Enum of geometry.py
        corners: list[Point]
        parent: "Shape | None"

    @node(cache=True)
    def outline(name: str) -> Shape | None: ...

Output: `Shape` of pipelines.shapes, then `Point` and `Unit` of
pipelines.geometry: every class the return annotation names, through unions,
generics, string annotations and type aliases, and, for the classes defined
in the project, the classes their fields' annotations name (and their base
classes' fields'), however deep. A name imported from an installed package
is taken as it is named (its fields cannot be read); names from `typing`,
`collections` and the builtins are no classes to rebuild. The ledger
rebuilds a stored result's classes from this list only (`kiln.ledger.decoding.Allowed`),
so a row naming any other class is refused.

`place_classes` says how the generated module reaches each class: its own
copy of a class of the compiled module, a name the module imports anyway,
or a `from module import Class as _KILN_CLASS_...` of its own.
"""

from __future__ import annotations

from typing import Final

import libcst as cst

from kilnc.annotations import (
    Defined,
    External,
    definitions,
    function_named,
    resolve_name,
)
from kilnc.front import ImportedName, ModuleDefs
from kilnc.ir import Callee, NodeDef
from kilnc.names import identifier
from kilnc.plan import ClassRef
from kilnc.project import Project
from kilnc.resolve import module_file
from kilnc.syntax import dotted

# Modules whose names are types, never classes a value is rebuilt as.
_TYPING: Final = frozenset(
    {"typing", "typing_extensions", "collections", "builtins", "abc", "types", "kiln"}
)


def find_retry_classes(project: Project, node: NodeDef) -> dict[str, ClassRef]:
    """Where each `retry_on` class of `node` is defined, by the name its decorator
    gives it: a module that only imports it does not export it (`mypy --strict`),
    so the generated module imports it from the module that defines it."""
    defs = project.load(node.module)
    if defs is None:
        return {}
    found: dict[str, ClassRef] = {}
    for name in node.options.retry_on:
        meaning = resolve_name(project, defs, name)
        if isinstance(meaning, Defined):
            defined = identifier(meaning.definition.name.value)
            found[name] = ClassRef(meaning.defs.location.name, defined)
        elif isinstance(meaning, External):
            found[name] = ClassRef(meaning.module, meaning.name)
    return found


def find_result_classes(project: Project, node: Callee) -> tuple[ClassRef, ...]:
    """The classes a node's (or a flow's) return annotation names, and their fields'."""
    defs = project.load(node.module)
    function = function_named(defs, node.identifier) if defs is not None else None
    if defs is None or function is None or function.returns is None:
        return ()
    finder = _Finder(project)
    finder.expression(defs, function.returns.annotation)
    return tuple(finder.found)


class _Finder:
    """Walks annotations module by module, collecting classes in the order met."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.found: dict[ClassRef, None] = {}  # an ordered set
        self.seen: set[tuple[str, str]] = set()  # (module, name) resolved already

    def expression(self, defs: ModuleDefs, node: cst.BaseExpression) -> None:
        if isinstance(node, cst.Name | cst.Attribute):
            name = dotted(node)
            if name is not None:
                self.name(defs, name)
        elif isinstance(node, cst.Subscript):
            self.subscript(defs, node)
        elif isinstance(node, cst.BinaryOperation):  # A | B
            self.expression(defs, node.left)
            self.expression(defs, node.right)
        elif isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            self.string(defs, node)
        elif isinstance(node, cst.Tuple | cst.List):  # Callable[[A], B]
            for element in node.elements:
                self.expression(defs, element.value)
        elif isinstance(node, cst.Call):  # NewType("Id", int): its type, not its name
            for arg in node.args:
                if not isinstance(arg.value, cst.SimpleString | cst.ConcatenatedString):
                    self.expression(defs, arg.value)

    def subscript(self, defs: ModuleDefs, node: cst.Subscript) -> None:
        last = (dotted(node.value) or "").rpartition(".")[2]
        if last == "Literal":  # values, not types
            return
        self.expression(defs, node.value)
        elements = node.slice[:1] if last == "Annotated" else node.slice
        for element in elements:
            if isinstance(element.slice, cst.Index):
                self.expression(defs, element.slice.value)

    def string(
        self, defs: ModuleDefs, node: cst.SimpleString | cst.ConcatenatedString
    ) -> None:
        text = node.evaluated_value
        if not isinstance(text, str):
            return
        try:
            parsed = cst.parse_expression(text.strip())
        except (cst.ParserSyntaxError, RecursionError, ValueError):
            return  # not an annotation Python could read either: nothing to find
        self.expression(defs, parsed)

    def name(self, defs: ModuleDefs, name: str) -> None:
        """A dotted name in `defs`' module: a class there, an alias, or an import."""
        key = (defs.location.name, name)
        if key in self.seen:
            return
        self.seen.add(key)
        head, _, rest = name.partition(".")
        head = identifier(head)
        for definition in definitions(defs, head):
            if isinstance(definition, cst.ClassDef):
                self.class_def(defs, definition, head, rest)
            else:
                self.expression(defs, definition)
        imported = defs.imports.get(head)
        if imported is not None:
            self.imported(imported, rest)

    def imported(self, imported: ImportedName, rest: str) -> None:
        if imported.attribute is None:  # `import geometry`: geometry.Point
            module, _, name = rest.rpartition(".")
            module = f"{imported.module}.{module}" if module else imported.module
        else:  # `from geometry import Point`: Point, Point.Inner
            module, name = imported.module, f"{imported.attribute}.{rest}".rstrip(".")
            submodule = f"{module}.{imported.attribute}"
            if rest and module_file(self.project.root, submodule) is not None:
                module, name = submodule, rest  # `from pkg import geometry`
        if not name or module.partition(".")[0] in _TYPING:
            return
        target = self.project.load(module)
        if target is not None:
            self.name(target, name)
        elif module_file(self.project.root, module) is None:  # an installed package
            self.found[ClassRef(module, name)] = None

    def class_def(
        self, defs: ModuleDefs, definition: cst.ClassDef, path: str, rest: str
    ) -> None:
        """The class at `path` (and the classes nested as `rest` in it), and its fields."""
        for part in rest.split(".") if rest else ():
            inner = next(
                (
                    s
                    for s in definition.body.body
                    if isinstance(s, cst.ClassDef) and identifier(s.name.value) == part
                ),
                None,
            )
            if inner is None:
                return
            definition, path = inner, f"{path}.{part}"
        self.found[ClassRef(defs.location.name, path)] = None
        self.fields(defs, definition)

    def fields(self, defs: ModuleDefs, definition: cst.ClassDef) -> None:
        for statement in definition.body.body:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.AnnAssign):
                        self.expression(defs, small.annotation.annotation)
        for base in definition.bases:  # inherited fields: the base's own classes
            self.base(defs, base.value)

    def base(self, defs: ModuleDefs, node: cst.BaseExpression) -> None:
        name = dotted(node)
        if name is None or "." in name:
            return
        for definition in definitions(defs, identifier(name)):
            if isinstance(definition, cst.ClassDef):
                self.fields(defs, definition)
