"""The compiler's intermediate representation: frozen data handed between passes.

Definitions (`NodeDef`, `FlowDef`) come from `collect`; a flow's body becomes a
`Block` of `Step`s in `lower`. A step is one statement of the flow after nested
node calls were lifted out, with the names it reads and writes:

    paragraphs = load(path)                        Call load, reads {path}, writes {paragraphs}
    summaries = [await summarize(p) for p in paragraphs]
                                                   FanOut summarize, reads {paragraphs}
    return join(summaries)                         Call join -> _kiln_join, then Return
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import NewType, final

import libcst as cst

from kilnc.effect_ir import Change, StateUses
from kilnc.source import Span

StepId = NewType("StepId", int)

RESERVED_PREFIX = "_kiln"  # in any case: generated module constants are _KILN_...


class NodeKind(enum.Enum):
    """The four Process modes, read from the definition's syntax."""

    SYNC = "sync"
    ASYNC = "async"
    STREAM = "stream"
    ASYNC_STREAM = "async stream"

    @property
    def is_async(self) -> bool:
        return self in (NodeKind.ASYNC, NodeKind.ASYNC_STREAM)

    @property
    def awaited(self) -> bool:
        """Whether a call is written with `await` in a flow."""
        return self is NodeKind.ASYNC


@final
@dataclass(frozen=True, slots=True)
class NodeOptions:
    name: str
    retries: int = 0
    wait: float = 0.0
    backoff: float = 1.0
    retry_on: tuple[str, ...] = ("Exception",)
    timeout: float | None = None
    fallback: str | None = None
    limit: str | None = None
    cache: bool = False
    thread: bool = False
    max_visits: int | None = None
    local: bool = False  # stays in the driver when a backend runs the other nodes

    @property
    def resilient(self) -> bool:
        """Whether calls go through the runtime's retry/timeout/thread helpers."""
        return self.retries > 0 or self.timeout is not None or self.thread

    @property
    def waits_between_retries(self) -> bool:
        """Whether it pauses between its attempts: a sync node's compiled call
        then awaits the pause, which blocks nothing else of the run."""
        return self.retries > 0 and self.wait > 0 and not self.thread


@final
@dataclass(frozen=True, slots=True)
class FlowOptions:
    name: str
    # None: the project's default (LowerContext.max_visits, from [tool.kiln] or 5).
    max_visits: int | None = None
    limits: tuple[LimitSpec, ...] = ()
    concurrency: int | None = None

    def limit(self, group: str) -> LimitSpec | None:
        return next((spec for spec in self.limits if spec.group == group), None)


@final
@dataclass(frozen=True, slots=True)
class LimitSpec:
    """`"llm": Limit(8, refresh=1.0)` in a flow's `limits`: a capacity group."""

    group: str
    capacity: int
    refresh: float | None
    span: Span


@final
@dataclass(frozen=True, slots=True)
class NodeDef:
    """A function decorated with `@node`."""

    function: str  # its identifier in the module that defines it
    module: str
    kind: NodeKind
    options: NodeOptions
    returns: str | None  # the return annotation as written, None when absent
    span: Span
    returns_memory: bool = False  # the result is a kiln.Memory: a state token
    fallback_async: bool = False  # the fallback is an `async def`: its call is awaited
    # A question to a person (`await kiln.ask("name", T, payload)`), not a node of
    # the user's: its name is the question's, `returns` the answer's type as
    # written; its calls are sites answered from a durable run's journal.
    asks: bool = False

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def identifier(self) -> str:
        """Its identifier in the module that defines it, as a `FlowDef`'s."""
        return self.function


@final
@dataclass(frozen=True, slots=True)
class FlowDef:
    """A function decorated with `@flow`; `function` keeps the original CST."""

    function: cst.FunctionDef = field(repr=False)
    module: str
    is_async: bool
    options: FlowOptions
    returns: str | None
    span: Span
    # Its parameters and locals (`names.bound_in`), which several passes ask for.
    bound: frozenset[str] = field(repr=False)
    streams: bool = False  # the body yields: a streaming flow (`astream`, `stream`)
    # Limit groups declared with a number kiln refused (KLN102-KLN104), declared
    # all the same; None when it refused `limits` itself, which may name any.
    refused_limits: tuple[str, ...] | None = ()

    @property
    def name(self) -> str:
        return self.options.name

    def declares(self, group: str) -> bool:
        refused, declared = self.refused_limits, self.options.limit(group)
        return refused is None or group in refused or declared is not None

    @property
    def identifier(self) -> str:
        return self.function.name.value


Callee = NodeDef | FlowDef


# Answers, for the function part of a call in a flow, which node or flow it names
# and whether that one is defined in the module being compiled.
Resolver = Callable[[cst.BaseExpression], tuple[Callee, bool] | None]

