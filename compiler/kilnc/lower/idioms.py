"""asyncio around node calls: what kiln does instead, said at the call.

Example input (`import asyncio as aio` or `from asyncio import gather` alike)::

    a, b = await asyncio.gather(fetch(x), fetch(x + 1))

Output: an `Idiom` at `asyncio.gather(...)` saying that kiln already runs
independent calls at the same time, with what to write instead:
`a = await fetch(x)` and `b = await fetch(x + 1)`. Without this, the node
calls inside would be reported as not awaited, and the advice to await them
gives code that fails in the source too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, final

import libcst as cst

from kilnc.ir import FlowDef, NodeDef, Resolver
from kilnc.syntax import code
from kilnc.walk import walk

QualifiedNames = Callable[[cst.CSTNode], frozenset[str]]


@final
@dataclass(frozen=True, slots=True)
class Idiom:
    node: cst.CSTNode  # the asyncio call, or the `with` item that makes one
    message: str
    hint: str


_OVERLAP = "kiln already runs independent node calls at the same time"
_AWAIT = "call the node in a statement of its own, '{call}'"

# asyncio's name -> (what the user wrote, what kiln does instead). `{call}` is
# the first node call inside, as the flow language writes it.
#   asyncio name             | message                                | instead
_IDIOMS: Final[dict[str, tuple[str, str]]] = {
    "gather": ("asyncio.gather around node calls", _OVERLAP + "; {each}"),
    "wait": ("asyncio.wait around node calls", _OVERLAP + "; {each}"),
    "as_completed": ("asyncio.as_completed around node calls", _OVERLAP + "; {each}"),
    "wait_for": (
        "asyncio.wait_for around a node call",
        "give the node a timeout, '@node(timeout=...)' (seconds per attempt, "
        "then TimeoutError), and " + _AWAIT,
    ),
    "timeout": (
        "'async with asyncio.timeout(...)' in a flow",
        "give the nodes called inside a timeout, '@node(timeout=...)' "
        "(seconds per attempt, then TimeoutError)",
    ),
    "timeout_at": (
        "'async with asyncio.timeout_at(...)' in a flow",
        "give the nodes called inside a timeout, '@node(timeout=...)' "
        "(seconds per attempt, then TimeoutError)",
    ),
    "create_task": (
        "a node call started with asyncio.create_task",
        _AWAIT + ": kiln starts each call as soon as the values it reads exist, "
        "and overlaps independent ones",
    ),
    "ensure_future": (
        "a node call started with asyncio.ensure_future",
        _AWAIT + ": kiln starts each call as soon as the values it reads exist, "
        "and overlaps independent ones",
    ),
    "shield": (
        "asyncio.shield around a node call",
        _AWAIT + "; kiln cancels a flow's calls only when the flow is cancelled "
        "or another call fails, and what must finish anyway belongs inside a node",
    ),
    "TaskGroup": (
        "asyncio.TaskGroup in a flow",
        "write each node call as a statement of its own ('a = await f(x)', "
        "'b = await f(y)'): " + _OVERLAP + ", and cancels the others when one "
        "fails, as a TaskGroup does",
    ),
    "to_thread": (
        "asyncio.to_thread on a node",
        "mark the node '@node(thread=True)' and call it as '{call}': "
        "kiln runs it in a worker thread",
    ),
}


def find_idioms(
    node: cst.CSTNode, qualified: QualifiedNames, resolve: Resolver
) -> list[Idiom]:
    """The asyncio calls in a statement (or a test) that wrap a node call or a node."""
    finder = _Finder(qualified)
    walk(node, finder)
    idioms: list[Idiom] = []
    for call, name in finder.found:
        nodes = list(_node_uses(call, resolve))
        if not nodes and name not in ("TaskGroup", "timeout", "timeout_at"):
            continue  # asyncio on something else: plain code the flow may run
        idioms.append(_idiom(node, call, name, nodes, resolve))
    return idioms


class _Finder(cst.CSTVisitor):
    def __init__(self, qualified: QualifiedNames) -> None:
        self.qualified = qualified
        self.found: list[tuple[cst.Call, str]] = []

    def visit_Call(self, node: cst.Call) -> bool:
        name = _asyncio_name(self.qualified(node.func))
        if name is None:
            return True
        self.found.append((node, name))
        return False  # one diagnostic for the outermost asyncio call


def _asyncio_name(names: frozenset[str]) -> str | None:
    for qualified in sorted(names):
        parts = qualified.split(".")
        if parts[0] == "asyncio" and len(parts) > 1:
            return parts[-1]
    return None


def _node_uses(call: cst.Call, resolve: Resolver) -> Iterator[cst.BaseExpression]:
    """Node calls in the arguments (`fetch(x)`), and nodes passed as values (`load`)."""
    finder = _NodeUses(resolve)
    for arg in call.args:
        walk(arg, finder)
    yield from finder.found


class _NodeUses(cst.CSTVisitor):
    def __init__(self, resolve: Resolver) -> None:
        self.callee = resolve
        self.found: list[cst.BaseExpression] = []

    def visit_Call(self, node: cst.Call) -> bool:
        if self.callee(node.func) is not None:
            self.found.append(node)
            return False
        return True

    def visit_Await(self, node: cst.Await) -> bool:
        # `asyncio.sleep(await delay(x))` passes a node's value: the flow language
        # lifts that call as any other.
        inner = node.expression
        if isinstance(inner, cst.Call) and self.callee(inner.func) is not None:
            for arg in inner.args:
                walk(arg, self)
            return False
        return True

    def visit_Name(self, node: cst.Name) -> None:
        if self.callee(node) is not None:
            self.found.append(node)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if self.callee(node) is not None:
            self.found.append(node)
            return False
        return True


def _idiom(
    statement: cst.CSTNode,
    call: cst.Call,
    name: str,
    nodes: list[cst.BaseExpression],
    resolve: Resolver,
) -> Idiom:
    message, instead = _IDIOMS.get(
        name,
        (f"asyncio.{name} around a node call", _AWAIT),
    )
    first = next((n for n in nodes if isinstance(n, cst.Call)), None)
    if first is not None:
        written = _awaited(first, resolve)
    elif nodes:  # `asyncio.to_thread(load, path)`: the node, then its arguments
        written = _passed(call, nodes[0])
    else:
        written = "await f(...)"
    target = _target(statement, call)
    return Idiom(
        call,
        f"{message} is not part of the flow language",
        instead.format(
            call=f"{target} = {written}" if target else written,
            each=_each(statement, call, resolve),
        ),
    )


def _passed(call: cst.Call, node: cst.BaseExpression) -> str:
    """`load(path)` for `asyncio.to_thread(load, path)`."""
    values = [arg.value for arg in call.args]
    if node not in values:
        return f"{code(node)}(...)"
    rest = call.args[values.index(node) + 1 :]
    args = [arg.with_changes(comma=cst.MaybeSentinel.DEFAULT) for arg in rest]
    return code(cst.Call(node, args))


def _target(statement: cst.CSTNode, call: cst.Call) -> str | None:
    """`a` of `a = await asyncio.wait_for(...)`: the name the call's value goes to."""
    if not isinstance(statement, cst.Assign | cst.AnnAssign):
        return None
    value = statement.value
    inner = value.expression if isinstance(value, cst.Await) else value
    if inner is not call:
        return None
    if isinstance(statement, cst.AnnAssign):
        return code(statement.target)
    if len(statement.targets) != 1:
        return None
    return code(statement.targets[0].target)


