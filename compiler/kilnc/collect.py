"""collect_definitions: find the nodes and flows of one parsed module.

Example input::

    from kiln import flow, node as step

    @step(retries=0)
    async def fetch(url: str) -> bytes: ...

    @flow
    async def crawl(urls: list[str]) -> list[bytes]: ...

Output: `ModuleDefs` with `NodeDef(fetch, kind=ASYNC, returns="bytes")`,
`FlowDef(crawl)`, and the module's import table, plus diagnostics for bad
options, decorators in the wrong place, and names using kiln's reserved prefix.
A node marked by a call (`get = node(retries=2)(_get)`) and the other names of a
node (`alias = fetch`) are read by `read_node_forms` (node_forms.py).
Decorators are recognised by qualified name, however they were imported.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping

import libcst as cst

from kiln.options import NODE_RULES
from kilnc.classes import exception_class
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import (
    FLOW_DECORATORS,
    NODE_DECORATORS,
    ImportedName,
    ModuleDefs,
    ParsedModule,
)
from kilnc.import_names import imports_in
from kilnc.ir import RESERVED_PREFIX, FlowDef, NodeDef, NodeKind
from kilnc.names import bound_in, identifier
from kilnc.node_checks import check_node, option_value
from kilnc.node_forms import read_node_forms
from kilnc.options import read_flow_options, read_node_options
from kilnc.resolve import ModuleLocation
from kilnc.syntax import dotted, yields
from kilnc.walk import walk


def collect_definitions(
    parsed: ParsedModule, location: ModuleLocation
) -> tuple[ModuleDefs, list[Diagnostic]]:
    defs, diagnostics = _collected(parsed, location)
    return defs, list(diagnostics)  # the caller's own list, to add to


# A command collects a module twice, to plan the output tree and to compile
# it, from the one parsed module (parse_source's cache); the result is never
# changed by its readers.
@functools.lru_cache(maxsize=16)
def _collected(
    parsed: ParsedModule, location: ModuleLocation
) -> tuple[ModuleDefs, tuple[Diagnostic, ...]]:
    diagnostics: list[Diagnostic] = []
    nodes: dict[str, NodeDef] = {}
    flows: dict[str, FlowDef] = {}
    for index, statement in enumerate(parsed.module.body):
        if not isinstance(statement, cst.FunctionDef | cst.ClassDef):
            continue
        role = _role(parsed, statement)
        if role is None:
            continue
        decorator, is_node = role
        if isinstance(statement, cst.ClassDef):
            diagnostics.append(_not_a_function(parsed, decorator, is_node))
            continue
        diagnostics += _both_roles(parsed, statement)
        # Stacked, every decorator runs and checks its options; the outermost,
        # which runs last, leaves its options on the function.
        for inner in _decorators(parsed, statement, is_node)[1:]:
            if is_node:
                diagnostics += _node(parsed, location, statement, inner, index)[1]
            else:
                diagnostics += _flow(parsed, location, statement, inner)[1]
        if is_node:
            node, found = _node(parsed, location, statement, decorator, index)
            nodes[identifier(node.function)] = node
            diagnostics += found
        else:
            flow, found = _flow(parsed, location, statement, decorator)
            flows[identifier(flow.identifier)] = flow
            diagnostics += found
    # `fetch = node(retries=2)(_fetch)`: the call marks `_fetch` as the decorator would.
    forms = read_node_forms(parsed)
    for marking in forms.markings:
        function, decorator = marking.function, marking.decorator
        node, found = _node(parsed, location, function, decorator, marking.index)
        nodes[identifier(node.function)] = node
        diagnostics += found
    diagnostics += forms.diagnostics
    diagnostics += _nested_definitions(parsed)
    diagnostics += _stray_questions(parsed, flows)
    diagnostics += _reserved_names(parsed)
    imports = _imports(parsed, location)
    defs = ModuleDefs(parsed, location, nodes, flows, imports, forms.aliases)
    return defs, tuple(diagnostics)


def _role(
    parsed: ParsedModule, definition: cst.FunctionDef | cst.ClassDef
) -> tuple[cst.BaseExpression, bool] | None:
    for decorator in definition.decorators:
        expression = decorator.decorator
        target = expression.func if isinstance(expression, cst.Call) else expression
        names = parsed.qualified_names(target)
        if names & NODE_DECORATORS:
            return expression, True
        if names & FLOW_DECORATORS:
            return expression, False
    return None


def _decorators(
    parsed: ParsedModule, definition: cst.FunctionDef, is_node: bool
) -> list[cst.BaseExpression]:
    """The `@node` (or `@flow`) decorators of a definition, outermost first."""
    kinds = NODE_DECORATORS if is_node else FLOW_DECORATORS
    found = []
    for decorator in definition.decorators:
        expression = decorator.decorator
        target = expression.func if isinstance(expression, cst.Call) else expression
        if parsed.qualified_names(target) & kinds:
            found.append(expression)
    return found


def _both_roles(parsed: ParsedModule, definition: cst.FunctionDef) -> list[Diagnostic]:
    """`@flow` and `@node` on one function: the second to run refuses it, as in Python."""
    nodes = _decorators(parsed, definition, True)
    flows = _decorators(parsed, definition, False)
    if not (nodes and flows):
        return []
    order = [d.decorator for d in definition.decorators]
    second = min(nodes[-1], flows[-1], key=order.index)  # applied after the other
    return [
        error(
            parsed.span(second),
            Code.NODE_AND_FLOW,
            "a function is a node or a flow, not both",
            "keep one of @node and @flow",
        )
    ]


def _node(
    parsed: ParsedModule,
    location: ModuleLocation,
    function: cst.FunctionDef,
    decorator: cst.BaseExpression,
    index: int,
) -> tuple[NodeDef, list[Diagnostic]]:
    identifier = function.name.value
    options, diagnostics = read_node_options(parsed, decorator, identifier)
    is_async = function.asynchronous is not None
    streams = yields(function.body)
    kind = {
        (False, False): NodeKind.SYNC,
        (True, False): NodeKind.ASYNC,
        (False, True): NodeKind.STREAM,
        (True, True): NodeKind.ASYNC_STREAM,
    }[(is_async, streams)]
    returns = function.returns
    fallback_async, found = check_node(parsed, decorator, options, function, index)
    node = NodeDef(
        function=identifier,
        module=location.name,
        kind=kind,
        options=options,
        returns=_annotation_code(parsed, returns),
        span=parsed.span(function.name),
        returns_memory=parsed.is_memory(returns),
        fallback_async=fallback_async,
    )
    return node, diagnostics + found


def check_imported_exceptions(
    defs: ModuleDefs, load: Callable[[str], ModuleDefs | None]
) -> Iterator[Diagnostic]:
    """`retry_on` names imported from the project's modules: exception classes there.

    `collect_definitions` checks the module's own names; a name imported from
    a module of the project is looked up where that module defines it (read by
    `load`, never imported). Third-party names are left to the decorator.
    """
    parsed = defs.parsed
    decorators = [
        decorator
        for statement in parsed.module.body
        if isinstance(statement, cst.FunctionDef)
        for decorator in _decorators(parsed, statement, True)
    ]
    decorators += [m.decorator for m in read_node_forms(parsed).markings]
    for decorator in decorators:
        retry_on = option_value(decorator, "retry_on")
        for element in retry_on.elements if isinstance(retry_on, cst.Tuple) else ():
            name = dotted(element.value)
            if name is not None and _imported_exception(defs, name, load) is False:
                yield error(
                    parsed.span(element.value),
                    Code.OPTION_TYPE,
                    NODE_RULES["retry_on"].message("option 'retry_on'"),
                    f"'{name}' is not an exception class",
                )


def _imported_exception(
    defs: ModuleDefs, name: str, load: Callable[[str], ModuleDefs | None]
) -> bool | None:
    head, _, rest = name.partition(".")
    imported = defs.imports.get(identifier(head))
    if imported is None:
        return None
    candidates = [(imported.module, rest)]  # `import pkg.errors as errors`
    if imported.attribute is not None:
        candidates = [
            (imported.module, ".".join(filter(None, [imported.attribute, rest]))),
            (f"{imported.module}.{imported.attribute}", rest),  # a submodule
        ]
    for module, target in candidates:
        found = load(module) if target else None
        if found is not None:
            body = found.parsed.module.body
            known = exception_class(body, target, star=found.parsed.star_import)
            if known is not None:
                return known
    return None


def _flow(
    parsed: ParsedModule,
    location: ModuleLocation,
    function: cst.FunctionDef,
    decorator: cst.BaseExpression,
) -> tuple[FlowDef, list[Diagnostic]]:
    identifier = function.name.value
    options, refused, diagnostics = read_flow_options(parsed, decorator, identifier)
    flow = FlowDef(
        function=function,
        module=location.name,
        is_async=function.asynchronous is not None,
        options=options,
        returns=_annotation_code(parsed, function.returns),
        span=parsed.span(function.name),
        bound=bound_in(function),
        streams=yields(function.body),
        refused_limits=refused,
    )
    return flow, diagnostics


def _annotation_code(
    parsed: ParsedModule, annotation: cst.Annotation | None
) -> str | None:
    if annotation is None:
        return None
    return parsed.module.code_for_node(annotation.annotation)


def _not_a_function(
    parsed: ParsedModule, decorator: cst.BaseExpression, is_node: bool
) -> Diagnostic:
    what = "@node" if is_node else "@flow"
    return error(
        parsed.span(decorator),
        Code.NOT_A_FUNCTION,
        f"{what} decorates a class; it applies to functions",
        "decorate a module-level def or async def",
    )


def _nested_definitions(parsed: ParsedModule) -> Iterator[Diagnostic]:
    """Decorated functions inside classes or functions: kiln reads module-level ones only."""
    for statement in parsed.module.body:
        if not isinstance(statement, cst.FunctionDef | cst.ClassDef):
            continue
        for inner in _inner_definitions(statement):
            role = _role(parsed, inner)
            if role is None:
                continue
            what = "@node" if role[1] else "@flow"
            yield error(
                parsed.span(role[0]),
                Code.NOT_MODULE_LEVEL,
                f"{what} is only read on module-level functions",
                "move the function to the top level of the module",
            )


def _stray_questions(
    parsed: ParsedModule, flows: Mapping[str, FlowDef]
) -> Iterator[Diagnostic]:
    """`kiln.ask` outside a flow's body: only a durable run of a flow can ask."""
    finder = _QuestionFinder(parsed, {flow.function for flow in flows.values()})
    walk(parsed.module, finder)
    for call in finder.stray:
        yield error(
            parsed.span(call),
            Code.QUESTION_SHAPE,
            "ask() is a question a durable run of a flow asks, and this is not a flow's body",
            "call it in a flow's body: 'answer = await ask(\"name\", T, payload)'",
        )


