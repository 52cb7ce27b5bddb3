"""emit_fan_outs: a comprehension over node calls, as concurrent or ordered calls."""

from __future__ import annotations

import libcst as cst

from kilnc.emit_blocks import BlockEmitter
from kilnc.emit_guards import element_reads, repeated
from kilnc.emit_names import RUNTIME
from kilnc.emit_parts import (
    assignment,
    callee_base,
    calls_in,
    comprehension,
    comprehension_targets_text,
)
from kilnc.ir import (
    RESERVED_PREFIX,
    FanOut,
    FanOutKind,
    Step,
)
from kilnc.syntax import awaits, code


class FanOutEmitter(BlockEmitter):
    """A fan-out: its elements gathered at once, or one after another where they must."""

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
        if action.element.steps or self.repeats_checks(action):
            value = self.element_function(action, suspends, concurrent)
            self.w.line(assignment(action.target, action.annotation, value, returning))
            return
        if not concurrent and isinstance(action.comprehension, cst.GeneratorExp):
            # Read whole into a list as a generator still: a StopIteration that an
            # element raises leaves it as RuntimeError (PEP 479), as in the source.
            element = f"{self.callcode(action.result)} {code(action.clauses)}"
            value = f"{self.builtin('list')}({element})"
        elif not concurrent:
            # Sync nodes, or elements sharing one Memory: one after another, as written.
            value = comprehension(action, self.callcode(action.result))
        else:
            value = self.collection(action.kind, f"await {self.gathering(action)}")
        self.w.line(assignment(action.target, action.annotation, value, returning))

    def repeats_checks(self, action: FanOut) -> bool:
        """Whether an `async for` element of one call is a function of its own, rather
        than a lambda, to repeat the flow's checks of what it reads.

        Without its item's type and its node's, a lambda it stays, and mypy sees
        no check a flow made of a name it binds again later.
        """
        return (
            action.is_async_for
            and action.item_types is not None
            and action.element_type is not None
            and bool(repeated(self.known, element_reads(action), set()))
        )

    def gathering(self, action: FanOut) -> str:
        """The coroutine of a fan-out of single calls, gathering their values: its
        elements' list, or its pairs for a dict."""
        call = self.callcode(action.result, awaited=False)
        clauses = code(action.clauses)
        of = self.capped_by(action)
        if action.is_async_for:
            target = code(action.clauses.target)
            called = call.removesuffix(f"({target})")
            # `f` itself, where the element is `f(item)`; else a lambda.
            plain = called != call and called.replace(".", "").isidentifier()
            each = called if plain else f"lambda {target}: {call}"
            iterable = code(action.clauses.iter)
            # amap bounds a plain `f` by its own run's cap.
            capped = "" if plain else f", {of}"
            return f"{RUNTIME}.amap({iterable}, {each}{capped})"
        if action.kind is FanOutKind.DICT:
            assert action.key is not None
            pairs = f"{RUNTIME}.keyed({code(action.key)}, {call})"
            return f"{RUNTIME}.gather(({pairs} {clauses}), {of})"
        argument = _sole_argument(action.result.call)
        if argument is not None:
            called = code(self.called(action.result))
            items = _arguments(argument, action.clauses)
            return f"{RUNTIME}.fan_out({called}, {items})"
        return f"{RUNTIME}.gather(({call} {clauses}), {of})"

    def element_function(self, action: FanOut, suspends: bool, concurrent: bool) -> str:
        """An element of several calls: a function per element.

        Concurrent elements are coroutines gathered at once; elements of sync
        nodes, or sharing one Memory, run one after another as the source runs them.
        """
        each = self.names.fresh(f"{_computed(action)}_element")
        returns = action.element_type
        assert returns is not None, "lower refuses an element of several calls untyped"
        returns = self.outer(returns)
        define = "async def" if suspends else "def"
        wait = "await " if suspends else ""
        if action.is_async_for:
            assert action.item_types is not None
            target = code(action.clauses.target)
            self.w.line(
                f"{define} {each}({target}: {self.outer(action.item_types[0])}) -> {returns}:"
            )
            with self.w.indent(), self.nesting.function():
                self.element_body(action)
            iterable = code(action.clauses.iter)
            if concurrent:
                of = self.capped_by(action)
                return self.collection(
                    action.kind, f"await {RUNTIME}.amap({iterable}, {each}, {of})"
                )
            return self.collection(
                action.kind,
                f"[{wait}{each}({target}) async for {target} in {iterable}]",
            )
        # The element reads its item by index from a list that mypy types from the
        # clauses; the list fills as the indexes are drawn, so the clauses run
        # between the elements, as in the source. The generated code says so.
        items, indexes = self.names.fresh("items"), self.names.fresh("indexes")
        index = self.names.fresh("index")
        targets = comprehension_targets_text(action.clauses)
        clauses = code(action.clauses)
        self.w.line("# Each element takes its item's index: the items are drawn as")
        self.w.line("# the elements start, so the clauses run between them, in order.")
        self.w.line(f"{items}, {indexes} = {RUNTIME}.indexed({targets} {clauses})")
        self.w.line(f"{define} {each}({index}: {self.builtin('int')}) -> {returns}:")
        with self.w.indent(), self.nesting.function():
            self.w.line(f"{targets} = {items}[{index}]")
            self.element_body(action)
        every = f"{each}({index}) for {index} in {indexes}"
        results = (
            f"await {RUNTIME}.gather(({every}), {self.capped_by(action)})"
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

    def capped_by(self, action: FanOut) -> str:
        """`of=f`: the run's call, whose run's cap bounds the elements in flight."""
        return f"of={self.sites[action.result.site]}"

    def element_body(self, action: FanOut) -> None:
        counting, self.counting = self.counting, False  # the fan-out counted one visit
        # A function of its own: mypy forgets the flow's checks there, unless repeated.
        known, self.known = self.known, ()
        self.repeat(repeated(known, element_reads(action), set()))
        for step in action.element.steps:  # lifted calls, and fan-outs nested in them
            self.step(step, returning=False)
        self.counting = counting
        self.known = known
        self.w.line(f"return {self.callcode(action.result)}")

    def collection(self, kind: FanOutKind, gathered: str) -> str:
        if kind is FanOutKind.SET:
            return f"{self.builtin('set')}({gathered})"
        if kind is FanOutKind.DICT:
            return f"{self.builtin('dict')}({gathered})"
        return gathered


def _computed(action: FanOut) -> str:
    """What a fan-out computes, to name its element function: its target, or its node."""
    target = action.target
    if isinstance(target, cst.Name) and not target.value.startswith(RESERVED_PREFIX):
        return target.value
    return callee_base(action.result.callee)


def _sole_argument(call: cst.Call) -> cst.BaseExpression | None:
    """The argument of a call that passes one, by position: `f(x)`'s `x`."""
    match call.args:
        case [cst.Arg(value=value, keyword=None, star="")]:
            return value
    return None


def _arguments(argument: cst.BaseExpression, clauses: cst.CompFor) -> str:
    """The arguments of a fan-out's calls, one per element: the iterable itself
    when each element passes its item (`f(x) for x in xs`), else a generator."""
    match clauses:
        case cst.CompFor(target=cst.Name(value=target), ifs=[], inner_for_in=None) if (
            isinstance(argument, cst.Name) and argument.value == target
        ):
            return code(clauses.iter)
    return f"({code(argument)} {code(clauses)})"
