"""Qualified names by libcst's scope analysis, each name's assignments found when asked.

libcst's `ScopeProvider` ends by linking every access of a name to each
assignment of it that the access may see, and back. A flow body that
rebinds one name at each step (`x = await step(x)`, n times) makes that n
accesses times n assignments: most of a 2,000-step compile. kiln asks for
the qualified names of a few nodes (decorators, called functions,
annotations), so `resolve_scopes` leaves the links out and `QualifiedNames`
makes an access's when its node is asked about, by libcst's own
`Access.record_assignments`, to the answer `QualifiedNameProvider` gives.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import final

import libcst as cst
from libcst.metadata import MetadataWrapper, QualifiedName, Scope, ScopeProvider
from libcst.metadata.scope_provider import Access, ScopeVisitor, _gen_dotted_names


def resolve_scopes(wrapper: MetadataWrapper) -> Mapping[cst.CSTNode, Scope | None]:
    """Each node's scope, as `ScopeProvider` resolves it, without the access links."""
    return wrapper.resolve(_ScopeProvider)


@final
class QualifiedNames(Mapping[cst.CSTNode, Collection[QualifiedName]]):
    """`QualifiedNameProvider`'s table, each entry made on first reading."""

    def __init__(self, scopes: Mapping[cst.CSTNode, Scope | None]) -> None:
        self.scopes = scopes
        self.linked: set[Access] = set()
        self.names: dict[Scope, dict[Access, str]] = {}

    def __getitem__(self, node: cst.CSTNode) -> Collection[QualifiedName]:
        scope = self.scopes.get(node)
        if scope is None:
            return set()
        for access in scope._accesses_by_node.get(node, ()):
            if access not in self.linked:  # linking twice adds nothing: no lock
                access.record_assignments(self._name(scope, access))
                self.linked.add(access)
        return scope.get_qualified_names_for(node)

    def __iter__(self) -> Iterator[cst.CSTNode]:
        return iter(self.scopes)

    def __len__(self) -> int:
        return len(self.scopes)

    def _name(self, scope: Scope, access: Access) -> str:
        """The name the access was recorded under (a dotted one for `a.b`)."""
        if scope not in self.names:
            self.names[scope] = {
                each: name
                for name, accesses in scope._accesses_by_name.items()
                for each in accesses
            }
        return self.names[scope][access]


class _ScopeVisitor(ScopeVisitor):
    def infer_accesses(self) -> None:
        deferred = getattr(self, "_ScopeVisitor__deferred_accesses", None)
        if deferred is None:  # another libcst than the one this reads: link all
            super().infer_accesses()
            return
        # libcst 1.x's own first loop, but for `access.record_assignments(name)`.
        for each in deferred:
            access = each.access
            name = access.node.value
            if each.enclosing_attribute is not None:
                for attr_name, node in _gen_dotted_names(each.enclosing_attribute):
                    if attr_name in access.scope:
                        access.node = node
                        name = attr_name
                        break
            if each.enclosing_string_annotation is not None:
                access.node = each.enclosing_string_annotation
            access.scope.record_access(name, access)
        deferred.clear()


class _ScopeProvider(ScopeProvider):
    def visit_Module(self, node: cst.Module) -> bool | None:
        visitor = _ScopeVisitor(self)
        node.visit(visitor)
        visitor.infer_accesses()
        return None
