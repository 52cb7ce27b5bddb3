"""Which calls of a flow may change what they are passed, and why: the calls that replay refuses.

Example input: `await fill(state)` where `fill` does `state["answer"] = 42`.
Output: its call site, with the reason "state: assigns state['answer']". A
durable run replays a call's journaled value and not its changes, so the
generated site table carries the reason and the runtime refuses the call
under a run id; a node with `cache=True` has the same flaw on every cache hit,
so kiln refuses it where it is called (KLN110). A node with `retries` makes the
change again on each attempt after one that failed past it: kiln warns (KLN111).
"""

from __future__ import annotations

from collections.abc import Iterator

from kilnc.diagnostics import Code, Diagnostic, error, warning
from kilnc.ir import (
    RESERVED_PREFIX,
    Block,
    Call,
    FanOut,
    NodeCall,
    NodeDef,
    Step,
    child_blocks,
)
from kilnc.names import lifted_value, shown


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


def repeated_changes(block: Block) -> list[Diagnostic]:
    """At each call of a node that may change what it is passed, where an option makes
    the change happen other than once: KLN110 for `cache=True`, KLN111 for `retries`."""
    found = []
    calls = {call.site: call for step in block.steps for call in every_call(step)}
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
                    "return the new value instead of changing the one passed in, "
                    "or drop cache=True",
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
