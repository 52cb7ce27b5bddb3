"""What a flow's check of a value tells mypy, as a check a function can repeat.

Example input: ``if box.doc is None: return``, then ``await a(box.doc)``.
Output: the `Fact` ``box.doc is not None``, whose root is the flow's `box`
and whose subject is the attribute `box.doc`, holding past the `if` until
`box` is bound again or `box.doc` is assigned (`emit_guards` tracks them).
A check asks the identity or the type of a flow's name, or of an attribute
or a literal item of one (`box.doc`, `state["doc"]`, `pair[0]`): `is None`,
`is not None`, `isinstance`, a name's truth, which makes it not None; a name
assigned a literal, or the value of a call of a builtin type, is not None
either. Any other test mypy narrows a name by is repeated as it is written
(`is_reply(r)` of a `TypeGuard`, `type(r) is Reply`, `len(pair) == 2`); a
test that narrows nothing (`n > 0`) is not repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import final

import libcst as cst

from kilnc.ir import Block, Call, FlowDef, Inline, Step, child_blocks
from kilnc.names import all_params, identifier, name_uses, target_names
from kilnc.source import Span
from kilnc.syntax import awaits, code, yields


@final
@dataclass(frozen=True, slots=True)
class Fact:
    """A check of the flow's values, as an assert's test: `d is not None`."""

    test: str
    names: frozenset[str]  # the flow's names it reads
    span: Span  # the check's, where a type error in the assert is reported
    subjects: frozenset[str] = frozenset()  # the attributes and items it asks about


@final
@dataclass(frozen=True, slots=True)
class FlowNames:
    """The flow's names, and those mypy may type as holding None: an assignment of
    a value that is never None narrows only those (`if extra is None: extra = "x"`)."""

    bound: frozenset[str]
    optional: frozenset[str]


def flow_names(flow: FlowDef, body: Block) -> FlowNames:
    """Its names; optional: a parameter or an annotated name whose type says None
    may be, a local first bound to None or to a call's value that may be None."""
    optional = {
        identifier(param.name.value)
        for param in all_params(flow.function.params)
        if param.annotation is not None
        and _may_be_none(code(param.annotation.annotation))
    }
    first: set[str] = set()
    for step in _in_order(body):
        for name in step.writes - first:
            if _first_may_be_none(step, name):
                optional.add(name)
        first |= step.writes
    return FlowNames(flow.bound, frozenset(optional))


def _in_order(block: Block) -> list[Step]:
    return [
        found
        for step in block.steps
        for found in (
            step,
            *(s for b in child_blocks(step.action) for s in _in_order(b)),
        )
    ]


def _first_may_be_none(step: Step, name: str) -> bool:
    action = step.action
    if isinstance(action, Call):
        return step.value_type is None or _may_be_none(step.value_type)
    if not isinstance(action, Inline):
        return False
    statement = action.statement
    if isinstance(statement, cst.AnnAssign):
        return _may_be_none(code(statement.annotation.annotation))
    return (
        isinstance(statement, cst.Assign)
        and isinstance(statement.value, cst.Name)
        and statement.value.value == "None"
        and any(name in target_names(t.target) for t in statement.targets)
    )


def _may_be_none(annotation: str) -> bool:
    return any(word in annotation for word in ("None", "Optional", "Any", "object"))


def facts(
    test: cst.BaseExpression, holds: bool, span: Span, flow: FlowNames
) -> tuple[Fact, ...]:
    """The checks that hold when `test` is `holds`: one per part of a conjunction."""
    if isinstance(test, cst.BooleanOperation) and (
        isinstance(test.operator, cst.And) == holds
    ):
        return facts(test.left, holds, span, flow) + facts(
            test.right, holds, span, flow
        )
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return facts(test.expression, not holds, span, flow)
    subject = _subject(test, flow)
    if subject is not None:  # a true value is not None; a false one may be anything
        return (_not_none(subject, span),) if holds else ()
    rendered = _rendered(test, holds, flow)
    if rendered is None:
        return ()
    return (Fact(rendered.text, rendered.names, span, rendered.subjects),)


def _not_none(subject: _Subject, span: Span) -> Fact:
    return Fact(f"{subject.text} is not None", subject.roots, span, subject.members)


def stores(statement: cst.BaseSmallStatement | cst.BaseCompoundStatement) -> list[str]:
    """The attributes and items a statement assigns or deletes (`box.doc = None`)."""
    targets: list[cst.BaseExpression]
    if isinstance(statement, cst.Assign):
        targets = [target.target for target in statement.targets]
    elif isinstance(statement, cst.AnnAssign | cst.AugAssign | cst.Del):
        targets = [statement.target]
    else:
        return []
    return [
        code(part)
        for target in targets
        for part in _parts(target)
        if isinstance(part, cst.Attribute | cst.Subscript)
    ]


