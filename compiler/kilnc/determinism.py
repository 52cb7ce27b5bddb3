"""check_determinism: what a flow's body reads that a resumed durable run would read anew.

Example input::

    @flow
    async def report(topic: str) -> str:
        started = time.time()                  # KLN315: the clock
        text = await write(topic, seed=random.random())   # KLN315: randomness
        return f"{text} ({time.time() - started:.1f}s)"   # KLN315

A durable run (``F(run_id=...)``) replays the calls it journaled and runs
the flow's own statements again. A statement that reads the clock,
randomness, a uuid or the environment reads another value when the run is
resumed, so the run may take another branch, or call a node with other
arguments (which the journal refuses), than the run it resumes. `kiln check`
warns at each such read; inside a node, whose result is journaled, it is
read once. So it does where the body reads the order of a set of str or
bytes, which hash randomization changes from process to process
(`set_order.py`): `for t in set(tools)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import libcst as cst

from kilnc.diagnostics import Code, Diagnostic, warning
from kilnc.front import ParsedModule
from kilnc.ir import FlowIR
from kilnc.set_order import set_orders
from kilnc.walk import walk

# Qualified names, and what reading them reads.
_READS: Final = {
    **dict.fromkeys(
        (
            "time.time",
            "time.time_ns",
            "time.monotonic",
            "time.monotonic_ns",
            "time.perf_counter",
            "time.perf_counter_ns",
            "time.localtime",
            "time.gmtime",
            "datetime.datetime.now",
            "datetime.datetime.utcnow",
            "datetime.datetime.today",
            "datetime.date.today",
        ),
        "the clock",
    ),
    **dict.fromkeys(("uuid.uuid1", "uuid.uuid4"), "a new uuid"),
    **dict.fromkeys(
        ("os.environ", "os.getenv", "os.environb", "os.getenvb"), "the environment"
    ),
    "os.urandom": "randomness",
}
# Modules every function of which reads something new.
_MODULES: Final = {"random.": "randomness", "secrets.": "randomness"}
_SET_HINT: Final = (
    "give it an order of its own: sorted(...), or dict.fromkeys(...) in place of "
    "set(...) to keep the order the items came in"
)
_HINT: Final = (
    "read it in a node, whose result a durable run journals, or pass it in as an "
    "argument of the flow"
)


def check_determinism(
    parsed: ParsedModule, flows: Iterable[FlowIR]
) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for flow in flows:
        finder = _Reads(parsed)
        walk(flow.flow.function.body, finder)
        for node, what in finder.found:
            found.append(
                warning(
                    parsed.span(node),
                    Code.NONDETERMINISTIC,
                    f"the body of flow '{flow.flow.name}' reads {what} here: a resumed "
                    "durable run reads it again, and may go another way than the run "
                    "it resumes",
                    _HINT,
                )
            )
        found += [
            warning(
                parsed.span(node),
                Code.NONDETERMINISTIC,
                f"the body of flow '{flow.flow.name}' reads the order of a set here, "
                "which for str or bytes items changes from process to process (hash "
                "randomization, PYTHONHASHSEED): a durable run resumed in another "
                "process may call its nodes in another order, or with other "
                "arguments, than the run it resumes",
                _SET_HINT,
            )
            for node in set_orders(parsed, flow)
        ]
    return found


class _Reads(cst.CSTVisitor):
    def __init__(self, parsed: ParsedModule) -> None:
        self.parsed = parsed
        self.found: list[tuple[cst.CSTNode, str]] = []

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return not self._reads(node)  # `datetime.datetime.now`: once, not per part

    def visit_Name(self, node: cst.Name) -> None:
        self._reads(node)

    def _reads(self, node: cst.Attribute | cst.Name) -> bool:
        for name in self.parsed.qualified_names(node):
            what = _READS.get(name) or next(
                (what for prefix, what in _MODULES.items() if name.startswith(prefix)),
                None,
            )
            if what is not None:
                self.found.append((node, what))
                return True
        return False
