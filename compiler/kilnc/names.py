"""Which names a piece of code reads and binds: the facts the graph is built from.

Example input: `total = [price(item) for item in cart if item.qty] + extra`.
Output: reads `price`, `cart`, `extra` (`item` is the comprehension's own),
binds `total`. Attribute names and keyword argument names are not variables;
lambda parameters and comprehension targets are local to their expression.
"""

from __future__ import annotations

import builtins
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Final, final

import libcst as cst

from kilnc.ir import RESERVED_PREFIX
from kilnc.syntax import chain_root, dotted
from kilnc.walk import walk

BUILTINS: Final = frozenset(dir(builtins))


def identifier(name: str) -> str:
    """A name as Python sees it: identifiers are NFKC-normalized, so `ﬁnd` is `find`."""
    return name if name.isascii() else unicodedata.normalize("NFKC", name)


@final
@dataclass(slots=True)
class NameUses:
    reads: list[cst.Name] = field(default_factory=list)  # in order, with their nodes
    writes: set[str] = field(default_factory=set)
    effects: bool = False  # calls, awaits, deletions or stores into objects

    @property
    def read_names(self) -> frozenset[str]:
        return frozenset(identifier(name.value) for name in self.reads)


class _Collector(cst.CSTVisitor):
    def __init__(self) -> None:
        self.uses = NameUses()
        self._bound: list[set[str]] = (
            []
        )  # names local to enclosing lambdas/comprehensions

    def _read(self, node: cst.Name) -> None:
        if not any(identifier(node.value) in scope for scope in self._bound):
            self.uses.reads.append(node)

    def visit_Name(self, node: cst.Name) -> bool:
        self._read(node)
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        walk(node.value, self)
        return False

    def visit_Call(self, node: cst.Call) -> None:
        self.uses.effects = True

    def visit_Await(self, node: cst.Await) -> None:
        self.uses.effects = True

    def visit_Del(self, node: cst.Del) -> bool:
        self.uses.effects = True
        self._target(node.target)
        return False

    def visit_Assign(self, node: cst.Assign) -> bool:
        walk(node.value, self)
        for target in node.targets:
            self._target(target.target)
        return False

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        if node.value is not None:
            walk(node.value, self)
        self._target(node.target)
        return False

    def visit_AugAssign(self, node: cst.AugAssign) -> bool:
        walk(node.value, self)
        if isinstance(node.target, cst.Name):
            self._read(node.target)
        self.uses.effects = True
        self._target(node.target)
        return False

    def visit_NamedExpr(self, node: cst.NamedExpr) -> bool:
        walk(node.value, self)
        self._target(node.target)
        return False

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:  # `import a.b` binds `a`
            self.uses.writes.add(identifier(import_local_name(alias)))
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                self.uses.writes.add(identifier(import_local_name(alias)))
        return False

    def visit_For(self, node: cst.For) -> bool:
        walk(node.iter, self)
        self._target(node.target)
        walk(node.body, self)
        if node.orelse is not None:
            walk(node.orelse, self)
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.uses.writes.add(identifier(node.name.value))
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.uses.writes.add(identifier(node.name.value))
        return False

    def visit_MatchAs(self, node: cst.MatchAs) -> bool:
        if node.pattern is not None:
            walk(node.pattern, self)
        if node.name is not None:
            self.uses.writes.add(identifier(node.name.value))
        return False

    def visit_MatchStar(self, node: cst.MatchStar) -> bool:
        if node.name is not None:
            self.uses.writes.add(identifier(node.name.value))
        return False

    def visit_MatchMapping(self, node: cst.MatchMapping) -> None:
        if node.rest is not None:
            self.uses.writes.add(identifier(node.rest.value))

    def visit_MatchKeywordElement(self, node: cst.MatchKeywordElement) -> bool:
        walk(node.pattern, self)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        for default in parameter_defaults(node.params):  # evaluated as it is made
            walk(default, self)
        self._bound.append(parameter_names(node.params))
        walk(node.body, self)
        self._bound.pop()
        return False

    def _comprehension(
        self, elements: tuple[cst.BaseExpression, ...], clauses: cst.CompFor
    ) -> bool:
        walk(clauses.iter, self)  # the first iterable is evaluated outside
        bound: set[str] = set()
        self._bound.append(bound)
        clause: cst.CompFor | None = clauses
        first = True
        while clause is not None:
            if not first:
                walk(clause.iter, self)
            bound |= target_names(clause.target)
            for condition in clause.ifs:
                walk(condition.test, self)
            clause = clause.inner_for_in
            first = False
        for element in elements:
            walk(element, self)
        self._bound.pop()
        return False

    def visit_ListComp(self, node: cst.ListComp) -> bool:
        return self._comprehension((node.elt,), node.for_in)

    def visit_SetComp(self, node: cst.SetComp) -> bool:
        return self._comprehension((node.elt,), node.for_in)

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> bool:
        return self._comprehension((node.elt,), node.for_in)

    def visit_DictComp(self, node: cst.DictComp) -> bool:
        return self._comprehension((node.key, node.value), node.for_in)

    def _target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.uses.writes.add(identifier(target.value))
        elif isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._target(element.value)
        elif isinstance(target, cst.StarredElement):
            self._target(target.value)
        else:  # a subscript or an attribute: a store into an object the step reads
            self.uses.effects = True
            walk(target, self)


