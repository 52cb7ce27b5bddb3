"""What a function may do to what it is passed: the data `read_effects` hands lowering.

Example: `Effects(params=("state", "tag"), changes=(("state", Change("assigns
state['answer']", span)),))` for a function that assigns into the dict it is
given and leaves its string alone. `MemoryUse` says which keys of a
`kiln.Memory` argument it reads and writes (`Keys`), `external` the first
effect outside its parameters (I/O, logging, module state). Lowering orders
a flow's steps by these (`Step.uses`, `key_reads`, `key_writes`, `external`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final, final

import libcst as cst

from kilnc.source import Span


@final
@dataclass(frozen=True, slots=True)
class Holder:
    """What effects reading may assume of a name: its annotation, whether a Memory."""

    annotation: str | None
    memory: bool = False


@final
@dataclass(frozen=True, slots=True)
class Change:
    """Why a function may change an argument, or the world: the first place found."""

    reason: str  # "assigns state['answer']", "passes it to requests.post"
    span: Span
    # It only iterates the argument, which changes an iterator but no container.
    by_iteration: bool = False
    # Only by a method kiln cannot see into that is no container's change
    # (`event.set()`): module state handed over is read, as a client is.
    opaque: bool = False


@final
@dataclass(frozen=True, slots=True)
class Reads:
    """Reads of a parameter that change it for some arguments only: the caller,
    which may know the argument's type better than the annotation, decides.

    `items`: an item read (`index[key]`), which stores the key in a defaultdict,
    whatever the parameter is annotated (`dict`, `Mapping`). `as_dict`: a method
    read as a dict's because the parameter is unannotated (`inbox.get(key)`),
    which another class's may not be: then it changes its object, and may change
    the `passed` parameters' objects it was given.
    """

    items: Change | None = None
    as_dict: Change | None = None
    passed: frozenset[str] = frozenset()

    def __or__(self, other: Reads) -> Reads:
        return Reads(
            self.items or other.items,
            self.as_dict or other.as_dict,
            self.passed | other.passed,
        )


@final
@dataclass(frozen=True, slots=True)
class Keys:
    """Keys of a Memory store: these names, or every key when `any`."""

    names: frozenset[str] = frozenset()
    any: bool = False
    # Keys named by the function's own parameters (`memory[key] = value`): the
    # caller's argument says which, a literal at best.
    params: frozenset[str] = frozenset()

    def __or__(self, other: Keys) -> Keys:
        return Keys(
            self.names | other.names, self.any or other.any, self.params | other.params
        )

    def __bool__(self) -> bool:
        return self.any or bool(self.names) or bool(self.params)


NO_KEYS: Final = Keys()
ANY_KEY: Final = Keys(any=True)


@final
@dataclass(frozen=True, slots=True)
class MemoryUse:
    """The keys a function reads and writes through a `kiln.Memory` it is passed.

    `mutates`: the keys whose values it may change in place (`memory.log.append(x)`),
    where a write may only bind a key anew. `returned`: the keys whose values
    its result may hold (every key when it may hold the Memory itself).
    `shares`: keys whose values it stores elsewhere, and keys it stores into
    (`memory.best = memory.results[0]`, `memory.items = items`): from then on
    they may hold one object with each other and with what it was given.
    """

    global_reads: Keys = NO_KEYS
    global_writes: Keys = NO_KEYS
    local_reads: Keys = NO_KEYS
    local_writes: Keys = NO_KEYS
    copies: bool = False  # clones it: reads its whole local store, to copy it
    mutates: Keys = NO_KEYS
    returned: Keys = NO_KEYS
    shares: Keys = NO_KEYS

    def __or__(self, other: MemoryUse) -> MemoryUse:
        return MemoryUse(
            self.global_reads | other.global_reads,
            self.global_writes | other.global_writes,
            self.local_reads | other.local_reads,
            self.local_writes | other.local_writes,
            self.copies or other.copies,
            self.mutates | other.mutates,
            self.returned | other.returned,
            self.shares | other.shares,
        )

    @property
    def writes(self) -> bool:
        return bool(self.global_writes or self.local_writes)


def global_part(use: MemoryUse) -> MemoryUse:
    """What a clone's use reaches of the Memory it was made from: its global
    store (the local one is its own copy)."""
    return replace(use, local_reads=NO_KEYS, local_writes=NO_KEYS, copies=False)


class Access(enum.Enum):
    """How code uses one piece of module state, as ordering against other code needs.

    Two uses of one name conflict unless they are of one kind and that kind is
    not WRITE: reads commute with reads, accumulations (`LOG.append(x)`,
    `TOTAL += n`) with accumulations, and fills (`if k not in CACHE: CACHE[k] =
    v`, which assume the value does not depend on who fills it) with fills.
    A fold is an accumulation that reads the value before it stores the sum
    (`TOTAL += n`, `COUNTS[k] = COUNTS.get(k, 0) + 1`), and a fill tests before
    it stores: in the event loop nothing runs between the two, in a thread
    anything may (`as_run_in_threads`).
    """

    READ = "reads"
    ACCUMULATE = "adds to"
    FOLD = "folds into"
    FILL = "fills"
    WRITE = "changes"

    def join(self, other: Access) -> Access:
        """Both uses in one body: a fill's own reads are the fill's; else a write."""
        if self is other:
            return self
        if {self, other} == {Access.READ, Access.FILL}:
            return Access.FILL
        if {self, other} == _ADDING:
            return Access.FOLD
        return Access.WRITE

    def conflicts(self, other: Access) -> bool:
        if {self, other} == _ADDING:
            return False
        return self is not other or self is Access.WRITE


_ADDING: Final = frozenset({Access.ACCUMULATE, Access.FOLD})
# The uses that read the state before they store into it (`as_run_in_threads`).
_RACED: Final = frozenset({Access.FOLD, Access.FILL})


@final
@dataclass(frozen=True, slots=True)
class StateUse:
    """A use of a piece of module state, and the first place of its kind.

    `guessed`: it changes the piece only by what kiln guesses code it cannot
    see into does (`ENCODER.encode(p)` of an installed library's object,
    `requests.get(CONFIG["url"])`): the flow keeps its order for it, but a
    node is not refused for it (changing.py).
    """

    access: Access
    where: Change
    guessed: bool = False

    def join(self, other: StateUse) -> StateUse:
        """Both uses; the place of the one that decides the kind, or of a change
        kiln reads rather than one it guesses."""
        access = self.access.join(other.access)
        kept = self if access is self.access or access is not other.access else other
        dropped = other if kept is self else self
        if kept.guessed and not dropped.guessed and dropped.access is not Access.READ:
            kept = dropped
        changes = [use for use in (self, other) if use.access is not Access.READ]
        guessed = bool(changes) and all(use.guessed for use in changes)
        return StateUse(access, kept.where, guessed)


StateUses = tuple[tuple[str, StateUse], ...]  # by qualified name (`app.cache.SEEN`)

# A method's own object, as a piece of state: `<self>.now` is its attribute `now`.
# A call on a module-level object names it (`app.metrics.GAUGE.now`); on any other
# object, the call's changes of its argument say what it does.
RECEIVER: Final = "<self>"


def as_run_in_threads(uses: StateUses) -> StateUses:
    """The uses of code run in a thread: each fold and each fill a write, since
    another thread's may run between its read and its store, and lose one of
    two updates, or make a second client where the source makes one."""
    return tuple(
        (name, replace(use, access=Access.WRITE) if use.access in _RACED else use)
        for name, use in uses
    )


def join_state(*uses: Iterable[tuple[str, StateUse]]) -> StateUses:
    """The uses of several pieces of code run as one, by name; a use of a whole
    object is a use of each of its attributes that they use (`spread`)."""
    found: dict[str, StateUse] = {}
    for some in uses:
        for name, use in some:
            found[name] = found[name].join(use) if name in found else use
    return spread(found)


def spread(uses: dict[str, StateUse]) -> StateUses:
    """`app.GAUGE` read and `app.GAUGE.now` added to, in one body: its `now` is
    read and added to, a change; its other attributes only read."""
    spread = dict(uses)
    for name in uses:
        for whole in _wholes(name):
            if whole in uses:
                spread[name] = spread[name].join(uses[whole])
    return tuple(sorted(spread.items()))


def _wholes(name: str) -> Iterator[str]:
    """The pieces `name` is part of: `app.GAUGE` and `app` of `app.GAUGE.now`,
    and `EVERY_PIECE`."""
    head, dot, _ = name.rpartition(".")
    while dot:
        yield head
        head, dot, _ = head.rpartition(".")
    if name != EVERY_PIECE:
        yield EVERY_PIECE


def on_object(name: str, piece: str) -> str:
    """`app.GAUGE.now`: a method's use of its object (`<self>.now`) on `piece`."""
    return piece + name.removeprefix(RECEIVER)


