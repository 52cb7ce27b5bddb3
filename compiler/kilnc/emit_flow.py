"""emit_flow: one flow's plan to the class and instance that replace it.

Example input: the plan of `digest` (see `schedule`). Output, before black::

    class Digest(_kiln.Flow, _kiln.AsyncProcess, _kiln.Process):
        async def aforward(self, path: str) -> str:
            _kiln_load, _kiln_summarize = self._kiln_bind(self._kiln_calls)
            try:
                paragraphs = _kiln_load(path)
                ...
            except Exception as error:
                self._kiln_note(error)  # names the call that failed (kiln.notes)
                raise
    digest = Digest()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, final

import libcst as cst

from kilnc.emit_names import (
    BUILTINS,
    RUNTIME,
    hidden_builtins,
    outer_alias,
    renamed_in_signature,
    signature_aliases,
)
from kilnc.emit_parts import (
    FLOW_METHODS,
    SITE_KINDS,
    all_writes,
    asks,
    assignment,
    awaited_tasks,
    bare_statement,
    blocks_needed,
    blocks_needed_by,
    call_target,
    callee_base,
    calls_in,
    changing_calls,
    comprehension,
    comprehension_targets_text,
    counted_calls,
    discarding,
    docstring_literal,
    folded_ops,
    forwarded_args,
    limit_display,
    negated,
    reading_copies,
    task_base,
    tuple_display,
)
from kilnc.ir import (
    Block,
    Branch,
    Call,
    FanOut,
    FanOutKind,
    FlowDef,
    Inline,
    Loop,
    Match,
    NodeCall,
    NodeDef,
    NodeKind,
    Return,
    Step,
    StepId,
    WhileLoop,
    child_blocks,
)
from kilnc.names import (
    mentioned_names,
    renamed,
    target_names,
)
from kilnc.plan import (
    At,
    BlockPlan,
    Compiled,
    FlowPlan,
    ModulePlan,
    Run,
    Spawn,
    Task,
    TaskId,
    Wait,
)
from kilnc.source import Span, comment_lines
from kilnc.syntax import attached_comments, awaits, code
from kilnc.writer import Names, Writer

# CPython compiles at most 20 blocks (loops, `try`, `with`, an `except` body
# counts two) nested in one function. The source keeps to it; the emitter's own
# blocks (the body's `try`, a scope's `async with`) do without where there is
# no room left.
MAX_BLOCKS: Final = 20


def emit_flow(
    w: Writer, plan: FlowPlan, class_name: str, module: ModulePlan
) -> set[tuple[str, str]]:
    """Write the flow's class and instance; return the module-level aliases its body
    needs (`outer_alias`), which the module writes once, after the flow."""
    emitter = _FlowEmitter(w, plan, class_name, module)
    emitter.emit()
    return emitter.outer_aliases


@final
@dataclass(frozen=True, slots=True)
class Shape:
    """How a flow's class is built: the method that runs the body, the one derived from it."""

    bases: str
    runs: str
    derives: str
    derived: str  # the derived method's body; {runtime}, {receiver}, {item}, {args} filled in
    call: str  # the method `__call__` calls


#   flow               | runs the body    | derived from it
#   async def          | aforward         | forward: run_sync(aforward), loop-aware
#   def                | forward          | aforward: return forward
#   async def + yield  | astream          | stream: iterate(astream), loop-aware
#   def + yield        | stream           | astream: yields what stream yields
SHAPES: Final = {
    (True, False): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncProcess, {RUNTIME}.Process",
        "async def aforward",
        "def forward",
        "return {runtime}.run_sync({receiver}.aforward({args}))",
        "forward",
    ),
    (False, False): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncProcess, {RUNTIME}.Process",
        "def forward",
        "async def aforward",
        "return {receiver}.forward({args})",
        "forward",
    ),
    (True, True): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncStreamProcess, {RUNTIME}.StreamProcess",
        "async def astream",
        "def stream",
        "return {runtime}.iterate({receiver}.astream({args}))",
        "stream",
    ),
    (False, True): Shape(
        f"{RUNTIME}.Flow, {RUNTIME}.AsyncStreamProcess, {RUNTIME}.StreamProcess",
        "def stream",
        "async def astream",
        "for {item} in {receiver}.stream({args}):\n    yield {item}",
        "stream",
    ),
}
ABC = "_kiln_abc"  # collections.abc, for the annotations of derived stream methods


