"""check_node_values: a flow that calls a node through a value kiln does not follow.

Example input::

    HANDLERS = {"rev": rev}                 # `rev` a node

    @flow
    async def run(kind: str, x: str) -> str:
        pick = rev if kind == "rev" else upper
        a = await pick(x)                   # KLN317
        b = await HANDLERS[kind](a)         # KLN317
        c = await g(b)                      # KLN317: `g = helper` below `@node def g`
        return "".join(map(rev, c))         # KLN317 at `rev`: handed on as a value

Output: a warning at each such call. kiln compiles the calls a flow makes of
a node by a name it can follow: the node's own, an import of it, an alias
bound once (`get = fetch`, node_forms.py), each the last binding of its
name (final_bindings.py). Through any other value (a conditional, a dict, a
name bound twice, or bound again after the node) the call is a plain call
of the function when compiled, as in the source: the node's retries,
timeout, limit, cache and events are not applied, and it overlaps nothing.
So is every call of a node the flow hands on as a value (`map(rev, c)`,
`sorted(xs, key=score)`, `[rev, upper]`), warned at the node's name unless
a warned call goes through that value. The source runs the same, so this
is no error; but the options the decorator asks for are silently not
there, which is worth saying.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, warning
from kilnc.final_bindings import UNSURE, final_binding, is_import
from kilnc.front import ModuleDefs, ParsedModule
from kilnc.helper_nodes import helper_calls
from kilnc.ir import FlowDef, NodeDef, Resolver
from kilnc.names import identifier, references, target_names
from kilnc.project import Project
from kilnc.syntax import code, dotted
from kilnc.walk import walk

_DEPTH = 8  # how far names bound to names are followed
# Methods whose result is an item of their object, or its items.
_ITEM_METHODS = frozenset({"get", "pop", "setdefault", "values", "items"})
# Calls whose result is (a bound form of) the function they are given.
_WRAPPERS = frozenset({"staticmethod", "classmethod", "functools.partial", "partial"})


def check_node_values(project: Project) -> list[Diagnostic]:
    """KLN317 at each call of a flow through a value that may hold a node, at
    each node a flow names as a value (`map(parse, raw)`), and at each call of a
    node with options by a plain function a flow calls (helper_nodes.py)."""
    defs = project.main
    resolve = project.resolver(defs)
    # The node a name was bound to, though the module binds it again.
    loose = project.resolver(defs, final=False)
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
            held = list(values.held(call.func, _DEPTH, set()))
            if held:
                values.covered.update(reference for _, reference in held)
                nodes = {node.name: node for node, _ in held}  # each once, in order
                found.append(_through_value(defs, flow, call.func, [*nodes.values()]))
                continue
            rebound = loose(call.func)
            if rebound is not None and isinstance(rebound[0], NodeDef):
                found.append(_rebound(defs, flow, call.func, rebound[0]))
        found += passed_as_values(defs, flow, resolve, values.covered)
    return found + helper_calls(project)


def _through_value(
    defs: ModuleDefs, flow: FlowDef, func: cst.BaseExpression, nodes: list[NodeDef]
) -> Diagnostic:
    """Each node the value may be, named: `'upper' or 'rev'`."""
    named = [f"'{node.name}'" for node in nodes]
    which = " or ".join(filter(None, (", ".join(named[:-1]), named[-1])))
    return warning(
        defs.parsed.span(func),
        Code.NODE_AS_VALUE,
        f"flow '{flow.name}' calls '{code(func)}', which may be node "
        f"{which}, through a value kiln does not follow: compiled, "
        "the call runs the plain function, without the node's options, "
        "events or overlap",
        f"call the node by its name where the flow picks it (`if ...: "
        f"await {nodes[0].function}(...)`), or bind one name to it once at "
        "the top of the module",
    )


def _rebound(
    defs: ModuleDefs, flow: FlowDef, func: cst.BaseExpression, node: NodeDef
) -> Diagnostic:
    """A name bound to a node and bound again (`g = helper` below `@node def g`)."""
    written = code(func)
    last = final_binding(defs.parsed, written.partition(".")[0])
    where, again = "the module binds", "then again, to something else"
    if last is UNSURE:
        again = "again in a block or in a function (`global`), which kiln cannot follow"
    elif last is not None and (
        node.module == defs.location.name or not is_import(last)
    ):
        again = (
            f"then again, last at line {defs.parsed.span(last).line}, to something else"
        )
    else:
        where = f"module '{node.module}' binds"
    return warning(
        defs.parsed.span(func),
        Code.NODE_AS_VALUE,
        f"flow '{flow.name}' calls '{written}', which {where} to node "
        f"'{node.name}' and {again}: a flow calls what the name holds when it "
        "runs, after the module has run; compiled, as in the source, that is a "
        "plain call, without the node's options, events or overlap",
        "bind the node's name once, at the top of its module, and give the "
        "other function a name of its own",
    )


def passed_as_values(
    defs: ModuleDefs, flow: FlowDef, resolve: Resolver, covered: set[cst.CSTNode]
) -> Iterator[Diagnostic]:
    """A node the flow names other than to call it (`list(map(parse, raw))`,
    `sorted(raw, key=score)`, `partial(parse, 1)`, `[parse, score]`): what calls
    it calls the plain function, in the compiled flow as in the source. Not a
    node `covered` (named in a value a warned call goes through), nor one an
    asyncio call is given (KLN312 says what to write there)."""
    finder = _Arguments(defs.parsed)
    walk(flow.function.body, finder)
    for reference in references(flow.function.body, calls=False):
        if reference in covered or reference in finder.in_asyncio:
            continue
        found = resolve(reference)
        if found is None or not isinstance(found[0], NodeDef) or found[0].asks:
            continue
        node, argument = found[0], finder.arguments.get(reference)
        call = f"{'await ' if node.kind.awaited else ''}{code(reference)}"
        if argument is None:
            what = f"uses node '{node.name}' as a value"
            hint = f"call the node by its name in the flow, `{call}(...)`"
        else:
            taker = code(argument[0].func)
            what = f"passes node '{node.name}' to '{taker}' as a value"
            hint = _instead(argument[0], argument[1], call)
        yield warning(
            defs.parsed.span(reference),
            Code.NODE_AS_VALUE,
            f"flow '{flow.name}' {what}: compiled, as in the source, what calls it "
            "there calls the plain function, without the node's options, events "
            "or overlap",
            hint + ", which kiln compiles with the node's options",
        )


def _instead(call: cst.Call, argument: cst.Arg, node: str) -> str:
    """What to write for a call given a node: `map(f, xs)` is `[f(x) for x in xs]`."""
    items = [arg.value for arg in call.args if arg is not argument and not arg.keyword]
    if dotted(call.func) == "map" and items and not any(a.star for a in call.args):
        names = ["x", "y", "z"][: len(items)] if len(items) <= 3 else None
        if names is not None:
            source = (
                code(items[0])
                if len(items) == 1
                else f"zip({', '.join(map(code, items))})"
            )
            return (
                f"write the map as a list comprehension, `[{node}({', '.join(names)}) "
                f"for {', '.join(names)} in {source}]`: a fan-out of the node's calls"
            )
    if argument.keyword is not None and argument.keyword.value == "key":
        return (
            f"call the node for each item first, `keys = [{node}(x) for x in items]` "
            "(a fan-out of its calls), and sort or pick by those keys"
        )
    return (
        f"call the node by its name in the flow, `{node}(...)`, and hand on what it "
        f"returns; for each item of a list, `[{node}(x) for x in items]`"
    )


class _Arguments(cst.CSTVisitor):
    """The call each argument is given to, and what asyncio calls are given."""

    def __init__(self, parsed: ParsedModule) -> None:
        self.parsed = parsed
        self.arguments: dict[cst.CSTNode, tuple[cst.Call, cst.Arg]] = {}
        self.in_asyncio: set[cst.CSTNode] = set()

    def visit_Call(self, node: cst.Call) -> None:
        for arg in node.args:
            self.arguments[arg.value] = (node, arg)
        names = self.parsed.qualified_names(node.func)
        if any(name.startswith("asyncio.") for name in names):
            self.in_asyncio.update(references(node, calls=False))


class _Values:
    """Which nodes, if any, a flow's expression may hold, and where each is named."""

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
        # The nodes named in the values a warned call goes through: said there.
        self.covered: set[cst.CSTNode] = set()

    def held(
        self, node: cst.BaseExpression, depth: int, seen: set[cst.CSTNode]
    ) -> Iterator[tuple[NodeDef, cst.BaseExpression]]:
        """The nodes `node` may be (`pick`, `HANDLERS[kind]`, `Ops.run`), each with
        the expression that names it."""
        if depth == 0 or node in seen:
            return
        seen.add(node)
        if isinstance(node, cst.Subscript | cst.Call):  # `HANDLERS[kind]`, `.get(kind)`
            keyed = self.at_key(node)
            for part in _parts(node) if keyed is None else keyed:
                yield from self.held_in(part, depth - 1, seen)
            return
        name = dotted(node)
        if name is None:
            return
        key = ".".join(map(identifier, name.split(".")))
        local = key.partition(".")[0] in self.flow.bound
        for value in (self.own if local else self.module).get(key, []):
            yield from self.held_in(value, depth - 1, seen)

    def at_key(self, node: cst.Subscript | cst.Call) -> list[cst.BaseExpression] | None:
        """What `TOOLS["rev"]` (`TOOLS.get("rev", up)`) may be, where every value
        the name is bound to is a dict display of literal keys: the values at
        that key (or the default); None where kiln cannot tell the key's."""
        found = _literal_key(node)
        if found is None:
            return None
        container, key, default = found
        name = dotted(container)
        if name is None:
            return None
        name = ".".join(map(identifier, name.split(".")))
        local = name.partition(".")[0] in self.flow.bound
        bound = (self.own if local else self.module).get(name, [])
        at: list[cst.BaseExpression] = []
        for value in bound:
            values = _literal_items(value)
            if values is None:
                return None
            at += values.get(key, [] if default is None else [default])
        if default is not None and default not in at:
            self.covered.add(default)  # never what the call calls: no value handed on
        return at or None

    def held_in(
        self, value: cst.BaseExpression, depth: int, seen: set[cst.CSTNode]
    ) -> Iterator[tuple[NodeDef, cst.BaseExpression]]:
        """The nodes a value may be, or hold as an item: `rev`, `{"r": rev}`, `a if t else b`."""
        if depth == 0:
            return
        if isinstance(value, cst.Name | cst.Attribute):
            found = self.resolve(value)
            if found is not None:
                if isinstance(found[0], NodeDef):
                    yield found[0], value
                return
            yield from self.held(value, depth - 1, seen)
            return
        for part in _parts(value):
            yield from self.held_in(part, depth - 1, seen)


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
            if len(value.args) > 1:
                yield value.args[1].value  # the default of `HANDLERS.get(kind, up)`
        elif value.args and dotted(value.func) in _WRAPPERS:
            yield value.args[0].value  # `staticmethod(rev)`, `partial(rev, 1)`
    elif isinstance(value, cst.NamedExpr):
        yield value.value


