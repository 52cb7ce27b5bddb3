"""read_node_options / read_flow_options: decorator arguments to validated options.

Example input: `@node(retries=3, wiat=0.5)` on `def fetch`. Output: the
options with every value read as a literal, and a diagnostic at `wiat`
("unknown option 'wiat'; did you mean 'wait'?"). Nothing is evaluated: a value
that is not a literal is an error at its position.

The tables below are the whole specification of the options: their type and
their range. Rules between options and the node's kind are `collect`'s.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Final, final

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.ir import FlowOptions, LimitSpec, NodeOptions
from kilnc.parse import ParsedModule
from kilnc.syntax import dotted

Value = Any  # a literal read from the source: int, float, str, bool, None or a tuple
Reader = Callable[[cst.BaseExpression], Value]


class NotLiteral(Exception):
    """A value the compiler cannot read statically; carries the offending node."""

    def __init__(self, node: cst.CSTNode, expected: str) -> None:
        super().__init__(expected)
        self.node = node
        self.expected = expected


@final
@dataclass(frozen=True, slots=True)
class OptionRule:
    read: Reader
    check: Callable[[Value], bool]
    requirement: str  # completes "must be ...": shown when `check` fails


# --- literal readers --------------------------------------------------------------


def _number(node: cst.BaseExpression) -> int | float:
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return -_number(node.expression)
    if isinstance(node, cst.Integer | cst.Float):
        value = node.evaluated_value
        if isinstance(value, int | float):
            return value
    raise NotLiteral(node, "a number")


def read_int(node: cst.BaseExpression) -> Value:
    try:
        value = _number(node)
    except NotLiteral as exc:
        raise NotLiteral(exc.node, "an integer") from None
    if not isinstance(value, int):
        raise NotLiteral(node, "an integer")
    return value


def read_float(node: cst.BaseExpression) -> Value:
    return float(_number(node))


def read_optional_float(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.Name) and node.value == "None":
        return None
    return read_float(node)


def read_optional_int(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.Name) and node.value == "None":
        return None
    return read_int(node)


def read_bool(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return node.value == "True"
    raise NotLiteral(node, "True or False")


def read_str(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        value = node.evaluated_value
        if isinstance(value, str):
            return value
    raise NotLiteral(node, "a string literal")


def read_optional_str(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.Name) and node.value == "None":
        return None
    return read_str(node)


def _dotted(node: cst.BaseExpression) -> str:
    name = dotted(node)
    if name is None:
        raise NotLiteral(node, "an exception class name")
    return name


def read_exception_names(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.Tuple):
        return tuple(_dotted(element.value) for element in node.elements)
    return (_dotted(node),)


def read_function_name(node: cst.BaseExpression) -> Value:
    if isinstance(node, cst.Name):
        return node.value
    raise NotLiteral(node, "the name of a function of this module")


def read_limits(node: cst.BaseExpression) -> Value:
    """`{"llm": Limit(8, refresh=1.0)}` to ``(("llm", capacity node, refresh node), ...)``.

    The numbers stay nodes here: `read_flow_options` checks each one at its position.
    """
    if not isinstance(node, cst.Dict):
        raise NotLiteral(node, 'a dict literal like {"llm": Limit(8, refresh=1.0)}')
    limits: list[tuple[str, cst.BaseExpression, cst.BaseExpression | None]] = []
    for element in node.elements:
        if not isinstance(element, cst.DictElement):
            raise NotLiteral(element, "a group name and a Limit(...)")
        key = read_str(element.key)
        assert isinstance(key, str)
        limits.append((key, *_limit_arguments(element.value)))
    return tuple(limits)


def _limit_arguments(
    node: cst.BaseExpression,
) -> tuple[cst.BaseExpression, cst.BaseExpression | None]:
    """The capacity and refresh of `Limit(capacity, refresh=None)`, as written."""
    expected = "Limit(capacity) or Limit(capacity, refresh=seconds)"
    if not isinstance(node, cst.Call) or dotted(node.func) not in (
        "Limit",
        "kiln.Limit",
    ):
        raise NotLiteral(node, expected)
    positional = [a.value for a in node.args if a.keyword is None and not a.star]
    keywords = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
    if (
        any(a.star for a in node.args)
        or len(positional) > 2
        or set(keywords)
        - {
            "capacity",
            "refresh",
        }
    ):
        raise NotLiteral(node, expected)
    named = [keywords.get("capacity"), keywords.get("refresh")]
    values = [*positional, *[None] * (2 - len(positional))]
    capacity, refresh = (
        v if n is None else n for v, n in zip(values, named, strict=True)
    )
    if capacity is None:
        raise NotLiteral(node, expected)
    return capacity, refresh


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


# --- the tables ----------------------------------------------------------------------


def _non_negative(value: Value) -> bool:
    return isinstance(value, int | float) and value >= 0


def _at_least_one(value: Value) -> bool:
    return value is None or (isinstance(value, int | float) and value >= 1)


def _positive_or_none(value: Value) -> bool:
    return value is None or (isinstance(value, int | float) and value > 0)


def _non_empty_or_none(value: Value) -> bool:
    return value is None or _non_empty(value)


def _non_empty(value: Value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _anything(value: Value) -> bool:
    return True


NODE_OPTIONS: Final[dict[str, OptionRule]] = {
    "name": OptionRule(read_str, _non_empty, "a non-empty string"),
    "retries": OptionRule(read_int, _non_negative, "an integer >= 0"),
    "wait": OptionRule(read_float, _non_negative, "a number >= 0"),
    "backoff": OptionRule(read_float, _at_least_one, "a number >= 1"),
    "retry_on": OptionRule(read_exception_names, _anything, ""),
    "timeout": OptionRule(read_optional_float, _positive_or_none, "a number > 0"),
    "fallback": OptionRule(read_function_name, _anything, ""),
    "limit": OptionRule(
        read_optional_str, _non_empty_or_none, "a non-empty group name"
    ),
    "cache": OptionRule(read_bool, _anything, ""),
    "thread": OptionRule(read_bool, _anything, ""),
    "max_visits": OptionRule(read_optional_int, _at_least_one, "an integer >= 1"),
    "local": OptionRule(read_bool, _anything, ""),
}

FLOW_OPTIONS: Final[dict[str, OptionRule]] = {
    "name": OptionRule(read_str, _non_empty, "a non-empty string"),
    "max_visits": OptionRule(read_int, _at_least_one, "an integer >= 1"),
    "limits": OptionRule(read_limits, _anything, ""),
    "concurrency": OptionRule(read_optional_int, _at_least_one, "an integer >= 1"),
}


def read_node_options(
    parsed: ParsedModule, decorator: cst.BaseExpression, function: str
) -> tuple[NodeOptions, list[Diagnostic]]:
    defaults = NodeOptions(name=function)
    values, diagnostics = _read(parsed, decorator, NODE_OPTIONS)
    return replace(defaults, **values), diagnostics


def read_flow_options(
    parsed: ParsedModule, decorator: cst.BaseExpression, function: str
) -> tuple[FlowOptions, list[Diagnostic]]:
    defaults = FlowOptions(name=function)
    values, diagnostics = _read(parsed, decorator, FLOW_OPTIONS)
    if "limits" in values:
        values["limits"] = tuple(_limit_specs(parsed, values["limits"], diagnostics))
    return replace(defaults, **values), diagnostics


def _limit_specs(
    parsed: ParsedModule, written: Value, diagnostics: list[Diagnostic]
) -> Iterator[LimitSpec]:
    """The groups of `limits`, each number checked where it is written."""
    for group, capacity_node, refresh_node in written:
        try:
            capacity = read_int(capacity_node)
            refresh = (
                None if refresh_node is None else read_optional_float(refresh_node)
            )
        except NotLiteral as exc:
            diagnostics.append(_not_literal(parsed, "limits", exc))
            continue
        if capacity < 1:
            diagnostics.append(
                error(
                    parsed.span(capacity_node),
                    Code.OPTION_RANGE,
                    f"the capacity of limit group {group!r} must be an integer >= 1",
                )
            )
        elif refresh is not None and not refresh > 0:
            assert refresh_node is not None
            diagnostics.append(
                error(
                    parsed.span(refresh_node),
                    Code.OPTION_RANGE,
                    f"the refresh of limit group {group!r} must be a number of seconds > 0",
                    "or leave it out for a cap on calls in flight",
                )
            )
        else:
            yield LimitSpec(group, capacity, refresh, parsed.span(capacity_node))


def _read(
    parsed: ParsedModule,
    decorator: cst.BaseExpression,
    rules: dict[str, OptionRule],
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
        diagnostic = _read_one(parsed, keyword.value, argument.value, rules, values)
        if diagnostic is not None:
            diagnostics.append(diagnostic)
    return values, diagnostics


def _read_one(
    parsed: ParsedModule,
    key: str,
    node: cst.BaseExpression,
    rules: dict[str, OptionRule],
    values: dict[str, Value],
) -> Diagnostic | None:
    span = parsed.span(node)
    rule = rules.get(key)
    if rule is None:
        close = difflib.get_close_matches(key, rules, n=1)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else f"the options are: {', '.join(rules)}"
        )
        return error(span, Code.UNKNOWN_OPTION, f"unknown option '{key}'", hint)
    if key in values:
        return error(span, Code.DECORATOR_SHAPE, f"option '{key}' is given twice")
    try:
        value = rule.read(node)
    except NotLiteral as exc:
        return _not_literal(parsed, key, exc)
    if not rule.check(value):
        return error(
            span, Code.OPTION_RANGE, f"option '{key}' must be {rule.requirement}"
        )
    values[key] = value
    return None


def _not_literal(parsed: ParsedModule, key: str, exc: NotLiteral) -> Diagnostic:
    if _is_literal(exc.node):
        return error(
            parsed.span(exc.node),
            Code.OPTION_TYPE,
            f"option '{key}' must be {exc.expected}",
        )
    return error(
        parsed.span(exc.node),
        Code.NOT_LITERAL,
        f"option '{key}' must be {exc.expected}, written as a literal",
        "kiln reads options without running your code",
    )