# Answers which names of a callee's return annotation are type variables, which
# each call binds: `T` of `def first(xs: list[T]) -> T`.
TypeVariables = Callable[[Callee], frozenset[str]]


@final
@dataclass(frozen=True, slots=True)
class NodeCall:
    """One call of a node or a subflow, as written (`func` may be an alias)."""

    callee: Callee
    call: cst.Call = field(repr=False)
    local: bool  # the callee is defined in the module being compiled
    span: Span
    site: int = 0  # numbers the call sites of a flow, in source order
    visits: int | None = None  # the visit limit of a call site inside a `while` loop
    awaited_flow: bool = False  # a sync subflow whose body awaits (`Lowering`)

    @property
    def is_async(self) -> bool:
        """Whether the source awaits the call."""
        callee = self.callee
        if isinstance(callee, FlowDef):
            return callee.is_async and not callee.streams
        return callee.kind is NodeKind.ASYNC

    @property
    def suspends(self) -> bool:
        """Whether the compiled call awaits: an async call, a sync node run in a
        thread or waiting between its retries, a sync subflow whose body awaits."""
        callee = self.callee
        return (self.is_async or self.awaited_flow) or (
            isinstance(callee, NodeDef)
            and (callee.options.thread or callee.options.waits_between_retries)
        )


# --- the actions a step performs -------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Inline:
    """A statement that calls no node; it runs where the schedule puts it."""

    statement: cst.BaseSmallStatement | cst.BaseCompoundStatement = field(repr=False)


@final
@dataclass(frozen=True, slots=True)
class Call:
    """`target = [await] node(args)`, or the bare call when `target` is None."""

    target: cst.BaseAssignTargetExpression | None = field(repr=False)
    annotation: cst.Annotation | None = field(repr=False)
    call: NodeCall


class FanOutKind(enum.Enum):
    LIST = "list"
    SET = "set"
    DICT = "dict"


@final
@dataclass(frozen=True, slots=True)
class FanOut:
    """A comprehension whose element calls a node: one concurrent call per item.

    `element` holds the element's own steps in order; its last step is a call
    whose value is the element (`result`). `clauses` is the comprehension's
    `for`/`if` chain as written; `key` is the key of a dict comprehension.
    `comprehension` is the whole expression as written, for a fan-out of sync
    nodes, which has nothing to overlap and runs as the source does.
    """

    target: cst.BaseAssignTargetExpression = field(repr=False)
    comprehension: cst.BaseExpression = field(repr=False)
    kind: FanOutKind
    clauses: cst.CompFor = field(repr=False)
    key: cst.BaseExpression | None = field(repr=False)
    element: Block
    result: NodeCall
    item_types: tuple[str, ...] | None  # the type of each loop target, for `async for`
    # The elements may change what they share (an object, a Memory key): they
    # keep source order, one after another; `in_order` says why.
    in_order: str | None = None
    # `results: list[Any] = [...]`: the target's declared type, kept.
    annotation: cst.Annotation | None = field(default=None, repr=False)
    # An element's type as the generated code may write it: its node's return
    # annotation (`Scope.visible_returns`), which an element of several calls needs.
    element_type: str | None = None

    @property
    def is_async_for(self) -> bool:
        return self.clauses.asynchronous is not None


@final
@dataclass(frozen=True, slots=True)
class Branch:
    """`if`/`elif`/`else`; a test of None is the `else` arm."""

    tests: tuple[cst.BaseExpression | None, ...] = field(repr=False)
    arms: tuple[Block, ...]


@final
@dataclass(frozen=True, slots=True)
class MatchCase:
    pattern: cst.MatchPattern = field(repr=False)
    guard: cst.BaseExpression | None = field(repr=False)
    body: Block


@final
@dataclass(frozen=True, slots=True)
class Match:
    subject: cst.BaseExpression = field(repr=False)
    cases: tuple[MatchCase, ...]


@final
@dataclass(frozen=True, slots=True)
class Loop:
    """A `for` loop: iterations in order, the body scheduled like any block."""

    target: cst.BaseAssignTargetExpression = field(repr=False)
    iterable: cst.BaseExpression = field(repr=False)
    body: Block
    orelse: Block | None
    is_async: bool
    closes: bool = False  # a stream the loop opened: close it however it ends


@final
@dataclass(frozen=True, slots=True)
class WhileLoop:
    """A `while` loop that calls nodes: a cycle, each call site in it counting visits.

    `condition` computes the node calls of the test before each test, so
    `while not await good(text):` asks again on every iteration.
    """

    test: cst.BaseExpression = field(repr=False)
    condition: Block
    body: Block
    orelse: Block | None


