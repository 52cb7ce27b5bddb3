"""helper_calls: a flow calls a plain function of the project that calls a node.

Example input::

    @node(retries=2)
    async def flaky(tag: str) -> str: ...

    async def guarded(tag: str) -> str:       # a plain function, no node
        try:
            return await flaky(tag)           # KLN317 here
        except ValueError:
            return "invalid"

    @flow
    async def run(tag: str) -> str:
        return await guarded(tag)

Output: a warning at `flaky` in `guarded`. kiln compiles the node calls a
flow makes itself; a function the flow calls runs as it is written, in the
compiled flow as in the source, so its call of a node is a plain call of the
function: without the node's retries, timeout, fallback, limit, cache or
thread. The source runs the same, so this is no error, but the options the
decorator asks for are silently not there. A `try` is refused in a flow
(KLN305), so a helper is where a port moves one: the warning says how to
keep the options. The functions the flow calls are followed into the ones
they call, in any module of the project, a few calls deep; a node's own
calls of nodes are plain as documented, and not warned.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, warning
from kilnc.final_bindings import final_binding
from kilnc.front import ModuleDefs
from kilnc.ir import FlowDef, NodeDef
from kilnc.names import identifier
from kilnc.project import Project
from kilnc.source import Span
from kilnc.syntax import calls_made, chain_root, code, dotted

_DEPTH = 4  # how many plain functions deep a flow's calls are followed


def helper_calls(project: Project) -> list[Diagnostic]:
    """KLN317 at each call of a node with options made by a plain function of the
    project that one of the module's flows calls, directly or through others."""
    defs = project.main
    found: dict[Span, Diagnostic] = {}
    for flow in defs.flows.values():
        for called, helper in _helpers(project, defs, flow.function.body):
            for where, node, owner, function in _node_calls(
                project, helper, _DEPTH, set()
            ):
                span = owner.parsed.span(where.func)
                lost = _lost(span, flow, called, function, where, node)
                found.setdefault(span, lost)
    return list(found.values())


def _helpers(
    project: Project, defs: ModuleDefs, body: cst.CSTNode
) -> Iterator[tuple[str, tuple[ModuleDefs, cst.FunctionDef]]]:
    """The plain functions of the project the code calls, each with its name there."""
    resolve = project.resolver(defs)
    for call in calls_made(body):
        written = dotted(call.func)
        if written is None or resolve(call.func) is not None:
            continue
        root = chain_root(call.func)
        if any("<locals>" in name for name in defs.parsed.qualified_names(root)):
            continue  # a parameter or a local: no function of the module's
        helper = _function(project, defs, written)
        if helper is not None:
            yield written, helper


def _function(
    project: Project, defs: ModuleDefs, written: str
) -> tuple[ModuleDefs, cst.FunctionDef] | None:
    """The module-level `def`, no node's or flow's, that `written` names in `defs`'
    module: its own, or one it imports from the project."""
    head, *path = written.split(".")
    owner: ModuleDefs | None = defs
    name = head
    imported = defs.imports.get(identifier(head))
    if imported is not None:
        found = project.follow(imported, path)
        if found is None or found.attribute is None:
            return None
        owner, name = project.load(found.module), found.attribute
    elif path:
        return None  # a method, an attribute of a value
    if owner is None or owner.local(name) is not None:
        return None
    statement = final_binding(owner.parsed, name)
    if isinstance(statement, cst.FunctionDef):
        return owner, statement
    return None


def _node_calls(
    project: Project,
    helper: tuple[ModuleDefs, cst.FunctionDef],
    depth: int,
    seen: set[cst.FunctionDef],
) -> Iterator[tuple[cst.Call, NodeDef, ModuleDefs, str]]:
    """The calls of a node with options that the function makes, or a plain
    function it calls, each with the module and the function it is written in."""
    owner, function = helper
    if depth == 0 or function in seen:
        return
    seen.add(function)
    resolve = project.resolver(owner)
    for call in calls_made(function.body):
        callee = resolve(call.func)
        if callee is not None:
            node = callee[0]
            if isinstance(node, NodeDef) and not node.asks and _options(node):
                yield call, node, owner, function.name.value
    for _, inner in _helpers(project, owner, function.body):
        yield from _node_calls(project, inner, depth - 1, seen)


def _options(node: NodeDef) -> list[str]:
    """What the node's decorator asks of its calls, as written: `retries=2`."""
    options = node.options
    asked = [
        ("retries", options.retries, 0),
        ("timeout", options.timeout, None),
        ("fallback", options.fallback, None),
        ("limit", options.limit, None),
        ("cache", options.cache, False),
        ("thread", options.thread, False),
    ]
    return [f"{key}={value!r}" for key, value, unset in asked if value != unset]


def _lost(
    span: Span,
    flow: FlowDef,
    called: str,
    function: str,
    call: cst.Call,
    node: NodeDef,
) -> Diagnostic:
    awaited = "await " if node.kind.awaited else ""
    through = "" if called == function else f" through '{called}'"
    return warning(
        span,
        Code.NODE_AS_VALUE,
        f"function '{function}' calls node '{node.name}' here, and flow "
        f"'{flow.name}' calls it{through}: a plain function's call of a node is a "
        "plain call of the node's function, compiled as in the source, without "
        f"its {', '.join(_options(node))}, events or overlap",
        f"call the node in the flow, `{awaited}{code(call.func)}(...)`, and hand "
        "its result to the function; to handle its failure there, give the node "
        "`fallback=` (and `retry_on=` for the errors worth retrying) rather than "
        "a `try` around the call",
    )
