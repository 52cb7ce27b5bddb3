"""emit_nesting: the blocks Python has open around the code an emitter writes.

CPython compiles at most 20 blocks (loops, `try`, `with`, an `except` body
counts two) nested in one function. The source keeps to it; the emitter's own
blocks (the `with` that binds a body's calls, a scope's `async with`) do
without where there is no room left.

Example: ``if nesting.room(2): with nesting.opened(): ...`` around the code
written inside a `with`; ``with nesting.function(): ...`` around the body of
a nested `def`, which starts with none open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, final

MAX_BLOCKS: Final = 20


@final
class Nesting:
    """How many blocks are open around the code being written."""

    __slots__ = ("blocks",)

    def __init__(self) -> None:
        self.blocks = 0

    def room(self, blocks: int) -> bool:
        """Whether code may open `blocks` more nested blocks here."""
        return self.blocks + blocks <= MAX_BLOCKS

    @contextmanager
    def opened(self, blocks: int = 1) -> Iterator[None]:
        """Code written inside sits in `blocks` more nested blocks."""
        self.blocks += blocks
        try:
            yield
        finally:
            self.blocks -= blocks

    @contextmanager
    def function(self) -> Iterator[None]:
        """Code written inside is the body of a nested function: no block is open."""
        outer, self.blocks = self.blocks, 0
        try:
            yield
        finally:
            self.blocks = outer
