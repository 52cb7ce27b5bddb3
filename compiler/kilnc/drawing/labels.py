"""What the boxes of a drawing say: names, kinds, options, parameters, a fan-out's items.

Example input: the call `summaries = [await summarize(p) for p in paragraphs]`
of `@node(retries=3, limit="llm") async def summarize`. Output: the lines
("summarize", "async · retries 3 · limit llm", "× each p in paragraphs").
Code is shown as the user wrote it: a value the compiler lifted out of an
expression (`_kiln_load`) is shown as the call that computes it.
"""  # noqa: RUF002 (the multiplication sign marks a fan-out, as `kiln graph` draws it)

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import libcst as cst

from kilnc.ir import (
    RESERVED_PREFIX,
    FanOut,
    FanOutKind,
    FlowDef,
    FlowIR,
    NodeCall,
    NodeDef,
)
from kilnc.names import identifier
from kilnc.syntax import code

MAP_SIGN: Final = "\N{MULTIPLICATION SIGN}"  # a fan-out: one call per item
LABEL_WIDTH: Final = 60  # characters of one label line; longer code is cut with "…"
TEMPORARY: Final = re.compile(rf"(?<![\w.]){RESERVED_PREFIX}\w*", re.IGNORECASE)

# Renders code for a label (the drawer's `display`).
Display = Callable[[cst.CSTNode], str]


def shown_code(node: cst.CSTNode, temporaries: dict[str, str]) -> str:
    """Code on one line, each lifted value replaced by the code it stands for."""
    text = " ".join(code(node).split())
    return TEMPORARY.sub(lambda m: temporaries.get(m.group(), "…"), text)


def flow_title(flow: FlowIR) -> str:
    return f"flow {flow.flow.name}"


def flow_parameters(flow: FlowDef) -> list[tuple[str, str]]:
    """Each parameter's name, and how the input box shows it (`name: annotation`)."""
    params = flow.function.params
    shown = [_parameter(p, "") for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        shown.append(_parameter(params.star_arg, "*"))
    shown += [_parameter(p, "") for p in params.kwonly_params]
    if params.star_kwarg is not None:
        shown.append(_parameter(params.star_kwarg, "**"))
    return shown


def _parameter(param: cst.Param, stars: str) -> tuple[str, str]:
    name = param.name.value
    annotation = f": {code(param.annotation.annotation)}" if param.annotation else ""
    return identifier(name), f"{stars}{name}{annotation}"


def result_label(flow: FlowDef) -> str:
    word = "yields" if flow.streams else "result"
    return f"{word}: {flow.returns}" if flow.returns else word


def call_lines(call: NodeCall) -> tuple[str, ...]:
    """The callee's name, its kind and the options that change how it runs."""
    callee = call.callee
    if isinstance(callee, NodeDef) and callee.asks:
        return (f"ask {callee.name!r}", f"answer: {callee.returns}")
    if isinstance(callee, FlowDef):
        kind = "flow call, async" if call.is_async else "flow call"
        details = [kind]
    else:
        options = callee.options
        details = ["thread" if options.thread else callee.kind.value]
        if options.retries:
            details.append(f"retries {options.retries}")
        if options.timeout is not None:
            details.append(f"timeout {options.timeout:g}s")
        if options.fallback is not None:
            details.append(f"fallback {options.fallback}")
        if options.limit is not None:
            details.append(f"limit {options.limit}")
        if options.cache:
            details.append("cached")
    visits = [f"max {call.visits} visits"] if call.visits is not None else []
    return (callee.name, " · ".join(details), *visits)


def call_code(call: NodeCall, temporaries: dict[str, str]) -> str:
    text = shown_code(call.call, temporaries)
    return f"await {text}" if call.is_async else text


def fan_out_items(action: FanOut, display: Display) -> str:
    """`MAP_SIGN each p in paragraphs`: a fan-out's items, and what it builds if not a list."""
    parts: list[str] = []
    clause: cst.CompFor | None = action.clauses
    while clause is not None:
        words = "async each" if clause.asynchronous is not None else "each"
        parts.append(f"{words} {display(clause.target)} in {display(clause.iter)}")
        parts += [f"if {display(condition.test)}" for condition in clause.ifs]
        clause = clause.inner_for_in
    kind = "" if action.kind is FanOutKind.LIST else f" → {action.kind.value}"
    return f"{MAP_SIGN} {' '.join(parts)}{kind}"


def is_temporary(name: str) -> bool:
    return name.lower().startswith(RESERVED_PREFIX)


def cut(line: str) -> str:
    return line if len(line) <= LABEL_WIDTH else line[: LABEL_WIDTH - 1] + "…"
