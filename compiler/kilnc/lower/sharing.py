"""Which of a flow's names may hold the same object, and which Memory a token is.

Example input::

    rows = await load(path)        # load returns its argument's list: rows ~ path
    view = rows                    # view ~ rows
    await clean(view)              # clean changes view: a write of view, rows, path
    m2 = memory.clone({"i": 1})    # same global store as memory, a local store of its own

Lowering records each link as it meets it; `settle` then widens every step's
changes to every name linked to one it changes (and, through `stores.py`, to
the Memory keys and names that may hold one object: `held = memory["items"]`),
and names each Memory key by the store it lives in: `@g:<root>:<key>` for a
global store (shared by a Memory and all its clones), `@l:<token>:<key>` for
one token's local store, and `@c:<token>:*` for a clone's copy of a whole
local store.
Links are flow-insensitive, so a name linked anywhere is linked everywhere:
the scheduler may keep an order it did not need, never miss one it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from kilnc.effect_ir import ANONYMOUS_CLONE, STATE_REASON
from kilnc.ir import Block, Step, StepId, child_blocks, with_child_blocks
from kilnc.lower.places import Places
from kilnc.lower.stores import Classes, Stores

PASSED_IN = "@passed"  # every Memory the caller passes: two parameters may be one


class Sharing:
    def __init__(self) -> None:
        self._objects = Classes()
        self._tokens = Classes()  # names of one Memory object
        self._roots = Classes()  # names of Memories with one global store
        self.tokens: set[str] = {PASSED_IN}  # every name that ever holds a Memory
        # Names and Memory keys that may hold one object (`held = memory["items"]`,
        # `Memory(store)`: `store` holds the global store whole, `@g:...:*`).
        self.holds: list[frozenset[str]] = []
        # Memories made over a name's dict, with the stores it is (`g`, `l`): two
        # made over one object share that store.
        self.made: list[tuple[str, str, tuple[str, ...]]] = []
        # Names whose objects the flow stored in module state (by the line that
        # first did), and the calls that read or change module state: each of
        # those may change each of these, wherever in the flow it is.
        self.escaped: dict[str, int] = {}
        # Names bound to module state a call hands out, by the call's site, with
        # its line: what changes it there before the call, the call waits for.
        self.bound: dict[str, dict[int, int]] = {}
        self.state_steps: set[StepId] = set()
        # The Memory keys whose values each step may change in place, where a
        # write may bind a key anew: only such a change reaches what else holds it.
        self.mutated: dict[StepId, set[str]] = {}

    def escape(self, names: Iterable[str], line: int) -> None:
        for name in names:
            self.escaped.setdefault(name, line)

    def bound_from_state(self, names: Iterable[str], line: int, site: int) -> None:
        """The call at `site` binds `names` to module state it reads (`snap =
        await current()` of `return COUNTERS`): a call that reaches module state
        before it changes that state, which the call is ordered after, and not
        yet what the names hold."""
        for name in names:
            self.bound.setdefault(name, {})[site] = line

    def reaches_state(self, step: StepId) -> None:
        self.state_steps.add(step)

    def link(self, targets: Iterable[str], sources: Iterable[str]) -> None:
        """Each target may hold objects each source holds."""
        for target in targets:
            for source in sources:
                self._objects.union(target, source)

    def mutate(self, step: StepId, keys: Iterable[str]) -> None:
        self.mutated.setdefault(step, set()).update(keys)

    def hold(self, members: Iterable[str]) -> None:
        """Names and Memory keys (`@g:memory:items`, `@l:memory:*` for a whole
        store) that may hold one object: changing one changes the others."""
        group = frozenset(members)
        if len(group) > 1:
            self.holds.append(group)

    def made_over(self, token: str, name: str, stores: tuple[str, ...]) -> None:
        """`Memory(store)`: the token's global store (`stores`: or its local
        one) is the object `name` holds."""
        self.made.append((token, name, stores))

    def passed_in(self, name: str) -> None:
        self.same_memory((name,), PASSED_IN)

    def same_memory(self, targets: Iterable[str], source: str) -> None:
        for target in targets:
            self.tokens.add(target)
            self._tokens.union(target, source)
            self._roots.union(target, source)

    def clone(self, targets: Iterable[str], source: str) -> None:
        for target in targets:
            self.tokens.add(target)
            self._roots.union(target, source)

    def returned_memory(self, targets: Iterable[str], given: Iterable[str]) -> None:
        """A node's Memory result may be any Memory it was given, or one from outside."""
        given = list(given) or [PASSED_IN]
        for source in given:
            self.same_memory(targets, source)

    def settle(self, block: Block) -> Block:
        return _Settler(self, Places(block)).block(block)


