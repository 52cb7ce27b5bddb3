"""Fan-outs: a comprehension whose element calls a node, one concurrent call per item.

Example input: `summaries = [await summarize(p) for p in paragraphs]`. Output:
one `FanOut` step that reads `paragraphs` and writes `summaries`, typed
`list[str]` when `summarize` returns `str`. Its elements keep source order,
one after another, when the calls may change what they share (`in_order`).
Shapes the back end does not compile are located diagnostics that say what to
write instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, final

import libcst as cst

from kilnc.diagnostics import Code
from kilnc.effect_ir import Access, Change, Effects
from kilnc.ir import Block, FanOut, FanOutKind, NodeCall, Step
from kilnc.lower.calls import Calls
from kilnc.lower.changes import Changes
from kilnc.lower.report import Reporter
from kilnc.lower.scope import Scope
from kilnc.lower.steps import Steps
from kilnc.names import identifier, name_uses, target_names, walrus_targets
from kilnc.syntax import awaits, code, comprehension_targets


class Lifts(Protocol):
    """How the fan-out's iterable and arguments lose their own node calls first."""

    def lift_expression(
        self, node: cst.BaseExpression
    ) -> tuple[list[Step], cst.BaseExpression]: ...

    def lift_arguments(
        self, call: cst.Call
    ) -> tuple[list[Step], Sequence[cst.Arg]]: ...


