"""read_node_forms: nodes made or named other than by `@node` on their def.

Example input::

    from kiln import node

    async def _fetch(url: str) -> bytes: ...

    fetch = node(retries=2)(_fetch)   # marks `_fetch`, as `@node(retries=2)` would
    get = fetch                       # another name of the node

    class Ops:
        fetch = staticmethod(_fetch)  # `Ops.fetch` is the node too

    retrying = node(retries=3)        # KLN206: a decorator kiln cannot follow

Output: the marking of `_fetch` (its options read from `node(retries=2)`,
by `collect_definitions`), the aliases `fetch` -> `_fetch`, `get` ->
`fetch` and `Ops.fetch` -> `_fetch`, which the project's resolver follows to
the node, and a diagnostic for each use of `node` or `flow` kiln cannot read
(which would leave the functions it marks plain, their options lost).

`node(...)` returns the very function it marks, so every name of it is one
node, named after the function, with the options of the last mark (Python
keeps the last); kiln refuses a second mark rather than pick one silently. An
alias is a name bound once, by `name = dotted.name` at the top of the
module or `name = staticmethod(dotted.name)` in a module-level class's body;
a name bound again, or in a block, is a value kiln does not follow
(`check_node_values` warns where a flow calls one).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import final

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.final_bindings import global_names
from kilnc.front import (
    FLOW_DECORATORS,
    KILN_DECORATORS,
    NODE_DECORATORS,
    ParsedModule,
)
from kilnc.names import identifier, imported_names, name_uses
from kilnc.syntax import chain_root, code, dotted
from kilnc.walk import walk

_READ = (
    "kiln reads node only as @node on a module-level def, or as "
    "'name = node(...)(function)' at the top of the module"
)
_DECORATE = "write @node(...) on the def of the function, as kiln reads it"


@final
@dataclass(frozen=True, slots=True)
class Marking:
    """`alias = node(...)(function)`, `node(function)`, or the call alone, at module level."""

    index: int  # the statement's place in the module's body
    decorator: cst.BaseExpression = field(repr=False)  # `node(...)` or `node`
    function: cst.FunctionDef = field(repr=False)
    alias: str | None  # the name the statement binds to the node


@final
@dataclass(frozen=True, slots=True)
class _CallForm:
    """`alias = node(...)(target)`, `node(target)`, `flow(...)(target)`."""

    decorator: cst.BaseExpression  # `node(...)` or `node`, as a decorator would be
    target: cst.BaseExpression
    alias: str | None
    is_node: bool


@final
@dataclass(frozen=True, slots=True)
class NodeForms:
    markings: tuple[Marking, ...]
    aliases: dict[str, str]  # `get` or `Ops.fetch`: the dotted name it is bound to
    diagnostics: tuple[Diagnostic, ...]


@functools.lru_cache(maxsize=64)  # collect and check_imported_exceptions both ask
def read_node_forms(parsed: ParsedModule) -> NodeForms:
    markings: list[Marking] = []
    read: set[cst.CSTNode] = set()  # the uses of `node` the markings account for
    diagnostics: list[Diagnostic] = []
    marked: dict[str, cst.CSTNode] = {}  # each function marked a node, by what
    for index, statement in enumerate(parsed.module.body):
        if isinstance(statement, cst.FunctionDef) and _decorated(parsed, statement):
            marked[identifier(statement.name.value)] = statement.name
        form = _call_form(parsed, statement)
        if form is None:
            continue
        decorator, target = form.decorator, form.target
        read.add(decorator.func if isinstance(decorator, cst.Call) else decorator)
        problem = _refused(parsed, index, form, marked)
        if problem is not None:
            diagnostics.append(problem)
            continue
        assert isinstance(target, cst.Name)
        function = _definition(parsed.module.body[:index], target.value)
        assert function is not None
        marked[identifier(target.value)] = decorator
        markings.append(Marking(index, decorator, function, form.alias))
    diagnostics += _stray_uses(parsed, read)
    once = _bound_once(parsed.module.body, global_names(parsed.module))
    aliases = _aliases(parsed, once)
    for marking in markings:
        if marking.alias is not None and marking.alias in once:
            aliases[marking.alias] = identifier(marking.function.name.value)
    return NodeForms(tuple(markings), aliases, tuple(diagnostics))


def _call_form(parsed: ParsedModule, statement: cst.CSTNode) -> _CallForm | None:
    """`alias = node(...)(target)` (or `node(target)`, `flow(...)`), if it is one."""
    value, alias = _assigned(statement)
    if not isinstance(value, cst.Call) or len(value.args) != 1:
        return None
    argument = value.args[0]
    if argument.keyword is not None or argument.star:
        return None
    func = value.func
    names = parsed.qualified_names(func)
    if not names & KILN_DECORATORS and isinstance(func, cst.Call):
        names = parsed.qualified_names(func.func)  # `node(...)(f)`, else `node(f)`
    if names & KILN_DECORATORS:
        return _CallForm(func, argument.value, alias, bool(names & NODE_DECORATORS))
    return None


def _assigned(statement: cst.CSTNode) -> tuple[cst.BaseExpression | None, str | None]:
    """The value of `name = value`, `name: T = value` or a bare expression, and the name."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None, None
    small = statement.body[0]
    if isinstance(small, cst.Expr):
        return small.value, None
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        name = identifier(target.value) if isinstance(target, cst.Name) else None
        return small.value, name
    if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
        return small.value, identifier(small.target.value)
    return None, None


