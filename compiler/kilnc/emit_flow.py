"""emit_flow: one flow's plan to the class and instance that replace it.

Example input: the plan of `digest` (see `schedule`). Output, before black::

    class Digest(_kiln.Flow, _kiln.AsyncProcess, _kiln.Process):
        async def aforward(self, path: str) -> str:
            with self._kiln_bind(self._kiln_sites) as (load, summarize):
                paragraphs = load(path)
                ...
    digest = Digest()
"""

from __future__ import annotations

from collections import Counter
from typing import Final

import libcst as cst

from kilnc.changing import changing_calls, state_changes
from kilnc.emit_compound import CompoundEmitter
from kilnc.emit_fan_outs import FanOutEmitter
from kilnc.emit_guards import Known
from kilnc.emit_names import (
    RUNTIME,
    hidden_builtins,
    renamed_in_signature,
    signature_aliases,
)
from kilnc.emit_narrowing import flow_names
from kilnc.emit_nesting import Nesting
from kilnc.emit_parts import (
    SITE_KINDS,
    all_writes,
    blocks_needed,
    callee_base,
    docstring_literal,
    forwarded_args,
    limit_display,
    tuple_display,
    type_ignore,
    unannotated,
)
from kilnc.emit_shapes import awaits_anywhere, method_annotations, shape_of
from kilnc.emit_tasks import TaskEmitter
from kilnc.ir import FlowDef, NodeCall, NodeDef, StepId
from kilnc.names import identifier, mentions
from kilnc.plan import Compiled, FlowPlan, ModulePlan
from kilnc.syntax import attached_comments, code
from kilnc.writer import Names, Writer


def emit_flow(
    w: Writer, plan: FlowPlan, class_name: str, module: ModulePlan
) -> tuple[set[tuple[str, str]], tuple[str, ...]]:
    """Write the flow's class and instance; return the module-level aliases its body
    needs (`outer_alias`), which the module writes once, after the flow, and its
    sites, each one `_kiln.site(...)`, for the table written after black."""
    emitter = _FlowEmitter(w, plan, class_name, module)
    emitter.emit()
    return emitter.outer_aliases, tuple(map(emitter.site, plan.flow.calls))


