"""Lifting: node calls inside an expression become steps of their own, in order.

Example input: `return join([await summarize(p) for p in load(path)])`.
Output: steps `_kiln_load = load(path)` and the fan-out
`_kiln_summarize_values = [await summarize(p) for p in _kiln_load_value]`, and
the expression `join(_kiln_summarize_values)` for the `return` that follows them. A transformer's
post-order visit is Python's evaluation order, so lifted calls run in the
order the source would run them. Calls kiln cannot order (under `and`/`or`,
in a conditional expression or a lambda) are reported through the host.

What is left of the expression runs after every lifted call, so an operand
the source evaluates before a call is evaluated before it here too: in
``{"before": len(state["messages"]), "reply": await respond(state)}`` the
`len` becomes a step `_kiln_operand = len(state["messages"])` ahead of the
call, which may change `state`. Names and literals stay where they are: a
node cannot rebind them. So does the function a call is made through when it
is a name or an attribute of one (`results.append(await f(x))`): looking up a
method is taken to read nothing a node changes.
"""

from __future__ import annotations

from typing import Protocol, cast

import libcst as cst

from kilnc.ir import Call, Step
from kilnc.lower.calls import Calls
from kilnc.lower.fan_out import FanOuts
from kilnc.lower.steps import Steps
from kilnc.syntax import code

# What to write instead of a call Python makes only when a condition holds.
_IF_STATEMENT = (
    "write an 'if' statement whose block calls the node, "
    "so it runs when the source runs it"
)


class LiftHost(Protocol):
    """What lifting needs from the lowering of the statement around it."""

    calls: Calls
    steps: Steps
    fan_outs: FanOuts

    def temporary(
        self, base: str, stands_for: cst.BaseExpression | None = None
    ) -> str: ...

    def lift_expression(
        self, node: cst.BaseExpression
    ) -> tuple[list[Step], cst.BaseExpression]: ...