def part_of(name: str, whole: str) -> bool:
    """Whether the piece `name` is `whole` or one of its attributes (any piece
    is part of `EVERY_PIECE`)."""
    return whole in (name, EVERY_PIECE) or name.startswith(whole + ".")


# Every piece of module state at once: what code kiln cannot read may use.
EVERY_PIECE: Final = "*"

# The end of the reason for a change made only by handing a value to code kiln
# cannot see into (`requests.get(CONFIG["url"])`): what that code does, kiln guesses.
UNSEEN: Final = "code kiln cannot see into"


# How a step that reaches module state may change what the flow stored there.
STATE_REASON: Final = "reaches module state"
EVERY_KEY: Final = MemoryUse(
    ANY_KEY, ANY_KEY, ANY_KEY, ANY_KEY, copies=True, mutates=ANY_KEY
)
# A token made by `memory.clone(...)` inside a call's arguments has no name of
# its own: it is called `<memory>+clone@<line>.<column>`.
ANONYMOUS_CLONE: Final = "+clone@"


@final
@dataclass(frozen=True, slots=True)
class Effects:
    """A function's effects on its parameters (by name, in order) and beyond them.

    `changes` maps a parameter to why it may be mutated; `memory` maps a
    `kiln.Memory` parameter to the keys it touches; `returns` are the
    parameters whose objects the result may share; `external` is the first
    effect outside the parameters (I/O, logging, module state), `reads_state`
    the first read of module state something else may change (a node's own
    reads are left out: nodes overlap whatever module state they share);
    `reads` the reads that change a parameter for some arguments (`Reads`).
    `escapes` are the parameters whose objects it may store in module state;
    `keeps` those it may store another parameter's object in (`box.append(x)`,
    `self.last = x`): given module state there, it may keep what else it is given;
    `state` says whether it reads or changes module state at all (a node's
    own reads too), so may reach what an earlier call stored there;
    `result_state` whether its result may be module state, or be stored there
    (`return HISTORIES[user]`, `SESSIONS[key] = session; return session`),
    `result_pieces` the pieces of module state it returns (part of);
    `state_uses` how it uses each piece of module state, by qualified name,
    the code it calls included: what orders two node calls of a flow.
    `context` is the first `ContextVar` it sets for the code after it (a
    `set` its body does not `reset`): the source's next calls see the value,
    where a call run as a task would set it in a copy of the flow's context.
    `changes_yielded`, of a generator: the first change it makes to an object
    it has yielded (the batching idiom that clears one buffer for the next);
    `cleans_up`, of an async generator: the first change its cleanup makes (a
    `finally:` around a `yield`), which a consumer that stops early runs.
    `fixed` are the parameters annotated with a deeply immutable type (`str`,
    `tuple[int, ...]`): an argument bound to one shares nothing that can change.
    """

    params: tuple[str, ...]
    changes: tuple[tuple[str, Change], ...] = ()
    memory: tuple[tuple[str, MemoryUse], ...] = ()
    returns: frozenset[str] = frozenset()
    external: Change | None = None
    reads_state: Change | None = None
    variadic: bool = False  # takes *args or **kwargs: any argument may land anywhere
    reads: tuple[tuple[str, Reads], ...] = ()
    escapes: frozenset[str] = frozenset()
    keeps: frozenset[str] = frozenset()
    state: bool = False
    result_state: bool = False
    result_pieces: frozenset[str] = frozenset()
    state_uses: StateUses = ()
    context: Change | None = None
    changes_yielded: Change | None = None
    cleans_up: Change | None = None
    fixed: frozenset[str] = frozenset()

    def bind(
        self, call: cst.Call, receiver: cst.BaseExpression | None = None
    ) -> Iterator[tuple[str | None, cst.BaseExpression]]:
        """Each argument with the parameter it binds; None when kiln cannot tell which.

        `f(*(a, b))` is `f(a, b)`: a literal tuple or list unpacked binds as its
        elements would. A method's `receiver` (`a` of `a.describe()`) is its `self`.
        """
        params = self.params
        position = 0
        if receiver is not None and params:
            yield params[0], receiver
            position = 1
        for arg in call.args:
            spread = _literal_elements(arg.value) if arg.star == "*" else None
            if self.variadic or (arg.star and spread is None):
                yield None, arg.value
            elif arg.keyword is not None:
                name = arg.keyword.value
                yield (name if name in params else None), arg.value
            else:
                for value in [arg.value] if spread is None else spread:
                    yield (params[position] if position < len(params) else None), value
                    position += 1

    def change(self, param: str) -> Change | None:
        return next((c for p, c in self.changes if p == param), None)

    def memory_use(self, param: str) -> MemoryUse | None:
        return next((m for p, m in self.memory if p == param), None)

    def reads_of(self, param: str) -> Reads | None:
        return next((r for p, r in self.reads if p == param), None)


def _literal_elements(value: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    """The elements of a literal tuple or list with no `*` inside, else None."""
    if not isinstance(value, cst.Tuple | cst.List):
        return None
    if not all(isinstance(element, cst.Element) for element in value.elements):
        return None
    return [element.value for element in value.elements]
