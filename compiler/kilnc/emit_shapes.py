"""emit_shapes: which methods a flow's class has, and how the derived one runs the other.

Example input: the flow `total`, a plain `def` whose body awaits its
thread=True nodes. Output: `Shape` WRITTEN_SYNC, whose class runs the body in
`aforward` and derives `forward` as ``run_sync(self.aforward(xs),
written_sync=True)``, and the return annotation of each method.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, final

import libcst as cst

from kilnc.emit_names import RUNTIME
from kilnc.ir import Block, FlowDef, child_blocks
from kilnc.syntax import code


@final
@dataclass(frozen=True, slots=True)
class Shape:
    """How a flow's class is built: the method that runs the body, the one derived from it."""

    bases: str
    runs: str
    derives: str
    # the derived method's body; {runtime}, {receiver}, {item}, {args} filled in, and
    # {untyped} after the call of the method that runs the body
    derived: str
    call: str  # the method `__call__` calls


#   flow                      | runs the body | derived from it
#   async def                 | aforward      | forward: run_sync(aforward), loop-aware
#   def                       | forward       | aforward: return forward
#   def, thread nodes         | aforward      | forward: run_sync(aforward, written_sync=True)
#   async def + yield         | astream       | stream: iterate(astream), loop-aware
#   def + yield               | stream        | astream: yields what stream yields
#   def + yield, thread nodes | astream       | stream: iterate(astream, written_sync=True)
SHAPES: Final = {
    (True, False): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncProcess, {RUNTIME}.Process",
        "async def aforward",
        "def forward",
        "return {runtime}.run_sync({receiver}.aforward({args})){untyped}",
        "forward",
    ),
    (False, False): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncProcess, {RUNTIME}.Process",
        "def forward",
        "async def aforward",
        "return {receiver}.forward({args}){untyped}",
        "forward",
    ),
    (True, True): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncStreamProcess, {RUNTIME}.StreamProcess",
        "async def astream",
        "def stream",
        "return {runtime}.iterate({receiver}.astream({args})){untyped}",
        "stream",
    ),
    (False, True): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncStreamProcess, {RUNTIME}.StreamProcess",
        "def stream",
        "async def astream",
        "for {item} in {receiver}.stream({args}):{untyped}\n    yield {item}",
        "stream",
    ),
}
# A sync flow that awaits its thread=True nodes: its body, which Python runs as a
# coroutine only in kiln's module, raises StopIteration as the source's does.
WRITTEN_SYNC: Final = replace(
    SHAPES[True, False],
    derived="return {runtime}.run_sync({receiver}.aforward({args}), written_sync=True)"
    "{untyped}",
)
# A sync streaming flow that awaits: a StopIteration leaves `stream` as a
# generator's RuntimeError, as the source's does, not as an async generator's.
WRITTEN_SYNC_STREAM: Final = replace(
    SHAPES[True, True],
    derived="return {runtime}.iterate({receiver}.astream({args}), written_sync=True)"
    "{untyped}",
)
ABC = "_kiln_abc"  # collections.abc, for the annotations of derived stream methods


def method_annotations(
    flow: FlowDef, returns: cst.Annotation | None, runs_async: bool
) -> tuple[str, str]:
    """The return annotations of the method running the body and of the derived one."""
    if returns is None:
        return "", ""
    annotation = code(returns.annotation)
    written = f" -> {annotation}"
    if not flow.streams:
        return written, written
    item = _stream_item(annotation)
    if item is None:
        return written, ""
    if runs_async == flow.is_async:
        kind = "Iterator" if flow.is_async else "AsyncIterator"
        return written, f" -> {ABC}.{kind}[{item}]"
    # A sync streaming flow whose body awaits (thread=True nodes) runs as `astream`.
    return f" -> {ABC}.AsyncIterator[{item}]", written


def awaits_anywhere(block: Block) -> bool:
    return any(
        step.awaits
        or any(awaits_anywhere(child) for child in child_blocks(step.action))
        for step in block.steps
    )


def _stream_item(annotation: str) -> str | None:
    """`T` of `AsyncIterator[T]`, `Iterator[T]`, `AsyncGenerator[T, None]` and the like."""
    parsed = cst.parse_expression(annotation)
    if isinstance(parsed, cst.Subscript) and parsed.slice:
        element = parsed.slice[0].slice
        if isinstance(element, cst.Index):
            return code(element.value)
    return None


def shape_of(flow: FlowDef, runs_async: bool) -> Shape:
    """The class's shape: `runs_async` when the source is async, or its body awaits."""
    if runs_async and not flow.is_async:
        return WRITTEN_SYNC_STREAM if flow.streams else WRITTEN_SYNC
    return SHAPES[runs_async, flow.streams]
