"""lower_flow: a flow's body to a block of steps, nested node calls lifted out.

Example input::

    @flow
    async def digest(path: str) -> str:
        return join([await summarize(p) for p in load(path)])

Output (`kiln compile --dump ir`)::

    s0 line 3: Call load reads=['path'] writes=['_kiln_load']
    s1 line 3: FanOut summarize (list) reads=['_kiln_load'] writes=['_kiln_summarize']
    s2 line 3: Call join reads=['_kiln_summarize'] writes=['_kiln_join']
    s3 line 3: Return reads=['_kiln_join'] writes=[] barrier

Lifting follows Python's evaluation order, so the steps run in the order the
source would run them. A node call the compiler cannot order (under `and`,
`or`, a conditional expression, a lambda, a comprehension's condition) and
every construct outside the flow language is a located diagnostic.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Protocol, final

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.effect_ir import Effects, Holder, Keys
from kilnc.front import ParsedModule
from kilnc.ir import (
    DEFAULT_MAX_VISITS,
    RESERVED_PREFIX,
    Action,
    Block,
    Branch,
    Call,
    Callee,
    FanOut,
    FanOutKind,
    FlowDef,
    FlowIR,
    Inline,
    Loop,
    Match,
    MatchCase,
    NodeCall,
    NodeDef,
    NodeKind,
    Resolver,
    Return,
    Step,
    StepId,
    WhileLoop,
    Yield,
    child_blocks,
)
from kilnc.lower.idioms import find_idioms
from kilnc.lower.lift import CallFinder, Lifter, element
from kilnc.lower.sharing import PASSED_IN, Sharing
from kilnc.mutability import is_immutable
from kilnc.names import (
    BUILTINS,
    identifier,
    name_uses,
    parameter_names,
    target_names,
    walrus_targets,
)
from kilnc.source import Span
from kilnc.syntax import code, without_docstring, yields

# What to write instead of each construct outside the flow language.
UNSUPPORTED: Final[dict[type[cst.CSTNode], tuple[str, str]]] = {
    cst.Try: (
        "'try' in a flow",
        "handle the error inside a node, or around the flow's call",
    ),
    cst.TryStar: ("'try' in a flow", "handle the error inside a node"),
    cst.With: ("'with' in a flow", "open the resource inside a node"),
    cst.FunctionDef: ("a nested function in a flow", "define it at module level"),
    cst.ClassDef: ("a nested class in a flow", "define it at module level"),
    cst.Global: (
        "'global' in a flow",
        "pass the value in and return it, or use kiln.Memory",
    ),
    cst.Nonlocal: ("'nonlocal' in a flow", "pass the value in and return it"),
}


class EffectSource(Protocol):
    """Effects of the project's functions, and of a flow's own statements."""

    def of_callee(self, callee: Callee) -> Effects: ...

    def of_statement(
        self, module: str, statement: cst.CSTNode, names: Mapping[str, Holder]
    ) -> Effects: ...


@final
@dataclass(frozen=True, slots=True)
class LowerContext:
    parsed: ParsedModule = field(repr=False)
    resolve: Resolver = field(repr=False)
    effects: EffectSource = field(repr=False)
    # The max_visits of flows that set none: [tool.kiln]'s, else 5.
    max_visits: int = DEFAULT_MAX_VISITS


def lower_flow(flow: FlowDef, context: LowerContext) -> tuple[FlowIR, list[Diagnostic]]:
    lowerer = _Lowerer(context, flow)
    body = lowerer.shared.settle(lowerer.flow_body())
    tokens = frozenset(lowerer.shared.tokens - {PASSED_IN})
    return FlowIR(flow, body, tuple(lowerer.calls), tokens), lowerer.diagnostics


class _Lowerer:
    def __init__(self, context: LowerContext, flow: FlowDef) -> None:
        self.parsed = context.parsed
        self.resolve = context.resolve
        self.effects = context.effects
        self.shared = Sharing()
        self.max_visits = flow.options.max_visits or context.max_visits
        self.flow = flow
        self.diagnostics: list[Diagnostic] = []
        self.calls: list[NodeCall] = []
        self.types: dict[str, str] = {}  # local name -> its annotation, where known
        self.memory: set[str] = set()  # local names holding a kiln.Memory
        self._next_id = 0
        self._temps: dict[str, int] = {}
        self.loops = 0  # how many `while` loops enclose the code being lowered
        self._excused: list[Span] = []  # asyncio idioms reported, with all inside
        self._globals = (
            frozenset(identifier(n) for n in self.parsed.global_names) | BUILTINS
        )
        # The flow's own names, parameters included: what effects are read against.
        self.own = name_uses(flow.function.body).writes | parameter_names(
            flow.function.params
        )

    # --- entry --------------------------------------------------------------------

    def flow_body(self) -> Block:
        function = self.flow.function
        params = function.params
        # `self` too: the emitter names the method's receiver around it.
        defined = parameter_names(params)
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            self._note_type(param.name.value, param.annotation)
            if identifier(param.name.value) in self.memory:
                self.shared.passed_in(identifier(param.name.value))
        body = function.body
        if isinstance(body, cst.IndentedBlock):
            return self.block(without_docstring(body.body), defined)
        return self.block(body.body, defined)  # `def f(): return x` on one line

    def block(self, statements: Sequence[cst.CSTNode], defined: set[str]) -> Block:
        steps: list[Step] = []
        for statement in statements:
            steps += self.statement(statement, defined)
        return Block(tuple(steps))

    # --- statements -----------------------------------------------------------------

    def statement(self, node: cst.CSTNode, defined: set[str]) -> list[Step]:
        if isinstance(node, cst.SimpleStatementLine):
            steps: list[Step] = []
            for small in node.body:
                steps += self.small(small, defined)
            return steps
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
        if isinstance(node, cst.Global | cst.Nonlocal):
            return self.unsupported(node, defined)
        if self.asyncio_idioms(node):
            defined |= name_uses(node).writes  # no follow-on errors
            return []
        self.check_defined(node, defined)
        if isinstance(node, cst.Pass):
            return []
        if isinstance(node, cst.Expr) and isinstance(node.value, cst.Yield):
            return self.yield_statement(node.value)
        if yields(node):
            self.report(
                node,
                Code.STREAMING_FLOW,
                "a streaming flow yields in a statement of its own; "
                "values are not sent into flows",
                "write 'yield value' on its own line",
            )
            return []
        steps = self.direct_call(node, defined)
        if steps is None:
            steps = self.fan_out_statement(node, defined)
        if steps is None:
            prefix, lifted = self.lift(node)
            steps = [*prefix, self.simple_step(lifted, node)]
        for step in steps:
            defined |= step.writes
        return steps

    def yield_statement(self, node: cst.Yield) -> list[Step]:
        value = node.value
        if isinstance(value, cst.From):
            self.report(
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
        step = self.make_step(
            node, Yield(value), reads, frozenset(), frozenset(), None, barrier=True
        )
        if value is not None:
            step = self.with_effects(self.effects_of(value), step)
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
        found = self.node_call(value)
        if found is None:
            return None
        call, node_call = found
        prefix, args = self.lift_arguments(call)
        call_node = node_call.call.with_changes(args=args)
        node_call = replace(node_call, call=call_node)
        step = self.call_step(
            node, Call(target, annotation, node_call), target, annotation
        )
        return [*prefix, step]

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
        if not self.contains_node_call(element(value)):
            return None
        return self.fan_out(value, target, node)

    def branch(self, node: cst.If, defined: set[str]) -> list[Step]:
        self.asyncio_idioms(node.test)
        self.check_defined(node.test, defined)
        prefix, test = self.lift_expression(node.test)
        tests: list[cst.BaseExpression | None] = [test]
        arms = [self.block(node.body.body, set(defined))]
        orelse = node.orelse
        while isinstance(orelse, cst.If) and not self.contains_node_call(orelse.test):
            self.check_defined(orelse.test, defined)
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
            defined |= _written(arm)
        tested = [t for t in tests if t is not None]  # an `elif` test reads too
        return [
            *prefix,
            self.compound(node, Branch(tuple(tests), tuple(arms)), arms, tested),
        ]

    def loop(self, node: cst.For, defined: set[str]) -> list[Step]:
        self.asyncio_idioms(node.iter)
        self.check_defined(node.iter, defined)
        prefix, iterable = self.lift_expression(node.iter)
        inner = set(defined) | target_names(node.target)
        body = self.block(node.body.body, inner)
        orelse = self.block(node.orelse.body.body, set(inner)) if node.orelse else None
        defined |= target_names(node.target) | _written(body)
        blocks = [body] if orelse is None else [body, orelse]
        action = Loop(
            node.target,
            iterable,
            body,
            orelse,
            node.asynchronous is not None,
            closes=self.opens_stream(node.iter),
        )
        step = self.compound(
            node, action, blocks, [iterable], writes=target_names(node.target)
        )
        self.shared.link(
            frozenset(target_names(node.target)),
            name_uses(iterable).read_names & self.own,
        )
        step = self.with_effects(self.effects_of(_iteration(iterable)), step)
        # break/continue inside belong to this loop: they do not hold back the flow.
        return [*prefix, replace(step, barrier=_returns(blocks))]

    def match(self, node: cst.Match, defined: set[str]) -> list[Step]:
        self.asyncio_idioms(node.subject)
        self.check_defined(node.subject, defined)
        prefix, subject = self.lift_expression(node.subject)
        cases: list[MatchCase] = []
        tested: list[cst.CSTNode] = [subject]
        for case in node.cases:
            captured = name_uses(case.pattern).writes
            if case.guard is not None:
                self.forbid_calls(case.guard, "a case guard")
                tested.append(case.guard)
            body = self.block(case.body.body, set(defined) | captured)
            cases.append(MatchCase(case.pattern, case.guard, body))
            tested.append(case.pattern)
        blocks = [case.body for case in cases]
        for block in blocks:
            defined |= _written(block)
        return [
            *prefix,
            self.compound(node, Match(subject, tuple(cases)), blocks, tested),
        ]

    def while_loop(self, node: cst.While, defined: set[str]) -> list[Step]:
        if not self.contains_node_call(node):
            self.check_defined(node, defined)
            step = self.simple_step(node, node)
            defined |= step.writes
            return [step]
        self.loops += 1
        inner = set(defined)
        self.asyncio_idioms(node.test)
        self.check_defined(node.test, inner)
        condition, test = self.lift_expression(node.test)
        body = self.block(node.body.body, inner)
        orelse = self.block(node.orelse.body.body, set(inner)) if node.orelse else None
        self.loops -= 1
        defined |= _written(body) | {w for s in condition for w in s.writes}
        blocks = [Block(tuple(condition)), body] + ([orelse] if orelse else [])
        action = WhileLoop(test, blocks[0], body, orelse)
        step = self.compound(node, action, blocks, [test])
        defined |= step.writes  # with what `:=` binds in the test
        return [replace(step, barrier=_returns(blocks))]

    def unsupported(self, node: cst.CSTNode, defined: set[str]) -> list[Step]:
        defined |= name_uses(node).writes  # what it would assign: no follow-on errors
        if isinstance(node, cst.With) and any(
            self.asyncio_idioms(item) for item in node.items
        ):
            return []  # `async with asyncio.TaskGroup() as tg:`, said what instead
        what, instead = UNSUPPORTED.get(
            type(node), (f"'{type(node).__name__}'", "move it into a node")
        )
        self.report(
            node, Code.UNSUPPORTED, f"{what} is not part of the flow language", instead
        )
        return []

    # --- building steps ---------------------------------------------------------------

    def call_step(
        self,
        node: cst.CSTNode,
        action: Call,
        target: cst.BaseAssignTargetExpression | None,
        annotation: cst.Annotation | None,
    ) -> Step:
        uses = name_uses(action.call.call)
        writes = frozenset(target_names(target)) if target is not None else frozenset()
        writes |= walrus_targets(action.call.call)  # `f(y := x + 1)` binds y too
        reads = uses.read_names
        if target is not None and not isinstance(
            target, cst.Name | cst.Tuple | cst.List
        ):
            reads |= name_uses(target).read_names  # `x[k] = f()` stores into x
        value_type = (
            code(annotation.annotation)
            if annotation
            else self.visible_returns(action.call)
        )
        if isinstance(target, cst.Name):
            self._note_value(target.value, annotation, value_type, action.call.callee)
        # A question holds back what follows it, as a person's answer would:
        # nothing after it runs before it is answered, all before it finishes.
        asks = isinstance(action.call.callee, NodeDef) and action.call.callee.asks
        step = self.make_step(
            node, action, reads, writes, frozenset(), value_type, barrier=asks
        )
        self.share_result(action.call, writes, value_type)
        effects = self.effects_of(action.call.call)
        # "passes it to fill, which assigns state['answer']": the step is the call.
        passed = f"passes it to {code(action.call.call.func)}, which "
        changes = tuple(
            (name, replace(change, reason=change.reason.removeprefix(passed)))
            for name, change in effects.changes
        )
        return self.with_effects(replace(effects, changes=changes, external=None), step)

    def simple_step(self, statement: cst.CSTNode, origin: cst.CSTNode) -> Step:
        assert isinstance(statement, cst.BaseSmallStatement | cst.BaseCompoundStatement)
        uses = name_uses(statement)
        reads = uses.read_names
        writes = frozenset(uses.writes)
        # A statement that calls or stores may change any name it touches; a
        # Memory it touches is ordered by the keys it reads and writes instead.
        effects = self.effects_of(statement)
        # The statement as parsed: a lifted copy's annotation has no qualified name.
        self._track_assignment(origin)
        ordered = (reads | writes) - self.memory if uses.effects else frozenset()
        self.share_assignment(statement)
        barrier = isinstance(
            statement, cst.Return | cst.Break | cst.Continue | cst.Raise | cst.Assert
        )
        action: Action = Inline(statement)
        if isinstance(statement, cst.Return):
            action = Return(statement.value)
        step = self.make_step(origin, action, reads, writes, ordered, None, barrier)
        return self.with_effects(effects, step)

    def compound(
        self,
        node: cst.CSTNode,
        action: Action,
        blocks: Sequence[Block],
        tested: Sequence[cst.CSTNode],
        writes: set[str] | None = None,
    ) -> Step:
        reads: set[str] = set()
        written: set[str] = set(writes or ())
        for part in tested:
            uses = name_uses(part)
            reads |= uses.read_names
            written |= uses.writes  # a walrus in a test
        inner = [step for block in blocks for step in block.steps]
        for step in inner:
            reads |= step.reads
            written |= step.writes
        barrier = _returns(blocks) or any(s.barrier for b in blocks for s in b.steps)
        step = self.make_step(
            node,
            action,
            frozenset(reads),
            frozenset(written),
            frozenset().union(*(s.uses for s in inner)),
            None,
            barrier,
        )
        step = replace(
            step,
            key_reads=frozenset().union(*(s.key_reads for s in inner)),
            key_writes=frozenset().union(*(s.key_writes for s in inner)),
            external=next((s.external for s in inner if s.external), None),
            why=tuple(why for s in inner for why in s.why),
        )
        for part in tested:
            if isinstance(part, cst.BaseExpression):
                step = self.with_effects(self.effects_of(part), step)
        return step

    def make_step(
        self,
        node: cst.CSTNode,
        action: Action,
        reads: frozenset[str],
        writes: frozenset[str],
        uses: frozenset[str],
        value_type: str | None,
        barrier: bool = False,
    ) -> Step:
        step_id = StepId(self._next_id)
        self._next_id += 1
        span = self.parsed.span(node)
        return Step(step_id, span, action, reads, writes, uses, barrier, value_type)

    # --- effects ------------------------------------------------------------------------

    def effects_of(
        self, node: cst.CSTNode, also: frozenset[str] = frozenset()
    ) -> Effects:
        """What the code may do to the flow's names (and `also`, comprehension targets)."""
        names = (name_uses(node).read_names & self.own) | also
        holders = {
            name: Holder(self.types.get(name), name in self.memory) for name in names
        }
        return self.effects.of_statement(self.flow.module, node, holders)

    def with_effects(self, effects: Effects, step: Step) -> Step:
        """The step, also ordered by the names it may change and the keys it touches."""
        why = [(name, change.reason) for name, change in effects.changes]
        key_reads: set[str] = set()
        key_writes: set[str] = set()
        for token, use in effects.memory:
            key_reads |= _key_names("g", token, use.global_reads)
            key_reads |= _key_names("l", token, use.local_reads)
            key_writes |= _key_names("g", token, use.global_writes)
            key_writes |= _key_names("l", token, use.local_writes)
            if use.copies:
                key_reads.add(f"@c:{token}:*")
        for key in sorted(key_writes):
            why.append((key, f"writes the Memory key {key.split(':', 2)[2]!r}"))
        return replace(
            step,
            uses=step.uses | {name for name, _ in effects.changes},
            key_reads=step.key_reads | key_reads,
            key_writes=step.key_writes | key_writes,
            external=step.external or effects.external,
            why=step.why + tuple(why),
        )

    def share_result(
        self, call: NodeCall, targets: frozenset[str], value_type: str | None
    ) -> None:
        """The names a call's value is bound to may share the objects of its arguments."""
        effects = self.effects.of_callee(call.callee)
        shared: set[str] = set()
        for param, argument in effects.bind(call.call):
            if param is None or param in effects.returns:
                shared |= name_uses(argument).read_names & self.own
        if value_type is None or not is_immutable(value_type):
            self.shared.link(targets, self.mutable(frozenset(shared)))
        callee = call.callee
        if isinstance(callee, NodeDef) and callee.returns_memory:
            tokens = {
                name for name in name_uses(call.call).read_names if name in self.memory
            }
            self.shared.returned_memory(targets, tokens)

    def mutable(self, names: frozenset[str]) -> frozenset[str]:
        """The flow's names whose value may change: not those of immutable type."""
        return frozenset(
            name
            for name in names & self.own
            if name not in self.shared.tokens
            and (name not in self.types or not is_immutable(self.types[name]))
        )

    def share_assignment(self, statement: cst.CSTNode) -> None:
        if isinstance(statement, cst.Assign | cst.AnnAssign) and statement.value:
            value = statement.value
            targets = frozenset(name_uses(statement).writes)
            self.shared.link(
                self.mutable(targets), self.mutable(name_uses(value).read_names)
            )

    # --- node calls and lifting -------------------------------------------------------

    def node_call(
        self, value: cst.BaseExpression, origin: cst.BaseExpression | None = None
    ) -> tuple[cst.Call, NodeCall] | None:
        """`[await] f(...)` where f is a node or a flow, checked for the right `await`.

        `origin` is the expression as parsed when `value` is a rewritten copy of it:
        positions belong to the parsed nodes.
        """
        awaited = isinstance(value, cst.Await)
        inner = value.expression if isinstance(value, cst.Await) else value
        if not isinstance(inner, cst.Call):
            return None
        found = self.resolve(inner.func)
        if found is None:
            return None
        callee, local = found
        where = origin if origin is not None else value
        if isinstance(callee, NodeDef) and callee.asks:
            callee = self.question(inner, callee, where)
        bound = None
        if self.loops:
            own = callee.options.max_visits if isinstance(callee, NodeDef) else None
            bound = own if own is not None else self.max_visits
        site = len(self.calls)
        node_call = NodeCall(callee, inner, local, self.parsed.span(where), site, bound)
        self.check_await(node_call, awaited, where)
        if not local and isinstance(callee, NodeDef):
            self.check_imported_policy(callee, where)
        self.calls.append(node_call)
        return inner, node_call

    def question(self, call: cst.Call, asks: NodeDef, where: cst.CSTNode) -> NodeDef:
        """`ask("name", T, payload)`: the question named and typed as the call writes it.

        The name must be a literal (a run's answers are given by it, and the
        generated `resume` takes one keyword per name); the type is an
        expression the generated module evaluates to check an answer.
        """
        args = list(call.args)
        positional = [arg for arg in args if arg.keyword is None and not arg.star]
        keywords = {
            arg.keyword.value: arg.value for arg in args if arg.keyword is not None
        }
        name_arg = positional[0].value if positional else keywords.get("question")
        type_arg = (
            positional[1].value if len(positional) > 1 else keywords.get("expected")
        )
        unknown = set(keywords) - {"question", "expected", "payload"}
        name = (
            name_arg.evaluated_value if isinstance(name_arg, cst.SimpleString) else None
        )
        if (
            any(arg.star for arg in args)
            or unknown
            or len(positional) > 3
            or type_arg is None
            or not isinstance(name, str)
            or not name.isidentifier()
            or keyword.iskeyword(name)
            or name.lower().startswith(RESERVED_PREFIX)
        ):
            self.report(
                where,
                Code.QUESTION_SHAPE,
                "ask() takes the question's name as a string literal that is a Python "
                "identifier (the keyword of the flow's generated resume()), the "
                "answer's type, and an optional payload",
                "write 'answer = await ask(\"review\", bool, payload)'",
            )
            return asks
        returns = code(type_arg)
        for earlier in self.calls:
            callee = earlier.callee
            if (
                isinstance(callee, NodeDef)
                and callee.asks
                and callee.name == name
                and callee.returns != returns
            ):
                self.report(
                    where,
                    Code.QUESTION_SHAPE,
                    f"question {name!r} is asked with type {returns} here and with "
                    f"{callee.returns} at line {earlier.span.line}",
                    "give each a name of its own, or one type",
                )
        return replace(
            asks,
            options=replace(asks.options, name=name),
            returns=returns,
            span=self.parsed.span(where),
        )

    def check_await(self, call: NodeCall, awaited: bool, where: cst.CSTNode) -> None:
        callee = call.callee
        kind = callee.kind if isinstance(callee, NodeDef) else None
        role = "flow" if kind is None else "node"
        if isinstance(callee, NodeDef) and callee.asks:
            role = "question"
        what = f"{role} '{callee.name}'"
        if call.is_async and not self.flow.is_async:
            self.report(
                where,
                Code.ASYNC_IN_SYNC_FLOW,
                f"async {what} is called in the sync flow '{self.flow.name}'",
                f"make the flow 'async def {self.flow.identifier}'",
            )
        elif call.is_async and not awaited:
            self.report(
                where,
                Code.UNAWAITED,
                f"call to async {what} is not awaited",
                f"write 'await {code(call.call.func)}(...)'",
            )
        elif awaited and not call.is_async:
            kind_text = kind.value if kind is not None else "sync"
            hint = (
                "iterate it with 'async for'"
                if kind is NodeKind.ASYNC_STREAM
                else "drop the 'await'"
            )
            self.report(
                where, Code.AWAITED_SYNC, f"{kind_text} {what} is awaited", hint
            )

    def check_imported_policy(self, callee: NodeDef, where: cst.CSTNode) -> None:
        """The generated module builds an imported node's Policy: it must name its classes."""
        if not callee.options.resilient:  # no Policy is built for it
            return
        for name in callee.options.retry_on:
            head = name.split(".")[0]
            if head not in self._globals:
                self.report(
                    where,
                    Code.UNDEFINED_NAME,
                    f"'{callee.name}' retries on '{name}', which this module does not import",
                    f"import '{head}' here too, as its module does",
                )

    def opens_stream(self, expression: cst.BaseExpression) -> bool:
        """Whether the expression is a call of a stream node or a streaming flow."""
        if not isinstance(expression, cst.Call):
            return False
        found = self.resolve(expression.func)
        if found is None:
            return False
        callee = found[0]
        if isinstance(callee, NodeDef):
            return callee.kind in (NodeKind.STREAM, NodeKind.ASYNC_STREAM)
        return callee.streams

    def contains_node_call(self, node: cst.CSTNode) -> bool:
        finder = CallFinder(self.resolve)
        node.visit(finder)
        return finder.found is not None

    def forbid_calls(self, node: cst.CSTNode, where: str) -> None:
        finder = CallFinder(self.resolve)
        node.visit(finder)
        if finder.found is not None:
            self.report(
                finder.found,
                Code.UNORDERED_CALL,
                f"a node call in {where} cannot be ordered by kiln",
                "call the node in a statement of its own before this one",
            )

    def lift(self, node: cst.CSTNodeT) -> tuple[list[Step], cst.CSTNodeT]:
        """Lift the node calls out of a statement or an argument (kept as its own kind)."""
        lifter = Lifter(self)
        lifted = node.visit(lifter)
        assert isinstance(lifted, type(node))
        return lifter.steps, lifted

    def lift_expression(
        self, node: cst.BaseExpression
    ) -> tuple[list[Step], cst.BaseExpression]:
        """Lift the node calls out of an expression, which may itself become a temporary."""
        lifter = Lifter(self)
        lifted = node.visit(lifter)
        assert isinstance(lifted, cst.BaseExpression)
        return lifter.steps, lifted

    def lift_arguments(self, call: cst.Call) -> tuple[list[Step], Sequence[cst.Arg]]:
        steps: list[Step] = []
        args: list[cst.Arg] = []
        for arg in call.args:
            prefix, lifted = self.lift(arg)
            steps += prefix
            args.append(lifted)
        return steps, args

    def temporary(self, base: str) -> str:
        count = self._temps.get(base, 0) + 1
        self._temps[base] = count
        return (
            f"{RESERVED_PREFIX}_{base}"
            if count == 1
            else f"{RESERVED_PREFIX}_{base}_{count}"
        )

    def fan_out(
        self,
        comprehension: cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp,
        target: cst.BaseAssignTargetExpression,
        origin: cst.CSTNode,
    ) -> list[Step]:
        clauses = comprehension.for_in
        prefix, first = self.lift_expression(clauses.iter)
        clauses = clauses.with_changes(iter=first)
        self.forbid_calls(
            clauses.with_changes(iter=cst.Name("_")), "a comprehension's 'for'/'if'"
        )
        key = comprehension.key if isinstance(comprehension, cst.DictComp) else None
        if key is not None:
            self.forbid_calls(key, "a dict comprehension's key")
        element = (
            comprehension.value
            if isinstance(comprehension, cst.DictComp)
            else comprehension.elt
        )
        found = self.node_call(element)
        if found is None:
            self.report(
                element,
                Code.FAN_OUT_SHAPE,
                "the element of a fan-out must be a node call",
                "move the expression around the call into the node, or into a second comprehension",
            )
            return prefix
        call, node_call = found
        bound = walrus_targets(element)
        if bound:
            self.report(
                element,
                Code.FAN_OUT_SHAPE,
                f"':=' in a fan-out's element binds {', '.join(sorted(bound))} "
                "from elements that run at the same time",
                "bind the name in a statement before the fan-out, "
                "or compute it from the results after it",
            )
        inner, args = self.lift_arguments(call)
        result = replace(node_call, call=node_call.call.with_changes(args=args))
        self.check_fan_out(
            clauses,
            comprehension.for_in,
            element,
            result,
            bool(inner),
            key is not None,
        )
        kind = {
            cst.ListComp: FanOutKind.LIST,
            cst.GeneratorExp: FanOutKind.LIST,
            cst.SetComp: FanOutKind.SET,
            cst.DictComp: FanOutKind.DICT,
        }[type(comprehension)]
        targets = frozenset(_comprehension_targets(clauses))
        in_order = _in_order(result, self.effects_of(element, targets))
        action = FanOut(
            target,
            comprehension.with_changes(for_in=clauses),
            kind,
            clauses,
            key,
            Block(tuple(inner)),
            result,
            self.item_types(clauses),
            in_order=in_order,
        )
        reads = set(name_uses(comprehension.with_changes(for_in=clauses)).read_names)
        for step in inner:
            reads |= step.reads
        local_names = _comprehension_targets(clauses) | {
            w for s in inner for w in s.writes
        }
        reads -= local_names
        returns = self.visible_returns(result)
        value_type = None
        if returns is not None and kind is not FanOutKind.DICT:
            value_type = f"{kind.value}[{returns}]"
        # `if (last := v) % 2` in a clause binds `last` in the flow, as in Python.
        writes = target_names(target) | walrus_targets(clauses)
        step = self.make_step(
            origin,
            action,
            frozenset(reads),
            frozenset(writes),
            frozenset(),
            value_type,
        )
        lifted = comprehension.with_changes(for_in=clauses)
        effects = self.effects_of(lifted)
        step = self.with_effects(replace(effects, external=None), step)
        self.share_elements(result, clauses, step.writes)
        if isinstance(target, cst.Name) and value_type is not None:
            self.types[identifier(target.value)] = value_type
        return [*prefix, step]

    def share_elements(
        self, result: NodeCall, clauses: cst.CompFor, targets: frozenset[str]
    ) -> None:
        """A fan-out's elements may share the objects of what each call was given:
        a loop target's item (when the items can change), or a name of the flow."""
        returns = result.callee.returns
        if returns is not None and is_immutable(returns):
            return
        effects = self.effects.of_callee(result.callee)
        given: set[str] = set()
        for param, argument in effects.bind(result.call):
            if param is None or param in effects.returns:
                given |= name_uses(argument).read_names
        items = self.mutable(_item_sources(clauses, given, self.types))
        self.shared.link(self.mutable(targets), items | self.mutable(frozenset(given)))

    def check_fan_out(
        self,
        clauses: cst.CompFor,
        written: cst.CompFor,
        element: cst.BaseExpression,
        result: NodeCall,
        several_calls: bool,
        keyed: bool,
    ) -> None:
        """The shapes of fan-out the back end compiles; each other shape says what to write.

        `clauses` is what lowering made of `written`, the source's own clauses,
        which alone have a position to report at.
        """
        if clauses.asynchronous is not None:
            simple = (
                clauses.inner_for_in is None
                and not clauses.ifs
                and isinstance(clauses.target, cst.Name)
                and not keyed
            )
            if not simple:
                self.report(
                    written,
                    Code.FAN_OUT_SHAPE,
                    "an 'async for' fan-out takes one 'async for' with a plain name and no 'if'",
                    "filter inside the node, or collect the stream into a list first",
                )
                return
            if several_calls and self.item_types(clauses) is None:
                self.report(
                    written.iter,
                    Code.UNKNOWN_TYPE,
                    "kiln cannot tell the item type of this async stream",
                    "iterate a call of an async stream node annotated '-> AsyncIterator[T]'",
                )
        if several_calls and self.visible_returns(result) is None:
            self.report(
                element,
                Code.UNKNOWN_TYPE,
                f"'{result.callee.name}' has no return annotation this module can name, "
                "which a fan-out element of several calls needs",
                f"annotate the return type of '{result.callee.name}' and import the types it uses",
            )

    def item_types(self, clauses: cst.CompFor) -> tuple[str, ...] | None:
        """The item type of `async for x in stream(...)`, read off the stream's annotation."""
        if clauses.asynchronous is None or not isinstance(clauses.target, cst.Name):
            return None
        iterable = clauses.iter
        annotation = (
            self.types.get(iterable.value) if isinstance(iterable, cst.Name) else None
        )
        if annotation is None:
            return None
        parsed = cst.parse_expression(annotation)
        if (
            isinstance(parsed, cst.Subscript)
            and code(parsed.value).split(".")[-1]
            in ("AsyncIterator", "AsyncIterable", "AsyncGenerator")
            and parsed.slice
        ):
            return (code(parsed.slice[0].slice),)
        return None

    # --- names and types ---------------------------------------------------------------

    def visible_returns(self, call: NodeCall) -> str | None:
        """The callee's return annotation, if every name in it exists in this module too.

        A node imported from another module may return a type this module never
        imports; the generated code may only write annotations it can resolve.
        """
        returns = call.callee.returns
        if returns is None or call.local:
            return returns
        names = name_uses(cst.parse_expression(returns)).read_names
        return returns if names <= self._globals else None

    def check_defined(self, node: cst.CSTNode, defined: set[str]) -> None:
        """Report names read before any assignment; then count the walrus targets in."""
        uses = name_uses(node)
        if self.parsed.star_import:
            defined |= uses.writes
            return
        # `return (y := f(x)) + y`: a `:=` defines its name before later reads.
        walrus = walrus_targets(node)
        for name in uses.reads:
            if (
                identifier(name.value) not in defined
                and identifier(name.value) not in self._globals
                and identifier(name.value) not in walrus
            ):
                self.report(
                    name,
                    Code.UNDEFINED_NAME,
                    f"name '{name.value}' is not defined",
                    "assign it earlier in the flow, take it as a parameter, "
                    "or define it at module level",
                )
        defined |= uses.writes

    def _note_type(self, name: str, annotation: cst.Annotation | None) -> None:
        name = identifier(name)
        if annotation is None:
            return
        self.types[name] = code(annotation.annotation)
        if self.parsed.is_memory(annotation):
            self.memory.add(name)

    def _note_value(
        self,
        name: str,
        annotation: cst.Annotation | None,
        value_type: str | None,
        callee: Callee,
    ) -> None:
        self.types.pop(name, None)
        self.memory.discard(name)
        if annotation is not None:
            self._note_type(name, annotation)
        elif value_type is not None:
            self.types[name] = value_type
        if isinstance(callee, NodeDef) and callee.returns_memory:
            self.memory.add(name)

    def _track_assignment(self, statement: cst.CSTNode) -> None:
        """`m2 = m.clone(...)` and `m2 = m` make m2 a Memory token too."""
        if not isinstance(statement, cst.Assign | cst.AnnAssign):
            return
        names = name_uses(statement).writes
        value = statement.value
        token = False
        if isinstance(value, cst.Name):
            token = identifier(value.value) in self.memory
            if token:
                self.shared.same_memory(frozenset(names), identifier(value.value))
        elif isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
            owner = value.func.value
            token = (
                value.func.attr.value == "clone"
                and isinstance(owner, cst.Name)
                and identifier(owner.value) in self.memory
            )
            if token and isinstance(owner, cst.Name):
                self.shared.clone(frozenset(names), identifier(owner.value))
        if value is not None and self._is_new_memory(value):
            token = True
        for name in names:
            self.types.pop(name, None)
            self.memory.discard(name)
        if isinstance(statement, cst.AnnAssign):
            for name in names:
                self._note_type(name, statement.annotation)
        elif value is not None and (literal := _literal_type(value)) is not None:
            for name in names:
                self.types[name] = literal
        if token:
            self.memory |= names
            self.shared.tokens |= names

    def _is_new_memory(self, value: cst.BaseExpression) -> bool:
        """`Memory()` or `kiln.Memory({...})`: a new root, its own global store."""
        return isinstance(value, cst.Call) and self.parsed.is_memory(
            cst.Annotation(value.func)
        )

    def asyncio_idioms(self, node: cst.CSTNode) -> bool:
        """Report asyncio wrapped around node calls; whether there was any.

        The node calls inside are not reported again (as not awaited, say):
        the advice to await them would give code that fails in the source too.
        """
        found = find_idioms(node, self.parsed.qualified_names, self.resolve)
        for idiom in found:
            self.report(idiom.node, Code.ASYNCIO_IDIOM, idiom.message, idiom.hint)
            self._excused.append(self.parsed.span(idiom.node))
        return bool(found)

    def report(
        self, node: cst.CSTNode, code: Code, message: str, hint: str | None = None
    ) -> None:
        span = self.parsed.span(node)
        if code is not Code.ASYNCIO_IDIOM and any(
            _within(span, excused) for excused in self._excused
        ):
            return
        self.diagnostics.append(error(span, code, message, hint))


