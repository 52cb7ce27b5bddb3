"""Which code a method call or a construction runs: the project's classes, through
their method resolution order.

Example input::

    class Base:
        def __init__(self, name: str, roster: list[str]) -> None:
            roster.append(name)
        def describe(self) -> str:
            return "base"

    class Worker(Base):
        @staticmethod
        def helper(x: int) -> int:
            return x

Output: `Worker(n, r)` runs `Base.__init__` (`Construction`); `w.describe()`,
`w` a `Worker`, runs `Base.describe`, `self` bound to `w` (`Method`, kind
`method`); `Worker.helper(1)` and `w.helper(1)` run `Worker.helper`, which
has no receiver. Where kiln cannot tell which code runs, the answer is None
and the caller reads the call as code kiln cannot see into: a base kiln
cannot read (an installed package's class) may define the method before the
project's bases do; a method with a decorator other than `staticmethod` or
`classmethod` may be wrapped; a stub (`...`, `pass`, `raise
NotImplementedError`, an `abstractmethod`) is an interface whose object is a
subclass's, which kiln cannot name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Literal, final

import libcst as cst

from kilnc.effect_ir import Holder
from kilnc.effects.class_pieces import ClassPieces
from kilnc.effects.method_defs import (
    Kind,
    attribute_name,
    class_statements,
    default_factories,
    init_annotations,
    is_dataclass,
    made_in_init,
    method_def,
    method_kind,
)
from kilnc.effects.program import UNREAD, Program
from kilnc.final_bindings import final_binding
from kilnc.front import ModuleDefs
from kilnc.names import identifier
from kilnc.project import Project
from kilnc.syntax import code, dotted

_BASES_FOLLOWED: Final = 8  # how deep a hierarchy kiln reads
# Bases that define no method an instance's call could reach.
_MARKERS: Final = frozenset({"object", "Generic", "ABC", "Protocol"})

Resolve = Callable[[ModuleDefs, cst.BaseExpression], str | None]
ClassFound = tuple[ModuleDefs, cst.ClassDef]
# Code to read: its module, the function, the class it is a method of, and how
# it is called: a function, a method of one of the `Kind`s, or an `__init__`
# making an object (its `self` no parameter the caller passes).
# The code a call runs (its module, its name there: `Agent.describe`, or a class
# for what making it runs) and what is bound to its first parameter, if anything.
Target = tuple[str, str, cst.BaseExpression | None]
Definition = tuple[
    ModuleDefs, cst.FunctionDef, str | None, Literal["function", "init"] | Kind
]


@final
@dataclass(frozen=True, slots=True)
class Method:
    """A method found: where it is defined (`Owner.name` in `module`), and its kind."""

    module: str
    qualname: str
    kind: Kind


@final
@dataclass(frozen=True, slots=True)
class Construction:
    """What `Cls(...)` runs: an `__init__` (its class's name, for `super()`), or a
    dataclass's generated one, the `default_factory` of each field that has one
    (`field(default_factory=lambda: next(IDS))`) and its `__post_init__` (a
    `Method`), if any."""

    defs: ModuleDefs
    init: cst.FunctionDef | None
    owner: str
    post_init: Method | None = None
    factories: tuple[tuple[ModuleDefs, cst.BaseExpression], ...] = ()


class Classes:
    """The project's classes, found by the names a module uses for them."""

    def __init__(self, project: Project, resolve: Resolve) -> None:
        self.project = project
        self.resolve = resolve
        self.program = Program(project)  # the modules the program may run
        self.pieces = ClassPieces(self)  # each class as a piece of module state
        # By method name, with the number of modules read then.
        self._defined: dict[str, tuple[int, list[tuple[ClassFound, Method]]]] = {}

    def find(self, defs: ModuleDefs, name: str) -> ClassFound | None:
        """The project class an annotation or a called name means, if it is one
        (`Box` of `Box[int]`: a generic class's methods are its own)."""
        qualified = self.qualified(defs, not_none(name).partition("[")[0])
        if qualified is None:
            return None
        module, _, cls = qualified.rpartition(".")
        return self.find_in(module, cls) if module else None

    def find_in(self, module: str, name: str) -> ClassFound | None:
        owner = self.project.load(module)
        if owner is None:
            return None
        statement = defined(owner, name)
        return (owner, statement) if isinstance(statement, cst.ClassDef) else None

    def is_typed_dict(self, defs: ModuleDefs, name: str, depth: int = 0) -> bool:
        """Whether an annotation names a project `TypedDict`: a dict, to its methods."""
        if depth > _BASES_FOLLOWED:
            return False
        if name.rpartition(".")[2] == "TypedDict":
            return self.qualified(defs, name) is not None
        found = self.find(defs, name)
        if found is None:
            return False
        owner, cls = found
        return any(
            self.is_typed_dict(owner, code(base.value), depth + 1) for base in cls.bases
        )

    def attribute_type(
        self, defs: ModuleDefs, annotation: str, attribute: str, depth: int = 0
    ) -> tuple[ModuleDefs, str] | None:
        """The declared type of an attribute of a project class (a field, a
        property's return), through its bases; None where kiln cannot tell."""
        found = self.find(defs, annotation)
        if found is None or depth > _BASES_FOLLOWED:
            return None
        owner, cls = found
        init = method_def(cls, "__init__")
        made = first_name(init) if init is not None else None
        for statement in [*class_statements(cls), *init_annotations(init)]:
            if (
                isinstance(statement, cst.AnnAssign)
                and attribute_name(statement.target, made) == attribute
            ):
                return owner, code(statement.annotation.annotation)
            if (
                isinstance(statement, cst.FunctionDef)
                and statement.name.value == attribute
                and statement.returns is not None
                and any(dotted(d.decorator) == "property" for d in statement.decorators)
            ):
                return owner, code(statement.returns.annotation)
        made_by = made_in_init(init, made, attribute)
        if made_by is not None and (
            self.find(owner, made_by) is not None
            or made_by.rpartition(".")[2][:1].isupper()
            or "." in made_by  # `self.table = np.zeros(3)`: a library's, by its maker
        ):  # `self.counter = Counter()`: a class's object, project or library
            return owner, made_by
        for base in cls.bases:
            inherited = self.attribute_type(
                owner, code(base.value), attribute, depth + 1
            )
            if inherited is not None:
                return inherited
        return None

    def method(self, found: ClassFound, name: str, skip: int = 0) -> Method | None:
        """The method `name` an instance of the class runs (`skip`: past the first
        classes of its order, as `super()` does); None where kiln cannot tell."""
        order, complete = self.linearize(found)
        for index, (defs, cls) in enumerate(order[skip:], start=skip):
            function = method_def(cls, name)
            if function is None:
                continue
            if index > 0 and not complete:
                return None  # a base kiln cannot read may come before it
            kind = method_kind(function, name)
            if kind is None:
                return None
            return Method(defs.location.name, f"{cls.name.value}.{name}", kind)
        return None

    def overrides(self, base: ClassFound, name: str) -> list[Method]:
        """The methods that override `name` in the project's subclasses of `base`
        in the modules the program may run (program.py), and one a module kiln
        cannot tell may define: an object typed as the class may be one of them, and
        a call of the method may run any (a base `Agent.run`, abstract or not,
        and the `LoggingAgent.run` the flow passes). A `Protocol`'s object may be
        of any class that defines the method, a subclass or not."""
        structural = any(_protocol(base.value) for base in base[1].bases)
        found = [
            method
            for cls, method in self._defining(name)
            if cls[1] is not base[1]
            and (structural or any(c is base[1] for _, c in self.linearize(cls)[0]))
        ]
        known = any(method_def(c, name) for _, c in self.linearize(base)[0])
        return self._unread(found, name, known)

    def named(self, name: str) -> list[Method]:
        """Every method `name` of the project's classes the program may run: what a call
        of it on an object of a type kiln cannot tell may run."""
        return self._unread([method for _, method in self._defining(name)], name)

    def _unread(
        self, found: list[Method], name: str, known: bool = False
    ) -> list[Method]:
        """With the method `name` a module kiln cannot tell may define, where the
        project defines one it may override (program.py)."""
        if (found or known) and self.program.unread_methods():
            return [*found, Method(UNREAD, name, "method")]
        return found

    def _defining(self, name: str) -> list[tuple[ClassFound, Method]]:
        """The project's classes that define a method `name` kiln can read, each
        with the method, in the modules the program may run and those read so far."""
        for module in self.program.defining(name):
            self.project.load(module)
        key, read = name, len(self.project.modules)
        cached = self._defined.get(key)
        if cached is not None and cached[0] == read:
            return cached[1]
        found: list[tuple[ClassFound, Method]] = []
        for defs in list(self.project.modules.values()):
            if defs is None:
                continue
            for statement in defs.parsed.module.body:
                if not isinstance(statement, cst.ClassDef):
                    continue
                function = method_def(statement, name)
                kind = method_kind(function, name) if function is not None else None
                if kind is not None:
                    qualified = f"{statement.name.value}.{name}"
                    method = Method(defs.location.name, qualified, kind)
                    found.append(((defs, statement), method))
        self._defined[key] = (read, found)
        return found

    def definition(self, module: str, name: str) -> Definition | Construction | None:
        """The function, the method (`Cls.name`), or what making the class runs:
        its `__init__`, or a dataclass's field factories and `__post_init__`; None
        when kiln cannot tell, or the class keeps what it is given and does no more."""
        defs = self.project.load(module)
        if defs is None:
            return None
        head, _, attribute = name.partition(".")
        statement = defined(defs, head)
        if isinstance(statement, cst.FunctionDef):
            return (defs, statement, None, "function") if not attribute else None
        if statement is None:
            return None
        if attribute:
            method = method_def(statement, attribute)
            kind = method_kind(method, attribute) if method is not None else None
            if method is None or kind is None:
                return None
            return defs, method, head, kind
        made = self.construction((defs, statement))
        new = method_def(statement, "__new__")
        if made is None and new is not None:  # `__new__`, run as its class's method
            return defs, new, head, "class"
        if made is None or made.init is None:
            return made
        return made.defs, made.init, made.owner, "init"

    def construction(self, found: ClassFound) -> Construction | None:
        """What making an instance runs; None where kiln cannot tell."""
        order, complete = self.linearize(found)
        for index, (defs, cls) in enumerate(order):
            if index > 0 and not complete:
                return None
            if method_def(cls, "__new__") is not None:
                return None  # `__new__` may return any object: unknown
            init = method_def(cls, "__init__")
            if init is not None:
                return Construction(defs, init, cls.name.value)
            if is_dataclass(cls):
                post = self.method(found, "__post_init__")
                factories = tuple(
                    (owner, made)
                    for owner, each in order
                    for made in default_factories(each)
                )
                return Construction(defs, None, cls.name.value, post, factories)
        return None

    def linearize(self, found: ClassFound) -> tuple[list[ClassFound], bool]:
        """The class and its project bases in method resolution order (C3), and
        whether every base was read (markers such as `object` define nothing)."""
        return self._linearize(found, 0)

    def _linearize(
        self, found: ClassFound, depth: int
    ) -> tuple[list[ClassFound], bool]:
        defs, cls = found
        if depth > _BASES_FOLLOWED:
            return [found], False
        complete = True
        sequences: list[list[ClassFound]] = []
        bases: list[ClassFound] = []
        for base in cls.bases:
            if base.keyword is not None:
                continue  # `metaclass=...`
            shown = code(base.value).partition("[")[0]
            read = self.find(defs, shown)
            if read is None:
                complete &= shown.rpartition(".")[2] in _MARKERS
                continue
            order, whole = self._linearize(read, depth + 1)
            complete &= whole
            sequences.append(order)
            bases.append(read)
        merged = _merge([*sequences, bases])
        if merged is None:
            return [found], False
        return [found, *merged], complete

    def qualified(self, defs: ModuleDefs, name: str) -> str | None:
        try:
            return self.resolve(defs, cst.parse_expression(name))
        except cst.ParserSyntaxError:
            return None


def _merge(sequences: list[list[ClassFound]]) -> list[ClassFound] | None:
    """C3's merge: None when the bases admit no consistent order."""
    pending = [list(sequence) for sequence in sequences]
    merged: list[ClassFound] = []
    while any(pending):
        for sequence in pending:
            if not sequence:
                continue
            head = sequence[0]
            if not any(_same(head, c) for other in pending for c in other[1:]):
                break
        else:
            return None
        merged.append(head)
        pending = [[c for c in s if not _same(c, head)] for s in pending]
    return merged


def defined(defs: ModuleDefs, name: str) -> cst.FunctionDef | cst.ClassDef | None:
    """The function or class the module-level `name` is once its module has run:
    its last binding, where that is a `def` or a `class` of the name (a flow
    calls what the name holds then: final_bindings.py); None for anything else."""
    statement = final_binding(defs.parsed, name)
    if isinstance(statement, cst.FunctionDef | cst.ClassDef) and identifier(
        statement.name.value
    ) == identifier(name):
        return statement
    return None


def _protocol(base: cst.BaseExpression) -> bool:
    """Whether a class's base makes it a `Protocol` (`Protocol[T]` too)."""
    if isinstance(base, cst.Subscript):
        base = base.value
    return (dotted(base) or "").rpartition(".")[2] == "Protocol"


def _same(a: ClassFound, b: ClassFound) -> bool:
    return a[1] is b[1]


def typed_receiver(
    params: dict[str, Holder], owner: str, kind: Kind
) -> dict[str, Holder]:
    """A method's parameters, its `self` (`cls`) typed as its class when the
    source leaves it unannotated: its calls resolve through the class."""
    first = next(iter(params), None)
    if kind == "static" or first is None or params[first].annotation is not None:
        return params
    typed = owner if kind == "method" else f"type[{owner}]"
    return {**params, first: replace(params[first], annotation=typed)}


def first_name(function: cst.FunctionDef) -> str | None:
    every = (*function.params.posonly_params, *function.params.params)
    return identifier(every[0].name.value) if every else None


def not_none(annotation: str) -> str:
    """`Paragraph` of `Paragraph | None` and `Optional[Paragraph]`."""
    try:
        expression = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return annotation
    if isinstance(expression, cst.BinaryOperation) and isinstance(
        expression.operator, cst.BitOr
    ):
        sides = [expression.left, expression.right]
        kept = [s for s in sides if not (isinstance(s, cst.Name) and s.value == "None")]
        return code(kept[0]) if len(kept) == 1 else annotation
    if (
        isinstance(expression, cst.Subscript)
        and (dotted(expression.value) or "").rpartition(".")[2] == "Optional"
        and isinstance(expression.slice[0].slice, cst.Index)
    ):
        return code(expression.slice[0].slice.value)
    return annotation
