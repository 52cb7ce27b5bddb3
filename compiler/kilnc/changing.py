"""Which calls of a flow may change what they are passed, and why: the calls that replay refuses.

Example input: `await fill(state)` where `fill` does `state["answer"] = 42`.
Output: its call site, with the reason "state: assigns state['answer']". A
durable run replays a call's journaled value and not its changes, so the
generated site table carries the reason and the runtime refuses the call
under a run id; a node with `cache=True` has the same flaw on every cache hit,
so kiln refuses it where it is called (KLN110). A node with `retries` makes the
change again on each attempt after one that failed past it: kiln warns (KLN111).

A call's changes of module state are skipped the same way: `await complete(p)`
where `complete` does `HISTORY.append(p)` gives "adds to the module state
'app.HISTORY' (calls HISTORY.append, at app.py:8)"; the site table carries it,
and a cached node is refused where it is called (KLN112).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import final

from kilnc.diagnostics import Code, Diagnostic, error, warning
from kilnc.effect_ir import EVERY_PIECE, Access, StateUse, part_of
from kilnc.ir import (
    RESERVED_PREFIX,
    Block,
    Call,
    FanOut,
    FlowIR,
    NodeCall,
    NodeDef,
    Step,
    child_blocks,
)
from kilnc.names import lifted_value, shown
from kilnc.source import Span


def changing_calls(block: Block) -> dict[int, str]:
    """By call site, why a call may change a value of the flow's (a name, a Memory key)."""
    found: dict[int, str] = {}
    for step in block.steps:
        action = step.action
        # A lifted call's value is read by one call: changing it changes nothing
        # else (a stream the call consumes).
        reaches = {name for name in step.uses if not lifted_value(name)}
        if isinstance(action, Call | FanOut) and (reaches or step.key_writes):
            named = [entry for entry in step.why if not lifted_value(entry[0])]
            name, why = (named or [*step.why, ("", "may change what it is passed")])[0]
            if name.startswith("@") or not name:
                reason = why
            else:
                label = shown(name) if name.startswith(RESERVED_PREFIX) else name
                reason = f"{label}: {why}"
            for call in every_call(step):
                found.setdefault(call.site, reason)
        elif not isinstance(action, FanOut):
            for child in child_blocks(action):
                found.update(changing_calls(child))
    return found


def every_call(step: Step) -> Iterator[NodeCall]:
    """The calls a step makes, those of a fan-out's elements and of nested blocks too."""
    action = step.action
    if isinstance(action, Call):
        yield action.call
    elif isinstance(action, FanOut):
        yield action.result
    for child in child_blocks(action):  # a fan-out's element among them
        for inner in child.steps:
            yield from every_call(inner)


@final
@dataclass(frozen=True, slots=True)
class StateChange:
    """A change of module state that a call makes: a replay of the call would skip it."""

    name: str  # the piece, by qualified name: `app.HISTORY`
    use: StateUse

    @property
    def span(self) -> Span:
        return self.use.where.span

    def said(self, where: str) -> str:
        """`adds to the module state 'app.HISTORY' (calls HISTORY.append, at
        app.py:8)`, the place as `where` names it."""
        return (
            f"{self.use.access.value} the module state {self.name!r} "
            f"({self.use.where.reason}, at {where})"
        )


def state_changes(flow: FlowIR) -> dict[int, StateChange]:
    """By call site, a change of module state the call makes (in the node, the code
    it calls, a subflow's calls) that the flow's result or its caller may see.

    A fill (`if _client is None: _client = make()`) is left out where every
    other use of its state in the flow fills it too: a call that skips it
    leaves the state for the next one to fill, with the same value. Any other
    use (`len(CACHE)`, `_client.post(...)`) may see it unfilled.
    """
    steps = list(_every_step(flow.body))
    making = {site: step for step in steps for site in _sites(step)}
    found: dict[int, StateChange] = {}
    for site, state in flow.calls_state:
        changes = [
            StateChange(name, use)
            for name, use in state
            if _made(name, use)
            and (
                use.access is not Access.FILL
                or _used_unfilled(name, making.get(site), steps)
            )
        ]
        if changes:  # the first in the source
            found[site] = min(changes, key=_place)
    return found