class Lifter(cst.CSTTransformer):
    """Replaces each node call inside an expression by a temporary assigned before it."""

    def __init__(self, lowerer: LiftHost, keep: cst.Call | None = None) -> None:
        self.lowerer = lowerer
        self.keep = keep  # the call a statement makes itself: only its arguments lift
        self.steps: list[Step] = []
        self._awaited: set[cst.Call] = set()
        # Operands the source evaluates before a node call that is lifted after
        # them: each becomes a step of its own, unless it reads nothing.
        self._early: set[cst.CSTNode] = set()

    def on_visit(self, node: cst.CSTNode) -> bool:
        lifts_after = False
        acting = self._acting_arguments(node)
        for operand in reversed(operands(node)):
            if lifts_after or operand in acting:
                self._early.add(operand)
            lifts_after = (
                lifts_after
                or operand in acting
                or self.lowerer.calls.contains_node_call(operand)
            )
        return super().on_visit(node)

    def _acting_arguments(self, node: cst.CSTNode) -> set[cst.CSTNode]:
        """The operands of a node call that do more than read.

        `f(random.random())`, `f(loud("one"))` or `f(next(it))`: each is a step
        of its own, ordered as the statement would be, and not evaluated when
        the call's task first runs, after the flow has gone on; the call is
        then ordered by what it does itself.
        """
        calls = self.lowerer.calls
        if not isinstance(node, cst.Call) or calls.resolve(node.func) is None:
            return set()
        return {
            operand
            for operand in operands(node)
            if not calls.contains_node_call(operand)
            and self.lowerer.steps.changes.acts(operand)
        }

    def on_leave(
        self, original_node: cst.CSTNodeT, updated_node: cst.CSTNodeT
    ) -> cst.CSTNodeT | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNodeT]:
        left = super().on_leave(original_node, updated_node)
        if original_node not in self._early:
            return left
        if isinstance(left, cst.FormattedStringExpression):
            # Formatted where it stands, before the parts after it.
            alone = cst.FormattedString([left])
            return left.with_changes(
                expression=self._hoisted(original_node, alone),
                conversion=None,
                format_spec=None,
                equal=None,
            )
        # Unpacked where it stands: its items as they are then, in a list (a dict).
        if isinstance(left, cst.StarredElement) or (
            isinstance(left, cst.Arg) and left.star == "*"
        ):
            items = cst.List([cst.StarredElement(left.value)])
            return left.with_changes(value=self._hoisted(original_node, items))
        if isinstance(left, cst.StarredDictElement) or (
            isinstance(left, cst.Arg) and left.star == "**"
        ):
            pairs = cst.Dict([cst.StarredDictElement(left.value)])
            return left.with_changes(value=self._hoisted(original_node, pairs))
        if isinstance(left, cst.BaseExpression) and not settled(left):
            # An expression for an expression: libcst types leaving as the same kind.
            return cast(cst.CSTNodeT, self._hoisted(original_node, left))
        return left

    def _hoisted(self, original: cst.CSTNode, value: cst.BaseExpression) -> cst.Name:
        target = cst.Name(self.lowerer.temporary("operand", value))
        if isinstance(value, cst.NamedExpr) and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        assign = cst.Assign([cst.AssignTarget(target)], value)
        self.steps.append(self.lowerer.steps.simple_step(assign, original))
        return target

    def leave_FormattedStringExpression(
        self,
        original_node: cst.FormattedStringExpression,
        updated_node: cst.FormattedStringExpression,
    ) -> (
        cst.FormattedStringExpression
        | cst.FlattenSentinel[cst.BaseFormattedStringContent]
    ):
        if original_node.equal is None or updated_node is original_node:
            return updated_node
        # `f"{await h(x)=}"` shows the expression's text, not the temporary's:
        # the text is written out, and the value formatted as `=` formats it.
        shown = "".join(
            code(part)
            for part in (
                original_node.whitespace_before_expression,
                original_node.expression,
                original_node.whitespace_after_expression,
                original_node.equal,
            )
        )
        text = shown.replace("{", "{{").replace("}", "}}")
        shows_repr = original_node.conversion is None and not original_node.format_spec
        # Its whitespace stays: without `=` it shows nothing, and it keeps
        # `{ {'k': v}['k']}` from opening with `{{`.
        value = updated_node.with_changes(
            equal=None, conversion="r" if shows_repr else original_node.conversion
        )
        return cst.FlattenSentinel([cst.FormattedStringText(text), value])

    def visit_Await(self, node: cst.Await) -> None:
        if isinstance(node.expression, cst.Call):
            self._awaited.add(node.expression)

    def leave_Call(
        self, original_node: cst.Call, updated_node: cst.Call
    ) -> cst.BaseExpression:
        if (
            original_node in self._awaited
            or original_node is self.keep
            or self.lowerer.calls.resolve(original_node.func) is None
        ):
            return updated_node
        return self._lift(original_node, updated_node)

    def leave_Await(
        self, original_node: cst.Await, updated_node: cst.Await
    ) -> cst.BaseExpression:
        if not isinstance(original_node.expression, cst.Call):
            return updated_node
        if original_node.expression is self.keep:
            return updated_node
        if self.lowerer.calls.resolve(original_node.expression.func) is None:
            return updated_node
        return self._lift(original_node, updated_node)

    def _called(self, value: cst.BaseExpression) -> str:
        """The name of the node or flow `value` calls, outermost; "each" if none."""
        inner = value.expression if isinstance(value, cst.Await) else value
        found = (
            self.lowerer.calls.resolve(inner.func)
            if isinstance(inner, cst.Call)
            else None
        )
        return "each" if found is None else found[0].identifier

    def _lift(
        self, original: cst.BaseExpression, updated: cst.BaseExpression
    ) -> cst.Name:
        found = self.lowerer.calls.node_call(updated, original)
        assert found is not None
        _, node_call = found
        name = self.lowerer.temporary(f"{node_call.callee.identifier}_value")
        target = cst.Name(name)
        step = self.lowerer.steps.call_step(
            original, Call(target, None, node_call), target, None
        )
        self.steps.append(step)
        return target

    def visit_ListComp(self, node: cst.ListComp) -> bool:
        return False

    def visit_SetComp(self, node: cst.SetComp) -> bool:
        return False

    def visit_DictComp(self, node: cst.DictComp) -> bool:
        return False

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> bool:
        return False

    def leave_ListComp(
        self, original_node: cst.ListComp, updated_node: cst.ListComp
    ) -> cst.BaseExpression:
        return self._fan_out(original_node)

    def leave_SetComp(
        self, original_node: cst.SetComp, updated_node: cst.SetComp
    ) -> cst.BaseExpression:
        return self._fan_out(original_node)

    def leave_DictComp(
        self, original_node: cst.DictComp, updated_node: cst.DictComp
    ) -> cst.BaseExpression:
        return self._fan_out(original_node)

    def leave_GeneratorExp(
        self, original_node: cst.GeneratorExp, updated_node: cst.GeneratorExp
    ) -> cst.BaseExpression:
        return self._fan_out(original_node)

    def _fan_out(
        self, node: cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp
    ) -> cst.BaseExpression:
        if not self.lowerer.calls.contains_node_call(node):
            return node
        if not self.lowerer.calls.contains_node_call(element(node)):
            # Only the iterable calls a node (a stream, say): lift it, keep the rest inline.
            prefix, first = self.lowerer.lift_expression(node.for_in.iter)
            self.steps += prefix
            clauses = node.for_in.with_changes(iter=first)
            self.lowerer.calls.forbid_clause_calls(node, clauses)
            return node.with_changes(for_in=clauses)
        target = cst.Name(
            self.lowerer.temporary(f"{self._called(element(node))}_values")
        )
        self.steps += self.lowerer.fan_outs.fan_out(node, target, node)
        return target

    def visit_BooleanOperation(self, node: cst.BooleanOperation) -> bool:
        # The right side runs only as the left side decides: no call is lifted
        # out of it. The left side always runs: it is lifted on the way out, once.
        self.lowerer.calls.forbid_calls(
            node.right,
            f"the right side of '{code(node.operator).strip()}'",
            _IF_STATEMENT,
        )
        return False

    def visit_Comparison(self, node: cst.Comparison) -> bool:
        # `a < b < c` evaluates `c` only when `a < b` holds: `and` written short.
        for later in node.comparisons[1:]:
            self.lowerer.calls.forbid_calls(
                later.comparator, "a chained comparison past its first", _IF_STATEMENT
            )
        return True

    def visit_Assert(self, node: cst.Assert) -> bool:
        if node.msg is not None:  # evaluated only when the test fails
            self.lowerer.calls.forbid_calls(
                node.msg, "an assert's message", _IF_STATEMENT
            )
        return True

    def visit_Annotation(self, node: cst.Annotation) -> bool:
        self.lowerer.calls.forbid_calls(
            node,
            "an annotation",
            "Python never evaluates a local variable's annotation: write the type"
            " there, and the call in the value",
        )
        return False

    def leave_BooleanOperation(
        self, original_node: cst.BooleanOperation, updated_node: cst.BooleanOperation
    ) -> cst.BaseExpression:
        return original_node.with_changes(left=original_node.left.visit(self))

    def visit_IfExp(self, node: cst.IfExp) -> bool:
        for branch in (node.body, node.orelse):
            self.lowerer.calls.forbid_calls(
                branch, "a conditional expression", _IF_STATEMENT
            )
        return True

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        # Its body runs when it is called; its defaults, unlifted, too late for
        # the steps: a call in either is a statement's of its own.
        self.lowerer.calls.forbid_calls(node, "a lambda")
        return False


