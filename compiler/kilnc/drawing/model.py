"""What a drawing of a flow is made of: boxes, clusters, and the edges between them.

`draw.py` makes a `FlowDrawing` from a lowered flow; `text.py` prints it as
Mermaid or Graphviz DOT. A box's `shape` says what it stands for (a call, a
question, a fan-out, a decision...), an edge's `kind` whether it carries a
value, an order (a Memory token handed on) or control (into an arm or a
loop's body).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import final


class Shape(enum.Enum):
    INPUT = "input"  # the flow's parameters
    RESULT = "result"  # what it returns or yields
    CALL = "call"  # a node or subflow call
    QUESTION = "question"  # `await ask(...)`: the run waits for a person's answer
    MAP = "map"  # a fan-out: one call per item
    INLINE = "inline"  # a statement that calls no node
    DECISION = "decision"  # if/elif/else, match, a while loop's test
    LOOP = "loop"  # the head of a `for` loop or of a fan-out's items
    PASS = "pass"  # an arm that does nothing


class EdgeKind(enum.Enum):
    DATA = "data"  # a value, from its writer to its reader
    ORDER = "order"  # a Memory token, handed on in source order
    CONTROL = "control"  # from a decision or a loop head into an arm or a body


@final
@dataclass(frozen=True, slots=True)
class Box:
    id: str
    shape: Shape
    lines: tuple[str, ...]


@final
@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    kind: EdgeKind
    label: str


@final
@dataclass(frozen=True, slots=True)
class Cluster:
    id: str
    title: str
    members: tuple[Box | Cluster, ...]


@final
@dataclass(frozen=True, slots=True)
class FlowDrawing:
    """One flow: everything is inside `cluster`; edges may cross clusters."""

    cluster: Cluster
    edges: tuple[Edge, ...]
