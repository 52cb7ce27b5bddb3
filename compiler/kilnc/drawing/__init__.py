"""`kiln graph`'s drawing of a lowered flow: boxes, clusters and edges (draw.py),
their labels (labels.py), printed as Mermaid or DOT (text.py)."""
