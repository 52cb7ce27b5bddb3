"""Objects a flow's names come to share, however the code makes them share.

A new user's trial (trial N) wrote LangGraph-style flows whose nodes change
what they are given: each of these gave another result than its source,
silently, because kiln did not see that two names hold one object:

- a node that keeps a new object in its argument and returns it
  (`registry[name] = agent; return agent`): the result is part of `registry`;
- a node that returns a lazy view of its argument (`(m.upper() for m in
  msgs)`, or a generator function's generator): what changes `msgs` later
  changes what the view yields;
- a flow's store the way Python spells it otherwise (`state["a"], state["n"]
  = a, 1`, `state |= {"a": a}`, `setattr(h, "a", a)`, `heapq.heappush(q,
  (1, a))`, `vars(h)["a"] = a`, `dict.update(state, a=a)`);
- a name bound by `:=` or by a `case` pattern from a container;
- a copy a project class makes its own way (`__deepcopy__` sharing `memory`).

Each case runs its source and its compiled flow in fresh interpreters and
compares the result (tests/test_state_reach_order.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_state_reach_order import assert_kept_in_order

NODES = """
    import heapq
    from collections.abc import Iterator

    class Holder:
        pass

    @node
    async def make() -> dict[str, str]:
        return {"status": "idle"}

    @node
    async def activate(agent: dict[str, str]) -> None:
        await asyncio.sleep(0.05)
        agent["status"] = "busy"

    @node
    async def report(x: object) -> str:
        return repr(x if not isinstance(x, Holder) else vars(x))
"""

STORES = {
    "a_tuple_target": 'state["agent"], state["step"] = a, {"n": "1"}',
    "an_in_place_merge": 'state |= {"agent": a}',
    "setattr": 'setattr(holder, "agent", a)',
    "heappush": "heapq.heappush(queue, (1, a))",
    "vars": 'vars(holder)["agent"] = a',
    "an_unbound_method": "dict.update(state, agent=a)",
}
HOLDERS = {
    "setattr": "holder",
    "vars": "holder",
    "heappush": "queue",
}

ORDERED = {
    f"the_flow_stores_by_{case}": NODES
    + f"""
    @flow
    async def main() -> str:
        state: dict[str, dict[str, str]] = {{}}
        holder = Holder()
        queue: list[tuple[int, dict[str, str]]] = []
        a = await make()
        {store}
        await activate(a)
        return await report({HOLDERS.get(case, "state")})
    """
    for case, store in STORES.items()
}
# A view made, its argument changed, then the view drained: what it yields is
# the argument as changed.
DRAINED_AFTER_A_CHANGE = """
    @node
    async def add(msgs: list[str]) -> None:
        await asyncio.sleep(0.05)
        msgs.append("b")

    @node
    async def drain(it: Iterator[str]) -> list[str]:
        return list(it)

    @flow
    async def main() -> list[str]:
        msgs = ["a"]
        view = await render(msgs)
        await add(msgs)
        return await drain(view)
"""

ORDERED |= {
    "a_walrus_binds_an_item": NODES
    + """
    @flow
    async def main() -> str:
        state = {"agent": await make()}
        if (agent := state.get("agent")) is not None:
            await activate(agent)
        return await report(state)
    """,
    "a_case_captures_an_item": NODES
    + """
    @flow
    async def main() -> str:
        state = {"agent": await make()}
        match state:
            case {"agent": agent}:
                await activate(agent)
        return await report(state)
    """,
    "a_node_keeps_what_it_returns_in_its_argument": NODES
    + """
    @node
    async def spawn(registry: dict[str, dict[str, str]], name: str) -> dict[str, str]:
        agent = {"name": name, "status": "idle"}
        registry[name] = agent
        return agent

    @flow
    async def main() -> str:
        registry: dict[str, dict[str, str]] = {}
        agent = await spawn(registry, "x")
        await activate(agent)
        return await report(registry)
    """,
    "a_node_returns_a_lazy_view_of_its_argument": """
    from collections.abc import Iterator

    @node
    async def render(msgs: list[str]) -> Iterator[str]:
        return (m.upper() for m in msgs)

    """
    + DRAINED_AFTER_A_CHANGE,
    "a_node_returns_a_generator_over_its_argument": """
    from collections.abc import Iterator

    def shout(msgs: list[str]) -> Iterator[str]:
        for m in msgs:
            yield f"{m.upper()}!"

    @node
    async def render(msgs: list[str]) -> Iterator[str]:
        return shout(msgs)

    """
    + DRAINED_AFTER_A_CHANGE,
    "a_class_s_own_deepcopy_shares_what_it_holds": """
    import copy

    class Agent:
        def __init__(self, memory: list[str]) -> None:
            self.memory = memory

        def __deepcopy__(self, memo: dict[int, object]) -> "Agent":
            return Agent(self.memory)  # its copies share one memory, on purpose

    @node
    async def fork(a: Agent) -> Agent:
        return copy.deepcopy(a)

    @node
    async def learn(a: Agent, fact: str) -> None:
        await asyncio.sleep(0.05)
        a.memory.append(fact)

    @node
    async def recall(a: Agent) -> int:
        return len(a.memory)

    @flow
    async def main() -> int:
        a = Agent([])
        b = await fork(a)
        await learn(b, "x")
        return await recall(a)
    """,
}


@pytest.mark.parametrize("case", sorted(ORDERED))
def test_names_that_share_an_object_keep_the_source_s_order(
    case: str, tmp_path: Path
) -> None:
    assert_kept_in_order(tmp_path, ORDERED[case], case)
