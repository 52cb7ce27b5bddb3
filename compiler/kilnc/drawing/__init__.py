"""`kiln graph`'s drawing of a lowered flow: what a drawing is made of (model.py),
drawn from the flow's steps (draw.py) with their labels (labels.py), printed as
Mermaid or DOT (text.py)."""
