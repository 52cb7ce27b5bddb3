"""Which container's items a value is: what a change through the value changes.

Example input: `BUFFERS.get("north", [])`, `next(iter(GROUPS.values()))`,
`max(MODELS, key=score)`, and the loop `for buf in BUFFERS.values()`.
Output: `BUFFERS`, `GROUPS`, `MODELS` — the list `get` returns, the model
`max` picks and each `buf` are items of that container, so `.append(x)` or
`.fit()` on them changes what the container holds.

Two kinds of call hand items out. Some return one (`get`, `pop`, `next`,
`max`): the value is an item. Others make a new container of the same items
(`list(xs)`, `sorted(xs)`, `xs.copy()`) or a view of them (`xs.values()`,
`enumerate(xs)`): a store into it changes only it, but iterating it, or
taking an item of it, reaches the items of `xs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import libcst as cst

if TYPE_CHECKING:  # the body asks this module what a value holds: a cycle
    from kilnc.effects.body import Body

# Methods of the builtin containers that return one item of their object.
_ITEM_METHODS: Final = frozenset(
    {"get", "setdefault", "pop", "popitem", "popleft", "__getitem__"}
)
# Methods of the builtin containers whose result holds their object's items.
_VIEW_METHODS: Final = frozenset({"values", "items", "keys", "copy"})
# Functions returning one item of the argument at the index given.
_ITEM_FUNCTIONS: Final = {
    "builtins.next": 0,
    "builtins.min": 0,
    "builtins.max": 0,
    "random.choice": 0,
}
# Functions whose result holds the items of the argument at the index given.
_VIEW_FUNCTIONS: Final = {
    "builtins.list": 0,
    "builtins.tuple": 0,
    "builtins.set": 0,
    "builtins.frozenset": 0,
    "builtins.dict": 0,
    "builtins.sorted": 0,
    "builtins.reversed": 0,
    "builtins.iter": 0,
    "builtins.enumerate": 0,
    "builtins.zip": 0,
    "builtins.filter": 1,
    "copy.copy": 0,
    "random.sample": 0,
    "itertools.chain": 0,
    "itertools.islice": 0,
    "itertools.cycle": 0,
    "itertools.filterfalse": 1,
    "itertools.dropwhile": 1,
    "itertools.takewhile": 1,
}


def item_of(body: Body, value: cst.BaseExpression) -> cst.BaseExpression | None:
    """The container `value` is an item of, where a call hands it out
    (`BUFFERS.get(k, [])`, `next(iter(GROUPS.values()))`); else None."""
    if not isinstance(value, cst.Call):
        return None
    func = value.func
    if isinstance(func, cst.Attribute) and func.attr.value in _ITEM_METHODS:
        # A project class's own `get` (`Registry.get()`) says what it returns.
        return None if _project_method(body, func) else items_of(body, func.value)
    argument = _argument(body, value, _ITEM_FUNCTIONS)
    return None if argument is None else items_of(body, argument)


def items_of(body: Body, iterable: cst.BaseExpression) -> cst.BaseExpression:
    """The container whose items iterating `iterable` gives: `GROUPS` of
    `GROUPS.items()` and of `sorted(GROUPS)`; `iterable` itself for any other."""
    if isinstance(iterable, cst.Call):
        func = iterable.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in _VIEW_METHODS
            and not _project_method(body, func)
        ):
            return items_of(body, func.value)
        argument = _argument(body, iterable, _VIEW_FUNCTIONS)
        if argument is not None:
            return items_of(body, argument)
    return iterable


def _project_method(body: Body, func: cst.Attribute) -> bool:
    """Whether `func` is a method the project defines, of an object or a class."""
    if body.reader.called(body, func) is not None:
        return True
    qualified = body.reader.resolve(body.defs, func)
    return qualified is not None and body.reader.project_function(qualified) is not None


def _argument(
    body: Body, call: cst.Call, functions: dict[str, int]
) -> cst.BaseExpression | None:
    """The argument of `call` that one of `functions` takes its items from."""
    index = functions.get(body.reader.resolve(body.defs, call.func) or "")
    positional = [a.value for a in call.args if a.keyword is None and not a.star]
    if index is None or index >= len(positional):
        return None
    return positional[index]