def _made(name: str, use: StateUse) -> bool:
    """Whether the use changes the piece in code kiln reads: not a read, nor a
    guess of what code it cannot see into does (any piece at all; a library
    object's method, `ENCODER.encode(p)`; a value handed to a library's call,
    `requests.get(CONFIG["url"])`)."""
    return name != EVERY_PIECE and use.access is not Access.READ and not use.guessed


def _place(change: StateChange) -> tuple[str, int, int]:
    return change.span.path, change.span.line, change.span.column


def _every_step(block: Block) -> Iterator[Step]:
    for step in block.steps:
        yield step
        for child in child_blocks(step.action):
            yield from _every_step(child)


def _sites(step: Step) -> tuple[int, ...]:
    """The call sites the step makes itself (not in the blocks it holds)."""
    action = step.action
    if isinstance(action, Call):
        return (action.call.site,)
    return (action.result.site,) if isinstance(action, FanOut) else ()


def _used_unfilled(name: str, step: Step | None, steps: list[Step]) -> bool:
    """Whether a step other than `step` (and those it is inside) uses the piece
    `name`, a whole it is part of or a part of it, other than by filling it."""
    return any(
        whole != EVERY_PIECE
        and (part_of(name, whole) or part_of(whole, name))
        and use.access is not Access.FILL
        for other in steps
        if not _holds(other, step)
        for whole, use in other.state
    )


def _holds(outer: Step, step: Step | None) -> bool:
    """Whether `step` is `outer` or one of the steps nested in it."""
    return outer is step or any(
        _holds(inner, step)
        for child in child_blocks(outer.action)
        for inner in child.steps
    )


def repeated_changes(flow: FlowIR) -> list[Diagnostic]:
    """At each call of a node that may change what it is passed, where an option makes
    the change happen other than once: KLN110 for `cache=True`, KLN111 for `retries`;
    at each call of a cached node that changes module state, KLN112."""
    calls = {call.site: call for call in flow.calls}
    found = []
    for site, change in state_changes(flow).items():
        callee = calls[site].callee
        if isinstance(callee, NodeDef) and callee.options.cache:
            found.append(_cached_state_change(calls[site], change))
    block = flow.body
    for site, reason in changing_calls(block).items():
        call = calls[site]
        if not isinstance(call.callee, NodeDef):
            continue
        name, options = call.callee.name, call.callee.options
        if options.cache:
            found.append(
                error(
                    call.span,
                    Code.CACHED_CHANGE,
                    f"node {name!r} has cache=True and may change what it is passed "
                    f"({reason}); a cache hit returns its value, not the change",
                    "return the new value instead of changing the one passed in; "
                    "if it only reads it, annotate the parameter read-only "
                    "(Sequence[...], Mapping[...]); or drop cache=True",
                )
            )
        elif options.retries:
            # A warning, not an error: a retry loop written by hand repeats the
            # change too, and a change that is the same however often it is made
            # (`state["done"] = True`) is fine; but an append is not.
            found.append(
                warning(
                    call.span,
                    Code.RETRIED_CHANGE,
                    f"node {name!r} has retries={options.retries} and may change what "
                    f"it is passed ({reason}); an attempt that fails after the change "
                    "leaves it made, and the next attempt makes it again",
                    "return the new value instead of changing the one passed in, "
                    "or make the change once, after the last step that may fail",
                )
            )
    return found


def _cached_state_change(call: NodeCall, change: StateChange) -> Diagnostic:
    return error(
        call.span,
        Code.CACHED_STATE_CHANGE,
        f"node {call.callee.name!r} has cache=True and "
        f"{change.said(change.span.location())}; a cache hit, like an identical "
        "call already in flight, returns its value, not the change",
        "return the value and let the flow pass it on to what reads it, instead "
        "of keeping it in module state, or drop cache=True",
    )