def _annotations(
    flow: FlowDef, returns: cst.Annotation | None, runs_async: bool
) -> tuple[str, str]:
    """The return annotations of the method running the body and of the derived one."""
    if returns is None:
        return "", ""
    annotation = code(returns.annotation)
    written = f" -> {annotation}"
    if not flow.streams:
        return written, written
    item = _stream_item(annotation)
    if item is None:
        return written, ""
    if runs_async == flow.is_async:
        kind = "Iterator" if flow.is_async else "AsyncIterator"
        return written, f" -> {ABC}.{kind}[{item}]"
    # A sync streaming flow whose body awaits (thread=True nodes) runs as `astream`.
    return f" -> {ABC}.AsyncIterator[{item}]", written


def _awaits_anywhere(block: Block) -> bool:
    return any(
        step.awaits
        or any(_awaits_anywhere(child) for child in child_blocks(step.action))
        for step in block.steps
    )


def _stream_item(annotation: str) -> str | None:
    """`T` of `AsyncIterator[T]`, `Iterator[T]`, `AsyncGenerator[T, None]` and the like."""
    parsed = cst.parse_expression(annotation)
    if isinstance(parsed, cst.Subscript) and parsed.slice:
        element = parsed.slice[0].slice
        if isinstance(element, cst.Index):
            return code(element.value)
    return None


