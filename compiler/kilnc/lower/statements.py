"""Statements: each statement of the flow language lowered to steps, in source order.

Example input::

    if (await grade(draft)) < 3:
        draft = await revise(draft)
    for part in parts:
        await publish(part)

Output: the call `grade(draft)` lifted into a step of its own before a
`Branch` step whose arm holds the `revise` call, then a `Loop` step whose body
holds the `publish` call; each compound step reads and writes what its blocks
do. Constructs outside the flow language (`try`, `with`, nested functions...)
are located diagnostics saying what to write instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import libcst as cst

from kilnc.diagnostics import Code
from kilnc.front import ParsedModule
from kilnc.ir import (
    RESERVED_PREFIX,
    Block,
    Branch,
    Call,
    FlowDef,
    Loop,
    Match,
    MatchCase,
    Resolver,
    Step,
    TypeVariables,
    WhileLoop,
    Yield,
)
from kilnc.lower.augmented import taken_apart
from kilnc.lower.calls import Calls
from kilnc.lower.changes import Changes, EffectSource, OutsideOf
from kilnc.lower.closed_streams import warn_closed_early
from kilnc.lower.fan_out import FanOuts
from kilnc.lower.generators import generators_read_whole
from kilnc.lower.lift import Lifter, element
from kilnc.lower.report import Reporter
from kilnc.lower.scope import Scope
from kilnc.lower.sharing import Sharing
from kilnc.lower.steps import Steps, leaves, written
from kilnc.names import (
    binds_names_only,
    bound_in,
    identifier,
    name_uses,
    parameter_names,
    target_names,
)
from kilnc.syntax import code, without_docstring, yields


class Lowerer:
    """Lowers one flow: its statements here, with a module for each other job."""

    def __init__(
        self,
        parsed: ParsedModule,
        resolve: Resolver,
        effects: EffectSource,
        type_vars: TypeVariables,
        outside: OutsideOf,
        flow: FlowDef,
        max_visits: int,
    ) -> None:
        self.flow = flow
        self.report = Reporter(parsed, resolve)
        self.shared = Sharing()
        self.scope = Scope(parsed, flow, self.shared, self.report, type_vars, effects)
        self.changes = Changes(flow.module, effects, outside, self.scope, self.shared)
        self.steps = Steps(parsed, self.scope, self.changes)
        read_whole = generators_read_whole(flow.function, parsed.qualified)
        self.calls = Calls(
            parsed, resolve, flow, max_visits, self.scope, self.report, read_whole
        )
        self.fan_outs = FanOuts(
            self, self.calls, self.steps, self.changes, self.scope, self.report
        )
        self._temps: dict[str, int] = {}

    def flow_body(self) -> Block:
        function = self.flow.function
        params = function.params
        # `self` too: the emitter names the method's receiver around it.
        defined = parameter_names(params)
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            self.scope.note_type(param.name.value, param.annotation)
            if identifier(param.name.value) in self.scope.memory:
                self.shared.passed_in(identifier(param.name.value))
        # `*xs` is a tuple and `**kw` a dict, whatever they hold: iterating a
        # tuple consumes nothing.
        if isinstance(params.star_arg, cst.Param):
            self.scope.types[identifier(params.star_arg.name.value)] = "tuple"
        if isinstance(params.star_kwarg, cst.Param):
            self.scope.types[identifier(params.star_kwarg.name.value)] = "dict"
        body = function.body
        self.calls.flows_as_values(body, set(bound_in(function)))
        if isinstance(body, cst.IndentedBlock):
            return self.block(without_docstring(body.body), defined)
        return self.block(body.body, defined)  # `def f(): return x` on one line

    def block(self, statements: Sequence[cst.CSTNode], defined: set[str]) -> Block:
        return Block(
            tuple(s for node in statements for s in self.statement(node, defined))
        )

    # --- statements -----------------------------------------------------------------

    def statement(self, node: cst.CSTNode, defined: set[str]) -> list[Step]:
        if isinstance(node, cst.SimpleStatementLine):
            return [step for small in node.body for step in self.small(small, defined)]
        if isinstance(node, cst.If):
            return self.branch(node, defined)
        if isinstance(node, cst.For):
            return self.loop(node, defined)
        if isinstance(node, cst.Match):
            return self.match(node, defined)
        if isinstance(node, cst.While):
            return self.while_loop(node, defined)
        return self.unsupported(node, defined)

    def small(self, node: cst.BaseSmallStatement, defined: set[str]) -> list[Step]:
        if isinstance(node, cst.Global | cst.Nonlocal | cst.Import | cst.ImportFrom):
            return self.unsupported(node, defined)
        if self.report.asyncio_idioms(node):
            defined |= name_uses(node).writes  # no follow-on errors
            return []
        self.scope.check_defined(node, defined)
        if isinstance(node, cst.Pass):
            return []
        if isinstance(node, cst.Expr) and isinstance(node.value, cst.Yield):
            return self.yield_statement(node.value)
        if yields(node):
            self.report.report(
                node,
                Code.STREAMING_FLOW,
                "a streaming flow yields in a statement of its own; "
                "values are not sent into flows",
                "write 'yield value' on its own line",
            )
            return []
        if isinstance(node, cst.Assert) and self.calls.contains_node_call(node.test):
            debug_only = self.debug_only(node)
            defined |= debug_only.writes
            return [debug_only]
        steps = self.direct_call(node, defined)
        if steps is None:
            steps = self.fan_out_statement(node, defined)
        if steps is None:
            steps = self.augmented(node)
        if steps is None:
            prefix, lifted = self.lift(node)
            steps = [*prefix, self.steps.simple_step(lifted, node)]
        for step in steps:
            defined |= step.writes
        return steps

    def debug_only(self, node: cst.Assert) -> Step:
        """`assert await check(x)` as `if __debug__:` around it: `python -O` drops
        the node's call with the assert, as it drops the whole statement of the
        source, where the call lifted out of the test would have run anyway."""
        prefix, lifted = self.lift(node)
        arm = Block((*prefix, self.steps.simple_step(lifted, node)))
        debug = Branch((cst.Name("__debug__"),), (arm,))
        return self.steps.compound(node, debug, [arm], [])

    def yield_statement(self, node: cst.Yield) -> list[Step]:
        value = node.value
        if isinstance(value, cst.From):
            self.report.report(
                node,
                Code.STREAMING_FLOW,
                "'yield from' is not part of the flow language",
                "write 'for item in stream: yield item'",
            )
            return []
        prefix: list[Step] = []
        if value is not None:
            prefix, value = self.lift_expression(value)
        reads = name_uses(value).read_names if value is not None else frozenset()
        step = self.steps.make(
            node, Yield(value), reads, frozenset(), frozenset(), None, barrier=True
        )
        if value is not None:
            step = self.changes.with_effects(self.changes.effects_of(value), step)
        return [*prefix, step]

    def direct_call(
        self, node: cst.BaseSmallStatement, defined: set[str]
    ) -> list[Step] | None:
        """`x = await f(...)`, `x: T = f(...)`, `await f(...)`: the call is the step itself."""
        target: cst.BaseAssignTargetExpression | None = None
        annotation: cst.Annotation | None = None
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target, value = node.targets[0].target, node.value
        elif isinstance(node, cst.AnnAssign) and node.value is not None:
            target, annotation, value = node.target, node.annotation, node.value
        elif isinstance(node, cst.Expr):
            value = node.value
        else:
            return None
        if target is not None and not binds_names_only(target):
            # `state["draft"] = await write(state)` stores into `state`: the call
            # is lifted, and the store is a statement whose effects are read.
            return None
        found = self.calls.node_call(value)
        if found is None:
            return None
        call, node_call = found
        prefix, args = self.lift_arguments(call)
        call_node = node_call.call.with_changes(args=args)
        node_call = replace(node_call, call=call_node)
        step = self.steps.call_step(
            node, Call(target, annotation, node_call), target, annotation
        )
        return [*prefix, step]

    def augmented(self, node: cst.BaseSmallStatement) -> list[Step] | None:
        """`d[k] += await f(x)`: the item read before the call, the result stored after
        (`kilnc.lower.augmented`)."""
        if not isinstance(node, cst.AugAssign):
            return None
        if not self.calls.contains_node_call(node.value):
            return None
        parts = taken_apart(node, self.temporary)
        if parts is None:
            return None
        steps: list[Step] = []
        for read in parts.reads:
            prefix, lifted = self.lift(read)
            steps += [*prefix, self.steps.simple_step(lifted, node)]
        prefix, value = self.lift_expression(node.value)
        combined = cst.AugAssign(parts.operand, node.operator, value)
        stored = cst.Assign([cst.AssignTarget(parts.target)], parts.operand)
        return [
            *steps,
            *prefix,
            self.steps.simple_step(combined, node),
            self.steps.simple_step(stored, node),
        ]

    def fan_out_statement(
        self, node: cst.BaseSmallStatement, defined: set[str]
    ) -> list[Step] | None:
        if not isinstance(node, cst.Assign | cst.AnnAssign) or node.value is None:
            return None
        if isinstance(node, cst.Assign) and len(node.targets) != 1:
            return None
        target = node.targets[0].target if isinstance(node, cst.Assign) else node.target
        value = node.value
        if not isinstance(
            value, cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp
        ):
            return None
        if not self.calls.contains_node_call(element(value)):
            return None
        return self.fan_outs.fan_out(value, target, node)

    def branch(self, node: cst.If, defined: set[str]) -> list[Step]:
        self.report.asyncio_idioms(node.test)
        self.scope.check_defined(node.test, defined)
        prefix, test = self.lift_expression(node.test)
        tests: list[cst.BaseExpression | None] = [test]
        arms = [self.block(node.body.body, set(defined))]
        orelse = node.orelse
        while isinstance(orelse, cst.If) and not self.calls.contains_node_call(
            orelse.test
        ):
            self.scope.check_defined(orelse.test, defined)
            tests.append(orelse.test)
            arms.append(self.block(orelse.body.body, set(defined)))
            orelse = orelse.orelse
        if isinstance(
            orelse, cst.If
        ):  # an elif that calls a node: `else:` then a nested `if`
            tests.append(None)
            arms.append(Block(tuple(self.branch(orelse, set(defined)))))
        elif isinstance(orelse, cst.Else):
            tests.append(None)
            arms.append(self.block(orelse.body.body, set(defined)))
        for arm in arms:
            defined |= written(arm)
        tested = [t for t in tests if t is not None]  # an `elif` test reads too
        return [
            *prefix,
            self.steps.compound(node, Branch(tuple(tests), tuple(arms)), arms, tested),
        ]

    def loop(self, node: cst.For, defined: set[str]) -> list[Step]:
        if not binds_names_only(node.target):
            self.report.report(
                node.target,
                Code.UNSUPPORTED,
                "a loop target that stores into an item or an attribute is not part"
                " of the flow language",
                "bind a name, and store it in the loop's body: "
                "for value in ...: d['k'] = value",
            )
        self.report.asyncio_idioms(node.iter)
        self.scope.check_defined(node.iter, defined)
        prefix, iterable = self.lift_expression(node.iter)
        inner = set(defined) | target_names(node.target)
        self.changes.type_target(node.target, iterable)
        body = self.block(node.body.body, inner)
        orelse = self.block(node.orelse.body.body, set(inner)) if node.orelse else None
        defined |= target_names(node.target) | written(body)
        blocks = [body] if orelse is None else [body, orelse]
        action = Loop(
            node.target,
            iterable,
            body,
            orelse,
            node.asynchronous is not None,
            closes=self.calls.opens_stream(node.iter),
        )
        if action.closes:
            warn_closed_early(node, self.changes, self.report)
        step = self.steps.compound(
            node, action, blocks, [iterable], writes=target_names(node.target)
        )
        step = self.changes.share_iteration(target_names(node.target), iterable, step)
        # break/continue inside belong to this loop: they do not hold back the flow;
        # those of its `else:` belong to the loop around it, and do.
        return [*prefix, replace(step, barrier=leaves(body, orelse))]

    def match(self, node: cst.Match, defined: set[str]) -> list[Step]:
        self.report.asyncio_idioms(node.subject)
        self.scope.check_defined(node.subject, defined)
        prefix, subject = self.lift_expression(node.subject)
        cases: list[MatchCase] = []
        tested: list[cst.CSTNode] = [subject]
        for case in node.cases:
            captured = name_uses(case.pattern).writes
            self.changes.share_bound(set(captured), subject)  # `case {"a": a}`
            if case.guard is not None:
                self.calls.forbid_calls(
                    case.guard,
                    "a case guard",
                    "a guard runs only when its pattern matches, and a false one"
                    " tries the next case: write the cases as 'if' statements whose"
                    " blocks call the node",
                )
                tested.append(case.guard)
            body = self.block(case.body.body, set(defined) | captured)
            cases.append(MatchCase(case.pattern, case.guard, body))
            tested.append(case.pattern)
        blocks = [case.body for case in cases]
        for block in blocks:
            defined |= written(block)
        return [
            *prefix,
            self.steps.compound(node, Match(subject, tuple(cases)), blocks, tested),
        ]

    def while_loop(self, node: cst.While, defined: set[str]) -> list[Step]:
        if not self.calls.contains_node_call(node):
            self.scope.check_defined(node.test, defined)
            # Kept whole, as written: its body may read what a later line bound.
            inner = defined | name_uses(node.body).writes
            self.scope.check_defined(node.body, inner)
            if node.orelse is not None:
                self.scope.check_defined(node.orelse, inner)
            step = self.steps.simple_step(node, node)
            defined |= step.writes
            return [step]
        self.calls.loops += 1
        inner = set(defined)
        self.report.asyncio_idioms(node.test)
        self.scope.check_defined(node.test, inner)
        condition, test = self.lift_expression(node.test)
        body = self.block(node.body.body, inner)
        orelse = self.block(node.orelse.body.body, set(inner)) if node.orelse else None
        self.calls.loops -= 1
        defined |= written(body) | {w for s in condition for w in s.writes}
        blocks = [Block(tuple(condition)), body] + ([orelse] if orelse else [])
        action = WhileLoop(test, blocks[0], body, orelse)
        step = self.steps.compound(node, action, blocks, [test])
        defined |= step.writes  # with what `:=` binds in the test
        return [replace(step, barrier=leaves(Block((*condition, *body.steps)), orelse))]

    def unsupported(self, node: cst.CSTNode, defined: set[str]) -> list[Step]:
        defined |= name_uses(node).writes  # what it would assign: no follow-on errors
        if isinstance(node, cst.With) and any(
            self.report.asyncio_idioms(item) for item in node.items
        ):
            return []  # `async with asyncio.TaskGroup() as tg:`, said what instead
        self.report.unsupported(node)
        return []

    # --- lifting -----------------------------------------------------------------------

    def lift(self, node: cst.CSTNodeT) -> tuple[list[Step], cst.CSTNodeT]:
        """Lift the node calls out of a statement or an argument (kept as its own kind)."""
        if not self.calls.contains_node_call(node):
            return [], node  # most code: nothing to lift, and no tree to rebuild
        lifter = Lifter(self)
        lifted = node.visit(lifter)
        assert isinstance(lifted, type(node))
        return lifter.steps, lifted

    def lift_expression(
        self, node: cst.BaseExpression
    ) -> tuple[list[Step], cst.BaseExpression]:
        """Lift the node calls out of an expression, which may itself become a temporary."""
        if not self.calls.contains_node_call(node):
            return [], node
        lifter = Lifter(self)
        lifted = node.visit(lifter)
        assert isinstance(lifted, cst.BaseExpression)
        return lifter.steps, lifted

    def lift_arguments(self, call: cst.Call) -> tuple[list[Step], Sequence[cst.Arg]]:
        """Lift the node calls out of the arguments of a call that is a step itself,
        and the arguments that do more than read (`Lifter`)."""
        if not any(
            self.calls.contains_node_call(arg) or self.changes.acts(arg.value)
            for arg in call.args
        ):
            return [], call.args
        lifter = Lifter(self, keep=call)
        lifted = call.visit(lifter)
        assert isinstance(lifted, cst.Call)
        return lifter.steps, lifted.args

    def temporary(self, base: str, stands_for: cst.BaseExpression | None = None) -> str:
        """A new name of kiln's own; `stands_for` is the source's expression it
        holds, which the reasons of warnings show in its place."""
        count = self._temps.get(base, 0) + 1
        self._temps[base] = count
        name = (
            f"{RESERVED_PREFIX}_{base}"
            if count == 1
            else f"{RESERVED_PREFIX}_{base}_{count}"
        )
        # A flow's name like any other: it may share (`= state["messages"]`).
        self.scope.own.add(name)
        if stands_for is not None:
            self.scope.stands_for[name] = code(stands_for)
        return name
