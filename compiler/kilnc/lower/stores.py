"""Which of a flow's names and Memory keys may hold one object, and what a
step's changes reach through them.

Example input::

    memory = Memory(store)            # `store` is the global store, whole
    held = memory["items"]            # `held` may be the value at 'items'
    await grow(memory, "items")       # writes the key 'items'
    held.append(2)                    # changes `held`

Lowering records each hold as it meets it (`Sharing.hold`); once the flow
settles, `Stores.reach` widens each step: `grow` writes 'items', so it
changes `held` and `store`, whose item it is; the append changes `held`, so
it writes 'items'; a change of `store` would write every key. What holds a
store whole (`@g:memory:*`) is changed by a write of any one key, which
changes no other key's value: that write reaches no further than it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

WHOLE = "*"  # the key that stands for every key of a store


class Classes:
    """Union-find over names; a class is named by its least member, so output is stable."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        parent = self._parent.setdefault(name, name)
        if parent == name:
            return name
        root = self.find(parent)
        self._parent[name] = root
        return root

    def union(self, a: str, b: str) -> None:
        first, second = sorted((self.find(a), self.find(b)))
        self._parent[second] = first

    def members(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for name in self._parent:
            found.setdefault(self.find(name), set()).add(name)
        return {root: frozenset(names) for root, names in found.items()}


class Stores:
    """The holds of one flow, their keys named by the stores they live in.

    `groups` are the holds as lowering recorded them; `objects` names each
    name by its class of names sharing one object, `widen` gives a class's
    names, and `key` names a key by its store (`@g:<root>:<key>`).
    """

    def __init__(
        self,
        groups: Iterable[frozenset[str]],
        objects: Callable[[str], str],
        widen: Callable[[frozenset[str]], frozenset[str]],
        key: Callable[[str], str],
    ) -> None:
        self._objects = objects
        self._widen = widen
        values = Classes()  # names (by their object class) and single keys
        # What holds a whole store, by the store's prefix (`@g:root:`).
        self._containers: dict[str, set[str]] = {}
        for group in groups:
            members = {key(m) if m.startswith("@") else objects(m) for m in group}
            parts = sorted(m for m in members if not m.endswith(f":{WHOLE}"))
            for part in parts:
                values.union(parts[0], part)
            for whole in members - set(parts):
                self._containers.setdefault(whole[: -len(WHOLE)], set()).update(parts)
        self._classes = values.members()
        self._class_of = {m: root for root, ms in self._classes.items() for m in ms}
        # Each store's classes: a write of every key reaches all of them.
        self._by_store: dict[str, set[str]] = {}
        for member, root in self._class_of.items():
            if member.startswith("@"):
                self._by_store.setdefault(_store(member), set()).add(root)

    def reach(
        self, changed: frozenset[str], written: frozenset[str], mutated: frozenset[str]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """What a step that changes `changed` (names), writes `written` (keys)
        and changes the values at `mutated` in place changes and writes through
        what may hold one object. A key bound anew changes no value it held."""
        if not (self._classes or self._containers):
            return changed, written
        names, values = set(changed), set(mutated)
        self._close(names, values)
        held = {self._objects(name) for name in names} | values
        for store, holders in self._containers.items():
            if holders & held:  # changing what holds a store changes every key
                values.add(f"{store}{WHOLE}")
        self._close(names, values)
        keys = written | values
        for store, holders in self._containers.items():
            if any(_store(k) == store for k in keys):  # and a key changes it
                names |= self._widen(frozenset(h for h in holders if h[0] != "@"))
                values |= {h for h in holders if h[0] == "@"}
        self._close(names, values)
        return frozenset(names), frozenset(keys | values)

    def _close(self, names: set[str], keys: set[str]) -> None:
        """Every name and key in one class with one of `names` or `keys`."""
        pending = [self._objects(name) for name in names] + list(keys)
        seen: set[str] = set()
        while pending:
            member = pending.pop()
            roots: Iterable[str] = ()
            if member.endswith(f":{WHOLE}"):
                roots = self._by_store.get(_store(member), ())
            elif member in self._class_of:
                roots = (self._class_of[member],)
            for root in roots:
                if root in seen:
                    continue
                seen.add(root)
                for other in self._classes[root]:
                    if other[0] == "@":
                        if other not in keys:
                            keys.add(other)
                    else:
                        for name in self._widen(frozenset({other})) - names:
                            names.add(name)
                            pending.append(self._objects(name))


def _store(key: str) -> str:
    """`@g:root:` of `@g:root:name` (a key's own name may hold colons)."""
    store, owner, _ = key.split(":", 2)
    return f"{store}:{owner}:"