class _FlowEmitter:
    def __init__(
        self, w: Writer, plan: FlowPlan, class_name: str, module: ModulePlan
    ) -> None:
        self.w = w
        self.module = module
        self.plan = plan
        self.flow = plan.flow.flow
        self.class_name = class_name
        mentioned = mentioned_names(self.flow.function)
        # A question's name is a keyword of `resume`, beside its receiver.
        self.asked = self.questions()
        self.names = Names(
            all_writes(plan.flow.body)
            | mentioned
            | set(self.asked)
            | module.module_names
        )
        # Names a person would write (`summaries_task`) where no user name can be
        # hidden by them: a star import may bind any name, so there, kiln's own.
        self.readable = self.names.fresh if module.star_import else self.names.local
        self.receiver = self.names.own("self")
        self.item = self.names.own("item")
        self.hidden = hidden_builtins(self.flow, module)
        self.aliases = signature_aliases(self.flow)
        self.flow_names = self.flow.bound
        self.outer_aliases: set[tuple[str, str]] = set()
        self.error = self.readable("error")
        self.counting = True
        self.commented: set[int] = set()  # the lines whose comments are written
        self.blocks = 0  # Python's blocks open around the code being written
        # The step whose value each name holds, in the coroutine being written,
        # as far as the code written so far assigns it.
        self.bound: dict[str, StepId] = {}
        # Each call site of a node or a subflow gets the local its run binds
        # (`Flow._kiln_bind`).
        self.sites = {
            call.site: self.names.fresh(callee_base(call.callee))
            for call in plan.flow.calls
        }
        # Why each call that may change what it is passed does: a durable run,
        # which replays a call's value and not its changes, refuses those.
        self.changing = changing_calls(plan.flow.body)
        self.counters = {
            call.site: self.names.fresh(f"{callee_base(call.callee)}_visits")
            for call in plan.flow.calls
            if call.visits is not None
        }

    def emit(self) -> None:
        with self.w.at(self.flow.span):
            self.emit_class()

    def emit_class(self) -> None:
        flow, w = self.flow, self.w
        for comment in attached_comments(flow.function):
            w.code(code(comment).strip())
        # A sync flow calling thread=True nodes awaits them: its body runs async
        # (and overlaps them), its sync entry point is the derived one.
        runs_async = flow.is_async or _awaits_anywhere(self.plan.flow.body)
        shape = SHAPES[runs_async, flow.streams]
        signature = renamed_in_signature(flow.function, self.aliases)
        params = code(signature.params)
        receiver = self.receiver
        params = f"{receiver}, {params}" if params.strip() else receiver
        args = forwarded_args(flow.function.params)
        own, derived = _annotations(flow, signature.returns, runs_async)
        w.line(f"class {self.class_name}({shape.bases}):")
        with w.indent():
            w.code(docstring_literal(self.docstring()))
            w.line()
            if self.class_attributes():
                w.line()
            w.line(f"{shape.runs}({params}){own}:")
            with w.indent():
                self.body()
            w.line()
            w.line(f"{shape.derives}({params}){derived}:")
            with w.indent():
                w.code(
                    shape.derived.format(
                        runtime=RUNTIME, receiver=receiver, item=self.item, args=args
                    )
                )
            w.line()
            w.line(f"def __call__({params}){derived if runs_async else own}:")
            with w.indent():
                w.line(f"return {receiver}.{shape.call}({args})")
            if self.asked and runs_async and not flow.streams:
                self.resume_methods(self.asked, own)
        w.line()
        w.line()
        w.line(f"{flow.identifier} = {self.class_name}()")

    def questions(self) -> dict[str, str]:
        """The questions a run of the flow may ask, its subflows' in this module too.

        By name: the answer's type as the `ask` writes it.
        """
        found: dict[str, str] = {}
        by_flow = {
            entry.plan.flow.flow: entry.plan
            for entry in self.module.body
            if isinstance(entry, Compiled)
        }
        pending, seen = [self.plan], set()
        while pending:
            plan = pending.pop()
            if plan.flow.flow in seen:
                continue
            seen.add(plan.flow.flow)
            for call in plan.flow.calls:
                callee = call.callee
                if isinstance(callee, NodeDef) and callee.asks:
                    assert callee.returns is not None, "lower types every question"
                    found.setdefault(callee.name, callee.returns)
                elif isinstance(callee, FlowDef) and callee in by_flow:
                    pending.append(by_flow[callee])
        return dict(sorted(found.items()))

    def resume_methods(self, questions: dict[str, str], returns: str) -> None:
        """`resume` and `aresume`: answer one question (typed), go on with the run."""
        w, receiver = self.w, self.receiver
        unanswered = f"{RUNTIME}.Unanswered = {RUNTIME}.UNANSWERED"
        params = ", ".join(
            f"{name}: {kind} | {unanswered}" for name, kind in questions.items()
        )
        answers = ", ".join(f"{name}={name}" for name in questions)
        w.line()
        w.line(f"def resume({receiver}, *, {params}){returns}:")
        with w.indent():
            w.line(f"return {RUNTIME}.run_sync({receiver}.aresume({answers}))")
        w.line()
        w.line(f"async def aresume({receiver}, *, {params}){returns}:")
        with w.indent():
            w.line(
                f"return await {RUNTIME}.resume({receiver}, {receiver}.aforward, {answers})"
            )

    def class_attributes(self) -> bool:
        """The call sites, what they call unobserved, and the flow's capacity; whether any."""
        calls = self.plan.flow.calls
        options = self.flow.options
        w = self.w
        if calls:
            w.line("_kiln_sites = (")
            with w.indent():
                for call in calls:
                    w.line(f"{self.site(call)},")
            w.line(")")
            w.line(f"_kiln_calls = {tuple_display([self.plain(c) for c in calls])}")
        if options.limits:
            groups = ", ".join(
                f"{spec.group!r}: {limit_display(spec)}" for spec in options.limits
            )
            w.line(f"_kiln_limits = {{{groups}}}")
        if options.concurrency is not None:
            w.line(f"_kiln_concurrency = {options.concurrency!r}")
        if self.asked:
            asked = ", ".join(f"{name!r}: {kind}" for name, kind in self.asked.items())
            w.line(f"_kiln_questions = {{{asked}}}")
        # Where its cached calls, and its durable runs, keep their values.
        ledger = self.module.ledger
        if ledger is not None and calls:
            w.line(f"_kiln_ledger = {ledger!r}  # [tool.kiln] ledger, from here")
        return bool(
            calls or options.limits or options.concurrency is not None or self.asked
        )

    def site(self, call: NodeCall) -> str:
        """`_kiln.Site(...)`: what the runtime needs to limit, cache and observe a call."""
        node = call.callee
        if isinstance(node, FlowDef):
            fields = [
                repr(node.name),
                repr(self.module.where(call.span)),
                code(call.call.func),
            ]
            fields.append("kind='flow'")
            fields.append(f"defined={self.module.where(node.span)!r}")
            if self.module.classes.get(node):
                fields.append(
                    f"classes={tuple_display(list(self.module.classes[node]))}"
                )
            if call.site in self.changing:
                fields.append(f"changes={self.changing[call.site]!r}")
            return f"{RUNTIME}.Site({', '.join(fields)})"
        fields = [
            repr(node.name),
            repr(self.module.where(call.span)),
            code(call.call.func),
        ]
        kind = "ask" if node.asks else SITE_KINDS[node.kind, node.options.thread]
        if kind != "async":
            fields.append(f"kind={kind!r}")
        if node in self.module.policies:
            fields.append(f"policy={self.module.policies[node]}")
        if node.options.limit is not None:
            fields.append(f"limit={node.options.limit!r}")
        if node in self.module.fingerprints:
            fields.append(f"cache={self.module.fingerprints[node]!r}")
        if self.module.classes.get(node):
            fields.append(f"classes={tuple_display(list(self.module.classes[node]))}")
        if node in self.module.fallbacks:
            fields.append(f"fallback={self.module.fallbacks[node]}")
        if node.options.local:
            fields.append("local=True")
        if call.site in self.changing:
            fields.append(f"changes={self.changing[call.site]!r}")
        if not node.asks:
            fields.append(f"defined={self.module.where(node.span)!r}")
        return f"{RUNTIME}.Site({', '.join(fields)})"

    def plain(self, call: NodeCall) -> str:
        """What a call site runs when its run needs nothing more: the node, with its policy.

        A subflow of another module is the compiled flow when that module was
        compiled too, else its source function: `subflow` gives both one shape.
        """
        node = call.callee
        func = code(call.call.func)
        if isinstance(node, FlowDef):
            return func if call.local else f"{RUNTIME}.subflow({func})"
        if node in self.module.policies:
            helper = (
                "in_thread"
                if node.options.thread
                else ("retrying" if node.kind is NodeKind.ASYNC else "retrying_sync")
            )
            func = f"{RUNTIME}.{helper}({self.module.policies[node]}, {func})"
        if node in self.module.fallbacks:
            sync = node.kind is NodeKind.SYNC and not node.options.thread
            helper = (
                "falling_back_sync"
                if sync
                else "falling_back_async" if node.fallback_async else "falling_back"
            )
            func = f"{RUNTIME}.{helper}({func}, {self.module.fallbacks[node]})"
        return func

    def outer(self, annotation: str) -> str:
        """An annotation taken from a node's definition, as the flow's body must write it.

        The body's own names hide the module's: a flow parameter named `int`
        would make `-> int` mean the parameter. A hidden name is written as a
        module-level alias of it instead.
        """
        expression = cst.parse_expression(annotation)
        hidden = mentioned_names(expression) & self.flow_names
        if not hidden:
            return annotation
        aliases = {name: outer_alias(name) for name in hidden}
        self.outer_aliases |= aliases.items()
        return code(renamed(expression, aliases))

    def builtin(self, name: str) -> str:
        """How generated code names a builtin: through the module when a user name hides it."""
        return f"{BUILTINS}.{name}" if name in self.hidden else name

    def collection(self, kind: FanOutKind, gathered: str) -> str:
        if kind is FanOutKind.SET:
            return f"{self.builtin('set')}({gathered})"
        if kind is FanOutKind.DICT:
            return f"{self.builtin('dict')}({gathered})"
        return gathered

    def body(self) -> None:
        """The flow's body, after its bound calls and the visit counters of `while` loops.

        One handler notes on a failure the call it left (`Flow._kiln_note`,
        from the lines each site lists), where a call of a node or subflow
        can fail, and where the source leaves room for one more block.
        """
        body = self.plan.flow.body
        if self.sites:
            targets = tuple_display(list(self.sites.values()))
            receiver = self.receiver
            self.w.line(f"{targets} = {receiver}._kiln_bind({receiver}._kiln_calls)")
        for counter in self.counters.values():
            self.w.line(f"{counter} = 0")
        fails = any(not asks(call) for call in self.plan.flow.calls)
        if not (fails and self.room(1 + blocks_needed(body))):
            self.block(body)
            return
        self.w.line("try:")
        with self.w.indent(), self.opened():
            self.block(body)
        self.w.line(f"except {self.builtin('Exception')} as {self.error}:")
        with self.w.indent():
            self.w.line(f"{self.receiver}._kiln_note({self.error})")
            self.w.line("raise")

    def count_visit(self, call: NodeCall) -> None:
        """One more visit of a call site in a loop; past its limit, VisitLimitError."""
        if call.visits is None or not self.counting:
            return
        counter = self.counters[call.site]
        where = self.module.where(call.span)
        self.w.line(f"if {counter} == {call.visits}:")
        with self.w.indent():
            error = f"{RUNTIME}.VisitLimitError({call.callee.name!r}, {call.visits}, {where!r})"
            self.w.line(f"raise {error}")
        self.w.line(f"{counter} += 1")

    def docstring(self) -> str:
        written = self.flow.function.get_docstring()
        where = f"compiled by kiln from {self.module.where(self.flow.span)}"
        return (
            f"{written}\n\n({where})"
            if written
            else f"Flow {self.flow.name!r}, {where}."
        )

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
        defs = {
            t: self.readable(f"compute_{task_base(task)}")
            for t, task in plan.tasks.items()
        }
        copies = {
            t: {name: self.readable(f"{name}_before") for name in task.snapshots}
            for t, task in plan.tasks.items()
        }
        handles = {
            t: self.readable(f"{task_base(task)}_task")
            for t, task in plan.tasks.items()
        }
        # The scope's `async with`, and a `with` around a step run ahead.
        holds = any(isinstance(op, Run) and op.ahead is not None for op in plan.ops)
        if not self.room(1 + int(holds) + blocks_needed(block)):
            self.in_place(block)
            return
        # The scope weighs failures by step (see `schedule`): the one the source
        # would have raised wins, whichever fails first.
        scope = self.readable("scope")
        for task_id, task in plan.tasks.items():
            self.task(task, defs[task_id], plan, handles, copies[task_id], scope)
        spawned_ids: set[TaskId] = set()
        self.w.line(f"async with {RUNTIME}.Scope(ordered=True) as {scope}:")
        with self.w.indent(), self.opened():
            for op, returns in folded_ops(plan):
                if isinstance(op, Spawn):
                    # A task's visits count when it starts, in the order of the
                    # source, so the call past a loop's bound is the one reported.
                    task = plan.tasks[op.task]
                    for call in counted_calls(task.steps):
                        self.count_visit(call)
                    for name, copy in copies[op.task].items():
                        self.w.line(f"{copy} = {name}")
                    assert spawned_ids.issuperset(
                        awaited_tasks(task)
                    ), "spawned in order"
                    spawned_ids.add(op.task)
                    awaited = ", ".join(handles[t] for t in awaited_tasks(task))
                    spawned = f"{defs[op.task]}({awaited}), step={task.step}"
                    self.w.line(f"{handles[op.task]} = {scope}.spawn({spawned})")
                elif isinstance(op, At):
                    self.w.line(f"{scope}.at_step({op.step})")
                elif isinstance(op, Run) and op.ahead is not None:
                    self.w.line(f"with {scope}.ahead({op.ahead}):")
                    with self.w.indent(), self.opened():
                        self.op(op, plan, handles)
                else:
                    self.op(op, plan, handles, returns)

    def in_place(self, block: Block) -> None:
        """The block one step after another, in source order.

        For a block with no room left for its scope's `async with`: the same
        values and the same failure as the source, only without the overlap.
        """
        for step in block.steps:
            self.step(step, returning=False)

    # --- Python's nested blocks ------------------------------------------------------

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

    def op(
        self,
        op: Wait | Run,
        plan: BlockPlan,
        handles: dict[TaskId, str],
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

    def task(
        self,
        task: Task,
        name: str,
        plan: BlockPlan,
        handles: dict[TaskId, str],
        copies: dict[str, str],
        scope: str,
    ) -> None:
        result = task.result
        returns = self.value_of(task)
        # The tasks it awaits come in as parameters: each is spawned before it.
        params = ", ".join(
            f"{handles[t]}: {RUNTIME}.Child[{self.value_of(plan.tasks[t])}]"
            for t in awaited_tasks(task)
        )
        with self.w.at(result.span):
            self.w.line(f"async def {name}({params}) -> {returns}:")
        self.counting = False  # counted at the spawn
        outer = dict(copies)  # names still meaning the value from before the task
        bound, self.bound = self.bound, {}
        with self.w.indent(), self.function():
            for step in task.steps:
                if step.id in task.announces:
                    self.w.line(f"{scope}.at_step({task.announces[step.id]})")
                for wait in task.waits[step.id]:
                    taken = task.takes.get(wait.task, frozenset())
                    self.wait(plan.tasks[wait.task], handles[wait.task], taken)
                self.step(
                    reading_copies(step, outer),
                    returning=step is result and call_target(result) is not None,
                )
                for written in step.writes:
                    outer.pop(written, None)
        self.counting = True
        self.bound = bound
        self.w.line()

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

    # --- steps --------------------------------------------------------------------

    def step(self, step: Step, *, returning: bool) -> None:
        with self.w.at(step.span):
            self.comments(step.span)
            self.action(step, returning=returning)
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
            self.w.code(code(bare_statement(action.statement)))
        elif isinstance(action, Return):
            self.w.line(
                "return" if action.value is None else f"return {code(action.value)}"
            )
        elif isinstance(action, Branch):
            self.branch(action)
        elif isinstance(action, Match):
            self.match(action)
        elif isinstance(action, Loop):
            self.loop(action)
        elif isinstance(action, WhileLoop):
            self.while_loop(action)
        else:
            self.w.line(
                "yield" if action.value is None else f"yield {code(action.value)}"
            )

    def call(self, step: Step, action: Call, returning: bool) -> None:
        call = action.call
        with self.w.at(call.span):
            self.count_visit(call)
            value = self.callcode(call)
            self.w.line(assignment(action.target, action.annotation, value, returning))

    def callcode(self, call: NodeCall, *, awaited: bool = True) -> str:
        """`[await] f(args)`, calling a node through the local its run bound for the site."""
        callee = call.callee
        func: cst.BaseExpression = cst.Name(self.sites[call.site])
        method = (
            FLOW_METHODS[callee.is_async, callee.streams]
            if isinstance(callee, FlowDef)
            else None
        )
        if method is not None:
            func = cst.Attribute(func, cst.Name(method))
        text = code(call.call.with_changes(func=func))
        return f"await {text}" if awaited and call.suspends else text

    def fan_out(self, step: Step, action: FanOut, returning: bool) -> None:
        with self.w.at(action.result.span):
            self.fan_out_at(step, action, returning)

    def fan_out_at(self, step: Step, action: FanOut, returning: bool) -> None:
        self.count_visit(action.result)
        # A call suspends when it is awaited, or when an argument awaits (an async
        # comprehension): then the element's function must be a coroutine.
        calls = [action.result, *calls_in(action.element)]
        suspends = any(call.suspends or awaits(call.call) for call in calls) or any(
            step.awaits for step in action.element.steps
        )
        concurrent = suspends and not action.in_order
        if action.element.steps:
            value = self.element_function(action, suspends, concurrent)
            self.w.line(assignment(action.target, None, value, returning))
            return
        clauses = code(action.clauses)
        if not concurrent:
            # Sync nodes, or elements sharing one Memory: one after another, as written.
            value = comprehension(action, self.callcode(action.result))
        else:
            call = self.callcode(action.result, awaited=False)
            bound = self.bound_of(action)
            if action.is_async_for:
                target = code(action.clauses.target)
                called = call.removesuffix(f"({target})")
                # `f` itself, where the element is `f(item)`; else a lambda.
                plain = called != call and called.replace(".", "").isidentifier()
                each = called if plain else f"lambda {target}: {call}"
                iterable = code(action.clauses.iter)
                gathered = f"await {RUNTIME}.amap({iterable}, {each}, {bound})"
            elif action.kind is FanOutKind.DICT:
                assert action.key is not None
                pairs = f"{RUNTIME}.keyed({code(action.key)}, {call})"
                gathered = f"await {RUNTIME}.gather(({pairs} {clauses}), {bound})"
            else:
                gathered = f"await {RUNTIME}.gather(({call} {clauses}), {bound})"
            value = self.collection(action.kind, gathered)
        self.w.line(assignment(action.target, None, value, returning))

    def element_function(self, action: FanOut, suspends: bool, concurrent: bool) -> str:
        """An element of several calls: a function per element.

        Concurrent elements are coroutines gathered at once; elements of sync
        nodes, or sharing one Memory, run one after another as the source runs them.
        """
        each = self.names.fresh("each")
        returns = action.result.callee.returns
        assert returns is not None, "an element function returns its node's value"
        returns = self.outer(returns)
        define = "async def" if suspends else "def"
        wait = "await " if suspends else ""
        if action.is_async_for:
            assert action.item_types is not None
            target = code(action.clauses.target)
            self.w.line(
                f"{define} {each}({target}: {self.outer(action.item_types[0])}) -> {returns}:"
            )
            with self.w.indent(), self.function():
                self.element_body(action)
            iterable = code(action.clauses.iter)
            if concurrent:
                bound = self.bound_of(action)
                return self.collection(
                    action.kind, f"await {RUNTIME}.amap({iterable}, {each}, {bound})"
                )
            return self.collection(
                action.kind,
                f"[{wait}{each}({target}) async for {target} in {iterable}]",
            )
        # The element reads its item by index from a list that mypy types from the
        # clauses; the list fills as the indexes are drawn, so the clauses run
        # between the elements, as in the source.
        items, indexes = self.names.fresh("items"), self.names.fresh("indexes")
        index = self.names.fresh("index")
        targets = comprehension_targets_text(action.clauses)
        clauses = code(action.clauses)
        self.w.line(f"{items}, {indexes} = {RUNTIME}.indexed({targets} {clauses})")
        self.w.line(f"{define} {each}({index}: {self.builtin('int')}) -> {returns}:")
        with self.w.indent(), self.function():
            self.w.line(f"{targets} = {items}[{index}]")
            self.element_body(action)
        every = f"{each}({index}) for {index} in {indexes}"
        results = (
            f"await {RUNTIME}.gather(({every}), {self.bound_of(action)})"
            if concurrent
            else f"[{wait}{every}]"
        )
        if action.kind is FanOutKind.DICT:
            assert action.key is not None
            # The results first: the items are read as the elements are made.
            keys = f"[{code(action.key)} for {targets} in {items}]"
            key, value = self.names.fresh("key"), self.names.fresh("value")
            pairs = f"{self.builtin('zip')}({results}, {keys})"
            return f"{{{key}: {value} for {value}, {key} in {pairs}}}"
        return self.collection(action.kind, results)

    def bound_of(self, action: FanOut) -> str:
        """`bound=...`: the run's cap on the elements in flight, read when it runs."""
        return f"bound={RUNTIME}.fan_out_bound({self.sites[action.result.site]})"

    def element_body(self, action: FanOut) -> None:
        counting, self.counting = self.counting, False  # the fan-out counted one visit
        for step in action.element.steps:  # lifted calls, and fan-outs nested in them
            self.step(step, returning=False)
        self.counting = counting
        self.w.line(f"return {self.callcode(action.result)}")

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
        with self.w.indent(), self.opened():
            self.block(action.condition)
            self.w.line(f"if {negated(action.test)}:")
            with self.w.indent():
                if action.orelse is not None:
                    self.block(action.orelse)
                self.w.line("break")
            self.block(action.body)

    def loop(self, action: Loop) -> None:
        if not action.closes or not self.room(1 + blocks_needed_by(action)):
            # TODO: a stream loop with no room for its `with` is closed when it is
            # exhausted or collected, not at once when it is left early.
            self.loop_statement(action)
            return
        # However the loop ends (break, return, an error), the producer is closed at once.
        closing = "async with" if action.is_async else "with"
        helper = "aclosing" if action.is_async else "closing"
        self.w.line(f"{closing} {RUNTIME}.{helper}({code(action.iterable)}):")
        with self.w.indent(), self.opened():
            self.loop_statement(action)

    def loop_statement(self, action: Loop) -> None:
        keyword = "async for" if action.is_async else "for"
        self.w.line(f"{keyword} {code(action.target)} in {code(action.iterable)}:")
        self.body_and_else(action.body, action.orelse)

    def body_and_else(self, body: Block, orelse: Block | None) -> None:
        """A loop's body under its header, and its `else:` when it has one."""
        with self.w.indent(), self.opened():
            self.block(body)
        if orelse is not None:
            self.w.line("else:")
            with self.w.indent():
                self.block(orelse)
