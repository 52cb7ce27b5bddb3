"""read_node_options / read_flow_options: decorator arguments to validated options.

Example input: `@node(retries=3, wiat=0.5)` on `def fetch`. Output: the
options with every value read as a literal, and a diagnostic at `wiat`
("unknown option 'wiat'; did you mean 'wait'?"). Nothing is evaluated: a value
that is not a literal is an error at its position.

What each option accepts, and what is said of a value it refuses, is the
runtime's own table (`kiln.options`: type, range, finite numbers, the
requirement `Rule.message` words), so a value `kiln compile` accepts is one
the decorator accepts when the source is imported, the other way round, and
both refuse it in the same words. A value of the wrong type is KLN103, out of
range KLN104. Rules between options and the
node's kind, and what `retry_on` and `fallback` name, are `collect`'s.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Final

import libcst as cst

from kiln.options import (
    FLOW_RULES,
    LIMIT_CALL,
    LIMIT_GROUP,
    LIMIT_RULES,
    NODE_RULES,
    Rule,
    by_name,
    must_be,
)
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import ParsedModule
from kilnc.ir import FlowOptions, LimitSpec, NodeOptions
from kilnc.syntax import code, dotted

Value = Any  # a literal read from the source: int, float, str, bool, None or a tuple
LIMITS: Final = frozenset({"kiln.Limit", "kiln.options.Limit", "kiln.decorators.Limit"})


class NotLiteral(Exception):
    """A value the compiler cannot read statically; carries the offending node."""

    def __init__(self, node: cst.CSTNode, expected: str) -> None:
        super().__init__(expected)
        self.node = node
        self.expected = expected


class WrongType(Exception):
    """A literal of the wrong shape for its option (`retry_on=ValueError`);
    `detail` says what is wrong with it after what the option must be."""

    def __init__(
        self, node: cst.CSTNode, hint: str | None = None, detail: str = ""
    ) -> None:
        super().__init__(hint)
        self.node = node
        self.hint = hint
        self.detail = detail


# --- literal readers --------------------------------------------------------------

_UNARY: Final[Mapping[type[ast.unaryop], Callable[[Any], Any]]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Invert: operator.invert,
    ast.Not: operator.not_,
}


def literal(node: cst.BaseExpression, expected: str) -> Value:
    """The value of a literal as Python reads it (`-1`, `1e309`, `"a" "b"`, `(1, 2)`)."""
    try:
        tree = ast.parse(f"(\n{code(node)}\n)", mode="eval")
        return _fold(tree.body)
    except (SyntaxError, ValueError, TypeError):
        raise NotLiteral(node, expected) from None


def _fold(node: ast.expr) -> Value:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_fold(node.operand))
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return type(node).__name__, tuple(_fold(e) for e in node.elts)
    raise ValueError("not a literal")


def read_exception_names(node: cst.BaseExpression) -> Value:
    """`(ValueError, errors.Transient)`: the names, each checked by `collect`."""
    if isinstance(node, cst.Name | cst.Attribute):
        name = dotted(node)
        raise WrongType(node, f"write a tuple: retry_on=({name},)")
    if not isinstance(node, cst.Tuple):
        if _is_literal(node):
            raise WrongType(node)
        raise NotLiteral(node, NODE_RULES["retry_on"].requirement)
    names = []
    for element in node.elements:
        name = dotted(element.value)
        if isinstance(element, cst.StarredElement) or name is None:
            raise NotLiteral(element, NODE_RULES["retry_on"].requirement)
        names.append(name)
    return tuple(names)


def read_function_name(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.Name):
        return None if node.value == "None" else node.value
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        text = node.evaluated_value  # `fallback="keep_going"`: the name, not the def
        if isinstance(text, str):
            raise WrongType(node, detail=f": {by_name('fallback', text)}")
    raise NotLiteral(node, NODE_RULES["fallback"].requirement)


def read_limits(parsed: ParsedModule, node: cst.BaseExpression) -> Value:
    """`{"llm": Limit(8, refresh=1.0)}` to ``(("llm", capacity node, refresh node), ...)``.

    The numbers stay nodes here: `read_flow_options` checks each one at its position.
    """
    if isinstance(node, cst.Name) and node.value == "None":
        return ()
    if not isinstance(node, cst.Dict):
        if _is_literal(node):
            raise WrongType(node)
        raise NotLiteral(node, FLOW_RULES["limits"].requirement)
    limits: list[tuple[str, cst.BaseExpression, cst.BaseExpression | None]] = []
    for element in node.elements:
        if not isinstance(element, cst.DictElement):
            raise NotLiteral(element, FLOW_RULES["limits"].requirement)
        key = literal(element.key, LIMIT_GROUP.requirement)
        if not LIMIT_GROUP.accepts(key):
            raise WrongType(element.key, LIMIT_GROUP.message("each key"))
        limits.append((key, *_limit_arguments(parsed, element.value)))
    return tuple(limits)


def _limit_arguments(
    parsed: ParsedModule, node: cst.BaseExpression
) -> tuple[cst.BaseExpression, cst.BaseExpression | None]:
    """The capacity and refresh of `Limit(capacity, refresh=None)`, as written."""
    expected = LIMIT_CALL
    if not isinstance(node, cst.Call) or not parsed.qualified_names(node.func) & LIMITS:
        raise NotLiteral(node, expected)
    order = list(LIMIT_RULES)  # capacity, refresh: the order of positional arguments
    bound: dict[str, cst.BaseExpression] = {}
    for index, argument in enumerate(node.args):
        if argument.keyword is not None:
            name = argument.keyword.value
        elif index < len(order):
            name = order[index]
        else:
            raise NotLiteral(node, expected)
        if argument.star or name not in LIMIT_RULES or name in bound:
            raise NotLiteral(node, expected)  # as Python would refuse the call
        bound[name] = argument.value
    if "capacity" not in bound:
        raise NotLiteral(node, expected)
    return bound["capacity"], bound.get("refresh")


def _is_literal(node: cst.CSTNode) -> bool:
    """A literal of some type: the option's value has the wrong type, it is not code."""
    if isinstance(node, cst.UnaryOperation):
        return _is_literal(node.expression)
    if isinstance(node, cst.Name):
        return node.value in ("True", "False", "None")
    return isinstance(
        node,
        cst.Integer
        | cst.Float
        | cst.Imaginary
        | cst.SimpleString
        | cst.ConcatenatedString
        | cst.Tuple
        | cst.List
        | cst.Dict
        | cst.Set,
    )


