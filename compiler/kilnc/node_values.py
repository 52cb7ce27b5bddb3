"""check_node_values: a flow that calls a node through a value kiln does not follow.

Example input::

    HANDLERS = {"rev": rev}                 # `rev` a node

    @flow
    async def run(kind: str, x: str) -> str:
        pick = rev if kind == "rev" else upper
        a = await pick(x)                   # KLN317
        return await HANDLERS[kind](a)      # KLN317

Output: a warning at each such call. kiln compiles the calls a flow makes of
a node by a name it can follow: the node's own, an import of it, an alias
bound once (`get = fetch`, node_forms.py). Through any other value (a
conditional, a dict, a name bound twice) the call is a plain call of the
function when compiled, as in the source: the node's retries, timeout,
limit, cache and events are not applied, and it overlaps nothing. The
source runs the same, so this is no error; but the options the decorator
asks for are silently not there, which is worth saying.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, warning
from kilnc.front import ModuleDefs
from kilnc.ir import FlowDef, NodeDef, Resolver
from kilnc.names import identifier, target_names
from kilnc.syntax import code, dotted
from kilnc.walk import walk

_DEPTH = 8  # how far names bound to names are followed
# Methods whose result is an item of their object, or its items.
_ITEM_METHODS = frozenset({"get", "pop", "setdefault", "values", "items"})
# Calls whose result is (a bound form of) the function they are given.
_WRAPPERS = frozenset({"staticmethod", "classmethod", "functools.partial", "partial"})


def check_node_values(defs: ModuleDefs, resolve: Resolver) -> list[Diagnostic]:
    module = _Bindings(module_level=True)
    walk(defs.parsed.module, module)
    found: list[Diagnostic] = []
    for flow in defs.flows.values():
        own = _Bindings(module_level=False)
        walk(flow.function.body, own)
        values = _Values(resolve, own.bound, module.bound, flow)
        for call in own.calls:
            if resolve(call.func) is not None:
                continue
            node = values.node_held(call.func, _DEPTH)
            if node is None:
                continue
            found.append(
                warning(
                    defs.parsed.span(call.func),
                    Code.NODE_AS_VALUE,
                    f"flow '{flow.name}' calls '{code(call.func)}', which may be node "
                    f"'{node.name}', through a value kiln does not follow: compiled, "
                    "the call runs the plain function, without the node's options, "
                    "events or overlap",
                    f"call the node by its name where the flow picks it (`if ...: "
                    f"await {node.function}(...)`), or bind one name to it once at "
                    "the top of the module",
                )
            )
    return found


class _Values:
    """Which node, if any, a flow's expression may hold."""

    def __init__(
        self,
        resolve: Resolver,
        own: dict[str, list[cst.BaseExpression]],
        module: dict[str, list[cst.BaseExpression]],
        flow: FlowDef,
    ) -> None:
        self.resolve = resolve
        self.own = own
        self.module = module
        self.flow = flow

    def node_held(self, node: cst.BaseExpression, depth: int) -> NodeDef | None:
        """A node `node` may be (`pick`, `HANDLERS[kind]`, `Ops.run`)."""
        if depth == 0:
            return None
        if isinstance(node, cst.Subscript | cst.Call):  # `HANDLERS[kind]`, `.get(kind)`
            return self._first(self.node_in(part, depth - 1) for part in _parts(node))
        name = dotted(node)
        if name is None:
            return None
        key = ".".join(map(identifier, name.split(".")))
        local = key.partition(".")[0] in self.flow.bound
        bound = (self.own if local else self.module).get(key, [])
        return self._first(self.node_in(value, depth - 1) for value in bound)

    def node_in(self, value: cst.BaseExpression, depth: int) -> NodeDef | None:
        """A node a value may be, or hold as an item: `rev`, `{"r": rev}`, `a if t else b`."""
        if depth == 0:
            return None
        if isinstance(value, cst.Name | cst.Attribute):
            found = self.resolve(value)
            if found is not None:
                return found[0] if isinstance(found[0], NodeDef) else None
            return self.node_held(value, depth - 1)
        return self._first(self.node_in(v, depth - 1) for v in _parts(value))

    @staticmethod
    def _first(found: Iterator[NodeDef | None]) -> NodeDef | None:
        return next((node for node in found if node is not None), None)


def _parts(value: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    """What a value may be, or hold as an item, that is written in it."""
    if isinstance(value, cst.Subscript):
        yield value.value
    elif isinstance(value, cst.IfExp):
        yield from (value.body, value.orelse)
    elif isinstance(value, cst.BooleanOperation):
        yield from (value.left, value.right)
    elif isinstance(value, cst.Dict):
        yield from (e.value for e in value.elements if isinstance(e, cst.DictElement))
    elif isinstance(value, cst.List | cst.Tuple | cst.Set):
        yield from (e.value for e in value.elements)
    elif isinstance(value, cst.Call):
        held = _container(value)
        if held is not None:
            yield held
        elif value.args and dotted(value.func) in _WRAPPERS:
            yield value.args[0].value  # `staticmethod(rev)`, `partial(rev, 1)`
    elif isinstance(value, cst.NamedExpr):
        yield value.value


def _container(call: cst.Call) -> cst.BaseExpression | None:
    """`HANDLERS` of `HANDLERS.get(kind)` or `HANDLERS.values()`: what the items come from."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in _ITEM_METHODS:
        return func.value
    return None


class _Bindings(cst.CSTVisitor):
    """The values each name is bound to (a loop target: its iterable's items), and
    the calls; at module level its top level's and its classes' (`Ops.run`), in
    a flow's body its own, not its nested functions'."""

    def __init__(self, module_level: bool) -> None:
        self.module_level = module_level
        self.bound: dict[str, list[cst.BaseExpression]] = {}
        self.calls: list[cst.Call] = []
        self._open: list[str | None] = []  # the classes and functions around

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if len(self._open) > (1 if self.module_level else 0):
            return
        owner = self._open[0] if self._open else None
        if self._open and owner is None:
            return  # a function's local
        for name in target_names(target):
            key = f"{owner}.{name}" if owner is not None else name
            self.bound.setdefault(key, []).append(value)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._open.append(identifier(node.name.value) if not self._open else None)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._open.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._open.append(None)
        return self.module_level  # a module's functions may declare globals

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._open.pop()

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target, node.value)

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target, node.iter)  # a container: the items it holds

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind(node.target, node.iter)

    def visit_Call(self, node: cst.Call) -> None:
        if not self.module_level:
            self.calls.append(node)