class _Settler:
    def __init__(self, sharing: Sharing, places: Places) -> None:
        self.places = places
        self.bound = sharing.bound
        self.objects = sharing._objects
        self.classes = self.objects.members()
        self.tokens = sharing._tokens
        self.roots = sharing._roots
        self.escaped = sharing.escaped
        self.state_steps = sharing.state_steps
        self.changed_in_place = sharing.mutated
        self.made = sharing.made
        # Memories made over one dict share its store: a local one, conservatively,
        # as one token (a key of one is a key of the other, whichever store).
        over: dict[tuple[str, tuple[str, ...]], str] = {}
        for token, name, stores in sharing.made:
            first = over.setdefault((self.objects.find(name), stores), token)
            self.roots.union(first, token)
            if "l" in stores:
                self.tokens.union(first, token)
        self.stores = Stores(sharing.holds, self.objects.find, self.widen, self.key)

    def block(self, block: Block) -> Block:
        return Block(tuple(self.step(step) for step in block.steps))

    def step(self, step: Step) -> Step:
        action = step.action
        children = child_blocks(action)
        if children:
            action = with_child_blocks(action, tuple(self.block(c) for c in children))
        step = self.through_state(step, children)
        written = frozenset(self.key(k) for k in step.key_writes)
        uses, key_writes = self.stores.reach(
            self.widen(step.uses),
            written,
            frozenset(self.key(k) for k in self.mutated(step, children)),
        )
        why = tuple(
            (self.key(name) if name.startswith("@") else name, reason)
            for name, reason in step.why
        )
        return replace(
            step,
            action=action,
            uses=uses,
            key_reads=frozenset(self.key(k) for k in step.key_reads),
            key_writes=key_writes,
            why=why + self.made_over(written, uses - {name for name, _ in why}),
        )

    def made_over(
        self, written: frozenset[str], uses: frozenset[str]
    ) -> tuple[tuple[str, str], ...]:
        """Why a step that writes a Memory key changes the dict the Memory was
        made over (`Memory(shared)`): the name a reader of the flow sees change."""
        found: dict[str, str] = {}
        for token, name, stores in self.made:
            owners = {"@g": self.roots.find(token), "@l": self.tokens.find(token)}
            for key in sorted(written):
                store, owner, named = key.split(":", 2)
                if name in uses and store[1:] in stores and owners.get(store) == owner:
                    keys = "every key" if named == "*" else f"the key {named!r}"
                    found.setdefault(name, f"writes {keys} of the Memory made over it")
        return tuple(sorted(found.items()))

    def through_state(self, step: Step, children: tuple[Block, ...]) -> Step:
        """A call that reaches module state (or a block holding one) may change
        what the flow stored there: flow-insensitively, as links are; a name
        bound to module state a call reads, only where it may run after that
        call (`places.py`)."""
        escaped = dict(self.escaped)
        for name, sites in self.bound.items():
            lines = [
                line
                for site, line in sites.items()
                if not self.places.before(step.id, self.places.of_call(site))
            ]
            if lines:
                escaped[name] = min([*lines, escaped.get(name, lines[0])])
        if not escaped or not self.reaches(step, children):
            return step
        why = tuple(
            (name, f"{STATE_REASON}, which holds it since line {line}")
            for name, line in sorted(escaped.items())
        )
        return replace(step, uses=step.uses | set(escaped), why=step.why + why)

    def mutated(self, step: Step, children: tuple[Block, ...]) -> set[str]:
        """The keys whose values the step (or a step inside it) may change in place."""
        found = set(self.changed_in_place.get(step.id, ()))
        for block in children:
            for inner in block.steps:
                found |= self.mutated(inner, child_blocks(inner.action))
        return found

    def reaches(self, step: Step, children: tuple[Block, ...]) -> bool:
        if step.id in self.state_steps:
            return True
        return any(
            self.reaches(inner, child_blocks(inner.action))
            for block in children
            for inner in block.steps
        )

    def widen(self, names: frozenset[str]) -> frozenset[str]:
        widened = set(names)
        for name in names:
            widened |= self.classes.get(self.objects.find(name), frozenset())
        return frozenset(widened)

    def key(self, name: str) -> str:
        store, token, key = name.split(":", 2)
        named, anonymous, made_at = token.partition(ANONYMOUS_CLONE)
        if store == "@g":
            owner = self.roots.find(named)
        elif anonymous:  # a clone made in a call's arguments: its own token
            owner = f"{self.tokens.find(named)}{anonymous}{made_at}"
        else:
            owner = self.tokens.find(token)
        return f"{store}:{owner}:{key}"
