"""renamed: code with some of its variables named otherwise.

Example: `renamed(parse("total + tax"), {"total": "_kiln_total_2", "tax":
"_kiln_builtins.tax"})` is `_kiln_total_2 + _kiln_builtins.tax`: variables
only, never an attribute (`order.total`) or a keyword (`f(total=1)`).
"""

from __future__ import annotations

import libcst as cst

from kilnc.names import identifier


def renamed(node: cst.CSTNodeT, names: dict[str, str]) -> cst.CSTNodeT:
    """The node with every variable in `names` renamed (not attributes, not keywords),
    to another name or a dotted one."""
    result = node.visit(_Renamer(names))
    assert isinstance(result, type(node))
    return result


class _Renamer(cst.CSTTransformer):
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return True

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> cst.Attribute:
        return updated_node.with_changes(attr=original_node.attr)

    def leave_Arg(self, original_node: cst.Arg, updated_node: cst.Arg) -> cst.Arg:
        return updated_node.with_changes(keyword=original_node.keyword)

    def leave_Name(
        self, original_node: cst.Name, updated_node: cst.Name
    ) -> cst.BaseExpression:
        new = self.names.get(identifier(original_node.value))
        if new is None:
            return updated_node
        if "." in new:  # a dotted name: `_kiln_builtins.set`
            return cst.parse_expression(new)
        return updated_node.with_changes(value=new)
