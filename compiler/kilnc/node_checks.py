"""check_node: the rules between a node's options, its function and its module.

Example input: `@node(thread=True, retry_on=(int,), fallback=later)` on
`async def fetch(url, error)`, with `def later` below it. Output: four
diagnostics, each at its option: thread=True on an async node (the runtime's
own rule, `kiln.node_kinds.node_kind_problems`), `int` not an exception class
(`classes.py`), a fallback defined below the node (Python runs the decorator
first, so the source would fail with NameError), and a fallback on a node
with a parameter named `error`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from kiln.node_kinds import node_kind_problems
from kiln.options import NODE_RULES
from kilnc.classes import exception_class
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import ModuleDefs, ParsedModule
from kilnc.ir import FlowDef, NodeOptions, Resolver
from kilnc.names import (
    BUILTINS,
    bound_in,
    identifier,
    imported_names,
    name_uses,
    references,
)
from kilnc.syntax import chain_root, dotted, yields


def check_node(
    parsed: ParsedModule,
    decorator: cst.BaseExpression,
    options: NodeOptions,
    function: cst.FunctionDef,
    index: int,
) -> tuple[bool, list[Diagnostic]]:
    """The diagnostics of one `@node` decorator on `function`, the module's
    `index`th statement; and whether its fallback is async."""
    diagnostics: list[Diagnostic] = []

    def report(key: str, code: Code, message: str, hint: str | None = None) -> None:
        node = option_value(decorator, key)
        diagnostics.append(error(parsed.span(node or decorator), code, message, hint))

    params = function.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    every += [
        p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)
    ]
    given = {key: getattr(options, key) for key in NODE_RULES if key != "name"}
    found = None if options.fallback is None else _function(parsed, options.fallback)
    for problem in node_kind_problems(
        given,
        is_async=function.asynchronous is not None,
        streams=yields(function.body),
        parameters=[p.name.value for p in every],
        fallback_async=found is not None and found.asynchronous is not None,
    ):
        report(problem.option, Code.OPTION_RANGE, problem.message, problem.hint)
    before = parsed.module.body[:index]
    retry_on = option_value(decorator, "retry_on")
    if retry_on is not None:
        diagnostics += _check_retry_on(parsed, retry_on, before)
    fallback_async = False
    if options.fallback is not None:
        definition = _function(parsed, options.fallback)
        if definition is None:
            report(
                "fallback",
                Code.UNKNOWN_FALLBACK,
                f"fallback '{options.fallback}' is not a function defined in this module",
                "define it at module level: def fallback(*args, error: Exception) -> T",
            )
        elif _function(parsed, options.fallback, before) is None:
            report(
                "fallback",
                Code.UNKNOWN_FALLBACK,
                f"fallback '{options.fallback}' is defined below the node, where "
                "the decorator cannot see it yet",
                "define the fallback above the node: Python runs the decorator first",
            )
        else:
            fallback_async = definition.asynchronous is not None
    return fallback_async, diagnostics


def _check_retry_on(
    parsed: ParsedModule,
    retry_on: cst.BaseExpression,
    before: Sequence[cst.BaseStatement],
) -> Iterator[Diagnostic]:
    """Each name of `retry_on` is defined above the node and, as far as the source
    shows, an exception class."""
    star = parsed.star_import
    for element in retry_on.elements if isinstance(retry_on, cst.Tuple) else ():
        name = dotted(element.value)
        if name is None:
            continue  # options.py reported it
        head = _names(element.value)[0]
        defined = head.value in parsed.global_names or head.value in BUILTINS
        if not defined and not star:
            yield error(
                parsed.span(head),
                Code.UNDEFINED_NAME,
                f"name '{head.value}' is not defined",
                "retry_on names exception classes of this module or builtins",
            )
        elif head.value in parsed.global_names and not _bound_in(before, head.value):
            yield error(
                parsed.span(head),
                Code.UNDEFINED_NAME,
                f"name '{head.value}' is defined below the node, where the "
                "decorator cannot see it yet",
                "define it above the node: Python runs the decorator first",
            )
        elif exception_class(before, name, star=star) is False:
            yield error(
                parsed.span(element.value),
                Code.OPTION_TYPE,
                NODE_RULES["retry_on"].message("option 'retry_on'"),
                f"'{name}' is not an exception class",
            )


def _bound_in(statements: Sequence[cst.BaseStatement], name: str) -> bool:
    for statement in statements:
        if isinstance(statement, cst.FunctionDef | cst.ClassDef):
            if identifier(statement.name.value) == name:
                return True
        elif name in name_uses(statement).writes | imported_names(statement):
            return True
    return False


def option_value(decorator: cst.BaseExpression, key: str) -> cst.BaseExpression | None:
    if isinstance(decorator, cst.Call):
        for argument in decorator.args:
            if argument.keyword is not None and argument.keyword.value == key:
                return argument.value
    return None


def _names(node: cst.BaseExpression) -> list[cst.Name]:
    """The head names of `retry_on=(A, mod.B)` (or of one of its elements)."""
    elements = (
        [e.value for e in node.elements] if isinstance(node, cst.Tuple) else [node]
    )
    heads = []
    for element in elements:
        head = element
        while isinstance(head, cst.Attribute):
            head = head.value
        if isinstance(head, cst.Name):
            heads.append(head)
    return heads


def _function(
    parsed: ParsedModule,
    name: str,
    statements: Sequence[cst.BaseStatement] | None = None,
) -> cst.FunctionDef | None:
    for statement in parsed.module.body if statements is None else statements:
        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
            return statement
    return None


def check_flows_in_nodes(defs: ModuleDefs, resolve: Resolver) -> list[Diagnostic]:
    """A node that calls or names an async or streaming flow: its code is copied
    as it is, and in the compiled module a flow is an instance whose call runs
    its sync entry, so awaiting what it returns fails where the source's call
    works (KLN316). A plain sync flow's call gives its value either way."""
    found: list[Diagnostic] = []
    for statement in defs.parsed.module.body:
        if not isinstance(statement, cst.FunctionDef):
            continue
        node = defs.nodes.get(identifier(statement.name.value))
        if node is None:
            continue
        local = bound_in(statement)
        for reference in references(statement.body, calls=True):
            root = chain_root(reference)
            if isinstance(root, cst.Name) and identifier(root.value) in local:
                continue
            callee = resolve(reference)
            if callee is None or not _awaited_flow(callee[0]):
                continue
            message = (
                f"node '{node.name}' uses flow '{callee[0].name}'; a node runs as it "
                "is written, and a compiled flow called there runs its sync entry"
            )
            hint = "call the flow from a flow, and pass the node what it returns"
            found.append(
                error(defs.parsed.span(reference), Code.FLOW_AS_VALUE, message, hint)
            )
    return found


def _awaited_flow(callee: object) -> bool:
    """A flow whose source call returns what must be awaited or iterated."""
    return isinstance(callee, FlowDef) and (callee.is_async or callee.streams)
