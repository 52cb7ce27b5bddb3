"""keep_statements: which module-level statements the kept code can observe.

Example input (the roots: the flow `quote`)::

    import logging, random
    from kiln import flow, node
    PRICES = {}
    PRICES["apple"] = 3              # changes PRICES, which `price` reads
    UNUSED = []
    UNUSED.append(1)                 # touches only UNUSED, which nothing kept reads
    random.seed(1234)                # reaches an import: state a node may see
    logging.basicConfig(level=10)    # the same, though no node names `logging`

    @node
    def price(item: str) -> float: return PRICES[item] + random.random()

    @flow
    def quote(item: str) -> float: return price(item)

    if __name__ == "__main__":
        print(quote("apple"))

Output: every statement but `UNUSED = []`, `UNUSED.append(1)`, `from kiln
import ...` and the `__main__` block, which a module run by `import` never
runs.

A statement is a *definition* when it runs for the names it binds (`def`,
`class`, an import, an assignment to plain names, an `if` or `try` holding
only those): it is kept when something kept reads a name it binds. Any other
statement is an *effect*: a call, a store into an object, `+=`, `del x[k]`,
a loop. It is kept when what it reaches (the names it uses, and through them
the module-level definitions they name) holds anything the kept code may see:
a name something kept reads, an import (module state: seeding, logging,
registries), or a name of unknown origin. An effect that reaches only
module-level names nothing kept uses is dropped. Builtins and the flows
themselves count for nothing: a flow is replaced by its compiled instance,
and code that uses it at import is `shake`'s error. The builtins that
reach the world or the module's names (`open`, `exec`, `__import__`:
`WORLD_BUILTINS`) count as an import does; `print` is the exception, dropped
with what it prints, as the output is the flows' and not the import's.

Two things keep code beyond the names it reads. An import is kept for what
it loads (`loading`, the statements `shake` finds import modules that run
code: import_effects.py's `loads_code`). And code that reaches the module's
names by a name it computes (`globals()[f"handle_{kind}"]`,
reflective.py), once kept, keeps every definition of the module: any of
them may be the one it reads, as an effect that does so is always kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

import libcst as cst

from kilnc.facts import Facts, is_future, module_facts, without_kiln_decorators
from kilnc.front import ParsedModule
from kilnc.mutability import EXTERNAL_BUILTINS
from kilnc.names import BUILTINS, identifier

# Builtins whose call at import changes what kept code may see: a file, the
# module's names, the modules loaded. (Not `print`: see above.)
WORLD_BUILTINS: Final = EXTERNAL_BUILTINS - {"print", "help", "compile"}


def keep_statements(
    facts: Sequence[Facts],
    roots: Iterable[str],
    flows: frozenset[str],
    loading: Collection[int] = (),
) -> frozenset[int]:
    """The indices of the statements kept for `roots`, the names the output needs,
    and for `loading`, the statements kept for the modules they import."""
    by_name: dict[str, list[int]] = {}
    for index, fact in enumerate(facts):
        for name in fact.binds:
            by_name.setdefault(name, []).append(index)
    imported = frozenset().union(*(f.imports for f in facts))
    local = frozenset().union(*(f.binds - f.imports for f in facts))
    needed: set[str] = set()

    def need(names: Iterable[str]) -> None:
        frontier = list(names)
        while frontier:
            name = frontier.pop()
            if name not in needed:
                needed.add(name)
                for index in by_name.get(name, ()):
                    frontier.extend(facts[index].uses - needed)

    def observable(start: Iterable[str]) -> bool:
        seen: set[str] = set()
        frontier = list(start)
        while frontier:
            name = frontier.pop()
            if name in WORLD_BUILTINS and name not in local:
                return True
            if (
                name in seen
                or name in flows
                or (name in BUILTINS and name not in local)
            ):
                continue
            seen.add(name)
            if name in needed or name in imported or name not in local:
                return True
            for index in by_name[name]:
                frontier.extend(facts[index].reaches)
        return False

    need(roots)
    effects: set[int] = {i for i in loading if not facts[i].main_guard}
    need(frozenset().union(*(facts[index].uses for index in effects)))
    changed = True
    while changed:  # each kept effect may make the code it reaches needed
        changed = False
        for index, fact in enumerate(facts):
            if not fact.effect or fact.main_guard or index in effects:
                continue
            if fact.reflects or observable(fact.reaches - (fact.binds - needed)):
                effects.add(index)
                need(fact.uses)
                changed = True
        every = set(by_name) - needed
        if every and any(
            fact.reflects and (index in effects or fact.binds & needed)
            for index, fact in enumerate(facts)
        ):
            need(every)  # what it reads by name may be any of them
            changed = True
    return frozenset(
        index
        for index, fact in enumerate(facts)
        if not fact.main_guard and (index in effects or fact.binds & needed)
    )


def reached(
    parsed: ParsedModule, roots: Collection[str] | None
) -> list[cst.BaseStatement]:
    """The module-level statements the names `roots` reach, kiln's decorators removed.

    All of them (but `from __future__` imports) when `roots` is None. They are
    what shaking would keep for those names, statements that change them
    included: what a cached node's fingerprint hashes (fingerprint.py).
    """
    statements = [line for line in parsed.module.body if not is_future(line)]
    if roots is not None:
        facts = [module_facts(parsed, s) for s in statements]
        wanted = {identifier(name) for name in roots}
        kept = keep_statements(facts, wanted, frozenset())
        statements = [s for index, s in enumerate(statements) if index in kept]
    return [without_kiln_decorators(parsed, s) for s in statements]