def element(
    node: cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp,
) -> cst.BaseExpression:
    """What a comprehension computes per item (a dict comprehension's value)."""
    return node.value if isinstance(node, cst.DictComp) else node.elt


def operands(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The expressions an expression evaluates for itself, in Python's order.

    Not the branches of a conditional expression, the right side of `and`/`or`,
    a lambda's or a comprehension's insides, which run later or not at all,
    nor a call's function when it is a name or an attribute of one, nor an
    assignment's targets, which Python evaluates after its value; a method
    call's operand is its object. An f-string's parts count whole: each is
    formatted before the next runs. A starred element is one (the items are
    read as it is evaluated). An augmented assignment to an item or an
    attribute is taken apart before it is lifted (`kilnc.lower.statements`).
    """
    if isinstance(
        node,
        cst.IfExp
        | cst.BooleanOperation
        | cst.Lambda
        | cst.ListComp
        | cst.SetComp
        | cst.DictComp
        | cst.GeneratorExp,
    ):
        return []
    if isinstance(node, cst.ConcatenatedString):
        return [*_formatted(node.left), *_formatted(node.right)]
    if isinstance(node, cst.Assign | cst.AnnAssign):
        # The value first, then the targets: nothing of a target runs before it.
        return [] if node.value is None else [node.value]
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        # A method's object is evaluated first; the method is looked up on it
        # where the call is made, so that what the call changes is seen to be
        # that object (`state["messages"].append(...)` changes `state`).
        receiver = [] if _dotted(node.func) else _operands_within(node.func.value)
        return [*receiver, *_arguments_of(node)]
    if isinstance(node, cst.Call) and _dotted(node.func):
        return _arguments_of(node)
    return [found for child in node.children for found in _operands_within(child)]


def _arguments_of(call: cst.Call) -> list[cst.CSTNode]:
    return [found for arg in call.args for found in _operands_within(arg)]


def _operands_within(node: cst.CSTNode) -> list[cst.CSTNode]:
    """`node` when it is an operand, else the operands inside it (an `Arg`'s value).

    What unpacks (`*xs`, `**kw`) is one: the items are read as it is evaluated.
    """
    if isinstance(node, cst.Arg) and node.star:
        return [node]
    if isinstance(
        node,
        cst.BaseExpression | cst.StarredDictElement | cst.FormattedStringExpression,
    ):
        return [node]
    return [found for child in node.children for found in _operands_within(child)]


def _formatted(string: cst.BaseString) -> list[cst.CSTNode]:
    """The formatted parts of strings written one after another: `f"{a}" f"{b}"`."""
    if isinstance(string, cst.ConcatenatedString):
        return [*_formatted(string.left), *_formatted(string.right)]
    if isinstance(string, cst.FormattedString):
        return [p for p in string.parts if isinstance(p, cst.FormattedStringExpression)]
    return []


def settled(value: cst.BaseExpression) -> bool:
    """Whether evaluating `value` reads nothing a node call could change: a name, a
    literal, or a tuple or list of those."""
    if isinstance(value, cst.Tuple | cst.List):
        return all(
            isinstance(e, cst.Element) and settled(e.value) for e in value.elements
        )
    if isinstance(value, cst.ConcatenatedString):
        return settled(value.left) and settled(value.right)
    return isinstance(
        value,
        cst.Name
        | cst.SimpleString
        | cst.Integer
        | cst.Float
        | cst.Imaginary
        | cst.Ellipsis,
    )


def _dotted(func: cst.BaseExpression) -> bool:
    while isinstance(func, cst.Attribute):
        func = func.value
    return isinstance(func, cst.Name)
