"""Places: which steps of a flow run entirely before which others.

Example input (a settled block)::

    a = await work(1)            s0
    for x in xs:                 s2, a loop holding s1
        await use(x)             s1
    snap = await current()       s3

Output: `before(s0, s3)`, `before(s1, s3)` and `before(s0, s1)` hold: in the
order the source runs the block, each ends before the other starts. Not
`before(s1, s2)`, the loop s1 is in, nor any pair inside one loop, whose
next iteration runs the first again after the second.
"""

from __future__ import annotations

from typing import final

from kilnc.ir import Block, Call, FanOut, Loop, StepId, WhileLoop, child_blocks


@final
class Places:
    """Each step's place in the order the source runs a flow's blocks."""

    def __init__(self, block: Block) -> None:
        self._first: dict[StepId, int] = {}  # where it starts, nested steps after
        self._last: dict[StepId, int] = {}  # where its last nested step is
        self._loops: dict[StepId, frozenset[StepId]] = {}  # the loops around it
        self._calls: dict[int, StepId] = {}  # the step of each call site
        self._count = 0
        self._walk(block, frozenset())

    def _walk(self, block: Block, loops: frozenset[StepId]) -> None:
        for step in block.steps:
            self._first[step.id] = self._count
            self._count += 1
            self._loops[step.id] = loops
            action = step.action
            if isinstance(action, Call):
                self._calls[action.call.site] = step.id
            elif isinstance(action, FanOut):
                self._calls[action.result.site] = step.id
            inner = loops
            if isinstance(action, Loop | WhileLoop | FanOut):
                inner = loops | {step.id}  # its blocks run again, and again
            for child in child_blocks(action):
                self._walk(child, inner)
            self._last[step.id] = self._count - 1

    def of_call(self, site: int) -> StepId | None:
        return self._calls.get(site)

    def before(self, step: StepId, other: StepId | None) -> bool:
        """Whether `step` ends before `other` starts whenever both run: it comes
        first in the block's order, and no loop holds both."""
        if other is None or step not in self._first or other not in self._first:
            return False
        return (
            self._last[step] < self._first[other]
            and not self._loops[step] & self._loops[other]
        )
