"""How one body uses each piece of module state: reads, changes, adds to or fills it.

Example input (a node's body, in the module `app`)::

    global _client
    if _client is None:            # a fill: a store the body guards by a test
        _client = make_client()    #   of the same name's absence
    LOG.append(key)                # an accumulation: it commutes with others
    if key not in CACHE:
        CACHE[key] = await compute(key)        # a fill
    SEEN[key] = 1                  # a write
    return Config.mode             # a read of the class `Config`'s state

Output, on the `Body`: `app._client` and `app.CACHE` FILL, `app.LOG`
ACCUMULATE, `app.SEEN` WRITE, `app.Config` READ. The visitor reports each
read and change as it meets it (`record`); `Idioms`, found first, says which
of those are part of an accumulation or a fill, whose access it is then.
A name the body declares `global`, and a local bound to a piece of module
state (`cache = CACHE`), are that state.

Accumulations and fills are read from their syntax: `LOG.append(x)` is an
accumulation unless `LOG`'s `append` is a method of the project's, which
kiln reads instead, and so are the folds `COUNTS[k] = COUNTS.get(k, 0) + 1`
and `PEAK[1] = max(PEAK)` (a high-water mark: what it reads is the fold's).
A fill is a store inside an `if` that tests the same state's absence, or
after an `if` that returns when it is present (a memo); it assumes the
value filled does not depend on who fills it (two memoised calls of one
function fill in the same value).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import libcst as cst

from kilnc.effect_ir import RECEIVER, Access, Change, StateUse, on_object, part_of
from kilnc.effects.module_state import class_state, declared_global
from kilnc.mutability import MUTATING_METHODS
from kilnc.names import identifier
from kilnc.syntax import awaits, chain_root, code, dotted
from kilnc.walk import walk

if TYPE_CHECKING:  # the body asks this module what it uses: a cycle
    from kilnc.effects.body import Body

# A builtin container's methods that add to it and read nothing back.
_ADDING: Final = frozenset({"append", "add", "extend", "appendleft", "extendleft"})
# Updates that commute with each other on numbers, and add to a list or a str.
_ADDING_OPERATORS: Final = (cst.AddAssign, cst.SubtractAssign)


class Idioms:
    """What a body's accumulations and fills are: the access of each store's root
    name (by node), the names it declares `global`, the locals bound to state."""

    def __init__(self, body: Body) -> None:
        found = _Finder(body)
        for root in body.roots:
            walk(root, found)
        self.declared = frozenset(found.declared)
        self.aliases: dict[str, cst.BaseExpression] = {}
        for targets, value in body.bindings.bound:
            held = _held(value)
            if held is not None and isinstance(chain_root(held), cst.Name):
                for target in targets - self.declared:
                    self.aliases.setdefault(target, held)
        self.kinds: dict[int, Access] = {}
        for node in found.adds:
            self.kinds[id(chain_root(node))] = Access.ACCUMULATE
        memoised = {state_of(body, test, self) for test in found.memos}
        for node, guards in found.stores:
            guarded = memoised | {state_of(body, test, self) for test in guards}
            if state_of(body, node, self) in guarded - {None}:
                self.kinds[id(chain_root(node))] = Access.FILL
        for node in found.fills:
            self.kinds[id(chain_root(node))] = Access.FILL
        for into, parts, high_water in found.folds:  # its reads of it too
            folded = state_of(body, into, self)
            same = [
                part
                for part in parts
                if state_of(body, _called_on(part), self) == folded
                and (high_water or _item(part) == _item(into))
            ]
            # A high-water mark's other reads are the fold's: a gauge's peak of
            # what is in flight now (`PEAK = max(PEAK, ACTIVE)`) sees the overlap.
            others = [
                part
                for part in parts
                if high_water and state_of(body, _called_on(part), self) is not None
            ]
            for part in (into, *same, *others) if same and folded else ():
                self.kinds[id(chain_root(_called_on(part)))] = Access.ACCUMULATE
        # `global MODE; MODE = x` and `cache.MODE = x` (through the module
        # `cache`): what the visitor reports changes the module, not its name.
        for node, verb in found.changed:
            if isinstance(node, cst.Name) and identifier(node.value) not in (
                self.declared
            ):
                continue  # a local bound anew, though it held module state
            record(body, node, Access.WRITE, f"{verb} {code(node)}", node, self)


def state_of(
    body: Body,
    node: cst.BaseExpression,
    idioms: Idioms | None = None,
    called: bool = False,
    seen: frozenset[str] = frozenset(),
) -> str | None:
    """The piece of module state `node` is, or is part of (`app.cache.SEEN` of
    `SEEN[key]`, `c.SEEN.get`), by its defining module's name; None for none."""
    head = node
    while isinstance(head, cst.Subscript) or (
        isinstance(head, cst.Attribute) and dotted(head) is None
    ):
        head = head.value
    root = chain_root(head)
    if _own_class(body, root) and body.owner is not None:  # `type(self).count`
        return class_state(body.defs, body.owner)
    if isinstance(root, cst.Call):  # `get_store()[key]`, of `return STORE`
        return _returned(body, root, idioms or body.idioms)
    if not isinstance(root, cst.Name):
        return None
    idioms = idioms or body.idioms
    name = identifier(root.value)
    if name == body.receiver and name not in body.local_names:
        piece = _of_receiver(head, called)
        if piece == f"{RECEIVER}.__class__" and body.owner is not None:
            return class_state(body.defs, body.owner)  # `self.__class__.registry`
        return piece
    if name in idioms.declared or body.is_module_state(root):
        # A constant too: another module may rebind it (`settings.LIMIT = 5`).
        called = called and head is node
        return body.reader.state_name(body.defs, head, called, constants=True)
    held = idioms.aliases.get(name)
    if held is None or name in seen or name in body.params:
        return None
    return state_of(body, held, idioms, seen=seen | {name})