class _FlowEmitter(FanOutEmitter, CompoundEmitter, TaskEmitter):
    def __init__(
        self, w: Writer, plan: FlowPlan, class_name: str, module: ModulePlan
    ) -> None:
        self.w = w
        self.module = module
        self.plan = plan
        self.flow = plan.flow.flow
        self.class_name = class_name
        mentioned = mentions(self.flow.function)
        # A question's name is a keyword of `resume`, beside its receiver.
        self.asked = self.questions()
        called_only = self.called_only(mentioned)
        self.names = Names(
            (
                all_writes(plan.flow.body)
                | set(mentioned)
                | set(self.asked)
                | module.module_names
            )
            - called_only
        )
        # Names a person would write (`summaries_task`) where no user name can be
        # hidden by them: a star import may bind any name, so there, kiln's own.
        self.readable = self.names.fresh if module.star_import else self.names.local
        # Each call site of a node or a subflow gets the local its run binds
        # (`Flow._kiln_bind`).
        self.sites = {
            call.site: self.site_local(call, called_only) for call in plan.flow.calls
        }
        self.receiver = self.names.own("self")
        self.item = self.names.own("item")
        self.hidden = hidden_builtins(self.flow, module)
        self.aliases = signature_aliases(self.flow)
        self.flow_names = flow_names(self.flow, plan.flow.body)
        self.outer_aliases: set[tuple[str, str]] = set()
        self.counting = True
        self.commented: set[int] = set()  # the lines whose comments are written
        self.nesting = Nesting()  # Python's blocks open around the code being written
        # The step whose value each name holds, in the coroutine being written,
        # as far as the code written so far assigns it.
        self.bound: dict[str, StepId] = {}
        self.known: Known = ()  # the checks that hold there (emit_guards)
        # Why each call that may change what it is passed does: a durable run,
        # which replays a call's value and not its changes, refuses those.
        self.changing = changing_calls(plan.flow.body)
        self.changing_state = state_changes(plan.flow)  # refused the same way
        self.counters = {
            call.site: self.readable(f"{callee_base(call.callee)}_visits")
            for call in plan.flow.calls
            if call.visits is not None
        }

    def called_only(self, mentioned: Counter[str]) -> set[str]:
        """The names the flow mentions only as the function of its calls of nodes.

        Such a name also names the locals bound to those calls, as the source
        wrote it: `fetch`, `fetch_2`. Hiding the module's `fetch` from the body
        hides it from nothing that reads it. Under a star import, whose names
        are unknown, the locals are kiln's own.
        """
        if self.module.star_import:
            return set()
        written = Counter(
            identifier(call.call.func.value)
            for call in self.plan.flow.calls
            if isinstance(call.call.func, cst.Name)
        )
        asked = set(self.asked)
        return {
            name
            for name, count in written.items()
            if mentioned[name] == count and name not in asked
        }

    def site_local(self, call: NodeCall, called_only: set[str]) -> str:
        func = call.call.func
        if isinstance(func, cst.Name) and identifier(func.value) in called_only:
            return self.names.local(identifier(func.value))
        return self.names.fresh(callee_base(call.callee))

    def emit(self) -> None:
        with self.w.at(self.flow.span):
            self.emit_class()

    def emit_class(self) -> None:
        flow, w = self.flow, self.w
        for comment in attached_comments(flow.function):
            w.code(code(comment).strip())
        # A sync flow calling thread=True nodes awaits them: its body runs async
        # (and overlaps them), its sync entry point is the derived one.
        runs_async = flow.is_async or awaits_anywhere(self.plan.flow.body)
        shape = shape_of(flow, runs_async)
        signature = renamed_in_signature(flow.function, self.aliases)
        params = code(signature.params)
        receiver = self.receiver
        params = f"{receiver}, {params}" if params.strip() else receiver
        args = forwarded_args(flow.function.params)
        own, derived = method_annotations(flow, signature.returns, runs_async)
        # The source's `# type: ignore` on the `def` line, on each method's: black
        # moves a comment after the `(` to the end of the `def` line.
        ignore = type_ignore(flow.function)
        params = f"  {ignore}\n{params}" if ignore else params
        # A call of the untyped method the user silenced is part of what they silenced.
        untyped = (
            "  # type: ignore[no-untyped-call]"
            if ignore and unannotated(flow.function)
            else ""
        )
        w.line(f"class {self.class_name}({shape.bases}):")
        with w.indent():
            w.code(docstring_literal(self.docstring()))
            w.line()
            if self.class_attributes(written_sync=runs_async and not flow.is_async):
                w.line()
            w.line(f"{shape.runs}({params}){own}:")
            with w.indent():
                self.body()
            w.line()
            w.line(f"{shape.derives}({params}){derived}:")
            with w.indent():
                w.code(
                    shape.derived.format(
                        runtime=RUNTIME,
                        receiver=receiver,
                        item=self.item,
                        args=args,
                        untyped=untyped,
                    )
                )
            w.line()
            w.line(f"def __call__({params}){derived if runs_async else own}:")
            with w.indent():
                w.line(f"return {receiver}.{shape.call}({args}){untyped}")
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

    def class_attributes(self, *, written_sync: bool) -> bool:
        """The call sites and the flow's capacity; whether any.

        `written_sync`: the flow is a `def` whose body awaits, and says so,
        for its plain sync nodes to run with no running loop, as the source's.
        """
        calls = self.plan.flow.calls
        options = self.flow.options
        w = self.w
        if calls:
            w.line("_kiln_sites = ()  # written after black: place_site_lines")
        if options.limits:
            groups = ", ".join(
                f"{spec.group!r}: {limit_display(spec)}" for spec in options.limits
            )
            w.line(f"_kiln_limits = {{{groups}}}")
        if options.concurrency is not None:
            w.line(f"_kiln_concurrency = {options.concurrency!r}")
        if written_sync:
            w.line("_kiln_written_sync = True")
        if self.asked:
            asked = ", ".join(f"{name!r}: {kind}" for name, kind in self.asked.items())
            w.line(f"_kiln_questions = {{{asked}}}")
        # Where its cached calls, and its durable runs, keep their values.
        ledger = self.module.ledger
        if ledger is not None and calls:
            w.line(f"_kiln_ledger = {ledger!r}  # [tool.kiln] ledger, from here")
        return bool(
            calls
            or options.limits
            or options.concurrency is not None
            or self.asked
            or written_sync
        )

    def site(self, call: NodeCall) -> str:
        """`_kiln.site(...)`: what the runtime needs to limit, cache and observe a call.

        What it calls, the node's name, where it is called and defined (the
        lines of the body that call it come after black: `place_site_lines`),
        then what the decorators ask of it. An imported flow is called as
        `subflow` gives it, whether its module was compiled or not.
        """
        node = call.callee
        func = code(call.call.func)
        where = repr(self.module.where(call.span))
        if isinstance(node, FlowDef):
            called = func if call.local else f"{RUNTIME}.subflow({func})"
            fields = [called, repr(node.name), where]
            fields.append(repr(self.module.where(node.span)))
            fields.append("kind='flow'")
        else:
            fields = [func, repr(node.name), where]
            # A question is defined by the `ask` that asks it.
            fields.append(where if node.asks else repr(self.module.where(node.span)))
            kind = "ask" if node.asks else SITE_KINDS[node.kind, node.options.thread]
            if kind == "sync" and node.options.waits_between_retries:
                kind = "waiting"
            if kind != "async":
                fields.append(f"kind={kind!r}")
            if node in self.module.policies:
                fields.append(f"policy={self.module.policies[node]}")
            if node.options.limit is not None:
                fields.append(f"limit={node.options.limit!r}")
            if node in self.module.fingerprints:
                fields.append(f"cache={self.module.fingerprints[node]!r}")
            if node in self.module.live:
                fields.append(f"file_sha256={self.module.live[node]!r}")
        if self.module.classes.get(node):
            fields.append(f"classes={tuple_display(list(self.module.classes[node]))}")
        if isinstance(node, NodeDef) and node in self.module.fallbacks:
            fields.append(f"fallback={self.module.fallbacks[node]}")
        if isinstance(node, NodeDef) and node.options.local:
            fields.append("local=True")
        if call.site in self.changing:
            fields.append(f"changes={self.changing[call.site]!r}")
        if call.site in self.changing_state:
            change = self.changing_state[call.site]
            said = change.said(self.module.where(change.span))
            fields.append(f"changes_state={said!r}")
        if any(arg.keyword is not None or arg.star == "**" for arg in call.call.args):
            fields.append("keywords=True")
        return f"{RUNTIME}.site({', '.join(fields)})"

    def body(self) -> None:
        """The flow's body, in the `with` that binds its calls (after the visit counters).

        The `with` notes on a failure the call it left (`kiln.notes.Bound`,
        from the lines each site lists) where the source leaves room for one
        more block; else the calls are bound by an assignment, and not noted.
        """
        body = self.plan.flow.body
        for call in self.plan.flow.calls:
            if call.visits is not None:
                where = self.module.where(call.span)
                counted = f"{call.callee.name!r}, {call.visits}, {where!r}"
                self.w.line(f"{self.counters[call.site]} = {RUNTIME}.visits({counted})")
        if not self.sites:
            self.block(body)
            return
        locals_ = list(self.sites.values())
        bind = f"{self.receiver}._kiln_bind({self.receiver}._kiln_sites)"
        if not self.nesting.room(1 + blocks_needed(body)):
            self.w.line(f"{tuple_display(locals_)} = {bind}.calls")
            self.block(body)
            return
        # Black stands a long tuple of targets one name a line: where they do
        # not fit in the header, the `with` binds one tuple, unpacked a line of
        # names at a time, in a few lines (a slice each, made per run); a
        # bigger table stays one name a line, which costs a run nothing.
        header, unpacking = f"with {bind} as {tuple_display(locals_)}:", []
        if len(locals_) > 1 and not self.w.fits(header):
            calls = self.names.own("calls")
            unpacking = self._unpacking(locals_, calls)
            if unpacking:
                header = f"with {bind} as {calls}:"
        self.w.line(header)
        with self.w.indent(), self.nesting.opened():
            for line in unpacking:
                self.w.line(line)
            self.block(body)

    def _unpacking(self, names: list[str], calls: str) -> list[str]:
        """`names` = `calls` in lines that each fit: `a, b = calls` when one does,
        else `a, b = calls[:2]`, `c = calls[2]`; none when a name alone cannot."""
        lines: list[str] = []
        start = 0
        while start < len(names):
            end = start + 1
            while end < len(names) and self.w.fits(
                _unpacked(names, start, end + 1, calls), deeper=1
            ):
                end += 1
            line = _unpacked(names, start, end, calls)
            if not self.w.fits(line, deeper=1) or len(lines) == _UNPACKED_LINES:
                return []
            lines.append(line)
            start = end
        return lines

    def docstring(self) -> str:
        written = self.flow.function.get_docstring()
        where = f"compiled by kiln from {self.module.where(self.flow.span)}"
        return (
            f"{written}\n\n({where})"
            if written
            else f"Flow {self.flow.name!r}, {where}."
        )


_UNPACKED_LINES: Final = 4  # at most, each past the first a slice of the tuple


def _unpacked(names: list[str], start: int, end: int, calls: str) -> str:
    """Unpacking `names[start:end]` from the same items of the tuple `calls`."""
    if end - start == 1 and len(names) > 1:
        return f"{names[start]} = {calls}[{start}]"
    items = f"{start or ''}:{end if end < len(names) else ''}"
    target = ", ".join(names[start:end])
    return f"{target} = {calls}" if items == ":" else f"{target} = {calls}[{items}]"