# --- reading the decorator ----------------------------------------------------------


def read_node_options(
    parsed: ParsedModule, decorator: cst.BaseExpression, function: str
) -> tuple[NodeOptions, list[Diagnostic]]:
    defaults = NodeOptions(name=function)
    values, diagnostics = _read(parsed, decorator, NODE_RULES)
    if values.get("name", function) is None:
        values["name"] = function  # `name=None`: the function's, as the decorator does
    return replace(defaults, **values), diagnostics


def read_flow_options(
    parsed: ParsedModule, decorator: cst.BaseExpression, function: str
) -> tuple[FlowOptions, tuple[str, ...] | None, list[Diagnostic]]:
    """The options, and the limit groups declared with a number refused (None:
    `limits` itself refused), which no call should be told are undeclared."""
    defaults = FlowOptions(name=function)
    refused: tuple[str, ...] | None = ()
    values, diagnostics = _read(parsed, decorator, FLOW_RULES)
    if values.get("name", function) is None:
        values["name"] = function
    if "limits" in values:
        # Every Limit(...) is checked, as Python builds each; a group given twice
        # keeps its first place and its last value, as a dict does.
        groups = dict(_limit_specs(parsed, values["limits"], diagnostics))
        values["limits"] = tuple(s for s in groups.values() if s is not None)
        refused = tuple(g for g, s in groups.items() if s is None)
    elif isinstance(decorator, cst.Call) and any(
        a.keyword is not None and a.keyword.value == "limits" for a in decorator.args
    ):
        refused = None
    return replace(defaults, **values), refused, diagnostics


def _limit_specs(
    parsed: ParsedModule, written: Value, diagnostics: list[Diagnostic]
) -> Iterator[tuple[str, LimitSpec | None]]:
    """The groups of `limits`, each number checked where it is written: None for
    a group declared with a number refused."""
    for group, capacity_node, refresh_node in written:
        found: list[Diagnostic] = []
        what = f"the {{}} of limit group {group!r}"
        capacity = _checked(
            parsed,
            capacity_node,
            LIMIT_RULES["capacity"],
            what.format("capacity"),
            found,
        )
        refresh = None
        if refresh_node is not None:
            refresh = _checked(
                parsed,
                refresh_node,
                LIMIT_RULES["refresh"],
                what.format("refresh"),
                found,
                LIMIT_RULES["refresh"].hint.removeprefix(", "),
            )
        diagnostics += found
        if found:
            yield group, None
            continue
        refresh = None if refresh is None else float(refresh)
        yield group, LimitSpec(group, capacity, refresh, parsed.span(capacity_node))