def _key_names(store: str, token: str, keys: Keys) -> set[str]:
    """Memory keys as names the graph orders: `@g:memory:done`; `*` for every key."""
    found = {f"@{store}:{token}:{key}" for key in keys.names}
    if keys.any or keys.params:  # a key the flow's own variable names: any key
        found.add(f"@{store}:{token}:*")
    return found


def _in_order(result: NodeCall, effects: Effects) -> str | None:
    """Why a fan-out's elements must run one after another, if they must."""
    what = f"'{result.callee.name}'"
    for name, change in effects.changes:
        return f"{what} may change '{name}', which the elements share ({change.reason})"
    for _, use in effects.memory:
        written = use.global_writes | use.local_writes
        if written:
            keys = "every key" if written.any else ", ".join(sorted(written.names))
            return f"every element writes the same Memory ({keys})"
    return None


def _item_sources(
    clauses: cst.CompFor, given: set[str], types: dict[str, str]
) -> frozenset[str]:
    """The iterables whose items the loop targets in `given` are, where an item can change."""
    sources: set[str] = set()
    clause: cst.CompFor | None = clauses
    while clause is not None:
        bound = target_names(clause.target)
        if bound & given:
            given -= bound
            for name in name_uses(clause.iter).read_names:
                item = _item_type(types.get(name))
                if item is None or not is_immutable(item):
                    sources.add(name)
        clause = clause.inner_for_in
    return frozenset(sources)


