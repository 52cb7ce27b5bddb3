"""Whether a generator changes an object after it has yielded it.

Example input, the batching idiom that reuses one buffer::

    def batches(rows: list[int], size: int) -> Iterator[list[int]]:
        buffer: list[int] = []
        for row in rows:
            buffer.append(row)
            if len(buffer) == size:
                yield buffer
                buffer.clear()

Output: the `buffer.clear()` call. Run as plain Python, a loop over the
generator is done with each batch before the next is drawn, so it never sees
the clear; elements that run at once as tasks would all see the last batch.
The same generator written with `buffer = []` in place of the clear yields a
new list each time, and the result is None.

A may-analysis over the statements in the order they run: a name holds an
object the generator has yielded from `yield name` (or a display holding it,
or `yield POOL[0]`, an item of what `POOL` holds; or `held = [name]`, bound to
hold it) until it is bound to something else; a loop runs its body again until no
new name holds one; both arms of a branch may have run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import libcst as cst

from kilnc.effect_ir import Change, Effects
from kilnc.effects.cleanup import cleanup_change
from kilnc.front import ModuleDefs
from kilnc.mutability import PURE_METHODS
from kilnc.names import identifier
from kilnc.syntax import calls_made, chain_root, code

# Calls of these builtins read what they are given (or keep it whole, as
# `list.append` does): they never change it.
_READING_BUILTINS = frozenset(
    [
        "len",
        "list",
        "tuple",
        "set",
        "frozenset",
        "dict",
        "sorted",
        "reversed",
        "sum",
        "min",
        "max",
        "any",
        "all",
        "iter",
        "next",
        "str",
        "repr",
        "bytes",
        "bool",
        "int",
        "float",
        "print",
        "format",
        "hash",
        "id",
        "isinstance",
        "type",
        "enumerate",
        "zip",
        "map",
        "filter",
    ]
)

Held = frozenset[str]


def of_generator(
    effects: Effects,
    defs: ModuleDefs,
    function: cst.FunctionDef,
    returns: frozenset[str],
) -> Effects:
    """A generator's effects: it reads the parameters `returns` as it is drawn
    from, and may change what it has yielded: in its own body, or in a
    generator it draws from (`yield from chunks(rows)`, `for b in chunks(rows):
    yield b`), whose items it may hand on."""
    changed = changes_yielded(defs, function) or effects.changes_yielded
    cleans_up = cleanup_change(defs, function) or effects.cleans_up
    return replace(
        effects, returns=returns, changes_yielded=changed, cleans_up=cleans_up
    )


def changes_yielded(defs: ModuleDefs, function: cst.FunctionDef) -> Change | None:
    """The first change found of an object the generator has yielded."""
    changed = _Statements()
    changed.run(_statements(function.body), frozenset())
    if changed.found is None:
        return None
    found = changed.found
    return Change(f"changes what it yielded ({code(found)})", defs.parsed.span(found))


def _statements(suite: cst.BaseSuite) -> Sequence[cst.BaseStatement]:
    if isinstance(suite, cst.IndentedBlock):
        return suite.body
    assert isinstance(suite, cst.SimpleStatementSuite)
    return [cst.SimpleStatementLine(body=suite.body)]


class _Statements:
    def __init__(self) -> None:
        self.found: cst.CSTNode | None = None
        # What each name's object may be part of, or hold: `full` of `full =
        # ch.feed(t)` may be `ch`'s buffer; yielded, `ch` holds what it yielded.
        self.parts: dict[str, Held] = {}

    def run(self, statements: Iterable[cst.BaseStatement], held: Held) -> Held:
        for statement in statements:
            if self.found is not None:
                break
            held = self.statement(statement, held)
        return held

    def statement(self, statement: cst.BaseStatement, held: Held) -> Held:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                held = self.small(small, held)
            return held
        if isinstance(statement, cst.If):
            self.expression(statement.test, held)
            taken = self.run(_statements(statement.body), held)
            other = statement.orelse
            if isinstance(other, cst.If):
                return taken | self.statement(other, held)
            if isinstance(other, cst.Else):
                return taken | self.run(_statements(other.body), held)
            return taken | held
        if isinstance(statement, cst.For | cst.While):
            return self.loop(statement, held)
        if isinstance(statement, cst.FunctionDef | cst.ClassDef):
            return held  # its code runs when called: its own body, not this one's
        # `try`, `with`, `match`: each block may run after any other; what
        # any of them binds is left held.
        self.expression_of(statement, held)
        for block in _blocks_within(statement):
            held |= self.run(_statements(block), held)
        return held

    def loop(self, loop: cst.For | cst.While, held: Held) -> Held:
        if isinstance(loop, cst.For):
            self.expression(loop.iter, held)
            targets = _names(loop.target)
        else:
            self.expression(loop.test, held)
            targets = frozenset()
        start = held
        while True:  # the held names only grow, and are the body's names
            after = self.run(_statements(loop.body), start - targets)
            if after <= start or self.found is not None:
                break
            start = start | after
        if loop.orelse is not None:
            return start | self.run(_statements(loop.orelse.body), start)
        return start

    def small(self, small: cst.BaseSmallStatement, held: Held) -> Held:
        if isinstance(small, cst.Expr):
            return self.value(small.value, held)
        if isinstance(small, cst.Assign | cst.AnnAssign):
            value = small.value
            targets = (
                [t.target for t in small.targets]
                if isinstance(small, cst.Assign)
                else [small.target]
            )
            for target in targets:
                self.store(target, held, small)
            if value is None:
                return held
            after = self.value(value, held)
            names = frozenset().union(*(_names(t) for t in targets))
            for name in names:
                self.parts[name] = self.parts.get(name, frozenset()) | _kept(value)
            # `alias = buffer`, `box = [buffer]`, `item = POOL[0]` hold what
            # `buffer` (`POOL`) holds; anything else is another object.
            if _kept(value) & after:
                return after | names
            return after - names
        if isinstance(small, cst.AugAssign):
            self.expression(small.value, held)
            if _identifier_of(chain_root(small.target)) in held:
                self.found = self.found or small  # `buffer += more`: in place
            return held
        if isinstance(small, cst.Del):
            self.store(small.target, held, small)
            return held
        self.expression_of(small, held)
        return held

    def value(self, value: cst.BaseExpression, held: Held) -> Held:
        """What holds a yielded object after `value` runs: a `yield` adds its names."""
        self.expression(value, held)
        if isinstance(value, cst.Yield) and isinstance(value.value, cst.BaseExpression):
            return held | self._with_parts(_kept(value.value))
        return held

    def _with_parts(self, names: Held) -> Held:
        """`names`, and every name whose object theirs may be part of or hold."""
        found, frontier = set(names), list(names)
        while frontier:
            for part in self.parts.get(frontier.pop(), frozenset()) - found:
                found.add(part)
                frontier.append(part)
        return frozenset(found)

    def store(self, target: cst.BaseExpression, held: Held, at: cst.CSTNode) -> None:
        """`buffer[i] = x`, `buffer.size = n`, `del buffer[0]`: a change in place."""
        if isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self.store(element.value, held, at)
        elif (
            isinstance(target, cst.Attribute | cst.Subscript)
            and _identifier_of(chain_root(target)) in held
        ):
            self.found = self.found or at

    def expression_of(self, node: cst.CSTNode, held: Held) -> None:
        for child in node.children:
            if isinstance(child, cst.BaseExpression):
                self.expression(child, held)

    def expression(self, expression: cst.BaseExpression, held: Held) -> None:
        if not held or self.found is not None:
            return
        for call in calls_made(expression):
            if _changes(call, held):
                self.found = call
                return


def _changes(call: cst.Call, held: Held) -> bool:
    """Whether the call may change what a held name holds: a method of it, or a
    function it is passed to that is not a builtin that only reads it."""
    func = call.func
    if (
        isinstance(func, cst.Attribute)
        and _identifier_of(chain_root(func.value)) in held
    ):
        return func.attr.value not in PURE_METHODS
    if isinstance(func, cst.Name) and func.value in _READING_BUILTINS:
        return False
    if isinstance(func, cst.Attribute):
        return False  # `out.append(buffer)` keeps it, and changes `out`
    return any(_identifier_of(argument.value) in held for argument in call.args)


def _kept(value: cst.BaseExpression) -> Held:
    """The names whose objects a yielded value is or holds: `buffer`, `(key,
    buffer)`, or holds it among theirs: `POOL` of `POOL[0]`, `self.buffer`;
    what a call is given, and a method's object: its result may hold them."""
    if isinstance(value, cst.Name):
        return frozenset({identifier(value.value)})
    if isinstance(value, cst.Attribute | cst.Subscript):
        root = _identifier_of(chain_root(value))
        return frozenset({root}) if root is not None else frozenset()
    if isinstance(value, cst.Call):  # `Chunk(i, buffer)`, `ch.feed(t)`: may hold them
        func = value.func
        if isinstance(func, cst.Name) and func.value in _READING_BUILTINS:
            return frozenset()  # `list(buffer)`, `len(buffer)`: a new value
        owner = _kept(func.value) if isinstance(func, cst.Attribute) else frozenset()
        return owner.union(*(_kept(arg.value) for arg in value.args))
    if isinstance(value, cst.Tuple | cst.List | cst.Set):
        return frozenset().union(*(_kept(e.value) for e in value.elements))
    if isinstance(value, cst.Dict):
        return frozenset().union(
            *(_kept(e.value) for e in value.elements if isinstance(e, cst.DictElement))
        )
    return frozenset()


def _names(target: cst.BaseExpression) -> Held:
    if isinstance(target, cst.Name):
        return frozenset({identifier(target.value)})
    if isinstance(target, cst.Tuple | cst.List):
        return frozenset().union(*(_names(e.value) for e in target.elements))
    if isinstance(target, cst.StarredElement):
        return _names(target.value)
    return frozenset()


def _identifier_of(node: cst.BaseExpression) -> str | None:
    return identifier(node.value) if isinstance(node, cst.Name) else None


def _blocks_within(node: cst.CSTNode) -> list[cst.BaseSuite]:
    """The blocks of a compound statement (a `try`'s, a `with`'s, a `match`'s),
    its handlers' and clauses' among them, outside its expressions."""
    found: list[cst.BaseSuite] = []
    for child in node.children:
        if isinstance(child, cst.BaseSuite):
            found.append(child)
        elif not isinstance(child, cst.BaseExpression):
            found += _blocks_within(child)
    return found
