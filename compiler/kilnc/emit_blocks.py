"""emit_blocks: a flow body's blocks, tasks and steps, written as the plan orders them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import ExitStack

import libcst as cst

from kilnc.emit_guards import (
    Known,
    Spawned,
    after,
    at_spawns,
    forget,
    lines,
)
from kilnc.emit_names import BUILTINS, RUNTIME, outer_alias
from kilnc.emit_narrowing import Fact, FlowNames
from kilnc.emit_nesting import Nesting
from kilnc.emit_parts import (
    FLOW_METHODS,
    assignment,
    awaited_tasks,
    bare_statement,
    blocks_needed,
    call_target,
    counted_calls,
    discarding,
    folded_ops,
    task_base,
    trailing_comment,
)
from kilnc.emit_spawns import Spawns, direct_call, held_names
from kilnc.ir import (
    Block,
    Branch,
    Call,
    FanOut,
    FlowDef,
    Inline,
    Loop,
    Match,
    NodeCall,
    Return,
    Step,
    StepId,
    WhileLoop,
    yields,
)
from kilnc.names import mentioned_names, target_names
from kilnc.plan import (
    At,
    BlockPlan,
    FlowPlan,
    ModulePlan,
    Run,
    Spawn,
    Task,
    TaskId,
    Wait,
)
from kilnc.renaming import renamed
from kilnc.source import Span, comment_lines
from kilnc.syntax import code
from kilnc.writer import Names, Writer


class BlockEmitter(ABC):
    """Blocks, tasks and steps of a flow's body, as the plan orders them.

    `_FlowEmitter` sets the state below and writes the class around the body;
    the fan-outs are `FanOutEmitter`'s.
    """

    w: Writer
    module: ModulePlan
    plan: FlowPlan
    flow: FlowDef
    names: Names
    readable: Callable[[str], str]
    hidden: frozenset[str]
    flow_names: FlowNames
    outer_aliases: set[tuple[str, str]]
    counting: bool  # whether a call counts its visit where it is written
    commented: set[int]  # the source lines whose comments are written
    nesting: Nesting  # Python's blocks open around the code being written
    # The step whose value each name holds, in the coroutine being written,
    # as far as the code written so far assigns it.
    bound: dict[str, StepId]
    known: Known  # the flow's checks that hold there, which a task it starts repeats
    sites: dict[int, str]  # each call site's local, as the run binds it
    counters: dict[int, str]  # the visit counter of each call site in a loop

    @abstractmethod
    def fan_out(self, step: Step, action: FanOut, returning: bool) -> None: ...

    @abstractmethod
    def gathering(self, action: FanOut) -> str: ...

    @abstractmethod
    def compound(self, step: Step) -> None: ...

    @abstractmethod
    def task(
        self,
        task: Task,
        name: str,
        plan: BlockPlan,
        spawns: Spawns,
        scope: str,
        spawned: Spawned,
    ) -> None: ...

    def outer(self, annotation: str) -> str:
        """An annotation taken from a node's definition, as the flow's body must write it.

        The body's own names hide the module's: a flow parameter named `int`
        would make `-> int` mean the parameter. A hidden name is written as a
        module-level alias of it instead.
        """
        expression = cst.parse_expression(annotation)
        mentioned = mentioned_names(expression)
        hidden = mentioned & self.flow_names.bound
        # A builtin the module redefines (`set[int]` beside a `def set`) is kiln's
        # own type of a fan-out's value: the builtin, through the module.
        shadowed = (mentioned - hidden) & self.hidden
        if not hidden and not shadowed:
            return annotation
        aliases = {name: outer_alias(name) for name in hidden}
        self.outer_aliases |= aliases.items()
        aliases |= {name: self.builtin(name) for name in shadowed}
        # In a statement: a name renamed to a dotted one is no longer a Name.
        return code(renamed(cst.Expr(expression), aliases).value)

    def builtin(self, name: str) -> str:
        """How generated code names a builtin: through the module when a user name hides it."""
        return f"{BUILTINS}.{name}" if name in self.hidden else name

    def count_visit(self, call: NodeCall) -> None:
        """One more visit of a call site in a loop; past its limit, VisitLimitError."""
        if call.visits is not None and self.counting:
            self.w.line(f"{self.builtin('next')}({self.counters[call.site]})")

    # --- blocks -------------------------------------------------------------------

    def block(self, block: Block) -> None:
        if not block.steps:
            self.w.line("pass")
            return
        plan = self.plan.plan(block)
        if not plan.tasks:
            for op, returns in folded_ops(plan):
                assert isinstance(op, Wait | Run), "a plan without tasks has no scope"
                self.op(op, plan, {}, returns)
            return
        # A task of one call is spawned as the call, one of a fan-out as the
        # fan-out's gathering; the others as a coroutine of their own.
        held = held_names(plan)
        direct = {t: direct_call(task, held) for t, task in plan.tasks.items()}
        spawns = Spawns(
            direct,
            copies={
                t: {name: self.readable(f"{name}_before") for name in task.snapshots}
                for t, task in plan.tasks.items()
            },
            defs={
                t: self.readable(f"compute_{task_base(task, self.sites)}")
                for t, task in plan.tasks.items()
                if direct[t] is None
            },
            handles={
                t: self.readable(f"{task_base(task, self.sites)}_task")
                for t, task in plan.tasks.items()
            },
            held=held,
        )
        # The scope's `async with`, and a `with` around a step run ahead.
        holds = any(isinstance(op, Run) and op.ahead is not None for op in plan.ops)
        if not self.nesting.room(1 + int(holds) + blocks_needed(block)):
            self.in_place(block)
            return
        # The scope weighs failures by step (see `schedule`): the one the source
        # would have raised wins, whichever fails first.
        scope = self.readable("scope")
        knew = at_spawns(plan, self.known, self.bound, self.flow_names)
        for task_id, name in spawns.defs.items():
            self.task(plan.tasks[task_id], name, plan, spawns, scope, knew[task_id])
        self.scoped(plan, spawns, scope)

    def scoped(self, plan: BlockPlan, spawns: Spawns, scope: str) -> None:
        """Main's ops, in a scope from the first spawn (or step run ahead of
        main's own) on. It closes at a `yield`, where every task has ended: a
        stream's next item may be asked for from another task, which a scope
        (its body's task's) refuses."""
        spawned: set[TaskId] = set()
        with ExitStack() as opened:
            in_scope, at = False, None  # `at`: where main is, while none is open
            for op, returns in folded_ops(plan):
                if isinstance(op, Run) and yields([Block((op.step,))]):
                    opened.close()
                    in_scope, at = False, None
                elif isinstance(op, At) and not in_scope:
                    at = op.step
                    continue
                elif not in_scope and (
                    isinstance(op, Spawn)
                    or (isinstance(op, Run) and op.ahead is not None)
                ):
                    step = "" if at is None else f", step={at}"
                    ordered = f"{RUNTIME}.Scope(ordered=True{step})"
                    self.w.line(f"async with {ordered} as {scope}:")
                    opened.enter_context(self.w.indent())
                    opened.enter_context(self.nesting.opened())
                    in_scope = True
                if isinstance(op, Spawn):
                    task = plan.tasks[op.task]
                    assert spawned.issuperset(awaited_tasks(task)), "in order"
                    spawned.add(op.task)
                    self.start(task, spawns, scope)
                elif isinstance(op, At):
                    self.w.line(f"{scope}.at_step({op.step})")
                elif isinstance(op, Run) and op.ahead is not None:
                    self.w.line(f"with {scope}.ahead({op.ahead}):")
                    with self.w.indent(), self.nesting.opened():
                        self.op(op, plan, spawns.handles)
                else:
                    self.op(op, plan, spawns.handles, returns)

    def start(self, task: Task, spawns: Spawns, scope: str) -> None:
        """A task spawned where main's ops say, its calls' visits counted first."""
        # A task's visits count when it starts, in the order of the source, so
        # the call past a loop's bound is the one reported.
        for call in counted_calls(task.steps):
            self.count_visit(call)
        # A copy of a name a step run ahead binds: unbound while the scope
        # holds that step's failure, and so is the copy's.
        if spawns.held.intersection(spawns.copies[task.id]):
            self.w.line(f"with {scope}.ahead({task.step}):")
            with self.w.indent(), self.nesting.opened():
                self.spawn(task, spawns, scope)
        else:
            self.spawn(task, spawns, scope)

    def spawn(self, task: Task, spawns: Spawns, scope: str) -> None:
        """`pages_task = scope.spawn(compute_pages(...), step=2)`: the task started,
        after the copies of the names it binds itself (`x_before = x`)."""
        for name, copy in spawns.copies[task.id].items():
            self.w.line(f"{copy} = {name}")
        handles = spawns.handles
        awaited = ", ".join(handles[t] for t in awaited_tasks(task))
        single = spawns.direct[task.id]
        if single is None:
            spawned = f"{spawns.defs[task.id]}({awaited})"
        elif isinstance(single, FanOut):
            spawned = self.gathering(single)
        else:
            spawned = self.callcode(single, awaited=False)
        with self.w.at(task.result.span):
            self.comments(task.result.span)
            self.w.line(
                f"{handles[task.id]} = {scope}.spawn({spawned}, step={task.step})"
            )

    def in_place(self, block: Block) -> None:
        """The block one step after another, in source order.

        For a block with no room left for its scope's `async with`: the same
        values and the same failure as the source, only without the overlap.
        """
        for step in block.steps:
            self.step(step, returning=False)

    def op(
        self,
        op: Wait | Run,
        plan: BlockPlan,
        handles: Mapping[TaskId, str],
        returns: Step | None = None,
    ) -> None:
        """Main's op; with `returns`, the `return` of what it binds (see `folded_ops`)."""
        if returns is not None and isinstance(op, Wait):
            with self.w.at(returns.span):
                self.w.line(f"return await {handles[op.task]}")
        elif isinstance(op, Wait):
            self.wait(plan.tasks[op.task], handles[op.task])
        else:
            self.step(op.step, returning=returns is not None)

    def repeat(self, facts: list[Fact]) -> None:
        """The flow's checks, as asserts that narrow the types here as they did there."""
        for span, line in lines(facts):
            with self.w.at(span):
                self.w.line(line)
        self.known += tuple(facts)

    def comments(self, span: Span) -> None:
        """The comment lines right above a line of the source, before the first code from it."""
        source = self.module.source
        if span.path != source.path or span.line in self.commented:
            return
        self.commented.add(span.line)
        lines = comment_lines(source.text)
        first = span.line
        while first - 1 in lines:
            first -= 1
        for number in range(first, span.line):
            self.w.line(source.line(number).strip())

    def value_of(self, task: Task) -> str:
        """The type of what a task's coroutine returns, as the flow's body writes it."""
        result = task.result
        value_type = result.value_type if call_target(result) is not None else None
        return "None" if value_type is None else self.outer(value_type)

    def wait(
        self, task: Task, handle: str, taken: frozenset[str] | None = None
    ) -> None:
        """Await a task, binding the names of its target that nothing later bound yet.

        `a, b = await pair(x)` then `a, c = await pair(y)`: a coroutine that
        awaited the second task and needs `b` of the first must not take its
        `a` too. A task binds only the names it `taken` from the other (the
        rest would hide, in its own scope, values the flow's coroutine holds).
        """
        result = task.result
        target = call_target(result)
        if target is not None:
            stale = {
                name
                for name in target_names(target)
                if self.bound.get(name, result.id) > result.id
                or (taken is not None and name not in taken)
            }
            target = discarding(target, stale, self.names)
        with self.w.at(result.span):
            if target is None:
                self.w.line(f"await {handle}")
            else:
                self.w.line(f"{code(target)} = await {handle}")
        if target is not None:
            for name in target_names(target):
                self.bound[name] = result.id
            self.known = forget(self.known, target_names(target))

    # --- steps --------------------------------------------------------------------

    def step(self, step: Step, *, returning: bool) -> None:
        known = self.known
        with self.w.at(step.span):
            self.comments(step.span)
            self.action(step, returning=returning)
        self.known = after(known, step, self.flow_names)
        if not returning:
            for name in step.writes:
                self.bound[name] = step.id

    def action(self, step: Step, *, returning: bool) -> None:
        action = step.action
        if isinstance(action, Call):
            self.call(step, action, returning)
        elif isinstance(action, FanOut):
            self.fan_out(step, action, returning)
        elif isinstance(action, Inline):
            comment = trailing_comment(self.module.source, step.span)
            self.w.code(code(bare_statement(action.statement)) + comment)
        elif isinstance(action, Return):
            value = "" if action.value is None else f" {code(action.value)}"
            comment = trailing_comment(self.module.source, step.span)
            self.w.line(f"return{value}{comment}")
        elif isinstance(action, Branch | Match | Loop | WhileLoop):
            self.compound(step)
        else:
            self.w.line(
                "yield" if action.value is None else f"yield {code(action.value)}"
            )

    def call(self, step: Step, action: Call, returning: bool) -> None:
        call = action.call
        with self.w.at(call.span):
            self.count_visit(call)
            value = self.callcode(call)
            line = assignment(action.target, action.annotation, value, returning)
            # `# type: ignore[arg-type]` ending the source's line of the call.
            self.w.line(line + trailing_comment(self.module.source, step.span))

    def callcode(self, call: NodeCall, *, awaited: bool = True) -> str:
        """`[await] f(args)`, calling a node through the local its run bound for the site."""
        text = code(call.call.with_changes(func=self.called(call)))
        return f"await {text}" if awaited and call.suspends else text

    def called(self, call: NodeCall) -> cst.BaseExpression:
        """What the run calls at the site: its local, or a subflow's entry point on it."""
        callee = call.callee
        func: cst.BaseExpression = cst.Name(self.sites[call.site])
        method = (
            FLOW_METHODS[callee.is_async or call.awaited_flow, callee.streams]
            if isinstance(callee, FlowDef)
            else None
        )
        if method is not None:
            func = cst.Attribute(func, cst.Name(method))
        return func
