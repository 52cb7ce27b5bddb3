"""check_storable: a node whose results are stored, of a type the ledger refuses.

Example input::

    class Handle:                       # a plain class: no fields the ledger reads
        ...

    @node(cache=True)
    def open_handle(name: str) -> Handle | None: ...

Output: an error at the annotation ``Handle | None``, KLN109, before anything
runs: the source would run every call and fail at its first store with
`UncacheableValue` (after paying for the call, an LLM's say). The same for
every node called by a flow that asks a question: such a flow runs only
durably, and a durable run journals every call's value.

The verdict comes from the source alone, as the runtime's `unstorable` gives
it from the classes: JSON's values, tuples, sets, bytes, the standard
types the codec tags (datetimes, UUIDs, Decimals, paths), Enums, and
dataclasses, NamedTuples and pydantic models whose fields are all of those
are stored, and so are TypedDicts whose keys hold those. A class of the
project is read (its decorators, its bases, its fields, however deep, across
modules); a class of an installed package other than the standard library's
is not, and neither is anything the source cannot tell (`Any`, a TypeVar, a
name bound by code): those are left to the runtime's check, which raises
before the node's result is used. Only a type certainly refused is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import libcst as cst

from kilnc.annotations import (
    Alias,
    Builtin,
    Defined,
    External,
    Meaning,
    class_var,
    function_named,
    parse_string_annotation,
    resolve_name,
)
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import ModuleDefs
from kilnc.ir import FlowIR, NodeDef
from kilnc.names import identifier
from kilnc.project import Project
from kilnc.syntax import dotted

# Builtins whose values the codec refuses.
_REFUSED_BUILTINS: Final = frozenset(
    {"complex", "bytearray", "memoryview", "range", "slice", "type", "Exception"}
)
# Names of `typing` and `collections.abc` that are never values the ledger stores.
_REFUSED_TYPING: Final = frozenset(
    {
        "Callable",
        "Iterator",
        "Generator",
        "AsyncIterator",
        "AsyncGenerator",
        "Awaitable",
        "Coroutine",
        "IO",
        "TextIO",
        "BinaryIO",
    }
)
_TYPING: Final = frozenset(
    {"typing", "typing_extensions", "collections", "collections.abc", "abc", "types"}
)
# The standard types the codec tags, by module.
_STANDARD: Final = {
    "datetime": frozenset({"datetime", "date", "time", "timedelta"}),
    "uuid": frozenset({"UUID"}),
    "decimal": frozenset({"Decimal"}),
    "pathlib": frozenset(
        {
            "Path",
            "PurePath",
            "PosixPath",
            "PurePosixPath",
            "WindowsPath",
            "PureWindowsPath",
        }
    ),
}
# Bases that make a class stored by its fields (NamedTuple, pydantic) or its value.
# A TypedDict's values are dicts, whose keys' annotations say what they hold.
_FIELDED_BASES: Final = {
    ("typing", "NamedTuple"),
    ("typing", "TypedDict"),
    ("typing_extensions", "TypedDict"),
    ("pydantic", "BaseModel"),
}
_ENUMS: Final = frozenset({"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"})

# A verdict: the name of a type certainly refused, "" for stored, None for cannot tell.
Verdict = str | None
_STORED: Final = ""


def check_storable(project: Project, lowered: list[FlowIR]) -> Iterator[Diagnostic]:
    """KLN109 at the return annotation of each node whose every result must be stored.

    A cached node's results are stored; so are those of every node a flow that
    asks a question calls (a question suspends the run, so the flow only runs
    durably, and a durable run journals each call's value).
    """
    judge = _Judge(project)
    seen: set[NodeDef] = set()
    for flow_ir in lowered:
        asker = next(
            (
                call.callee.name
                for call in flow_ir.calls
                if isinstance(call.callee, NodeDef) and call.callee.asks
            ),
            None,
        )
        for call in flow_ir.calls:
            node = call.callee
            if not isinstance(node, NodeDef) or node.asks or node in seen:
                continue
            if node.options.cache or asker is not None:
                seen.add(node)
                found = _refused(
                    judge, node, None if node.options.cache else (flow_ir, asker)
                )
                if found is not None:
                    yield found


def _refused(
    judge: _Judge, node: NodeDef, durable: tuple[FlowIR, str | None] | None
) -> Diagnostic | None:
    defs = judge.project.load(node.module)
    function = function_named(defs, node.function) if defs is not None else None
    if defs is None or function is None or function.returns is None:
        return None
    if durable is None:
        argument = _refused_argument(judge, defs, node, function)
        if argument is not None:
            return argument
    annotation = function.returns.annotation
    refused = judge.expression(defs, annotation)
    if not refused:
        return None
    written = cst.Module([]).code_for_node(annotation)
    names = (
        "which its return annotation names"
        if written == refused
        else f"which its return annotation, {written}, holds"
    )
    if durable is None:
        why = (
            f"node '{node.name}' has cache=True, and the ledger cannot store a "
            f"{refused}, {names}: every call would run, then fail"
        )
        fix = "or drop cache=True"
    else:
        flow_ir, question = durable
        theirs = names.replace("its", "that node's", 1)
        why = (
            f"flow '{flow_ir.flow.name}' asks question '{question}', so it runs only "
            f"durably, journaling what node '{node.name}' returns, and the journal "
            f"cannot store a {refused}, {theirs}"
        )
        fix = "or call the node from a flow that asks no question"
    # Only a refusal reads the ledger's list: importing kiln.ledger loads
    # sqlite3 and the codec, which a compile that refuses nothing never uses.
    from kiln.ledger.codec import STORED_TYPES  # noqa: PLC0415 - see above

    return error(
        defs.parsed.span(annotation),
        Code.UNSTORABLE_RESULT,
        why,
        f"return a value the ledger stores ({STORED_TYPES}), {fix}",
    )


def _refused_argument(
    judge: _Judge, defs: ModuleDefs, node: NodeDef, function: cst.FunctionDef
) -> Diagnostic | None:
    """KLN109 at a cached node's parameter of a type the ledger refuses: its
    arguments key the stored results, so every call would fail before it runs.
    A `kiln.Memory` is a run's state, never a key."""
    params = function.params
    for param in (*params.posonly_params, *params.params, *params.kwonly_params):
        if param.annotation is None:
            continue
        refused = (
            "Memory"
            if defs.parsed.is_memory(param.annotation)
            else judge.expression(defs, param.annotation.annotation)
        )
        if refused:
            return error(
                defs.parsed.span(param.annotation.annotation),
                Code.UNSTORABLE_RESULT,
                f"node '{node.name}' has cache=True, and its parameter "
                f"'{param.name.value}' takes a {refused}, which the ledger cannot "
                "store: the arguments key the results it keeps",
                "pass the node the values it reads instead, or drop cache=True",
            )
    return None


class _Judge:
    """Walks an annotation module by module: the first type the ledger refuses."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.judged: dict[tuple[str, str], Verdict] = {}

    def expression(self, defs: ModuleDefs, node: cst.BaseExpression) -> Verdict:
        if isinstance(node, cst.Name | cst.Attribute):
            name = dotted(node)
            return None if name is None else self.name(defs, name)
        if isinstance(node, cst.Subscript):
            return self.subscript(defs, node)
        if isinstance(node, cst.BinaryOperation):  # A | B
            return _first(
                self.expression(defs, node.left), self.expression(defs, node.right)
            )
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            parsed = parse_string_annotation(node)
            return None if parsed is None else self.expression(defs, parsed)
        return None

    def subscript(self, defs: ModuleDefs, node: cst.Subscript) -> Verdict:
        last = (dotted(node.value) or "").rpartition(".")[2]
        if last == "Literal":
            return _STORED
        outer = self.expression(defs, node.value)
        if outer:
            return outer
        elements = node.slice[:1] if last == "Annotated" else node.slice
        verdicts = [
            self.expression(defs, element.slice.value)
            for element in elements
            if isinstance(element.slice, cst.Index)
        ]
        return _first(outer, *verdicts)

    def name(self, defs: ModuleDefs, name: str) -> Verdict:
        key = (defs.location.name, name)
        if key in self.judged:
            return self.judged[key]
        self.judged[key] = None  # a class that names itself: cannot tell from here
        verdict = self.meaning(resolve_name(self.project, defs, name))
        self.judged[key] = verdict
        return verdict

    def meaning(self, meaning: Meaning | None) -> Verdict:
        if isinstance(meaning, Defined):
            return self.class_def(meaning.defs, meaning.definition)
        if isinstance(meaning, Alias):
            return self.expression(meaning.defs, meaning.value)
        if isinstance(meaning, Builtin):
            if meaning.name == "object":
                return None
            return meaning.name if meaning.name in _REFUSED_BUILTINS else _STORED
        if isinstance(meaning, External):
            if meaning.module in _TYPING:
                return meaning.name if meaning.name in _REFUSED_TYPING else None
            if meaning.module in _STANDARD:
                return _STORED if meaning.name in _STANDARD[meaning.module] else None
        return None

    def class_def(self, defs: ModuleDefs, definition: cst.ClassDef) -> Verdict:
        """A class of the project: stored by its fields, by its value (an Enum), or refused."""
        fielded = any(_is_dataclass(d.decorator) for d in definition.decorators)
        for base in definition.bases:
            kind = self.base(defs, base.value)
            if kind is None:
                return None  # a base the source cannot tell
            if kind == "enum":
                return _STORED
            fielded = fielded or kind == "fields"
        if not fielded:
            return identifier(definition.name.value)
        return self.fields(defs, definition)

    def base(self, defs: ModuleDefs, node: cst.BaseExpression) -> str | None:
        """What a base makes of a class: "enum", "fields", "plain"; None if it cannot tell."""
        name = dotted(node.value if isinstance(node, cst.Subscript) else node)
        meaning = None if name is None else resolve_name(self.project, defs, name)
        if isinstance(meaning, Builtin):
            # A subclass of str, int, dict...: the ledger takes the exact types only.
            return "plain"
        if isinstance(meaning, External):
            if meaning.module == "enum" and meaning.name in _ENUMS:
                return "enum"
            if (meaning.module, meaning.name) in _FIELDED_BASES:
                return "fields"
            if meaning.module in _TYPING and meaning.name == "Generic":
                return "plain"
            return None
        if isinstance(meaning, Defined):
            verdict = self.class_def(meaning.defs, meaning.definition)
            if verdict is None:
                return None
            return "fields" if verdict == _STORED else "plain"
        return None

    def fields(self, defs: ModuleDefs, definition: cst.ClassDef) -> Verdict:
        verdicts = [
            self.expression(defs, small.annotation.annotation)
            for statement in definition.body.body
            if isinstance(statement, cst.SimpleStatementLine)
            for small in statement.body
            if isinstance(small, cst.AnnAssign) and not class_var(small.annotation)
        ]
        return _first(_STORED, *verdicts)


def _first(*verdicts: Verdict) -> Verdict:
    """A refusal if any refuses; else stored if all are; else cannot tell."""
    for verdict in verdicts:
        if verdict:
            return verdict
    return _STORED if all(v == _STORED for v in verdicts) else None


def _is_dataclass(decorator: cst.BaseExpression) -> bool:
    called = decorator.func if isinstance(decorator, cst.Call) else decorator
    return (dotted(called) or "").rpartition(".")[2] == "dataclass"