def _what(target: cst.BaseExpression) -> str:
    """What a node form marks that has no name: a lambda, or the value of an expression."""
    if isinstance(target, cst.Lambda):
        return "a lambda"
    if isinstance(target, cst.Call):
        return f"the value of '{code(target.func)}(...)'"
    return f"the value of '{code(target)}'"


def _refused(
    parsed: ParsedModule,
    index: int,
    form: _CallForm,
    marked: dict[str, cst.CSTNode],
) -> Diagnostic | None:
    """Why kiln cannot read a call form as the node it makes, if it cannot."""
    target, alias = form.target, form.alias
    span = parsed.span(form.decorator)
    written = dotted(target) or "the function"
    if not form.is_node:
        return error(
            span,
            Code.NODE_FORM,
            "kiln reads flow only as @flow on a module-level def; the function "
            "this marks would run as plain Python, not compiled",
            f"write @flow(...) on the def of '{written}'",
        )
    definition = (
        _definition(parsed.module.body[:index], target.value)
        if isinstance(target, cst.Name)
        else None
    )
    if definition is None and dotted(target) is None:  # `node(lambda t: t[:10])`
        named = alias or "summarize"
        return error(
            span,
            Code.NODE_FORM,
            f"node(...) marks {_what(target)}, which has no def kiln can read as a node",
            f"write it as a def: @node(...) def {named}(...): ...",
        )
    if definition is None:
        return error(
            span,
            Code.NODE_FORM,
            f"node(...) marks '{written}', which is no function defined above it in "
            "this module, so kiln cannot read it as a node",
            "write a node of this module that calls it: "
            f"@node(...) async def fetch(...): return await {written}(...)",
        )
    name = identifier(definition.name.value)
    if _flow_decorated(parsed, definition):
        return error(
            span,
            Code.NODE_AND_FLOW,
            "a function is a node or a flow, not both",
            "keep one of @node and @flow",
        )
    if name in marked:
        where = parsed.span(marked[name]).location()
        return error(
            span,
            Code.NODE_FORM,
            f"'{name}' is already marked a node at {where}; node(...) marks the "
            "function itself and returns it, so each of its names would be one "
            "node, with the options of the last mark",
            "mark it once; for a node with options of its own, write a def that "
            f"calls it: @node(...) async def {alias or 'other'}(...): return await "
            f"{name}(...)",
        )
    return None


def _decorated(parsed: ParsedModule, function: cst.FunctionDef) -> bool:
    return any(_names(parsed, d) & NODE_DECORATORS for d in function.decorators)


def _flow_decorated(parsed: ParsedModule, function: cst.FunctionDef) -> bool:
    return any(_names(parsed, d) & FLOW_DECORATORS for d in function.decorators)


def _names(parsed: ParsedModule, decorator: cst.Decorator) -> frozenset[str]:
    expression = decorator.decorator
    target = expression.func if isinstance(expression, cst.Call) else expression
    return parsed.qualified_names(target)


def _definition(
    statements: Sequence[cst.BaseStatement], name: str
) -> cst.FunctionDef | None:
    """The last module-level def of `name` among `statements`."""
    found = None
    for statement in statements:
        if isinstance(statement, cst.FunctionDef) and identifier(
            statement.name.value
        ) == identifier(name):
            found = statement
    return found


