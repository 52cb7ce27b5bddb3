"""flow_schema: the JSON Schema of a flow's arguments and result, read from its annotations.

Example input::

    @dataclass
    class Page:
        url: str
        fetched: datetime.datetime

    @flow
    async def crawl(urls: list[str], depth: int = 2) -> list[Page]: ...

Output (`kiln compile --dump schema`)::

    {"flow": "crawl",
     "arguments": {"type": "object",
                   "properties": {"urls": {"type": "array", "items": {"type": "string"}},
                                  "depth": {"type": "integer", "default": 2}},
                   "required": ["urls"], "additionalProperties": false},
     "result": {"type": "array", "items": {"$ref": "#/$defs/Page"},
                "$defs": {"Page": {"type": "object", "properties": {...}, ...}}}}

JSON Schema 2020-12, of the JSON `kiln run` reads arguments from and
`kiln run --json` prints results as: datetimes, dates and times are ISO
strings (``format``), UUIDs strings of format ``uuid``, Decimals and paths
strings, timedeltas numbers of seconds, Enums their values, dataclasses,
NamedTuples and pydantic models of the project objects of their fields
(under ``$defs``, by class name, in each schema that names them, so that
each is whole on its own). A streaming flow's result is the schema of
one item, with ``"x-kiln-stream": true``. What the source cannot tell (a
class of an installed package, `Any`) is ``{}``, any value.
"""

from __future__ import annotations

from typing import Any, Final

import libcst as cst

from kilnc.annotations import (
    Alias,
    Builtin,
    Defined,
    External,
    class_var,
    parse_string_annotation,
    resolve_name,
)
from kilnc.front import ModuleDefs
from kilnc.ir import FlowDef
from kilnc.names import identifier
from kilnc.project import Project
from kilnc.syntax import dotted

__all__ = ["flow_schema"]

JSON = dict[str, Any]

_BUILTINS: Final[dict[str, JSON]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "None": {"type": "null"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    "list": {"type": "array"},
    "tuple": {"type": "array"},
    "set": {"type": "array", "uniqueItems": True},
    "frozenset": {"type": "array", "uniqueItems": True},
    "dict": {"type": "object"},
}
_STANDARD: Final[dict[tuple[str, str], JSON]] = {
    ("datetime", "datetime"): {"type": "string", "format": "date-time"},
    ("datetime", "date"): {"type": "string", "format": "date"},
    ("datetime", "time"): {"type": "string", "format": "time"},
    ("datetime", "timedelta"): {"type": "number", "description": "seconds"},
    ("uuid", "UUID"): {"type": "string", "format": "uuid"},
    ("decimal", "Decimal"): {"type": "string", "format": "decimal"},
    **{
        ("pathlib", name): {"type": "string"}
        for name in ("Path", "PurePath", "PosixPath", "PurePosixPath")
    },
}
_TYPING: Final = frozenset(
    {"typing", "typing_extensions", "collections", "collections.abc"}
)
_SEQUENCES: Final = frozenset(
    {
        "List",
        "Sequence",
        "MutableSequence",
        "Iterable",
        "Collection",
        "Iterator",
        "AsyncIterator",
        "Generator",
        "AsyncGenerator",
        "AsyncIterable",
    }
)
_SETS: Final = frozenset({"Set", "FrozenSet", "AbstractSet", "MutableSet"})
_MAPPINGS: Final = frozenset({"Dict", "Mapping", "MutableMapping"})
_UNIONS: Final = frozenset({"Union", "Optional"})
_ENUM_BASES: Final = frozenset({"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"})
# What wraps a type without changing the JSON of it: a TypedDict key's marks.
_WRAPPERS: Final = frozenset({"Annotated", "Required", "NotRequired", "ReadOnly"})
_STREAMS: Final = frozenset(
    {
        "Iterator",
        "AsyncIterator",
        "Generator",
        "AsyncGenerator",
        "Iterable",
        "AsyncIterable",
    }
)


def flow_schema(project: Project, flow: FlowDef) -> JSON:
    """The schema of `flow`'s arguments (an object) and of its result (or its items)."""
    defs = project.load(flow.module)
    assert defs is not None, "a flow's own module loads"
    builder = _Schemas(project)
    function = flow.function
    params = function.params
    properties: JSON = {}
    required: list[str] = []
    for param in [*params.posonly_params, *params.params, *params.kwonly_params]:
        name = identifier(param.name.value)
        annotation = param.annotation
        schema = {} if annotation is None else builder.of(defs, annotation.annotation)
        if param.default is None:
            required.append(name)
        else:
            default = _literal(param.default)
            if default is not _NO_LITERAL:
                schema = {**schema, "default": default}
        properties[name] = schema
    arguments: JSON = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": isinstance(params.star_kwarg, cst.Param),
    }
    result: JSON = {}
    if function.returns is not None:
        returns = function.returns.annotation
        item = _stream_item(returns) if flow.streams else None
        result = builder.of(defs, item if item is not None else returns)
        if flow.streams:
            result = {**result, "x-kiln-stream": True}
    if builder.definitions:
        # Each schema whole on its own: a validator given one resolves its $refs.
        definitions = dict(sorted(builder.definitions.items()))
        arguments["$defs"] = definitions
        result = {**result, "$defs": definitions}
    return {"flow": flow.name, "arguments": arguments, "result": result}


