"""Visits: how often a flow's run called a node at one site inside a `while` loop.

A compiled flow counts the calls at each call site inside a `while` loop
against the flow's `max_visits` (or the node's own)::

    revise_visits = _kiln.Visits("revise", 4, "draft.py:23")
    with self._kiln_bind(self._kiln_sites) as (draft, review, revise):
        ...
        while not await review(text):
            revise_visits.count()
            text = await revise(text)

The call past the limit raises VisitLimitError instead of running, so a
loop that never meets its exit condition stops.
"""

from __future__ import annotations

from typing import final

from kiln.errors import VisitLimitError

__all__ = ["Visits"]


@final
class Visits:
    """The visits of one call site in one run: `node` called at `where`, at most `limit`."""

    __slots__ = ("_limit", "_node", "_where", "visits")

    def __init__(self, node: str, limit: int, where: str) -> None:
        self._node = node
        self._limit = limit
        self._where = where
        self.visits = 0

    def count(self) -> None:
        """One more visit; past the limit, VisitLimitError, and the call is not made."""
        if self.visits == self._limit:
            raise VisitLimitError(self._node, self._limit, self._where)
        self.visits += 1