@final
@dataclass(frozen=True, slots=True)
class Yield:
    """`yield value` in a streaming flow: it waits for everything before it."""

    value: cst.BaseExpression | None = field(repr=False)


@final
@dataclass(frozen=True, slots=True)
class Return:
    value: cst.BaseExpression | None = field(repr=False)


Action = Inline | Call | FanOut | Branch | Match | Loop | WhileLoop | Yield | Return


@final
@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a block and the names that order it.

    `reads` wait for their latest writer. `writes` and `uses` also wait for
    every earlier reader: `uses` are names the step may mutate (an argument a
    node changes, objects an inline statement calls methods on, and every name
    that may hold the same object). A `barrier` (return, raise, assert, break,
    a branch that holds one) waits for everything before it and holds back
    everything after it.
    """

    id: StepId
    span: Span
    action: Action
    reads: frozenset[str]
    writes: frozenset[str]
    uses: frozenset[str] = frozenset()
    barrier: bool = False
    value_type: str | None = None  # the static type of the value a Call/FanOut produces
    # Memory keys, as `@g:<root>:<key>` (a global store) and `@l:<token>:<key>`
    # (one token's local store), `*` for every key: ordered like names.
    key_reads: frozenset[str] = frozenset()
    key_writes: frozenset[str] = frozenset()
    # An effect outside the flow's names (logging, I/O): it runs after every
    # step before it, as the source would.
    external: Change | None = None
    # Why the step may change each name or key it orders by its effects.
    why: tuple[tuple[str, str], ...] = ()
    # It may change what the flow's caller holds (a parameter's object): it runs
    # after every step before it, which may fail first and so end the flow.
    visible: bool = False
    # How the code it runs uses module state: orders node calls (graph.py).
    state: StateUses = ()
    # It sets a ContextVar for the steps after it: it runs in the flow's own
    # coroutine, whose context the tasks spawned after it copy (schedule/tasks.py).
    context: bool = False

    @property
    def awaits(self) -> bool:
        """Whether running the step can suspend: it is worth a task of its own."""
        action = self.action
        if isinstance(action, Call):
            return action.call.suspends
        if isinstance(action, FanOut):
            return (
                action.result.suspends
                or action.is_async_for
                or any(step.awaits for step in action.element.steps)
            )
        return False


@final
@dataclass(frozen=True, slots=True)
class Block:
    steps: tuple[Step, ...]


@final
@dataclass(frozen=True, slots=True)
class FlowIR:
    flow: FlowDef
    body: Block
    calls: tuple[NodeCall, ...]  # every node and subflow call, for the flow graph
    tokens: frozenset[str] = frozenset()  # names that hold a kiln.Memory
    # Names a lambda or generator of the flow reads when it runs: a task's
    # coroutine that binds one binds the flow's (`nonlocal`), for it to see.
    late: frozenset[str] = frozenset()
    calls_state: tuple[tuple[int, StateUses], ...] = ()  # each call's own, by site


def child_blocks(action: Action) -> tuple[Block, ...]:
    """The blocks nested in a step: arms, cases, loop bodies, a fan-out's element."""
    if isinstance(action, Branch):
        return action.arms
    if isinstance(action, Match):
        return tuple(case.body for case in action.cases)
    if isinstance(action, Loop):
        return (action.body,) if action.orelse is None else (action.body, action.orelse)
    if isinstance(action, WhileLoop):
        blocks = (action.condition, action.body)
        return blocks if action.orelse is None else (*blocks, action.orelse)
    if isinstance(action, FanOut):
        return (action.element,)
    return ()


def yields(blocks: Sequence[Block]) -> bool:
    """Whether a streaming flow's `yield` is in one of the blocks, however deep."""
    return any(
        isinstance(step.action, Yield) or yields(child_blocks(step.action))
        for block in blocks
        for step in block.steps
    )


def with_child_blocks(action: Action, blocks: tuple[Block, ...]) -> Action:
    """The action with its nested blocks replaced, in `child_blocks`' order."""
    if isinstance(action, Branch):
        return replace(action, arms=blocks)
    if isinstance(action, Match):
        cases = tuple(
            replace(case, body=body)
            for case, body in zip(action.cases, blocks, strict=True)
        )
        return replace(action, cases=cases)
    if isinstance(action, Loop):
        return replace(
            action, body=blocks[0], orelse=blocks[1] if action.orelse else None
        )
    if isinstance(action, WhileLoop):
        orelse = blocks[2] if action.orelse is not None else None
        return replace(action, condition=blocks[0], body=blocks[1], orelse=orelse)
    if isinstance(action, FanOut):
        return replace(action, element=blocks[0])
    return action
