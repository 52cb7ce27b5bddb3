"""What lowering knows of a flow's names: their types, which hold a Memory, which exist.

Example input::

    @flow
    async def run(memory: Memory, path: str) -> int:
        page = 0
        view = memory.clone({"page": page})
        text = await load(path)

Output, as the statements are lowered in order: `memory` and `view` hold a
`kiln.Memory` (tokens, whose stores `sharing.py` names), `path` and `page`
have the immutable types `str` and `int`, `text` the return annotation of
`load` when this module can name it, and a name read before anything binds it
is KLN301 at the read.
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

import libcst as cst

from kilnc.annotations import type_names
from kilnc.diagnostics import Code
from kilnc.front import ParsedModule
from kilnc.ir import Callee, FlowDef, NodeCall, NodeDef, TypeVariables
from kilnc.lower.closures import late_reads
from kilnc.lower.report import Reporter
from kilnc.lower.sharing import Sharing
from kilnc.mutability import Qualify, is_immutable, may_be_iterator, names_in
from kilnc.names import BUILTINS, identifier, name_uses, parameter_names, walrus_targets
from kilnc.syntax import code, dotted
from kilnc.walk import walk


class TypeNames(Protocol):
    """What the names of a module's annotations and calls mean (the effects reader)."""

    def library_name(self, module: str, name: str) -> str | None: ...

    def constructs(self, module: str, func: cst.BaseExpression) -> bool: ...