def _awaited(call: cst.Call, resolve: Resolver) -> str:
    """The call as a flow writes it: awaited when its callee is."""
    found = resolve(call.func)
    callee = found[0] if found is not None else None
    if isinstance(callee, NodeDef):
        awaits = callee.kind.awaited
    else:
        awaits = isinstance(callee, FlowDef) and callee.is_async and not callee.streams
    return f"await {code(call)}" if awaits else code(call)


def _each(statement: cst.CSTNode, call: cst.Call, resolve: Resolver) -> str:
    """What to write for the calls a gather takes: a statement each, or a fan-out."""
    calls: list[cst.Call] = []
    for arg in call.args:
        value = arg.value
        if arg.star == "*" and isinstance(value, cst.ListComp | cst.GeneratorExp):
            element = value.elt
            if isinstance(element, cst.Call) and resolve(element.func) is not None:
                each = f"[{_awaited(element, resolve)} {code(value.for_in).strip()}]"
                return f"a list of calls is a fan-out: write '{each}'"
        if isinstance(value, cst.Call) and resolve(value.func) is not None:
            calls.append(value)
    if not calls:
        return "write one statement per node call"
    targets = _targets(statement, call, len(calls))
    lines = [
        f"'{target} = {_awaited(c, resolve)}'"
        for target, c in zip(targets, calls, strict=True)
    ]
    return "write one statement per call: " + ", ".join(lines)


def _targets(statement: cst.CSTNode, call: cst.Call, count: int) -> list[str]:
    """`a, b = await gather(...)` names each call's result; otherwise a name per call."""
    if isinstance(statement, cst.Assign) and len(statement.targets) == 1:
        target = statement.targets[0].target
        value = statement.value
        inner = value.expression if isinstance(value, cst.Await) else value
        if (
            inner is call
            and isinstance(target, cst.Tuple | cst.List)
            and len(target.elements) == count
            and all(isinstance(e, cst.Element) for e in target.elements)
        ):
            return [code(e.value) for e in target.elements]
    return [f"result{index}" for index in range(1, count + 1)]
