"""What reading one body finds, gathered as the visitor meets it.

`Found` is the mutable record `Body` fills; `Body.effects` freezes it into
the `Effects` the callers and lowering read. `Origin` is what a name may
hold: a parameter's object, or a value stored in a Memory parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kilnc.effect_ir import Change, Keys, MemoryUse, Reads, StateUse

# A value a function holds: a parameter's object, or a value stored in a Memory
# parameter under some keys, read through its global or local store. The keys are a
# literal or any (`by_parameter=False`): in `items = memory[key]`, `key` a parameter,
# a change through `items` counts for every key, so it may keep an order the caller's
# argument would show is not needed, but never drops one.
Origin = str | tuple[str, str, Keys]


@dataclass
class Found:
    changes: dict[str, Change] = field(default_factory=dict)
    memory: dict[str, MemoryUse] = field(default_factory=dict)
    returns: set[str] = field(default_factory=set)
    external: Change | None = None
    reads_state: Change | None = None
    reads: dict[str, Reads] = field(default_factory=dict)
    escapes: set[str] = field(default_factory=set)
    keeps: set[str] = field(default_factory=set)  # hold what another one is given
    escaped_locals: set[str] = field(default_factory=set)  # stored in module state
    state: bool = False  # a node's own reads of module state count here too
    result_state: bool = False  # the result may be module state's
    result_pieces: set[str] = field(default_factory=set)  # which, where kiln can tell
    state_uses: dict[str, StateUse] = field(default_factory=dict)  # by its name
    context: Change | None = None  # the first ContextVar set for the code after it
    changes_yielded: Change | None = None  # a generator it calls changes its items
    cleans_up: Change | None = None  # a generator it calls changes in its cleanup