def name_uses(node: cst.CSTNode) -> NameUses:
    collector = _Collector()
    walk(node, collector)
    return collector.uses


def target_names(target: cst.BaseExpression) -> set[str]:
    """The variables an assignment target binds."""
    if isinstance(target, cst.Name):
        return {identifier(target.value)}
    if isinstance(target, cst.Tuple | cst.List):
        return set().union(*(target_names(e.value) for e in target.elements))
    if isinstance(target, cst.StarredElement):
        return target_names(target.value)
    return set()


def root_names(node: cst.BaseExpression) -> set[str]:
    """The variable a chain of attributes and items goes through: `table` of
    `table[k].items`, `state` of `state`; none for another expression's."""
    start = chain_root(node)
    return {identifier(start.value)} if isinstance(start, cst.Name) else set()


def binds_names_only(target: cst.BaseExpression) -> bool:
    """Whether an assignment target only binds variables: no item or attribute store."""
    if isinstance(target, cst.Tuple | cst.List):
        return all(binds_names_only(e.value) for e in target.elements)
    if isinstance(target, cst.StarredElement):
        return binds_names_only(target.value)
    return isinstance(target, cst.Name)


def parameter_names(params: cst.Parameters) -> set[str]:
    """The names a function's or a lambda's parameters bind, `*args` and `**kwargs` too."""
    names = {
        identifier(param.name.value)
        for param in (*params.posonly_params, *params.params, *params.kwonly_params)
    }
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):  # a bare `*` is a ParamStar, and binds nothing
            names.add(identifier(star.name.value))
    return names


def parameter_defaults(params: cst.Parameters) -> list[cst.BaseExpression]:
    """The defaults of a function's or a lambda's parameters, in order: read where
    the function is made, not when it is called."""
    return [param.default for param in all_params(params) if param.default is not None]


def binds(node: cst.CSTNode) -> set[str]:
    """Names bound inside an expression: comprehension targets, lambda parameters, walrus."""
    collector = _Binders()
    walk(node, collector)
    return collector.bound


class _Binders(cst.CSTVisitor):
    def __init__(self) -> None:
        self.bound: set[str] = set()

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.bound |= target_names(node.target)

    def visit_Param(self, node: cst.Param) -> None:
        self.bound.add(identifier(node.name.value))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.bound |= target_names(node.target)


def walrus_targets(node: cst.CSTNode) -> set[str]:
    """The names `:=` binds inside the code: in the scope around it, as Python does."""
    collector = _Walruses()
    walk(node, collector)
    return collector.bound


class _Walruses(cst.CSTVisitor):
    def __init__(self) -> None:
        self.bound: set[str] = set()

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self.bound |= target_names(node.target)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False  # a lambda's `:=` binds in the lambda