class Scope:
    """The flow's names as lowering has met them so far, in source order."""

    def __init__(
        self,
        parsed: ParsedModule,
        flow: FlowDef,
        shared: Sharing,
        report: Reporter,
        type_variables: TypeVariables,
        type_names: TypeNames,
    ) -> None:
        self.parsed = parsed
        self.module = flow.module
        self.type_names = type_names
        # What the flow's annotations name, when it is no class of the project.
        self.qualify: Qualify = partial(type_names.library_name, flow.module)
        self.shared = shared
        self.report = report
        self.type_variables = type_variables
        self.types: dict[str, str] = {}  # local name -> its annotation, where known
        self.memory: set[str] = set()  # local names holding a kiln.Memory
        # kiln's temporaries by the source's expression each holds, for messages.
        self.stands_for: dict[str, str] = {}
        self.globals = frozenset(identifier(n) for n in parsed.global_names) | BUILTINS
        # The flow's own names, parameters included: what effects are read against.
        self.own: set[str] = name_uses(flow.function.body).writes | parameter_names(
            flow.function.params
        )
        # Names bound to a lambda or a generator expression, or to what holds
        # one, and the flow's names it reads when it runs, which is when
        # whoever holds it calls it.
        self.deferred: dict[str, frozenset[str]] = {}
        self.late: set[str] = set()  # every name a value of the flow reads late
        # Of those, the ones whose names were bound again after them: by name,
        # the name rebound. A step given one must run where the source runs it.
        self.stale: dict[str, str] = {}

    def visible_returns(self, call: NodeCall) -> str | None:
        """The callee's return annotation, if the generated code may write it here.

        A node imported from another module may return a type this module never
        imports; the generated code may only write annotations it can resolve.
        A generic node's names a type variable (`def first(xs: list[T]) -> T`),
        which means another type at each call: mypy infers the call's, and the
        generated code writes none (the value's own annotation, if the flow
        gives one: `i: int = await first(ids)`).
        """
        returns = call.callee.returns
        if returns is None or self.type_variables(call.callee):
            return None
        if call.local:
            return returns
        # `-> "Optional[Decimal]"` names Decimal too, which this module may not bind.
        names = type_names(cst.parse_expression(returns))
        return returns if names <= self.globals else None

    def mutable(self, names: frozenset[str]) -> frozenset[str]:
        """The flow's names whose value may change: not those of immutable type."""
        return frozenset(
            name
            for name in names & self.own
            if name not in self.shared.tokens
            and (
                name not in self.types
                or not is_immutable(self.types[name], self.qualify)
            )
        )

    def container(self, annotation: str) -> bool:
        """Whether a value of this annotation is a container, which iterating
        reads, where an iterator's items may be made as they are drawn."""
        return not may_be_iterator(annotation, self.qualify)

    def check_defined(self, node: cst.CSTNode, defined: set[str]) -> None:
        """Report names read before any assignment; then count the walrus targets in."""
        uses = name_uses(node)
        if self.parsed.star_import:
            defined |= uses.writes
            return
        # `return (y := f(x)) + y`: a `:=` defines its name before later reads.
        walrus = walrus_targets(node)
        for name in uses.reads:
            if (
                identifier(name.value) not in defined
                and identifier(name.value) not in self.globals
                and identifier(name.value) not in walrus
            ):
                self.report.report(
                    name,
                    Code.UNDEFINED_NAME,
                    f"name '{name.value}' is not defined",
                    "assign it earlier in the flow, take it as a parameter, "
                    "or define it at module level",
                )
        defined |= uses.writes

    def note_type(self, name: str, annotation: cst.Annotation | None) -> None:
        name = identifier(name)
        if annotation is None:
            return
        self.types[name] = code(annotation.annotation)
        if self.parsed.is_memory(annotation):
            self.memory.add(name)

    def note_value(
        self,
        name: str,
        annotation: cst.Annotation | None,
        value_type: str | None,
        callee: Callee,
    ) -> None:
        self.types.pop(name, None)
        self.memory.discard(name)
        if annotation is not None:
            self.note_type(name, annotation)
        elif value_type is not None:
            self.types[name] = value_type
        if isinstance(callee, NodeDef) and callee.returns_memory:
            self.memory.add(name)

    def track_assignment(self, statement: cst.CSTNode) -> None:
        """`m2 = m.clone(...)` and `m2 = m` make m2 a Memory token too."""
        if not isinstance(statement, cst.Assign | cst.AnnAssign):
            return
        names = name_uses(statement).writes
        value = statement.value
        token = False
        if isinstance(value, cst.Name):
            token = identifier(value.value) in self.memory
            if token:
                self.shared.same_memory(frozenset(names), identifier(value.value))
        elif isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
            owner = value.func.value
            token = (
                value.func.attr.value == "clone"
                and isinstance(owner, cst.Name)
                and identifier(owner.value) in self.memory
            )
            if token and isinstance(owner, cst.Name):
                self.shared.clone(frozenset(names), identifier(owner.value))
        if value is not None and not token:
            # `branches = [memory.clone(...) for t in topics]`: what holds clones
            # holds their global store, as `Memory(store)` holds its dict.
            for cloned in _cloned(value) & self.memory:
                self.shared.hold({*names, f"@g:{cloned}:*"})
        if value is not None and self._is_new_memory(value):
            token = True
            assert isinstance(value, cst.Call)
            self._made_over(frozenset(names), value)
        for name in names:
            self.types.pop(name, None)
            self.memory.discard(name)
        if isinstance(statement, cst.AnnAssign) and not self._bare_final(statement):
            for name in names:
                self.note_type(name, statement.annotation)
        elif value is not None and (literal := self._made_type(value)) is not None:
            for name in names:
                self.types[name] = literal
        if token:
            self.memory |= names
            self.shared.tokens |= names
        reads = late_reads(value, self.deferred) & self.own if value else frozenset()
        self.late |= reads
        for name in names:
            self.stale.pop(name, None)
            if reads:
                self.deferred[name] = reads
            else:
                self.deferred.pop(name, None)

    def rebound(self, names: frozenset[str]) -> None:
        """Names bound again: a lambda or generator that reads one now sees another value."""
        for held, reads in self.deferred.items():
            for name in sorted(reads & names):
                self.stale.setdefault(held, name)

    def _bare_final(self, statement: cst.AnnAssign) -> bool:
        """`LIMIT: Final = 3`: the type is the value's, as a type checker infers it."""
        annotation = dotted(statement.annotation.annotation)
        return annotation is not None and self.qualify(annotation) in _FINAL

    def _made_type(self, value: cst.BaseExpression) -> str | None:
        """The type of a literal, of a new container a builtin makes (`list(words)`),
        or of what a class makes (`Inbox(items)`, `defaultdict(list)`): a project
        class's methods are no dict's, whatever they are named."""
        if not isinstance(value, cst.Call):
            return _literal_type(value)
        func = value.func
        builtin = isinstance(func, cst.Name) and func.value not in (
            self.own | self.parsed.global_names  # not shadowed
        )
        if builtin and isinstance(func, cst.Name) and func.value in _MADE:
            return _MADE[func.value]
        match value.args:
            case [cst.Arg(value=cst.Name(iterated), keyword=None, star="")] if (
                builtin and isinstance(func, cst.Name) and func.value == "iter"
            ):
                held = self.types.get(identifier(iterated), "")
                if held.startswith(("list[", "set[")):  # `iter(xs)` of `xs: list[int]`
                    return "Iterator" + held[held.index("[") :]
        name = dotted(func)
        if name is None or identifier(name.partition(".")[0]) in self.own:
            return None  # a value the flow holds: what it makes, kiln cannot tell
        return name if self.type_names.constructs(self.module, func) else None

    def _made_over(self, names: frozenset[str], made: cst.Call) -> None:
        """`Memory(store, local)`: the dicts it is given are its stores, whole
        (`Memory({"items": items})` holds `items` at a key)."""
        for arg in made.args:
            stores: tuple[str, ...]
            if arg.star:
                stores = ("g", "l")
            elif arg.keyword is not None:
                stores = ("l",) if arg.keyword.value == "local" else ("g",)
            else:
                stores = ("g",) if arg is made.args[0] else ("l",)
            given = self.mutable(name_uses(arg.value).read_names)
            for name in names:
                self.shared.hold({*given, *(f"@{s}:{name}:*" for s in stores)})
                if isinstance(arg.value, cst.Name) and not arg.star:
                    self.shared.made_over(name, identifier(arg.value.value), stores)

    def _is_new_memory(self, value: cst.BaseExpression) -> bool:
        """`Memory()` or `kiln.Memory({...})`: a new root, its own global store."""
        return isinstance(value, cst.Call) and self.parsed.is_memory(
            cst.Annotation(value.func)
        )


