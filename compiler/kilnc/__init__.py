"""kilnc: the kiln compiler.

It reads flows with libcst (never importing them), builds a networkx graph of
every flow, checks it, and writes a standalone asyncio module per source file.
`kilnc.pipeline` runs the passes in order; `kilnc.cli` is the `kiln` command.
"""

__version__ = "0.1.0"
