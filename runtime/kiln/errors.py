"""The exceptions kiln raises on its own account.

Every kiln exception derives from `KilnError`, so a caller can tell a problem
kiln detected from one raised by a node. Exceptions raised by user code are never
wrapped: they leave a flow as the original objects. Each message names what went
wrong and says what to do about it.
"""

from __future__ import annotations

__all__ = ["KilnError", "OptionError", "ReservedNameError", "VisitLimitError"]


class KilnError(Exception):
    """Base class of every exception that kiln itself raises."""


class OptionError(KilnError, ValueError):
    """A decorator option (or a `Limit`) has a value kiln cannot use.

    A `ValueError` too, so code that validates its own configuration with
    `except ValueError` keeps working.
    """


class ReservedNameError(KilnError, ValueError):
    """A `Memory` write used a name that `Memory` keeps for itself."""


class VisitLimitError(KilnError):
    """A node inside a `while` loop was called more often than it may be.

    kiln counts the calls at each call site inside a loop, so a loop that never
    meets its exit condition stops with this error instead of running forever.
    """

    node: str
    limit: int
    where: str

    def __init__(self, node: str, limit: int, where: str) -> None:
        self.node = node
        self.limit = limit
        self.where = where
        super().__init__(
            f"node {node!r} exceeded its visit limit of {limit} (called at {where}); "
            "raise max_visits or check the loop's exit condition"
        )

    def __reduce__(self) -> tuple[type[VisitLimitError], tuple[str, int, str]]:
        # The default reduction would call `VisitLimitError(message)`, which does
        # not match the constructor; pickling matters for process pools and Dask.
        return (type(self), (self.node, self.limit, self.where))
