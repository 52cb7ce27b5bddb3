"""What emit_flow asks of the IR and the plan: small facts and text, no writing.

The flow emitter (`emit_flow`) writes; these read a step, a block or a plan
and answer with a fact (the blocks a statement nests, the tasks a task
awaits) or a fragment of text (an assignment, a tuple display).
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Final

import libcst as cst

from kilnc.emit_names import (
    RUNTIME,
)
from kilnc.ir import (
    RESERVED_PREFIX,
    Action,
    Block,
    Call,
    FanOut,
    FanOutKind,
    FlowDef,
    Inline,
    LimitSpec,
    Loop,
    NodeCall,
    NodeDef,
    NodeKind,
    Return,
    Step,
    WhileLoop,
    child_blocks,
)
from kilnc.names import identifier, target_names
from kilnc.plan import (
    At,
    BlockPlan,
    Run,
    Spawn,
    Task,
    TaskId,
    Wait,
)
from kilnc.renaming import renamed
from kilnc.source import SourceFile, Span
from kilnc.syntax import code, comprehension_targets
from kilnc.writer import Names


def asks(call: NodeCall) -> bool:
    return isinstance(call.callee, NodeDef) and call.callee.asks


def blocks_needed(block: Block) -> int:
    """The nested blocks the source's own statements in `block` open, at the deepest.

    What the emitter adds around them (a scope, a stream's `with`) fits only
    in what is left; a call's `try` can always move into a function.
    """
    return max((blocks_needed_by(step.action) for step in block.steps), default=0)


def blocks_needed_by(action: Action) -> int:
    if isinstance(action, Inline):
        return statement_blocks(action.statement)
    if isinstance(action, FanOut):
        return 0  # its elements run in functions of their own
    blocks = [blocks_needed(child) for child in child_blocks(action)]
    if isinstance(action, Loop):  # the `else` runs outside the loop's block
        return max([1 + blocks[0], *blocks[1:]])
    if isinstance(action, WhileLoop):
        if action.condition.steps:  # `while True:` around the test, body and `else`
            return 1 + max(blocks)
        return max([1 + blocks[1], *blocks[2:]])
    return max(blocks, default=0)


def statement_blocks(node: cst.CSTNode) -> int:
    """The blocks a statement written as it is nests, at the deepest."""
    inner = max(
        (statement_blocks(c) for c in node.children if isinstance(c, BLOCK_PARTS)),
        default=0,
    )
    return inner + 1 if isinstance(node, BLOCK_NODES) else inner


# What opens one of Python's blocks (an `except` body sits in two: the `try`'s
# and the handler's), and what may hold statements that do.
BLOCK_NODES: Final = (
    cst.For,
    cst.While,
    cst.With,
    cst.Try,
    cst.TryStar,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
)
BLOCK_PARTS: Final = (
    cst.BaseCompoundStatement,
    cst.BaseSuite,
    cst.Else,
    cst.MatchCase,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
)


def discarding(
    target: cst.BaseAssignTargetExpression, names: set[str], fresh: Names
) -> cst.BaseAssignTargetExpression | None:
    """The target with each of `names` bound to a fresh throwaway; None if nothing is left."""
    if not names:
        return target
    if not target_names(target) - names:
        return None
    kept = target.visit(_Discarder(names, fresh))
    assert isinstance(kept, cst.BaseAssignTargetExpression)
    return kept


class _Discarder(cst.CSTTransformer):
    def __init__(self, names: set[str], fresh: Names) -> None:
        self.names = names
        self.fresh = fresh

    def visit_Subscript(self, node: cst.Subscript) -> bool:
        return False  # `x[k] = ...` stores into x: nothing to discard there

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return False

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        if identifier(original_node.value) not in self.names:
            return updated_node
        return updated_node.with_changes(value=self.fresh.fresh("stale"))


def assignment(
    target: cst.BaseAssignTargetExpression | None,
    annotation: cst.Annotation | None,
    value: str,
    returning: bool,
) -> str:
    if returning:
        return f"return {value}"
    if target is None:
        return value
    annotated = f": {code(annotation.annotation)}" if annotation is not None else ""
    return f"{code(target)}{annotated} = {value}"


def comprehension(action: FanOut, element: str) -> str:
    """The fan-out's comprehension as the source wrote it, with `element` per item."""
    clauses = code(action.clauses)
    if action.kind is FanOutKind.DICT:
        assert action.key is not None
        return f"{{{code(action.key)}: {element} {clauses}}}"
    if action.kind is FanOutKind.SET:
        return f"{{{element} {clauses}}}"
    return f"[{element} {clauses}]"


def comprehension_targets_text(clauses: cst.CompFor) -> str:
    """The `for` clauses' targets as one target: `k`, or `((k, v), w)`."""
    targets = [
        code(target) if isinstance(target, cst.Name) else f"({code(target)})"
        for target in comprehension_targets(clauses)
    ]
    return targets[0] if len(targets) == 1 else f"({', '.join(targets)})"


def call_target(step: Step) -> cst.BaseAssignTargetExpression | None:
    action = step.action
    assert isinstance(action, Call | FanOut), "only calls end a task"
    return action.target


def docstring_literal(text: str) -> str:
    """A docstring literal: triple-quoted as a person writes it, where that reads `text`."""
    plain = all(c.isprintable() or c == "\n" for c in text)
    if plain and '"""' not in text and "\\" not in text and not text.endswith('"'):
        return f'"""{text}"""'
    return repr(text)


def folded_ops(
    plan: BlockPlan,
) -> Iterator[tuple[Spawn | At | Wait | Run, Step | None]]:
    """Main's ops, each with the `return` folded into it, if any.

    The source's `return await f(x)` lowers to a call into a temporary and a
    `return` of it; main writes the two as one `return` again, as the source
    has it: the call's own (a fan-out's), or the await of the task that made
    the call.
    """
    ops = plan.ops
    index = 0
    while index < len(ops):
        op = ops[index]
        after = ops[index + 1] if index + 1 < len(ops) else None
        returned = _returned_temporary(after)
        made = (
            call_target(plan.tasks[op.task].result)
            if isinstance(op, Wait)
            else (
                op.step.action.target
                if isinstance(op, Run)
                and op.ahead is None
                and isinstance(op.step.action, Call | FanOut)
                else None
            )
        )
        if (
            isinstance(after, Run)
            and isinstance(made, cst.Name)
            and made.value == returned
        ):
            yield op, after.step
            index += 2
            continue
        yield op, None
        index += 1


def _returned_temporary(op: Spawn | At | Wait | Run | None) -> str | None:
    """The temporary a `return` op returns, if it is one."""
    if not (isinstance(op, Run) and isinstance(op.step.action, Return)):
        return None
    value = op.step.action.value
    if isinstance(value, cst.Name) and value.value.startswith(RESERVED_PREFIX):
        return value.value
    return None


def awaited_tasks(task: Task) -> list[TaskId]:
    """The tasks a task awaits, in the order it first awaits them."""
    return list(
        dict.fromkeys(wait.task for waits in task.waits.values() for wait in waits)
    )


def task_base(task: Task, sites: Mapping[int, str]) -> str:
    """What a task computes, as the body names it: its target, else its call's local."""
    action = task.result.action
    assert isinstance(action, Call | FanOut), "only calls end a task"
    if isinstance(action.target, cst.Name):
        return action.target.value.removeprefix(f"{RESERVED_PREFIX}_")
    call = action.call if isinstance(action, Call) else action.result
    return sites[call.site].removeprefix(f"{RESERVED_PREFIX}_")


#   node kind          | thread=False | thread=True
SITE_KINDS: Final = {
    (NodeKind.ASYNC, False): "async",
    (NodeKind.SYNC, False): "sync",
    (NodeKind.SYNC, True): "thread",
    (NodeKind.STREAM, False): "stream",
    (NodeKind.ASYNC_STREAM, False): "astream",
}


def tuple_display(items: list[str]) -> str:
    """A tuple display, without the trailing comma that black would explode."""
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def callee_base(callee: NodeDef | FlowDef) -> str:
    if isinstance(callee, FlowDef):
        return callee.identifier
    return callee.function if callee.function.isidentifier() else "node"


def limit_display(spec: LimitSpec) -> str:
    refresh = f", refresh={spec.refresh!r}" if spec.refresh is not None else ""
    return f"{RUNTIME}.Limit({spec.capacity!r}{refresh})"


# The method a compiled subflow is called through (a sync value flow: its instance).
FLOW_METHODS: Final = {
    (True, False): "aforward",
    (False, False): None,
    (True, True): "astream",
    (False, True): "stream",
}


def reading_copies(step: Step, copies: dict[str, str]) -> Step:
    """The step reading the copies main took instead of the names they copy."""
    action = step.action
    if not copies or not isinstance(action, Call):
        return step
    call = replace(action.call, call=renamed(action.call.call, copies))
    return replace(step, action=replace(action, call=call))


def negated(test: cst.BaseExpression) -> str:
    """`not (test)`, without a double negation when the test is already `not x`."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return code(test.expression)
    return f"not ({code(test)})"


def counted_calls(steps: Sequence[Step]) -> Iterator[NodeCall]:
    """The call sites whose visits these steps count (a fan-out counts once)."""
    for step in steps:
        if isinstance(step.action, Call):
            yield step.action.call
        elif isinstance(step.action, FanOut):
            yield step.action.result


def calls_in(block: Block) -> Iterator[NodeCall]:
    for step in block.steps:
        if isinstance(step.action, Call):
            yield step.action.call


def all_writes(block: Block) -> set[str]:
    names: set[str] = set()
    for step in block.steps:
        names |= step.writes
        for child in child_blocks(step.action):
            names |= all_writes(child)
    return names


def forwarded_args(params: cst.Parameters) -> str:
    """The arguments that pass a method's own parameters on to another method."""
    args = [p.name.value for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        args.append(f"*{params.star_arg.name.value}")
    args += [f"{p.name.value}={p.name.value}" for p in params.kwonly_params]
    if params.star_kwarg is not None:
        args.append(f"**{params.star_kwarg.name.value}")
    return ", ".join(args)


def bare_statement(statement: cst.CSTNode) -> cst.CSTNode:
    """A statement without the semicolon or the comment lines it had in the source."""
    if isinstance(statement, cst.BaseSmallStatement):
        return statement.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
    if isinstance(statement, cst.BaseCompoundStatement):
        return statement.with_changes(leading_lines=())
    return statement


def trailing_comment(source: SourceFile, span: Span) -> str:
    """The comment ending the source's line of a statement copied whole, such as
    `# type: ignore[...]`, which must stay on the line it is about."""
    if span.path != source.path or span.line != span.end_line:
        return ""
    text = source.line(span.line)
    before, after = text[: span.column - 1], text[span.end_column - 1 :].strip()
    return f"  {after}" if after.startswith("#") and not before.strip() else ""


_IGNORE: Final = re.compile(r"#\s*type:\s*ignore(?:\[(?P<codes>[^\]]*)\])?")


def type_ignore(function: cst.FunctionDef) -> str:
    """The `# type: ignore` comments on the `def` line of a flow, as one, or "".

    mypy reports what is wrong with a signature (`no-untyped-def`) at its `def`
    line, and kiln writes the flow's signature on each method that stands for
    the flow: each method's `def` line gets what silenced it in the source.
    """
    text = cst.Module([]).code_for_node(
        function.with_changes(decorators=(), leading_lines=())
    )
    comments = []
    # Only the `def` line's: the tokens stop there, before a body whose blank
    # lines libcst wrote back in a way tokenize may refuse (`\\` on one alone).
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.start[0] > 1:
            break
        if token.type == tokenize.COMMENT:
            comments.append(token.string)
    found = [match for c in comments if (match := _IGNORE.match(c)) is not None]
    if not found:
        return ""
    if any(match["codes"] is None for match in found):
        return "# type: ignore"
    codes = {c.strip() for match in found for c in match["codes"].split(",")}
    return f"# type: ignore[{', '.join(sorted(codes - {''}))}]"


def unannotated(function: cst.FunctionDef) -> bool:
    """Whether mypy takes the function as untyped: no annotation anywhere in its
    signature, so a call of it from a checked method is `no-untyped-call`."""
    params = function.params
    every = [*params.posonly_params, *params.params, *params.kwonly_params]
    every += [
        p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)
    ]
    return function.returns is None and all(p.annotation is None for p in every)
