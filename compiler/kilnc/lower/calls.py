"""Node calls: which calls of a flow call a node or a flow, checked as they are written.

Example input: `text = fetch(url)` in an async flow, where `fetch` is an
async node. Output: `NodeCall(fetch)`, its site numbered in source order, with
KLN202 at the call: "call to async node 'fetch' is not awaited". Inside a
`while` loop a call carries its visit bound; `ask("review", bool, draft)` is a
question named and typed from its arguments; a node imported from another
module must have its `retry_on` classes imported here too.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field, replace
from typing import final

import libcst as cst

from kilnc.diagnostics import Code
from kilnc.front import ParsedModule
from kilnc.ir import RESERVED_PREFIX, FlowDef, NodeCall, NodeDef, NodeKind, Resolver
from kilnc.lower.report import Reporter
from kilnc.lower.scope import Scope
from kilnc.names import identifier, references
from kilnc.syntax import awaits, code
from kilnc.walk import walk


@final
@dataclass(slots=True)
class Calls:
    """The node and flow calls of one flow, in the order lowering meets them."""

    parsed: ParsedModule
    resolve: Resolver
    flow: FlowDef
    max_visits: int  # the flow's, else the project's default
    scope: Scope
    report: Reporter
    # The generator expressions read to their end where they are made: fan-outs.
    read_whole: frozenset[cst.GeneratorExp]
    sites: list[NodeCall] = field(default_factory=list)  # in source order
    loops: int = 0  # how many `while` loops enclose the code being lowered

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
        site = len(self.sites)
        node_call = NodeCall(callee, inner, local, self.parsed.span(where), site, bound)
        self.check_await(node_call, awaited, where)
        self.sites.append(node_call)
        return inner, node_call

    def flows_as_values(self, body: cst.CSTNode, local: set[str]) -> None:
        """A flow named other than to call it (`w = worker_a if first else
        worker_b`, `await delegate(worker_a, log)`) is refused: the compiled
        module's flow is an instance whose call is the flow's sync entry, so
        awaiting what calling it returns would fail where the source's works."""
        for node in references(body, calls=False):
            root = node if isinstance(node, cst.Name) else None
            if root is not None and identifier(root.value) in local:
                continue
            found = self.resolve(node)
            flow = found[0] if found is not None else None
            if not isinstance(flow, FlowDef) or not (flow.is_async or flow.streams):
                continue  # a plain sync flow's call gives its value either way
            self.report.report(
                node,
                Code.FLOW_AS_VALUE,
                f"flow '{flow.name}' is used as a value; kiln compiles the calls "
                "a flow makes of another flow by name, and a compiled flow called "
                "through a value runs its sync entry",
                "call it by name where the flow chooses it "
                f"(`if ...: await {code(node)}(...)`), or hand on a node instead",
            )

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
            self.report.report(
                where,
                Code.QUESTION_SHAPE,
                "ask() takes the question's name as a string literal that is a Python "
                "identifier (the keyword of the flow's generated resume()), the "
                "answer's type, and an optional payload",
                "write 'answer = await ask(\"review\", bool, payload)'",
            )
            return asks
        returns = code(type_arg)
        for earlier in self.sites:
            callee = earlier.callee
            if (
                isinstance(callee, NodeDef)
                and callee.asks
                and callee.name == name
                and callee.returns != returns
            ):
                self.report.report(
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
            self.report.report(
                where,
                Code.ASYNC_IN_SYNC_FLOW,
                f"async {what} is called in the sync flow '{self.flow.name}'",
                f"make the flow 'async def {self.flow.identifier}'",
            )
        elif call.is_async and not awaited:
            self.report.report(
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
            self.report.report(
                where, Code.AWAITED_SYNC, f"{kind_text} {what} is awaited", hint
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
        walk(node, finder)
        return finder.found is not None

    def forbid_clause_calls(
        self,
        comprehension: cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp,
        clauses: cst.CompFor,
    ) -> None:
        """A node call in a comprehension's `for`/`if` (its lifted first iterable
        aside) or a dict comprehension's key: each is KLN306, saying what to write."""
        a = "await " if awaits(comprehension) else ""  # the hint's calls as the user's
        self.forbid_calls(
            clauses.with_changes(iter=cst.Name("_")),
            "a comprehension's 'for'/'if'",
            f"call it in a fan-out of its own first, oks = [{a}ok(x) for x in xs], "
            f"then filter: [{a}f(x) for x, good in zip(xs, oks) if good]",
        )
        if isinstance(comprehension, cst.DictComp):
            self.forbid_calls(
                comprehension.key,
                "a dict comprehension's key",
                f"make the keys in a fan-out of their own first, keys = [{a}k(x) for x"
                f" in xs], then {{key: {a}f(x) for key, x in zip(keys, xs)}}",
            )

    def forbid_calls(
        self,
        node: cst.CSTNode,
        where: str,
        hint: str = "call the node in a statement of its own before this one",
    ) -> None:
        finder = CallFinder(self.resolve)
        walk(node, finder)
        if finder.found is not None:
            self.report.report(
                finder.found,
                Code.UNORDERED_CALL,
                f"a node call in {where} cannot be ordered by kiln",
                hint,
            )


class CallFinder(cst.CSTVisitor):
    def __init__(self, resolve: Resolver) -> None:
        self._callee = resolve
        self.found: cst.Call | None = None

    def visit_Call(self, node: cst.Call) -> bool:
        if self.found is None and self._callee(node.func) is not None:
            self.found = node
        return self.found is None