@final
@dataclass(frozen=True, slots=True)
class FanOuts:
    """Lowers the fan-outs of one flow."""

    lifts: Lifts
    calls: Calls
    steps: Steps
    changes: Changes
    scope: Scope
    report: Reporter

    def fan_out(
        self,
        comprehension: cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp,
        target: cst.BaseAssignTargetExpression,
        origin: cst.CSTNode,
    ) -> list[Step]:
        if (
            isinstance(comprehension, cst.GeneratorExp)
            and comprehension not in self.calls.read_whole
        ):
            self.report.report(
                comprehension,
                Code.FAN_OUT_SHAPE,
                "a generator of node calls that may be read only in part cannot be "
                "a fan-out: the source calls the node only for the items it reads",
                "make it a list comprehension to call the node for every item, "
                "or a 'for' loop that stops where the source would",
            )
            return []
        clauses = comprehension.for_in
        prefix, first = self.lifts.lift_expression(clauses.iter)
        clauses = clauses.with_changes(iter=first)
        self.calls.forbid_clause_calls(comprehension, clauses)
        key = comprehension.key if isinstance(comprehension, cst.DictComp) else None
        element = (
            comprehension.value
            if isinstance(comprehension, cst.DictComp)
            else comprehension.elt
        )
        found = self.calls.node_call(element)
        bound = walrus_targets(element)
        if found is None and bound:
            self._binds_in_element(element, bound)
            return prefix
        if found is None:
            nested = isinstance(
                element, cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp
            )
            hint = (
                "fan out the inner comprehension in a loop: "
                "`for row in rows: out.append([await f(x) for x in row])`"
                if nested
                else "move the expression around the call into the node, or into "
                "a second comprehension"
            )
            self.report.report(
                element,
                Code.FAN_OUT_SHAPE,
                "the element of a fan-out must be a node call",
                hint,
            )
            return prefix
        call, node_call = found
        if isinstance(comprehension, cst.GeneratorExp) and awaits(comprehension):
            # Python makes it an async generator, which `sum()` or a `for` loop
            # cannot iterate: the source run raises TypeError where kiln's would not.
            self.report.report(
                comprehension,
                Code.FAN_OUT_SHAPE,
                "a generator expression that awaits is an async generator, which "
                "the source run cannot iterate as a sequence (TypeError)",
                "make it a list comprehension: [await f(x) for x in xs]",
            )
            return prefix
        if bound:
            self._binds_in_element(element, bound)
        inner, args = self.lifts.lift_arguments(call)
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
        targets = frozenset(
            name
            for target in comprehension_targets(clauses)
            for name in target_names(target)
        )
        outside = self.changes.kept_place(result)
        uses = self.changes.effects_of(element, targets)
        self.steps.note_state(result, self.changes.effects_of(result.call, targets))
        in_order = _in_order(result, uses, outside, targets) or self.drawn_between(
            comprehension.for_in, element, uses
        )
        returns = self.scope.visible_returns(result)
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
            annotation=origin.annotation if isinstance(origin, cst.AnnAssign) else None,
            element_type=returns,
        )
        reads = set(name_uses(comprehension.with_changes(for_in=clauses)).read_names)
        for step in inner:
            reads |= step.reads
        local_names = targets | {w for s in inner for w in s.writes}
        reads -= local_names
        value_type = None
        if isinstance(origin, cst.AnnAssign):
            value_type = code(origin.annotation.annotation)  # as the source declares
        elif returns is not None and kind is not FanOutKind.DICT:
            value_type = f"{kind.value}[{returns}]"
        # `if (last := v) % 2` in a clause binds `last` in the flow, as in Python.
        writes = target_names(target) | walrus_targets(clauses)
        step = self.steps.make(
            origin,
            action,
            frozenset(reads),
            frozenset(writes),
            frozenset(),
            value_type,
        )
        lifted = comprehension.with_changes(for_in=clauses)
        effects = self.changes.effects_of(lifted)
        step = self.changes.with_effects(replace(effects, external=outside), step)
        self.changes.share_elements(result, clauses, step.writes)
        self.changes.share_held(effects, step.writes)
        if isinstance(target, cst.Name):
            # A list (a set, a dict) whatever its items are, which this module
            # may not name: iterating it changes nothing, as an iterator would.
            self.scope.types[identifier(target.value)] = value_type or kind.value
        return [*prefix, step]

    def drawn_between(
        self, clauses: cst.CompFor, element: cst.BaseExpression, effects: Effects
    ) -> str | None:
        """Why the elements must run one after another for the code that runs
        between them: the next item drawn from a generator (its body runs on
        to the next `yield`), and the clauses' tests, may change what an element
        started before still uses. The source finishes each element first.
        """
        between: list[cst.BaseExpression] = []
        clause: cst.CompFor | None = clauses
        while clause is not None:
            if clause is not clauses or self._lazy(clause.iter):
                between.append(clause.iter)
            between += [test.test for test in clause.ifs]
            clause = clause.inner_for_in
        if not between:
            return None
        drawn = self.changes.effects_of(
            cst.Tuple([cst.Element(part) for part in between])
        )
        # `it = chunks(rows, 3)` before: the generator the name holds.
        held = name_uses(cst.Tuple([cst.Element(part) for part in between])).read_names
        change = drawn.changes_yielded or self.steps.drawn.changes_yielded(held)
        if change is not None:
            return f"the generator it iterates {change.reason}, at {change.span.location()}"
        used = name_uses(element).read_names
        for name, change in drawn.changes:
            if name in used:
                return (
                    f"drawing its items changes '{name}' ({change.reason}), "
                    "which the elements use"
                )
        if effects.memory and any(
            use.global_writes or use.local_writes for _, use in drawn.memory
        ):
            return "drawing its items writes the Memory the elements use"
        touched = dict(effects.state_uses)
        for name, state in drawn.state_uses:
            if name in touched and state.access.conflicts(touched[name].access):
                return (
                    f"drawing its items {state.access.value} the module state "
                    f"'{name}', which the elements use"
                )
        return None

    def _lazy(self, iterable: cst.BaseExpression) -> bool:
        """Whether the items of `iterable` may be made as they are drawn: any
        iterable but a display, a comprehension, an awaited value, or a name
        of a container."""
        if isinstance(
            iterable,
            cst.List
            | cst.Tuple
            | cst.Set
            | cst.Dict
            | cst.ListComp
            | cst.SetComp
            | cst.DictComp
            | cst.Await
            | cst.BaseString
            | cst.BaseNumber,
        ):
            return False
        if isinstance(iterable, cst.Name):
            annotation = self.scope.types.get(identifier(iterable.value))
            return annotation is None or not self.scope.container(annotation)
        return True

    def _binds_in_element(self, element: cst.BaseExpression, bound: set[str]) -> None:
        self.report.report(
            element,
            Code.FAN_OUT_SHAPE,
            f"':=' in a fan-out's element binds {', '.join(sorted(bound))} "
            "from elements that run at the same time",
            "bind the name in a statement before the fan-out, "
            "or compute it from the results after it",
        )

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
                self.report.report(
                    written,
                    Code.FAN_OUT_SHAPE,
                    "an 'async for' fan-out takes one 'async for' with a plain name and no 'if'",
                    "filter inside the node, or collect the stream into a list first",
                )
                return
            if several_calls and self.item_types(clauses) is None:
                self.report.report(
                    written.iter,
                    Code.UNKNOWN_TYPE,
                    "kiln cannot tell the item type of this async stream",
                    "iterate a call of an async stream node annotated '-> AsyncIterator[T]'",
                )
        if several_calls and self.scope.visible_returns(result) is None:
            name = result.callee.name
            generic = sorted(self.scope.type_variables(result.callee))
            if generic:
                self.report.report(
                    element,
                    Code.UNKNOWN_TYPE,
                    f"'{name}' returns type variable '{generic[0]}', which each call "
                    "binds to a type of its own, and a fan-out element of several "
                    "calls needs its type written",
                    f"make the element two fan-outs: its calls before '{name}', "
                    f"then '{name}' over their results",
                )
                return
            self.report.report(
                element,
                Code.UNKNOWN_TYPE,
                f"'{name}' has no return annotation this module can name, "
                "which a fan-out element of several calls needs",
                f"annotate the return type of '{name}' and import the types it uses",
            )

    def item_types(self, clauses: cst.CompFor) -> tuple[str, ...] | None:
        """The item type of `async for x in stream(...)`, read off the stream's annotation."""
        if clauses.asynchronous is None or not isinstance(clauses.target, cst.Name):
            return None
        iterable = clauses.iter
        annotation = (
            self.scope.types.get(iterable.value)
            if isinstance(iterable, cst.Name)
            else None
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


def _in_order(
    result: NodeCall, effects: Effects, outside: Change | None, targets: frozenset[str]
) -> str | None:
    """Why a fan-out's elements must run one after another, if they must: the
    source runs a subflow's statements that keep their place in element order.
    A name of the flow's the elements share says it better than a loop target
    (`i` of `{**state, "i": i}`), which each element has its own of."""
    what = f"'{result.callee.name}'"
    for name, change in sorted(effects.changes, key=lambda c: c[0] in targets):
        return f"{what} may change '{name}', which the elements share ({change.reason})"
    for _, use in effects.memory:
        written = use.global_writes | use.local_writes
        if written:
            keys = (
                "every key"
                if written.any
                else ", ".join(sorted(written.names)) or "keys its arguments name"
            )
            return f"every element writes the same Memory ({keys})"
    if outside is not None:
        return f"each element {outside.reason}, which keeps its place"
    for name, state in effects.state_uses:
        if state.access is Access.WRITE:  # what one element changes another uses
            reason = state.where.reason.removeprefix(
                f"calls {code(result.call.func)}, which "
            )
            where = f"{reason}, at {state.where.span.location()}"
            return f"{what} changes the module state '{name}' ({where})"
    return None