def _stray_uses(parsed: ParsedModule, read: set[cst.CSTNode]) -> Iterator[Diagnostic]:
    """Every use of `node` or `flow` that is not a decorator or a call form read."""
    finder = _KilnUses(parsed)
    walk(parsed.module, finder)
    for use in finder.found:
        if use in read:
            continue
        what = "flow" if parsed.qualified_names(use) & FLOW_DECORATORS else "node"
        message = (
            f"kiln reads {what} only as @{what} on a module-level def"
            if what == "flow"
            else _READ
        )
        yield error(
            parsed.span(use),
            Code.NODE_FORM,
            f"{message}; a function marked here is no {what} when compiled",
            _DECORATE if what == "node" else "write @flow(...) on the def",
        )


class _KilnUses(cst.CSTVisitor):
    """Names and attributes that are `kiln.node` or `kiln.flow`, outside imports
    and decorators (collect_definitions reads those, KLN201 and KLN204)."""

    def __init__(self, parsed: ParsedModule) -> None:
        self.parsed = parsed
        self.found: list[cst.Name | cst.Attribute] = []
        # Only a name the module binds by importing can be kiln's: asking the
        # scopes of every name would link each access to each assignment of it.
        self.imported = _imported_names(parsed.module)

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_Decorator(self, node: cst.Decorator) -> bool:
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if self._kiln_s(node):
            self.found.append(node)
            return False
        return True

    def visit_Name(self, node: cst.Name) -> None:
        if self._kiln_s(node):
            self.found.append(node)

    def _kiln_s(self, node: cst.Name | cst.Attribute) -> bool:
        root = chain_root(node)
        return (
            isinstance(root, cst.Name)
            and root.value in self.imported
            and bool(self.parsed.qualified_names(node) & KILN_DECORATORS)
        )


def _imported_names(module: cst.Module) -> frozenset[str]:
    """The names the module's import statements bind, wherever they are."""
    found = _ImportedNames()
    walk(module, found)
    return frozenset(found.names)


class _ImportedNames(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        bound: cst.BaseExpression = (
            node.asname.name if node.asname is not None else node.name
        )
        root = chain_root(bound)  # `import a.b` binds `a`
        if isinstance(root, cst.Name):
            self.names.add(root.value)


def _aliases(parsed: ParsedModule, once: frozenset[str]) -> dict[str, str]:
    """`get = fetch` and `class Ops: fetch = staticmethod(fetch)`, bound once each
    (`once`: the module's names bound once)."""
    body = parsed.module.body
    found: dict[str, str] = {}
    for statement in body:
        value, name = _assigned(statement)
        target = _aliased(parsed, value)
        if name is not None and name in once and target is not None:
            found[name] = target
        if isinstance(statement, cst.ClassDef):
            owner = identifier(statement.name.value)
            if owner not in once or not isinstance(statement.body, cst.IndentedBlock):
                continue
            inner = _bound_once(statement.body.body, frozenset())
            for line in statement.body.body:
                value, name = _assigned(line)
                target = _aliased(parsed, value, method=True)
                if name is not None and name in inner and target is not None:
                    found[f"{owner}.{name}"] = target
    return found


def _aliased(
    parsed: ParsedModule, value: cst.BaseExpression | None, method: bool = False
) -> str | None:
    """The dotted name a value is, read through `staticmethod(...)` in a class."""
    if method and isinstance(value, cst.Call) and len(value.args) == 1:
        wrapper = parsed.qualified_names(value.func)
        if "builtins.staticmethod" in wrapper or (
            not wrapper and dotted(value.func) == "staticmethod"
        ):
            value = value.args[0].value
    written = dotted(value) if value is not None else None
    return ".".join(map(identifier, written.split("."))) if written else None


def _bound_once(
    statements: Sequence[cst.BaseStatement], declared: frozenset[str]
) -> frozenset[str]:
    """The names exactly one of the statements binds, none a function rebinds."""
    counts: dict[str, int] = {}
    for statement in statements:
        for name in name_uses(statement).writes | imported_names(statement):
            counts[name] = counts.get(name, 0) + 1
    return frozenset(n for n, c in counts.items() if c == 1 and n not in declared)