def _checked(
    parsed: ParsedModule,
    node: cst.BaseExpression,
    rule: Rule,
    what: str,
    diagnostics: list[Diagnostic],
    hint: str | None = None,
) -> Value:
    """A literal checked against its rule; a diagnostic at it when it fails."""
    try:
        value = literal(node, rule.requirement)
    except NotLiteral as exc:
        diagnostics.append(_not_literal(parsed, what, exc))
        return None
    if not rule.has_type(value):
        diagnostics.append(
            error(
                parsed.span(node),
                Code.OPTION_TYPE,
                rule.message(what),
                hint,
            )
        )
    elif not rule.in_range(value):
        diagnostics.append(
            error(
                parsed.span(node),
                Code.OPTION_RANGE,
                rule.message(what),
                hint,
            )
        )
    return value


def _read(
    parsed: ParsedModule,
    decorator: cst.BaseExpression,
    rules: Mapping[str, Rule],
) -> tuple[dict[str, Value], list[Diagnostic]]:
    if not isinstance(decorator, cst.Call):
        return {}, []
    values: dict[str, Value] = {}
    diagnostics: list[Diagnostic] = []
    for argument in decorator.args:
        keyword = argument.keyword
        if keyword is None or argument.star:
            diagnostics.append(
                error(
                    parsed.span(argument),
                    Code.DECORATOR_SHAPE,
                    "decorator options are keyword arguments",
                    "write them as name=value, e.g. @node(retries=3)",
                )
            )
            continue
        diagnostic = _read_one(parsed, keyword, argument.value, rules, values)
        if diagnostic is not None:
            diagnostics.append(diagnostic)
    return values, diagnostics


# What users of other libraries write for an option (Prefect's
# `retry_delay_seconds`, LangGraph's `recursion_limit`), which no spelling
# distance finds: `retry` is nearer `retry_on` than `retries`.
_FAMILIAR: Final = {
    "retry": "retries",
    "max_retries": "retries",
    "num_retries": "retries",
    "retry_delay": "wait",
    "retry_delay_seconds": "wait",
    "delay": "wait",
    "backoff_factor": "backoff",
    "timeout_seconds": "timeout",
    "max_concurrency": "concurrency",
    "recursion_limit": "max_visits",
    "max_iterations": "max_visits",
}


def _read_one(
    parsed: ParsedModule,
    keyword: cst.Name,
    node: cst.BaseExpression,
    rules: Mapping[str, Rule],
    values: dict[str, Value],
) -> Diagnostic | None:
    """One `key=value`: a key that is wrong is reported at the key, a value at itself."""
    key, span = keyword.value, parsed.span(node)
    rule = rules.get(key)
    if rule is None:
        familiar = _FAMILIAR.get(key)
        close = (
            [familiar]
            if familiar in rules
            else difflib.get_close_matches(key, list(rules), n=1)
        )
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else f"the options are: {', '.join(rules)}"
        )
        where = parsed.span(keyword)
        return error(where, Code.UNKNOWN_OPTION, f"unknown option '{key}'", hint)
    if key in values:
        where = parsed.span(keyword)
        return error(where, Code.DECORATOR_SHAPE, f"option '{key}' is given twice")
    what = f"option '{key}'"
    try:
        if rule.kind == "exceptions":
            value = read_exception_names(node)
            if not value:
                return error(span, Code.OPTION_RANGE, rule.message(what))
        elif rule.kind == "function":
            value = read_function_name(node)
        elif rule.kind == "limits":
            value = read_limits(parsed, node)
        else:
            found: list[Diagnostic] = []
            value = _checked(parsed, node, rule, what, found)
            if found:
                return found[0]
            if rule.kind == "real" and value is not None:
                value = float(value)
    except NotLiteral as exc:
        return _not_literal(parsed, what, exc)
    except WrongType as exc:
        return error(
            parsed.span(exc.node),
            Code.OPTION_TYPE,
            rule.message(what) + exc.detail,
            exc.hint,
        )
    values[key] = value
    return None


def _not_literal(parsed: ParsedModule, what: str, exc: NotLiteral) -> Diagnostic:
    if _is_literal(exc.node):
        return error(
            parsed.span(exc.node), Code.OPTION_TYPE, must_be(what, exc.expected)
        )
    return error(
        parsed.span(exc.node),
        Code.NOT_LITERAL,
        f"{must_be(what, exc.expected)}, written as a literal",
        "kiln reads options without running your code",
    )
