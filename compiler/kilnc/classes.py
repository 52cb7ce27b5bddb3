"""exception_class: whether a name means an exception class, as far as the source shows.

Example input: `retry_on=(Flaky, ValueError, int, errors.Transient)` in a module
holding `class Flaky(Exception): ...` and `from . import errors`. Output: True
for `Flaky` and `ValueError`, False for `int`, None (cannot tell) for
`errors.Transient`.

A builtin is looked up in Python's own `builtins` (nothing of the user's runs);
a class of the module is an exception class when one of its bases is, and is
not when none is; a function, or a literal bound to the name, is not a class.
An import, or a value a call computes, cannot be told: it is left to the
decorator, which checks `issubclass(x, BaseException)` when the source runs.
Only the statements above the one using the name count: Python runs the
decorator where the node is defined.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Final

import libcst as cst

from kilnc.names import identifier, imported_names, name_uses
from kilnc.syntax import dotted

DEPTH: Final = 16  # how many aliases and base classes a name is followed through


def exception_class(
    statements: Sequence[cst.BaseStatement], name: str, *, star: bool = False
) -> bool | None:
    """Whether `name` (maybe dotted) means an exception class after `statements`.

    `star`: a star import may bind any name, so a builtin's name cannot be told.
    """
    return _exception_class(statements, name, star, DEPTH)


def _exception_class(
    statements: Sequence[cst.BaseStatement], name: str, star: bool, depth: int
) -> bool | None:
    head, _, attribute = name.partition(".")
    found = _last_binding(statements, identifier(head))
    if depth == 0 or attribute or isinstance(found, _Unknown):
        return None
    if found is None:
        value = getattr(builtins, head, None)
        if star or value is None:
            return None
        return isinstance(value, type) and issubclass(value, BaseException)
    index, definition = found
    before = statements[:index]
    if isinstance(definition, cst.FunctionDef):
        return False
    if isinstance(definition, cst.ClassDef):
        bases = [
            _value_class(before, base.value, star, depth - 1)
            for base in definition.bases
            if base.keyword is None
        ]
        if True in bases:
            return True
        return False if all(b is False for b in bases) else None
    return _value_class(before, definition, star, depth - 1)


def _value_class(
    statements: Sequence[cst.BaseStatement],
    value: cst.BaseExpression,
    star: bool,
    depth: int,
) -> bool | None:
    """What an expression bound to a name, or named as a base class, is."""
    name = dotted(value)
    if name is not None:
        return _exception_class(statements, name, star, depth)
    if isinstance(value, cst.Call | cst.Subscript | cst.BinaryOperation):
        return None  # computed: `type(...)`, a factory, `Base[T]`
    return False  # a literal, a lambda, a comprehension: not a class


class _Unknown:
    pass


_UNKNOWN: Final = _Unknown()

Binding = tuple[int, cst.FunctionDef | cst.ClassDef | cst.BaseExpression]


def _last_binding(
    statements: Sequence[cst.BaseStatement], name: str
) -> Binding | _Unknown | None:
    """The last top-level statement binding `name`: its index and the definition or
    value bound; `_UNKNOWN` when an import or a branch binds it; None when nothing does.
    """
    for index in range(len(statements) - 1, -1, -1):
        statement = statements[index]
        if isinstance(statement, cst.FunctionDef | cst.ClassDef):
            if identifier(statement.name.value) == name:
                return index, statement
        elif isinstance(statement, cst.SimpleStatementLine):
            for small in reversed(statement.body):
                found = _small_binding(small, name)
                if found is not None:
                    return found if isinstance(found, _Unknown) else (index, found)
        elif name in name_uses(statement).writes | imported_names(statement):
            return _UNKNOWN
    return None


def _small_binding(
    small: cst.BaseSmallStatement, name: str
) -> cst.BaseExpression | _Unknown | None:
    if isinstance(small, cst.Assign):
        for target in small.targets:
            if isinstance(target.target, cst.Name):
                if identifier(target.target.value) == name:
                    return small.value
            elif name in _unpacked(target.target):
                return _UNKNOWN
        return None
    if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
        if identifier(small.target.value) == name and small.value is not None:
            return small.value
        return None
    if name in name_uses(small).writes | imported_names(small):
        return _UNKNOWN
    return None


def _unpacked(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Tuple | cst.List):
        names: set[str] = set()
        for element in target.elements:
            if isinstance(element.value, cst.Name):
                names.add(identifier(element.value.value))
            else:
                names |= _unpacked(element.value)
        return names
    return set()
