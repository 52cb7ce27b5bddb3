"""Which parameters' objects each local name of a body may be, or hold in its items.

Example input: the body of `def fill(state: dict, tag: str)` with `rows =
state["rows"]`, `out = []`, `out.append(rows)` and `for r in rows: ...`.
Output, on the `Body`: `aliases` says `rows` and `r` may be (part of)
`state`'s object; `contents` says `out`'s items may be. Read to a fixed
point, flow-insensitively. A value of a type that never changes
(`page.url` of a `str` field) is no part of what it was read from: storing
it, or binding it, links nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import libcst as cst

from kilnc.effects.bindings import Bindings
from kilnc.effects.receivers import of_immutable_type
from kilnc.names import root_names
from kilnc.walk import walk

if TYPE_CHECKING:  # the body reads its aliases as it is made: a cycle
    from kilnc.effects.body import Body
    from kilnc.effects.found import Origin

FIXED_POINT_ROUNDS: Final = 50  # the lattice is finite; this only bounds a runaway


def bind_aliases(body: Body) -> Bindings:
    """The body's bindings, with `body.aliases` and `body.contents` filled."""
    found = Bindings()
    for root in body.roots:
        walk(root, found)
    body.bindings = found
    bound = [(t, v) for t, v in found.bound if not of_immutable_type(body, v)]
    stored = [(t, v) for t, v in found.stored if not of_immutable_type(body, v)]
    for _ in range(FIXED_POINT_ROUNDS):
        changed = False
        for targets, value in bound:
            changed |= _add(body, body.aliases, targets, body.origins(value))
            changed |= _add(body, body.contents, targets, body.inner(value))
        for targets, value in found.items:  # a loop's target is an item
            changed |= _add(body, body.aliases, targets, body.within(value))
            changed |= _add(body, body.contents, targets, body.inner(value))
        for targets, value in stored:  # `out.append(w)`, `table[k] = w`
            changed |= _add(body, body.contents, targets, body.within(value))
            kept = root_names(value) & body.local_names
            if isinstance(value, cst.Name) and kept:
                # `registry[k] = agent`: the local `agent` is part of `registry`
                # from then on; changing it, or handing it out, is registry's.
                held_by = set().union(*(body.origins(cst.Name(t)) for t in targets))
                changed |= _add(body, body.aliases, kept, held_by)
        if not changed:
            break
    return found


def _add(
    body: Body, table: dict[str, set[Origin]], targets: set[str], held: set[Origin]
) -> bool:
    changed = False
    for target in targets:
        if target in body.params:
            continue  # a parameter rebound still names its own object too
        before = table.setdefault(target, set())
        if not held <= before:
            before |= held
            changed = True
    return changed