def names_whole(
    body: Body,
    node: cst.BaseExpression,
    idioms: Idioms,
    seen: frozenset[str] = frozenset(),
) -> bool:
    """Whether `node` names a whole piece of state (`GAUGE`, `c.GAUGE`, `self`, a
    local bound to one), not a part of one (`GAUGE.inner`, `CACHE[key]`)."""
    if isinstance(node, cst.Name):
        name = identifier(node.value)
        held = idioms.aliases.get(name)
        return held is None or (
            name not in seen and names_whole(body, held, idioms, seen | {name})
        )
    if not isinstance(node, cst.Attribute):
        return False
    return state_of(body, node.value, idioms) is None


def on_called(
    body: Body,
    argument: cst.BaseExpression | None,
    name: str,
    idioms: Idioms | None = None,
) -> str | None:
    """The piece a method's use of its object (`<self>.now`) is, the method called
    on `argument`: `app.GAUGE.now` on `GAUGE` itself, `app.GAUGE` on a part of it
    (`GAUGE.inner`); None on what is no module state."""
    if argument is None:
        return None
    idioms = idioms or body.idioms
    piece = state_of(body, argument, idioms)
    if piece is None or not names_whole(body, argument, idioms):
        return piece
    return on_object(name, piece)


def _returned(body: Body, call: cst.Call, idioms: Idioms) -> str | None:
    """The piece of module state a project function's or method's result is part
    of, where it returns one piece (`def get_store(): return STORE`)."""
    func = call.func
    builtin = body.reader.resolve(body.defs, func)
    if builtin == "builtins.vars" and call.args:  # `vars(CFG)[key] = value`
        attribute = cst.Attribute(call.args[0].value, cst.Name("__dict__"))
        return state_of(body, attribute, idioms)
    if builtin == "builtins.globals":  # every piece of the module
        return body.defs.location.name
    target = body.reader.called(body, func) if isinstance(func, cst.Attribute) else None
    if target is None:
        qualified = body.reader.resolve(body.defs, func)
        found = body.reader.project_function(qualified) if qualified else None
        target = (*found, None) if found else None
    if target is None:
        return None
    module, name, receiver = target
    pieces = body.reader.of_function(module, name).result_pieces
    if len(pieces) != 1:
        return None
    [piece] = pieces
    if not part_of(piece, RECEIVER):
        return piece
    return on_called(body, receiver, piece, idioms)


def _own_class(body: Body, node: cst.BaseExpression) -> bool:
    """Whether `node` is `type(self)` in a method."""
    return (
        isinstance(node, cst.Call)
        and dotted(node.func) == "type"
        and len(node.args) == 1
        and isinstance(node.args[0].value, cst.Name)
        and node.args[0].value.value == body.receiver
    )