class _QuestionFinder(cst.CSTVisitor):
    def __init__(self, parsed: ParsedModule, flows: set[cst.FunctionDef]) -> None:
        self.parsed = parsed
        self.flows = flows
        self.depth = 0  # the flows' bodies the visit is in
        self.inner = 0  # functions and lambdas inside them: not the flow's body
        self.stray: list[cst.Call] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node in self.flows:
            self.depth += 1
        elif self.depth:
            self.inner += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        if original_node in self.flows:
            self.depth -= 1
        elif self.depth:
            self.inner -= 1

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.inner += 1

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self.inner -= 1

    def visit_Call(self, node: cst.Call) -> None:
        if (not self.depth or self.inner) and self.parsed.is_ask(node.func):
            self.stray.append(node)


def _inner_definitions(
    definition: cst.FunctionDef | cst.ClassDef,
) -> Iterator[cst.FunctionDef | cst.ClassDef]:
    collector = _DefinitionCollector()
    walk(definition.body, collector)
    yield from collector.found


class _DefinitionCollector(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: list[cst.FunctionDef | cst.ClassDef] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.found.append(node)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.found.append(node)


class _ReservedNameFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: dict[str, cst.Name] = {}

    def visit_Name(self, node: cst.Name) -> None:
        reserved = identifier(node.value).lower().startswith(RESERVED_PREFIX)
        if reserved and node.value not in self.found:
            self.found[node.value] = node

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)  # `x._kiln_y` names an attribute, not a variable
        return False


def _reserved_names(parsed: ParsedModule) -> Iterator[Diagnostic]:
    finder = _ReservedNameFinder()
    walk(parsed.module, finder)
    for name, node in finder.found.items():
        yield error(
            parsed.span(node),
            Code.RESERVED_NAME,
            f"'{name}' uses the prefix '{RESERVED_PREFIX}', which kiln reserves for generated code",
            "rename it",
        )


def _imports(parsed: ParsedModule, location: ModuleLocation) -> dict[str, ImportedName]:
    return imports_in(parsed.module.body, parsed, location)
