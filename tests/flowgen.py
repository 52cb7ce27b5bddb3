"""A Hypothesis strategy for random DAG-shaped flows, written as source text.

Every generated module has nodes `n0..nK` (sync or async, some sleeping a
little so that interleavings vary) and one flow `main(x: int, memory: Memory)`
whose statements wire them: plain calls on earlier values, fan-outs over a
range, `if`/`else` on an earlier value, inline glue, and Memory writes whose
order the compiled flow must keep. The flow returns every value it computed,
so the differential test compares the whole computation, not only its end.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True)
class NodeSpec:
    is_async: bool
    delay: float
    weight: int

    def source(self, index: int) -> str:
        head = "async def" if self.is_async else "def"
        sleep = (
            f"    await asyncio.sleep({self.delay})\n"
            if self.is_async and self.delay
            else ""
        )
        return (
            f"@node\n{head} n{index}(*values: int) -> int:\n{sleep}"
            f"    return (sum(values) * {self.weight} + {index}) % 1000003\n"
        )


def _call(index: int, spec: NodeSpec, args: list[str]) -> str:
    call = f"n{index}({', '.join(args)})"
    return f"await {call}" if spec.is_async else call


@st.composite
def flows(draw: st.DrawFn) -> str:
    count = draw(st.integers(min_value=1, max_value=9))
    nodes = [
        NodeSpec(
            is_async=draw(st.booleans()),
            delay=draw(st.sampled_from([0, 0, 0.001, 0.003])),
            weight=draw(st.integers(min_value=1, max_value=7)),
        )
        for _ in range(count)
    ]
    values = ["x"]
    lines: list[str] = []
    for index, spec in enumerate(nodes):
        inputs = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
        name = f"v{index}"
        shape = draw(
            st.sampled_from(
                [
                    "call",
                    "call",
                    "fan_out",
                    "branch",
                    "two_arms",
                    "loop",
                    "memory",
                    "glue",
                ]
            )
        )
        if shape == "call":
            lines.append(f"{name} = {_call(index, spec, inputs)}")
        elif shape == "fan_out":
            width = draw(st.integers(min_value=0, max_value=4))
            element = _call(index, spec, [*inputs, "k"])
            lines.append(f"{name}_all = [{element} for k in range({width})]")
            lines.append(f"{name} = sum({name}_all)")
        elif shape == "branch":
            test = draw(st.sampled_from(values))
            lines.append(f"if {test} % 2 == 0:")
            lines.append(f"    {name} = {_call(index, spec, inputs)}")
            lines.append("else:")
            lines.append(f"    {name} = {inputs[0]} + 1")
        elif shape == "two_arms":
            test = draw(st.sampled_from(values))
            other = draw(st.sampled_from(values))
            lines.append(f"if {test} % 3 == 0:")
            lines.append(f"    {name}_a = {_call(index, spec, inputs)}")
            lines.append(f"    {name}_b = {_call(index, spec, [other])}")
            lines.append(f"    {name} = {name}_a - {name}_b")
            lines.append(f"elif {_call(index, spec, [test])} % 2 == 0:")
            lines.append(f"    {name} = {_call(index, spec, [other, test])}")
            lines.append("else:")
            lines.append(f"    {name} = {other}")
        elif shape == "loop":
            width = draw(st.integers(min_value=0, max_value=3))
            lines.append(f"{name} = {inputs[0]}")
            lines.append(f"for k in range({width}):")
            lines.append(f"    {name}_k = {_call(index, spec, [*inputs, 'k'])}")
            lines.append(f"    {name}_j = {_call(index, spec, ['k'])}")
            lines.append(f"    {name} = {name} + {name}_k * {name}_j")
        elif shape == "memory":
            lines.append(f"{name} = {_call(index, spec, inputs)}")
            lines.append(f"await record(memory, {name})")
        else:
            lines.append(f"{name} = {' + '.join(inputs)} * 3")
        values.append(name)
    lines.append(f"return ({', '.join(values[1:])},), list(memory.log)")
    body = "\n".join(f"    {line}" for line in lines)
    nodes_source = "\n\n".join(spec.source(i) for i, spec in enumerate(nodes))
    return (
        "import asyncio\n\n"
        "from kiln import Memory, flow, node\n\n\n"
        "@node\n"
        "async def record(memory: Memory, value: int) -> None:\n"
        "    await asyncio.sleep(0)\n"
        "    memory.log = [*memory.log, value]\n\n\n"
        f"{nodes_source}\n\n"
        "@flow\n"
        "async def main(x: int, memory: Memory) -> tuple[tuple[int, ...], list[int]]:\n"
        f"{body}\n"
    )