def _of_receiver(head: cst.BaseExpression, called: bool) -> str | None:
    """The part of a method's object `head` is: `<self>.data` of `self.data[k]`
    and `self.data.get`, `<self>` of `self` itself; None for a method it calls
    (`self.flush()`), whose own uses are the call's."""
    first = None
    node = head
    while isinstance(node, cst.Attribute | cst.Subscript):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            first = identifier(node.attr.value)
            if called and node is head:
                return None
        node = node.value
    return RECEIVER if first is None else f"{RECEIVER}.{first}"


def record(
    body: Body,
    node: cst.BaseExpression,
    access: Access,
    reason: str,
    where: cst.CSTNode,
    idioms: Idioms | None = None,
    called: bool = False,
) -> None:
    """A read (or a change) of what `node` is, if it is module state: the
    access of the idiom it is part of, if any."""
    idioms = idioms or body.idioms
    name = state_of(body, node, idioms, called)
    if name is None:
        return
    access = idioms.kinds.get(id(chain_root(node)), access)
    before = body.found.state_uses.get(name)
    if before is None or before.access.join(access) is not before.access:
        where_found = Change(reason, body.defs.parsed.span(where))
        merge(body, name, StateUse(access, where_found))


def merge(body: Body, name: str, use: StateUse) -> None:
    """Another use of the piece of module state `name`: the first place of
    each kind stays, so a reason is the same in every round of a fixed point."""
    uses = body.found.state_uses
    uses[name] = uses[name].join(use) if name in uses else use


def opaque(body: Body, func: cst.BaseExpression) -> bool:
    """Whether a call of `func` reads the module state it is a method of, where
    kiln cannot see into the method: `client.post`, no container's change
    (`LOG.clear`), no method of a standard-library object that holds state
    (`QUEUE.put_nowait(x)` of `QUEUE = asyncio.Queue()`)."""
    if not isinstance(func, cst.Attribute) or func.attr.value in MUTATING_METHODS:
        return False
    root = chain_root(func.value)
    if not isinstance(root, cst.Name) or func.value is not root:
        return True
    declared = declared_global(body, identifier(root.value))
    if declared is None:
        return True
    defs, made = declared
    library = body.reader.library_name(defs.location.name, made.partition("[")[0])
    return library not in _STATEFUL


# Standard-library objects whose every method may change them: a queue, an event,
# a random generator, a counter, an ordered dict's `move_to_end`.
_STATEFUL: Final = frozenset(
    {f"asyncio.{kind}" for kind in ("Queue", "LifoQueue", "PriorityQueue", "Event")}
    | {f"queue.{kind}" for kind in ("Queue", "SimpleQueue", "LifoQueue")}
    | {"threading.Event", "random.Random", "itertools.count"}
    | {"collections.OrderedDict"}
)


def _held(value: cst.BaseExpression) -> cst.BaseExpression | None:
    """What a local bound to `value` holds part of: `CACHE` of `CACHE[key]` and
    of `CACHE.setdefault(key, [])`; None for a value of its own."""
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        return value.func.value if value.func.attr.value == "setdefault" else None
    return (
        value if isinstance(value, cst.Name | cst.Attribute | cst.Subscript) else None
    )