def _literal_key(
    node: cst.Subscript | cst.Call,
) -> tuple[cst.BaseExpression, object, cst.BaseExpression | None] | None:
    """The container, the literal key and the default of `TOOLS["rev"]` and of
    `TOOLS.get("rev", up)`; None for any other key."""
    if isinstance(node, cst.Subscript):
        index = node.slice[0].slice if len(node.slice) == 1 else None
        if not isinstance(index, cst.Index):
            return None
        container, key, default = node.value, index.value, None
    elif (
        isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "get"
        and 1 <= len(node.args) <= 2
    ):
        container, key = node.func.value, node.args[0].value
        default = node.args[1].value if len(node.args) == 2 else None
    else:
        return None
    literal = _literal(key)
    return None if literal is None else (container, literal, default)


def _literal(node: cst.BaseExpression | None) -> object:
    """The value of a literal string or number; None for any other expression."""
    if isinstance(node, cst.SimpleString | cst.Integer):
        return node.evaluated_value
    return None


def _literal_items(
    value: cst.BaseExpression,
) -> dict[object, list[cst.BaseExpression]] | None:
    """The values of a dict display at each literal key; None for a display with
    another key or a `**` spread, and for any value other than a display."""
    if not isinstance(value, cst.Dict):
        return None
    items: dict[object, list[cst.BaseExpression]] = {}
    for element in value.elements:
        key = _literal(element.key) if isinstance(element, cst.DictElement) else None
        if key is None:
            return None
        items[key] = [element.value]  # a key written twice: the last one's value
    return items


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
        names = target_names(target)
        if isinstance(target, cst.Subscript) and isinstance(target.value, cst.Name):
            names = {identifier(target.value.value)}  # `TOOLS["rev"] = up`: an item
        for name in names:
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
