"""An augmented assignment to an item or an attribute, taken apart for lifting.

``state["draft"] += await revise(state)`` reads ``state["draft"]`` before the
call and stores the sum after it. Lifting the call out of the statement
leaves ``state["draft"] += value`` to run after the call, which reads the item
after it: a call that changes the item is then counted twice. So the
statement is taken apart as Python runs it: what the target's item or
attribute is looked up on, and by, is evaluated first (into temporaries,
unless a name or a literal), then the item is read, then the value is
computed and combined with it (in place, as ``+=`` does), then stored::

    _kiln_operand = state["draft"]
    _kiln_revise_value = await revise(state)
    _kiln_operand += _kiln_revise_value
    state["draft"] = _kiln_operand
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst

from kilnc.lower.lift import settled

__all__ = ["Parts", "taken_apart"]


@dataclass(frozen=True, slots=True)
class Parts:
    """The statements before the value (`reads`), and the name the value is
    combined with before `target` is assigned it."""

    reads: tuple[cst.Assign, ...]
    operand: cst.Name
    target: cst.BaseAssignTargetExpression


def taken_apart(
    node: cst.AugAssign,
    temporary: Callable[[str, cst.BaseExpression], str],
) -> Parts | None:
    """`node`'s parts, for a target that is an item or an attribute; else None."""
    reads: list[cst.Assign] = []

    def settle(value: cst.BaseExpression) -> cst.BaseExpression:
        if settled(value):
            return value
        name = cst.Name(temporary("operand", value))
        reads.append(_assign(name, value))
        return name

    target = node.target
    if isinstance(target, cst.Attribute):
        target = target.with_changes(value=settle(target.value))
    elif isinstance(target, cst.Subscript):
        container = settle(target.value)
        elements = [_settled_element(element, settle) for element in target.slice]
        target = target.with_changes(value=container, slice=elements)
    else:
        return None
    operand = cst.Name(temporary("operand", target))
    reads.append(_assign(operand, target))
    return Parts(tuple(reads), operand, target)


def _settled_element(
    element: cst.SubscriptElement,
    settle: Callable[[cst.BaseExpression], cst.BaseExpression],
) -> cst.SubscriptElement:
    """A subscript's index, or its slice's bounds, evaluated where they stand."""
    part = element.slice
    if isinstance(part, cst.Index):
        return element.with_changes(slice=part.with_changes(value=settle(part.value)))
    bounds = {
        field: settle(bound)
        for field in ("lower", "upper", "step")
        if (bound := getattr(part, field)) is not None
    }
    return element.with_changes(slice=part.with_changes(**bounds))


def _assign(
    target: cst.BaseAssignTargetExpression, value: cst.BaseExpression
) -> cst.Assign:
    return cst.Assign([cst.AssignTarget(target)], value)
