"""emit_compound: a flow's `if`, `match`, `for` and `while`, each block under its header.

Each nested block is written knowing the flow's checks that hold in it
(`emit_guards`), which a task started in it repeats: in an arm, the test that
chose it (in a case, its pattern); in a loop's body, none of what the loop
binds again; in a `while` loop's body, its test too.
"""

from __future__ import annotations

from kilnc.emit_blocks import BlockEmitter
from kilnc.emit_guards import Known, in_arm, in_loop, in_while_body
from kilnc.emit_names import RUNTIME
from kilnc.emit_parts import blocks_needed_by, negated
from kilnc.ir import Block, Branch, Loop, Match, Step, WhileLoop
from kilnc.syntax import code


class CompoundEmitter(BlockEmitter):
    """The compound statements of a flow's body, as the plan runs them: in main's order."""

    def compound(self, step: Step) -> None:
        action = step.action
        if isinstance(action, Branch):
            self.branch(step, action)
        elif isinstance(action, Match):
            self.match(step, action)
        elif isinstance(action, Loop):
            self.loop(in_loop(self.known, step), action)
        else:
            assert isinstance(action, WhileLoop), "only compound steps nest blocks"
            self.while_loop(step, action)

    def nested(self, block: Block, known: Known) -> None:
        """A block that runs where `known` holds."""
        self.known = known
        self.block(block)

    def branch(self, step: Step, action: Branch) -> None:
        known = self.known
        for index, (test, arm) in enumerate(
            zip(action.tests, action.arms, strict=True)
        ):
            if test is None:
                self.w.line("else:")
            else:
                self.w.line(f"{'if' if index == 0 else 'elif'} {code(test)}:")
            with self.w.indent():
                self.nested(arm, in_arm(known, step, index, self.flow_names))

    def match(self, step: Step, action: Match) -> None:
        known = self.known
        self.w.line(f"match {code(action.subject)}:")
        with self.w.indent():
            for index, case in enumerate(action.cases):
                guard = f" if {code(case.guard)}" if case.guard is not None else ""
                self.w.line(f"case {code(case.pattern)}{guard}:")
                with self.w.indent():
                    self.nested(case.body, in_arm(known, step, index, self.flow_names))

    def while_loop(self, step: Step, action: WhileLoop) -> None:
        test = code(action.test)
        known = in_loop(self.known, step)
        body = in_while_body(self.known, step, self.flow_names)
        if not action.condition.steps:
            self.w.line(f"while {test}:")
            self.body_and_else(action.body, action.orelse, body, known)
            return
        # The test calls nodes: ask again at the top of every iteration.
        self.w.line("while True:")
        with self.w.indent(), self.nesting.opened():
            self.nested(action.condition, known)
            self.w.line(f"if {negated(action.test)}:")
            with self.w.indent():
                if action.orelse is not None:
                    self.nested(action.orelse, known)
                self.w.line("break")
            self.nested(action.body, body)

    def loop(self, known: Known, action: Loop) -> None:
        if not action.closes or not self.nesting.room(1 + blocks_needed_by(action)):
            # A stream loop with no room for its `with` is closed when it is
            # exhausted or collected, not at once when it is left early.
            self.loop_statement(known, action)
            return
        # However the loop ends (break, return, an error), the producer is closed at once.
        closing = "async with" if action.is_async else "with"
        helper = "aclosing" if action.is_async else "closing"
        self.w.line(f"{closing} {RUNTIME}.{helper}({code(action.iterable)}):")
        with self.w.indent(), self.nesting.opened():
            self.loop_statement(known, action)

    def loop_statement(self, known: Known, action: Loop) -> None:
        keyword = "async for" if action.is_async else "for"
        self.w.line(f"{keyword} {code(action.target)} in {code(action.iterable)}:")
        self.body_and_else(action.body, action.orelse, known, known)

    def body_and_else(
        self, body: Block, orelse: Block | None, in_body: Known, in_else: Known
    ) -> None:
        """A loop's body under its header, and its `else:` when it has one."""
        with self.w.indent(), self.nesting.opened():
            self.nested(body, in_body)
        if orelse is not None:
            self.w.line("else:")
            with self.w.indent():
                self.nested(orelse, in_else)