def _cloned(value: cst.BaseExpression) -> set[str]:
    """The names `value` makes clones of (`name.clone(...)`), anywhere inside it."""
    finder = _Clones()
    walk(value, finder)
    return finder.found


class _Clones(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value == "clone"
            and isinstance(func.value, cst.Name)
        ):
            self.found.add(identifier(func.value.value))


_FINAL = names_in("typing typing_extensions", "Final")
# Builtins whose call makes a new container of this type: iterating it changes nothing.
_MADE = {
    "list": "list",
    "sorted": "list",
    "tuple": "tuple",
    "set": "set",
    "frozenset": "frozenset",
    "dict": "dict",
}


def _literal_type(value: cst.BaseExpression) -> str | None:
    """The type of a literal a name is bound to: `page = 0` makes `page` an int."""
    if isinstance(value, cst.Integer):
        return "int"
    if isinstance(value, cst.Float):
        return "float"
    if isinstance(
        value, cst.SimpleString | cst.ConcatenatedString | cst.FormattedString
    ):
        return "bytes" if code(value).lstrip("rRuU").startswith(("b", "B")) else "str"
    if isinstance(value, cst.Name) and value.value in ("True", "False"):
        return "bool"
    if isinstance(value, cst.List | cst.ListComp):
        return _of_items("list", value)
    if isinstance(value, cst.Dict | cst.DictComp):
        return "dict"
    if isinstance(value, cst.Set | cst.SetComp):
        return _of_items("set", value)
    return None


def _of_items(kind: str, value: cst.BaseExpression) -> str:
    """`list[int]` of `[1, 2, 3]`: a literal's one scalar item type, where it has one."""
    if not isinstance(value, cst.List | cst.Set) or not value.elements:
        return kind
    items = {
        _literal_type(element.value) if isinstance(element, cst.Element) else None
        for element in value.elements
    }
    if len(items) == 1 and (item := items.pop()) in _SCALARS:
        return f"{kind}[{item}]"
    return kind


_SCALARS = frozenset({"int", "float", "str", "bytes", "bool"})