def _item_type(annotation: str | None) -> str | None:
    """`str` of `list[str]`: the type of a container's items, when it says."""
    if annotation is None:
        return None
    try:
        parsed = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return None
    if isinstance(parsed, cst.Subscript) and len(parsed.slice) == 1:
        item = parsed.slice[0].slice
        if isinstance(item, cst.Index):
            return code(item.value)
    return None


def _literal_type(value: cst.BaseExpression) -> str | None:
    """The type of a literal a name is bound to: `page = 0` makes `page` an int."""
    if isinstance(value, cst.Integer):
        return "int"
    if isinstance(value, cst.Float):
        return "float"
    if isinstance(
        value, cst.SimpleString | cst.ConcatenatedString | cst.FormattedString
    ):
        return "bytes" if code(value).lstrip("rRuU").startswith(("b", "B")) else "str"
    if isinstance(value, cst.Name) and value.value in ("True", "False"):
        return "bool"
    if isinstance(value, cst.List | cst.ListComp):
        return "list"
    if isinstance(value, cst.Dict | cst.DictComp):
        return "dict"
    if isinstance(value, cst.Set | cst.SetComp):
        return "set"
    return None


def _iteration(iterable: cst.BaseExpression) -> cst.For:
    """`for _ in iterable: pass`: what a loop does to its iterable, for effects reading."""
    body = cst.IndentedBlock([cst.SimpleStatementLine([cst.Pass()])])
    return cst.For(target=cst.Name("_"), iter=iterable, body=body)


def _within(span: Span, outer: Span) -> bool:
    return (
        span.path == outer.path
        and (outer.line, outer.column) <= (span.line, span.column)
        and (span.end_line, span.end_column) <= (outer.end_line, outer.end_column)
    )


def _comprehension_targets(clauses: cst.CompFor) -> set[str]:
    names: set[str] = set()
    clause: cst.CompFor | None = clauses
    while clause is not None:
        names |= target_names(clause.target)
        clause = clause.inner_for_in
    return names


def _written(block: Block) -> set[str]:
    return set().union(*(step.writes for step in block.steps)) if block.steps else set()


def _returns(blocks: Sequence[Block]) -> bool:
    """Whether a `return` or `raise` can leave through one of the blocks."""
    for block in blocks:
        for step in block.steps:
            action = step.action
            if isinstance(action, Return):
                return True
            if isinstance(action, Inline) and isinstance(action.statement, cst.Raise):
                return True
            if isinstance(action, Branch | Match | Loop | WhileLoop) and _returns(
                child_blocks(action)
            ):
                return True
    return False