class _Finder(cst.CSTVisitor):
    """The candidates: stores, the tests that may guard them, accumulations."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.declared: set[str] = set()
        # Each store with what the tests of the `if`s around it check is absent.
        self.stores: list[tuple[cst.BaseExpression, tuple[cst.BaseExpression, ...]]]
        self.stores = []
        self.guards: list[cst.BaseExpression] = []
        self._opened: list[int] = []  # how many guards each open `if` added
        # What `if key in CACHE: return CACHE[key]` checks is there: a memo.
        self.memos: list[cst.BaseExpression] = []
        # A store of a sum, a difference or a max of what it stores into, its
        # operands, and whether a max or a min: an update as order-insensitive
        # as `+=`.
        self.folds: list[tuple[cst.BaseExpression, list[cst.BaseExpression], bool]] = []
        self.adds: list[cst.BaseExpression] = []
        self.fills: list[cst.BaseExpression] = []
        self.changed: list[tuple[cst.BaseExpression, str]] = []  # and how

    def visit_Global(self, node: cst.Global) -> None:
        self.declared.update(identifier(item.name.value) for item in node.names)

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._store(target.target, "assigns")
        value = node.value
        parts: list[cst.BaseExpression] = []
        high_water = False
        if isinstance(value, cst.BinaryOperation):  # `COUNTS[k] = COUNTS.get(k, 0) + 1`
            if isinstance(value.operator, cst.Add):
                parts = [value.left, value.right]
            elif isinstance(value.operator, cst.Subtract):
                parts = [value.left]
        elif isinstance(value, cst.Call) and dotted(value.func) in ("max", "min"):
            parts = [arg.value for arg in value.args]  # `PEAK[1] = max(PEAK)`
            high_water = True
        if parts and len(node.targets) == 1 and not awaits(value):
            self.folds.append((node.targets[0].target, parts, high_water))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._store(node.target, "assigns")

    def visit_Del(self, node: cst.Del) -> None:
        self._store(node.target, "deletes")

    def _store(self, target: cst.BaseExpression, verb: str) -> None:
        if isinstance(target, cst.Tuple | cst.List):
            for element in target.elements:
                self._store(element.value, verb)
        elif isinstance(target, cst.StarredElement):
            self._store(target.value, verb)
        else:  # read at the end of the walk: a `global` statement may come later
            if verb == "assigns":
                self.stores.append((target, tuple(self.guards)))
            self.changed.append((target, verb))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        # `COUNTS[k] += await f()` reads before it waits and stores after: two
        # such overlapping lose an update, where the source's never do.
        if isinstance(node.operator, _ADDING_OPERATORS) and not awaits(node.value):
            self.adds.append(node.target)
        self.changed.append((node.target, "changes"))

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        if func.attr.value == "setdefault":
            self.fills.append(func.value)
        elif (
            func.attr.value in _ADDING
            and self.body.reader.called(self.body, func) is None
        ):  # a project class's `add` is read as it is written
            self.adds.append(func.value)

    def visit_If(self, node: cst.If) -> None:
        absent: list[cst.BaseExpression] = []
        present: list[cst.BaseExpression] = []
        _tested(node.test, absent, present)
        self.guards += absent
        self._opened.append(len(absent))
        body = node.body.body
        last = body[-1] if body else None
        if isinstance(last, cst.SimpleStatementLine) and isinstance(
            last.body[-1], cst.Return
        ):
            self.memos += present

    def leave_If(self, original_node: cst.If) -> None:
        del self.guards[len(self.guards) - self._opened.pop() :]


def _tested(
    test: cst.BaseExpression,
    absent: list[cst.BaseExpression],
    present: list[cst.BaseExpression],
) -> None:
    """What a test checks is absent (`key not in CACHE`, `_client is None`, `not
    _client`, `CACHE.get(k) is None`) or present (`key in CACHE`)."""
    if isinstance(test, cst.BooleanOperation):
        # `k not in C and x` holds only where `k` is absent, `k in C or x` may
        # hold where it is: an `and` keeps its sides' absences, an `or` their
        # presences (`if k in C and not force: return` may fall through).
        conjunction = isinstance(test.operator, cst.And)
        for side in (test.left, test.right):
            _tested(side, absent if conjunction else [], [] if conjunction else present)
    elif isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        absent.append(_called_on(test.expression))
    elif isinstance(test, cst.Comparison):
        left = test.left
        for target in test.comparisons:
            operator, right = target.operator, target.comparator
            if isinstance(operator, cst.In | cst.NotIn):
                (absent if isinstance(operator, cst.NotIn) else present).append(right)
            for side, other in ((left, right), (right, left)):
                if isinstance(other, cst.Name) and other.value == "None":
                    held = absent if isinstance(operator, cst.Is) else present
                    if isinstance(operator, cst.Is | cst.IsNot):
                        held.append(_called_on(side))
            left = right


def _item(node: cst.BaseExpression) -> str | None:
    """The key a fold's operand reads or its target stores: `k` of `COUNTS[k]`
    and of `COUNTS.get(k, 0)`; None for the whole (`TOTAL`)."""
    if isinstance(node, cst.Subscript):
        index = node.slice[0].slice if len(node.slice) == 1 else None
        return code(index.value) if isinstance(index, cst.Index) else "[:]"
    if isinstance(node, cst.Call) and node.args:
        return code(node.args[0].value)
    return None


def _called_on(node: cst.BaseExpression) -> cst.BaseExpression:
    """`CACHE` of `CACHE.get(key)`: what a test of a method's result checks."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return node.func.value
    return node
