"""to_mermaid and to_dot: flow drawings (draw.py) as Mermaid or Graphviz text.

Example input: the drawing of `paragraphs = load(path)` in flow `digest`.
Output of `to_mermaid`::

    flowchart TD
        subgraph f0 ["flow digest"]
            f0_in(["inputs<br>path: str"])
            f0_s0["load<br>sync"]
        end
        f0_in -->|"path"| f0_s0

and of `to_dot` the same as a `digraph` with a `cluster_f0` subgraph. Labels
are escaped for each format: Mermaid's entity codes (`#quot;`, `#35;`...)
and DOT's backslash escapes, so quotes, brackets, `#`, `|` and backslashes in
code stay text, and unicode names pass through as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from kilnc.drawing.model import Box, Cluster, EdgeKind, FlowDrawing, Shape
from kilnc.terminal import printable
from kilnc.writer import Writer

# Each shape's Mermaid brackets, and its DOT attributes.
MERMAID_SHAPES: Final[dict[Shape, tuple[str, str]]] = {
    Shape.INPUT: ("([", "])"),
    Shape.RESULT: ("([", "])"),
    Shape.CALL: ("[", "]"),
    Shape.QUESTION: ("[/", "/]"),
    Shape.MAP: ("[[", "]]"),
    Shape.INLINE: ("(", ")"),
    Shape.DECISION: ("{", "}"),
    Shape.LOOP: ("{{", "}}"),
    Shape.PASS: ("((", "))"),
}
DOT_SHAPES: Final[dict[Shape, str]] = {
    Shape.INPUT: 'shape=box, style="rounded,bold"',
    Shape.RESULT: 'shape=box, style="rounded,bold"',
    Shape.CALL: "shape=box",
    Shape.QUESTION: "shape=parallelogram",
    Shape.MAP: "shape=box, peripheries=2",
    Shape.INLINE: 'shape=box, style="rounded,dashed"',
    Shape.DECISION: "shape=diamond",
    Shape.LOOP: "shape=hexagon",
    Shape.PASS: "shape=circle",
}
MERMAID_ARROWS: Final = {
    EdgeKind.DATA: "-->",
    EdgeKind.ORDER: "-.->",
    EdgeKind.CONTROL: "==>",
}
DOT_EDGES: Final = {
    EdgeKind.DATA: "",
    EdgeKind.ORDER: "style=dashed",
    EdgeKind.CONTROL: "style=bold",
}

# Characters Mermaid would read as syntax inside a quoted label, as its entity codes.
MERMAID_ENTITIES: Final = {
    '"': "#quot;",
    "#": "#35;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "|": "#124;",
    "`": "#96;",
}
DOT_ESCAPES: Final = {"\\": "\\\\", '"': '\\"'}


def to_mermaid(drawings: Sequence[FlowDrawing]) -> str:
    """A `flowchart TD`, one subgraph per flow, pasteable into GitHub Markdown."""
    w = Writer()
    w.line("flowchart TD")
    with w.indent():
        for drawing in drawings:
            _mermaid_cluster(w, drawing.cluster)
        for drawing in drawings:
            for edge in drawing.edges:
                label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
                arrow = MERMAID_ARROWS[edge.kind]
                w.line(f"{edge.source} {arrow}{label} {edge.target}")
    return w.text()


def _mermaid_cluster(w: Writer, cluster: Cluster) -> None:
    w.line(f'subgraph {cluster.id} ["{_mermaid_text(cluster.title)}"]')
    with w.indent():
        for member in cluster.members:
            if isinstance(member, Box):
                opening, closing = MERMAID_SHAPES[member.shape]
                label = "<br>".join(_mermaid_text(line) for line in member.lines)
                w.line(f'{member.id}{opening}"{label}"{closing}')
            else:
                _mermaid_cluster(w, member)
    w.line("end")


def _mermaid_text(text: str) -> str:
    return "".join(MERMAID_ENTITIES.get(c, c) for c in _one_line(text))


def to_dot(drawings: Sequence[FlowDrawing]) -> str:
    """A Graphviz `digraph`, one cluster per flow, for `dot -Tsvg`."""
    w = Writer()
    w.line("digraph kiln {")
    with w.indent():
        # newrank: dot's older ranking fails on some edges between clusters
        # ("trouble in init_rank"); the newer one ranks them all.
        w.line('graph [newrank=true, rankdir=TB, fontname="Helvetica", fontsize=12];')
        w.line('node [fontname="Helvetica", fontsize=11];')
        w.line('edge [fontname="Helvetica", fontsize=10];')
        for drawing in drawings:
            _dot_cluster(w, drawing.cluster)
        for drawing in drawings:
            for edge in drawing.edges:
                attributes = [DOT_EDGES[edge.kind]] if DOT_EDGES[edge.kind] else []
                if edge.label:
                    attributes.append(f'label="{_dot_text(edge.label)}"')
                shown = f" [{', '.join(attributes)}]" if attributes else ""
                w.line(f"{edge.source} -> {edge.target}{shown};")
    w.line("}")
    return w.text()


def _dot_cluster(w: Writer, cluster: Cluster) -> None:
    w.line(f"subgraph cluster_{cluster.id} {{")
    with w.indent():
        w.line(f'label="{_dot_text(cluster.title)}";')
        w.line("style=rounded;")
        for member in cluster.members:
            if isinstance(member, Box):
                label = "\\n".join(_dot_text(line) for line in member.lines)
                w.line(f'{member.id} [{DOT_SHAPES[member.shape]}, label="{label}"];')
            else:
                _dot_cluster(w, member)
    w.line("}")


def _dot_text(text: str) -> str:
    return "".join(DOT_ESCAPES.get(c, c) for c in _one_line(text))


def _one_line(text: str) -> str:
    """Labels are lists of lines already: any line end left in one is a space.

    Other control characters (a node named with a terminal escape) are written as
    escapes, so that neither a terminal nor a viewer obeys them.
    """
    return printable(" ".join(text.splitlines())) if text else text