_NO_LITERAL: Final = object()


def _literal(node: cst.BaseExpression) -> Any:
    """The value of a literal default (numbers, strings, None, True, False), or _NO_LITERAL."""
    if isinstance(node, cst.Integer | cst.Float):
        return node.evaluated_value
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        value = node.evaluated_value
        return value if isinstance(value, str) else _NO_LITERAL
    if isinstance(node, cst.Name) and node.value in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[node.value]
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _literal(node.expression)
        return -inner if isinstance(inner, int | float) else _NO_LITERAL
    return _NO_LITERAL


def _stream_item(node: cst.BaseExpression) -> cst.BaseExpression | None:
    if isinstance(node, cst.Subscript):
        last = (dotted(node.value) or "").rpartition(".")[2]
        first = node.slice[0].slice if node.slice else None
        if last in _STREAMS and isinstance(first, cst.Index):
            return first.value
    return None


class _Schemas:
    """Schemas of annotations, module by module; the project's classes go to `definitions`."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.definitions: JSON = {}
        self.keys: dict[tuple[str, str], str] = {}  # (module, class) -> its $defs key

    def of(self, defs: ModuleDefs, node: cst.BaseExpression) -> JSON:
        if isinstance(node, cst.Name | cst.Attribute):
            name = dotted(node)
            return {} if name is None else self.name(defs, name, ())
        if isinstance(node, cst.Subscript):
            name = dotted(node.value)
            arguments = tuple(
                element.slice.value
                for element in node.slice
                if isinstance(element.slice, cst.Index)
            )
            return {} if name is None else self.name(defs, name, arguments)
        if isinstance(node, cst.BinaryOperation) and isinstance(
            node.operator, cst.BitOr
        ):
            return _any_of([self.of(defs, node.left), self.of(defs, node.right)])
        if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
            parsed = parse_string_annotation(node)
            return {} if parsed is None else self.of(defs, parsed)
        return {}

    def name(
        self, defs: ModuleDefs, name: str, arguments: tuple[cst.BaseExpression, ...]
    ) -> JSON:
        meaning = resolve_name(self.project, defs, name)
        if isinstance(meaning, Builtin):
            return self.generic(defs, meaning.name, arguments, _BUILTINS)
        if isinstance(meaning, External):
            if meaning.module in _TYPING:
                return self.typing(defs, meaning.name, arguments)
            return dict(_STANDARD.get((meaning.module, meaning.name), {}))
        if isinstance(meaning, Alias):
            return self.of(meaning.defs, meaning.value)
        if isinstance(meaning, Defined):
            return self.class_ref(meaning.defs, meaning.definition)
        return {}

    def generic(
        self,
        defs: ModuleDefs,
        name: str,
        arguments: tuple[cst.BaseExpression, ...],
        table: dict[str, JSON],
    ) -> JSON:
        base = dict(table.get(name, {}))
        if not arguments:
            return base
        if name == "tuple":
            if len(arguments) == 2 and _ellipsis(arguments[1]):
                return {**base, "items": self.of(defs, arguments[0])}
            items = [self.of(defs, argument) for argument in arguments]
            return {
                **base,
                "prefixItems": items,
                "minItems": len(items),
                "maxItems": len(items),
            }
        if base.get("type") == "array":
            return {**base, "items": self.of(defs, arguments[0])}
        if base.get("type") == "object" and len(arguments) == 2:
            return {**base, "additionalProperties": self.of(defs, arguments[1])}
        return base

    def typing(
        self, defs: ModuleDefs, name: str, arguments: tuple[cst.BaseExpression, ...]
    ) -> JSON:
        if name in _UNIONS:
            members = [self.of(defs, argument) for argument in arguments]
            if name == "Optional":
                members.append({"type": "null"})
            return _any_of(members)
        if name == "Literal":
            values = [_literal(argument) for argument in arguments]
            known = [value for value in values if value is not _NO_LITERAL]
            return {"enum": known} if len(known) == len(values) else {}
        if name in _WRAPPERS and arguments:
            return self.of(defs, arguments[0])
        if name in _SEQUENCES:
            return self.generic(defs, "list", arguments, _BUILTINS)
        if name in _SETS:
            return self.generic(defs, "set", arguments, _BUILTINS)
        if name in _MAPPINGS:
            return self.generic(defs, "dict", arguments, _BUILTINS)
        if name == "Tuple":
            return self.generic(defs, "tuple", arguments, _BUILTINS)
        return {}

    def class_ref(self, defs: ModuleDefs, definition: cst.ClassDef) -> JSON:
        """A `$ref` to the class's schema under `$defs`, made the first time."""
        title = identifier(definition.name.value)
        where = (defs.location.name, title)
        key = self.keys.get(where)
        if key is None:
            # Two classes of one name, in two modules: the second by its module too.
            key = title if title not in self.definitions else ".".join(where)
            self.keys[where] = key
            self.definitions[key] = {}  # a class that names itself refers to itself
            self.definitions[key] = self.class_schema(defs, definition, title)
        return {"$ref": f"#/$defs/{key}"}

    def class_schema(
        self, defs: ModuleDefs, definition: cst.ClassDef, title: str
    ) -> JSON:
        bases = [dotted(base.value) or "" for base in definition.bases]
        if any(base.rpartition(".")[2] in _ENUM_BASES for base in bases):
            values = [
                _literal(small.value)
                for statement in definition.body.body
                if isinstance(statement, cst.SimpleStatementLine)
                for small in statement.body
                if isinstance(small, cst.Assign)
            ]
            return {"title": title, "enum": [v for v in values if v is not _NO_LITERAL]}
        fields = self.fields(defs, definition)
        if any(base.rpartition(".")[2] == "NamedTuple" for base in bases):
            # JSON writes a tuple as an array: a NamedTuple's fields in order.
            items = [schema for schema, _ in fields.values()]
            return {
                "title": title,
                "type": "array",
                "prefixItems": items,
                "minItems": len(items),
                "maxItems": len(items),
            }
        if any(base.rpartition(".")[2] == "TypedDict" for base in bases):
            required = _typed_dict_required(definition)
            fields = {
                name: (schema, name in required) for name, (schema, _) in fields.items()
            }
        return {
            "title": title,
            "type": "object",
            "properties": {name: schema for name, (schema, _) in fields.items()},
            "required": [name for name, (_, needed) in fields.items() if needed],
        }

    def fields(
        self, defs: ModuleDefs, definition: cst.ClassDef
    ) -> dict[str, tuple[JSON, bool]]:
        """A class's fields: each one's schema, and whether it has no default."""
        found: dict[str, tuple[JSON, bool]] = {}
        for statement in definition.body.body:
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                if not isinstance(small, cst.AnnAssign) or not isinstance(
                    small.target, cst.Name
                ):
                    continue
                head = small.annotation.annotation
                if class_var(small.annotation):
                    continue
                declared = _declared(small.value)
                if declared is None:
                    continue  # `field(init=False)`: not given, so not in the JSON
                alias, required = declared
                name = alias or identifier(small.target.value)
                found[name] = (self.of(defs, head), required)
        return found