def _parts(target: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(target, cst.Tuple | cst.List):
        return [part for e in target.elements for part in _parts(e.value)]
    if isinstance(target, cst.StarredElement):
        return _parts(target.value)
    return [target]


def assigned_facts(
    statement: cst.BaseSmallStatement | cst.BaseCompoundStatement,
    step: Step,
    flow: FlowNames,
) -> tuple[Fact, ...]:
    """`extra = "x"`: a name assigned a literal is not None (mypy narrows it so)."""
    if not (
        isinstance(statement, cst.Assign | cst.AnnAssign)
        and statement.value is not None
        and _literal(statement.value)
    ):
        return ()
    targets = (
        [t.target for t in statement.targets]
        if isinstance(statement, cst.Assign)
        else [statement.target]
    )
    return tuple(
        _not_none(subject, step.span)
        for target in targets
        if (subject := _subject(target, flow)) is not None
        and not subject.members
        and subject.text in flow.optional
    )


def called_facts(action: Call, step: Step, flow: FlowNames) -> tuple[Fact, ...]:
    """`d = await fetch(k)` of a node returning `str`: `d` is not None."""
    subject = None if action.target is None else _subject(action.target, flow)
    if subject is None or subject.members or subject.text not in flow.optional:
        return ()
    if not _never_none(step.value_type):
        return ()
    return (_not_none(subject, step.span),)


# The builtin types whose values a call's annotation may name: never None.
_BUILTIN_VALUES = frozenset(
    {
        "str",
        "int",
        "float",
        "bool",
        "bytes",
        "list",
        "dict",
        "set",
        "frozenset",
        "tuple",
    }
)


def _never_none(annotation: str | None) -> bool:
    if annotation is None:
        return False
    try:
        parsed = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return False
    if isinstance(parsed, cst.Subscript):
        parsed = parsed.value
    return isinstance(parsed, cst.Name) and parsed.value in _BUILTIN_VALUES


def _literal(value: cst.BaseExpression) -> bool:
    """A value that is never None: a literal, a display, an f-string."""
    return isinstance(
        value,
        cst.BaseString
        | cst.Integer
        | cst.Float
        | cst.Imaginary
        | cst.List
        | cst.Tuple
        | cst.Dict
        | cst.Set
        | cst.ListComp
        | cst.SetComp
        | cst.DictComp,
    )


@final
@dataclass(frozen=True, slots=True)
class _Rendered:
    text: str
    names: frozenset[str]  # the flow's names it reads
    operator: str | None = None  # its outermost `and` or `or`
    subjects: frozenset[str] = frozenset()  # the attributes and items it asks about


def _rendered(
    test: cst.BaseExpression, holds: bool, flow: FlowNames
) -> _Rendered | None:
    """`test` (or its negation) as an assert's test; None if it asks anything but
    the identity or the type of the flow's names."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _rendered(test.expression, not holds, flow)
    if isinstance(test, cst.BooleanOperation):
        # Negated, `a and b` is `not a or not b`: the operator turns.
        operator = "and" if isinstance(test.operator, cst.And) == holds else "or"
        sides = [_rendered(side, holds, flow) for side in (test.left, test.right)]
        if None in sides:
            return None
        texts = [
            f"({side.text})" if side.operator not in (None, operator) else side.text
            for side in sides
            if side is not None
        ]
        names = frozenset().union(*(side.names for side in sides if side is not None))
        subjects = frozenset().union(
            *(side.subjects for side in sides if side is not None)
        )
        return _Rendered(f"{texts[0]} {operator} {texts[1]}", names, operator, subjects)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        compared = test.comparisons[0]
        subject = _subject(test.left, flow)
        if (
            subject is None
            or not isinstance(compared.operator, cst.Is | cst.IsNot)
            or not isinstance(compared.comparator, cst.Name)
            or compared.comparator.value != "None"
        ):
            return _as_written(test, holds, flow)
        positive = isinstance(compared.operator, cst.Is) == holds
        text = f"{subject.text} is {'' if positive else 'not '}None"
        return _Rendered(text, subject.roots, subjects=subject.members)
    if (
        isinstance(test, cst.Call)
        and isinstance(test.func, cst.Name)
        and test.func.value == "isinstance"
        and len(test.args) == 2
        and all(arg.keyword is None and not arg.star for arg in test.args)
        and _plain_class(test.args[1].value)
    ):
        subject = _subject(test.args[0].value, flow)
        if subject is None:
            return _as_written(test, holds, flow)
        classes = test.args[1].value
        checked = f"isinstance({subject.text}, {code(classes)})"
        read = subject.roots | (name_uses(classes).read_names & flow.bound)
        return _Rendered(
            checked if holds else f"not {checked}", read, subjects=subject.members
        )
    return _as_written(test, holds, flow)


# The comparisons mypy narrows an operand by, whatever its type (`x == "a"` of a
# Literal, `type(x) is C`, `"k" in td` of a TypedDict); any by `len` of a tuple.
_NARROWING = (cst.Equal, cst.NotEqual, cst.Is, cst.IsNot, cst.In, cst.NotIn)


def _as_written(
    test: cst.BaseExpression, holds: bool, flow: FlowNames
) -> _Rendered | None:
    """Any other test mypy narrows a flow's value by, repeated as it is written: a
    call given the value first (a `TypeGuard` or `TypeIs` function, `callable(x)`),
    a comparison of the value, its `type` or its `len` (`type(r) is Reply`,
    `len(pair) == 2`); None for a test that narrows nothing, or binds a name or
    waits. It never runs, so what it calls is never called twice."""
    test = test.with_changes(lpar=[], rpar=[])
    asked = _asked(test, flow)
    if asked is None or _binds_or_waits(test):
        return None
    names = name_uses(test).read_names & flow.bound
    if not names:
        return None
    text = code(test if holds else _negated(test))
    if "\n" in text:  # a line break outside brackets would end the assert
        text = f"({text})"
    members = frozenset().union(*(subject.members for subject in asked))
    return _Rendered(text, names, subjects=members)


# A comparison's operator, and the one that holds where it fails.
_OPPOSITE: dict[type[cst.BaseCompOp], Callable[[], cst.BaseCompOp]] = {
    cst.Equal: cst.NotEqual,
    cst.NotEqual: cst.Equal,
    cst.Is: cst.IsNot,
    cst.IsNot: cst.Is,
    cst.In: cst.NotIn,
    cst.NotIn: cst.In,
}


def _negated(test: cst.BaseExpression) -> cst.BaseExpression:
    """`type(d) is str` where `type(d) is not str` failed; `not f(d)` otherwise."""
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        compared = test.comparisons[0]
        opposite = _OPPOSITE.get(type(compared.operator))
        if opposite is not None:
            return test.with_changes(
                comparisons=[compared.with_changes(operator=opposite())]
            )
    return cst.UnaryOperation(cst.Not(), test)


def _asked(test: cst.BaseExpression, flow: FlowNames) -> list[_Subject] | None:
    """The flow's values a test may narrow; None if it narrows none."""
    if isinstance(test, cst.Call):
        first = test.args[0] if test.args else None
        if first is None or first.keyword is not None or first.star:
            return None
        subject = _subject(first.value, flow)
        return None if subject is None else [subject]
    if not isinstance(test, cst.Comparison):
        return None
    operands = [test.left, *(c.comparator for c in test.comparisons)]
    measured = [_measured(operand) for operand in operands]
    if not any(length for _, length in measured) and not all(
        isinstance(c.operator, _NARROWING) for c in test.comparisons
    ):
        return None
    asked = [s for operand, _ in measured if (s := _subject(operand, flow))]
    return asked or None


def _measured(operand: cst.BaseExpression) -> tuple[cst.BaseExpression, bool]:
    """What `type(x)` or `len(x)` asks about (`x`), and whether it is a length."""
    if (
        isinstance(operand, cst.Call)
        and isinstance(operand.func, cst.Name)
        and operand.func.value in ("type", "len")
        and len(operand.args) == 1
        and operand.args[0].keyword is None
        and not operand.args[0].star
    ):
        return operand.args[0].value, operand.func.value == "len"
    return operand, False


def _binds_or_waits(test: cst.BaseExpression) -> bool:
    """Whether repeating the test would bind a name or wait: a `:=`, `await`, `yield`."""
    return bool(name_uses(test).writes) or awaits(test) or yields(test)


@final
@dataclass(frozen=True, slots=True)
class _Subject:
    """What a test asks about: a flow's name, or an attribute or literal item of one."""

    text: str  # as the assert writes it: `d`, `box.inner.val`, `state["doc"]`
    roots: frozenset[str]  # the flow's name it starts from
    members: frozenset[str]  # its text, when it is an attribute or an item


def _subject(node: cst.BaseExpression, flow: FlowNames) -> _Subject | None:
    """The flow's value a test asks about: `d`, `d` of `(d := value)`, `box.doc`,
    `state["doc"]`, `pair[0]`; None for anything else."""
    if isinstance(node, cst.NamedExpr):
        node = node.target
    if isinstance(node, cst.Name):
        name = identifier(node.value)
        return (
            _Subject(node.value, frozenset({name}), frozenset())
            if name in flow.bound
            else None
        )
    if isinstance(node, cst.Attribute) or (
        isinstance(node, cst.Subscript) and _literal_index(node)
    ):
        owner = _subject(node.value, flow)
    else:
        return None
    if owner is None:
        return None
    text = code(node.with_changes(lpar=[], rpar=[]))
    return _Subject(text, owner.roots, frozenset({text}))


def _literal_index(node: cst.Subscript) -> bool:
    """`x["doc"]`, `x[0]`, `x[-1]`: an item mypy narrows, by a literal key or index."""
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return False
    key = node.slice[0].slice.value
    if isinstance(key, cst.UnaryOperation) and isinstance(key.operator, cst.Minus):
        key = key.expression
    return isinstance(key, cst.SimpleString | cst.Integer)


def _plain_class(node: cst.BaseExpression) -> bool:
    """A class or classes named without running code: `str`, `m.Row`, `(int, str)`,
    `int | None`; repeated, it computes nothing of the user's."""
    if isinstance(node, cst.Name):
        return True
    if isinstance(node, cst.Attribute):
        return _plain_class(node.value)
    if isinstance(node, cst.Tuple):
        return all(_plain_class(element.value) for element in node.elements)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        return _plain_class(node.left) and _plain_class(node.right)
    return False
