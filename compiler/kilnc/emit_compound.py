"""emit_compound: a flow's `if`, `match`, `for` and `while`, each block under its header."""

from __future__ import annotations

from kilnc.emit_blocks import BlockEmitter
from kilnc.emit_names import RUNTIME
from kilnc.emit_parts import blocks_needed_by, negated
from kilnc.ir import Block, Branch, Loop, Match, WhileLoop
from kilnc.syntax import code


class CompoundEmitter(BlockEmitter):
    """The compound statements of a flow's body, their blocks as the plan runs them."""

    def compound(self, action: Branch | Match | Loop | WhileLoop) -> None:
        if isinstance(action, Branch):
            self.branch(action)
        elif isinstance(action, Match):
            self.match(action)
        elif isinstance(action, Loop):
            self.loop(action)
        else:
            self.while_loop(action)

    def branch(self, action: Branch) -> None:
        for index, (test, arm) in enumerate(
            zip(action.tests, action.arms, strict=True)
        ):
            if test is None:
                self.w.line("else:")
            else:
                self.w.line(f"{'if' if index == 0 else 'elif'} {code(test)}:")
            with self.w.indent():
                self.block(arm)

    def match(self, action: Match) -> None:
        self.w.line(f"match {code(action.subject)}:")
        with self.w.indent():
            for case in action.cases:
                guard = f" if {code(case.guard)}" if case.guard is not None else ""
                self.w.line(f"case {code(case.pattern)}{guard}:")
                with self.w.indent():
                    self.block(case.body)

    def while_loop(self, action: WhileLoop) -> None:
        test = code(action.test)
        if not action.condition.steps:
            self.w.line(f"while {test}:")
            self.body_and_else(action.body, action.orelse)
            return
        # The test calls nodes: ask again at the top of every iteration.
        self.w.line("while True:")
        with self.w.indent(), self.nesting.opened():
            self.block(action.condition)
            self.w.line(f"if {negated(action.test)}:")
            with self.w.indent():
                if action.orelse is not None:
                    self.block(action.orelse)
                self.w.line("break")
            self.block(action.body)

    def loop(self, action: Loop) -> None:
        if not action.closes or not self.nesting.room(1 + blocks_needed_by(action)):
            # TODO: a stream loop with no room for its `with` is closed when it is
            # exhausted or collected, not at once when it is left early.
            self.loop_statement(action)
            return
        # However the loop ends (break, return, an error), the producer is closed at once.
        closing = "async with" if action.is_async else "with"
        helper = "aclosing" if action.is_async else "closing"
        self.w.line(f"{closing} {RUNTIME}.{helper}({code(action.iterable)}):")
        with self.w.indent(), self.nesting.opened():
            self.loop_statement(action)

    def loop_statement(self, action: Loop) -> None:
        keyword = "async for" if action.is_async else "for"
        self.w.line(f"{keyword} {code(action.target)} in {code(action.iterable)}:")
        self.body_and_else(action.body, action.orelse)

    def body_and_else(self, body: Block, orelse: Block | None) -> None:
        """A loop's body under its header, and its `else:` when it has one."""
        with self.w.indent(), self.nesting.opened():
            self.block(body)
        if orelse is not None:
            self.w.line("else:")
            with self.w.indent():
                self.block(orelse)