def _declared(value: cst.BaseExpression | None) -> tuple[str | None, bool] | None:
    """A field's name in JSON (a pydantic alias) and whether it must be given.

    None for a dataclass field that `__init__` does not take. A field is
    required without a value, and with ``Field(...)``/``field(...)`` that sets
    no default (pydantic's first argument, when not ``...``, is one).
    """
    if value is None:
        return None, True
    if not isinstance(value, cst.Call):
        return None, False
    called = (dotted(value.func) or "").rpartition(".")[2]
    if called not in ("Field", "field"):
        return None, False
    keywords = {
        arg.keyword.value: arg.value for arg in value.args if arg.keyword is not None
    }
    init = keywords.get("init")
    if isinstance(init, cst.Name) and init.value == "False":
        return None
    alias = keywords.get("alias")
    named = alias.evaluated_value if isinstance(alias, cst.SimpleString) else None
    positional = [arg.value for arg in value.args if arg.keyword is None]
    defaulted = (
        "default" in keywords
        or "default_factory" in keywords
        or (bool(positional) and not isinstance(positional[0], cst.Ellipsis))
    )
    return named if isinstance(named, str) else None, not defaulted


def _typed_dict_required(definition: cst.ClassDef) -> set[str]:
    """The keys of a TypedDict that must be given: as `Required[...]` or
    `NotRequired[...]` marks each, else as the class's ``total=`` says."""
    total = not any(
        arg.keyword is not None
        and arg.keyword.value == "total"
        and isinstance(arg.value, cst.Name)
        and arg.value.value == "False"
        for arg in definition.keywords
    )
    required: set[str] = set()
    for statement in definition.body.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                mark = _mark(small.annotation.annotation)
                if mark == "Required" or (total and mark != "NotRequired"):
                    required.add(identifier(small.target.value))
    return required


def _mark(node: cst.BaseExpression | None) -> str:
    """`Required` or `NotRequired` of a key's annotation, under `Annotated` and quotes too."""
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        return _mark(parse_string_annotation(node))
    if not isinstance(node, cst.Subscript) or not node.slice:
        return ""
    name = (dotted(node.value) or "").rpartition(".")[2]
    first = node.slice[0].slice
    if name == "Annotated" and isinstance(first, cst.Index):
        return _mark(first.value)
    return name if name in ("Required", "NotRequired") else ""


def _any_of(members: list[JSON]) -> JSON:
    if any(member == {} for member in members):
        return {}
    return members[0] if len(members) == 1 else {"anyOf": members}


def _ellipsis(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Ellipsis)