def mentioned_names(node: cst.CSTNode) -> set[str]:
    """Every name some code mentions, read or bound, at any depth; not attributes."""
    return set(mentions(node))


def mentions(node: cst.CSTNode) -> Counter[str]:
    """How many times some code mentions each name, read or bound; not attributes."""
    finder = _Mentions()
    walk(node, finder)
    return finder.names


class _Mentions(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: Counter[str] = Counter()

    def visit_Name(self, node: cst.Name) -> None:
        self.names[identifier(node.value)] += 1

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False


def imported_names(code: cst.CSTNode) -> set[str]:
    """The names bound by the imports of some code, in any branch of it."""
    finder = _Imports()
    walk(code, finder)
    return finder.names


class _Imports(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            self.names.add(identifier(import_local_name(alias)))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                self.names.add(identifier(import_local_name(alias)))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


def import_local_name(alias: cst.ImportAlias) -> str:
    if alias.asname is not None:
        name = alias.asname.name
        assert isinstance(name, cst.Name)
        return name.value
    head = dotted(alias.name)
    assert head is not None, "an import names a module"
    return head.split(".")[0]


def all_params(params: cst.Parameters) -> list[cst.Param]:
    """Every parameter of a signature, `*args` and `**kwargs` included."""
    stars = [
        p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)
    ]
    return [*params.posonly_params, *params.params, *params.kwonly_params, *stars]


def bound_in(function: cst.FunctionDef) -> frozenset[str]:
    """The names a function binds: its parameters and its locals, wherever they are bound."""
    params = {identifier(p.name.value) for p in all_params(function.params)}
    body = function.body
    return frozenset(
        params | name_uses(body).writes | binds(body) | imported_names(body)
    )


def shown(name: str) -> str:
    """A flow's name as a message shows it: kiln's own temporaries by what they hold."""
    if name.startswith(("@g:", "@l:")):  # a Memory key, as lowering names it
        return f"the Memory key {name.split(':', 2)[2]!r}"
    if not name.startswith(f"{RESERVED_PREFIX}_"):
        return repr(name)
    base = name.removeprefix(f"{RESERVED_PREFIX}_").rstrip("_0123456789")
    for suffix in ("_values", "_value"):
        if base.endswith(suffix):
            return f"the value of '{base.removesuffix(suffix)}'"
    return "a value the statement read before its call"


def lifted_value(name: str) -> bool:
    """Whether a name is a temporary holding a lifted call's value, read once."""
    base = name.rstrip("_0123456789")
    return name.startswith(f"{RESERVED_PREFIX}_") and base.endswith(
        ("_value", "_values")
    )


def references(node: cst.CSTNode, *, calls: bool) -> list[cst.Name | cst.Attribute]:
    """The names and dotted names code reads (`worker_a`, `flows.worker_a`), in
    order; those it calls too, with `calls`. Not attributes, keywords,
    parameters or annotations, nor what an assignment binds."""
    finder = _References(calls)
    walk(node, finder)
    return finder.found


class _References(cst.CSTVisitor):
    def __init__(self, calls: bool) -> None:
        self.calls = calls
        self.found: list[cst.Name | cst.Attribute] = []
        self._skip: set[cst.CSTNode] = set()

    def visit_Call(self, node: cst.Call) -> None:
        if not self.calls:
            self._skip.add(node.func)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._skip.add(node.attr)
        if node in self._skip:  # called: `crawl.run(x)` reads no `crawl` as a value
            return False
        if dotted(node) is not None:
            self.found.append(node)
            return False
        return True

    def visit_Name(self, node: cst.Name) -> None:
        if node not in self._skip:
            self.found.append(node)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._skip.add(node.keyword)

    def visit_Param(self, node: cst.Param) -> None:
        self._skip.add(node.name)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> bool:
        return False  # bound, not read

    def visit_Annotation(self, node: cst.Annotation) -> bool:
        return False  # a type, which no code calls
