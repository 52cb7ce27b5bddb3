"""kiln's runtime: what flow sources and the modules `kiln compile` writes import.

Standard library only, never the compiler, and small enough to read in one
sitting. The core is at the top of the package, in the order a reader meets
it; `import kiln` loads none of it, and each name's module is loaded when the
name is first used (so the compiler, which reads `kiln.options` alone, never
loads asyncio):

- `decorators` / `options`: `@node`, `@flow` and `Limit`, transparent markers
  that the compiler reads and plain Python ignores;
- `process`: the four process modes and the helpers that run any callable in
  any of them; `memory`: `Memory`, global and local state with BrainyFlow's
  semantics;
- `calls`: `Flow`, the base of compiled flow classes; `site_table`: `Site`,
  one node call of a flow's table; `binding`: how a flow instance binds its
  sites for a run (wrapped once, bound per run, subflows joined); `sites`: what
  a run calls at each site (its shared `Run`, a wrapper per kind of node:
  events, the ledger, attempts, admission); `plain_sites`: the flat wrappers
  of plain async nodes, the hot path of observed and capped runs; `stale`: whether a cached node
  the module imports from its source is still the code it was compiled from;
- `scope`: `Scope` and its `Child` tasks, structured concurrency whose
  failures leave as themselves; `run`: the fan-outs of generated code on it
  (`gather`, `fan_out`, `amap`, `keyed`, `indexed`); `sync_entry`: the sync entry point
  `run_sync`;
  `eager`: a fan-out's element started in the caller's task; `pool`: a
  bounded fan-out's workers; `cap`: a run's concurrency cap;
- `resilience`: a node's retries and timeout (`Policy`, `call`, `call_sync`,
  `call_in_thread`, `retrying`, `retrying_sync`, `in_thread`), and the one
  retry loop of each colour that every call goes through;
- `streams` (`iterate`, a sync loop over an async stream), `stream_calls`
  (stream nodes' calls in an observed run), `subflows` (`subflow`, a flow of
  another module, compiled or not), `closers` (`closing`, `aclosing`);
- `events`: `Event`, `EventStatus`, and `NodeEvent`, the record of one node
  call; `errors`: `KilnError` and its subclasses.

And in packages:

- `processor`: `Processor`, which admits events and calls under a start window
  and a cap on calls in flight (its gate, `processor.admission`, is every
  `Limit`'s), and `Executor`, a `Pile` of events.

The optional parts, which using the core never loads:

- `ledger`: the results of `cache=True` nodes in a SQLite file, as tagged JSON
  checked against the node's return annotation (loaded by the first run that
  caches, and the only part that imports sqlite3);
- `durable`: durable runs (``F(run_id=...)``), which journal every call in the
  ledger file and replay it, and `resume`, which answers a question (`ask`)
  and goes on (loaded by the first durable run);
- `dask`: `kiln.dask.DaskBackend`, which runs a flow's node calls on a Dask
  cluster (the extra ``kiln[dask]``; Dask distributed is imported at a
  backend's first call);
- `otel`: OpenTelemetry spans and metrics of a traced flow (the extra
  ``kiln[otel]``; loaded when a flow is given a tracer, or OpenTelemetry is
  in use): a single module, so not a package.

tests/runtime/test_layout.py holds these rules.
"""

import importlib

# Re-exported: generated code repeats a flow's checks under `_kiln.TYPE_CHECKING`.
from typing import TYPE_CHECKING as TYPE_CHECKING

if TYPE_CHECKING:  # each name is imported on first use (`__getattr__`)
    from kiln.calls import Backend, Flow
    from kiln.closers import aclosing, closing
    from kiln.decorators import ask, flow, node
    from kiln.durable import UNANSWERED, Unanswered
    from kiln.durable.resume import resume
    from kiln.errors import (
        DeniedError,
        DurableRunError,
        KilnError,
        LedgerError,
        OptionError,
        RefusedEntry,
        ReservedNameError,
        StaleModuleError,
        Suspended,
        UncacheableValue,
        VisitLimitError,
        visits,
    )
    from kiln.events import Event, EventStatus, NodeEvent
    from kiln.fallbacks import falling_back, falling_back_async, falling_back_sync
    from kiln.ledger import Ledger, LedgerStats, NodeEntries, RunHits
    from kiln.memory import Memory
    from kiln.options import FlowOptions, Limit, NodeOptions
    from kiln.process import (
        AsyncFunc,
        AsyncProcess,
        AsyncStreamProcess,
        Func,
        Process,
        StreamProcess,
        aforward,
        astream,
        forward,
        stream,
    )
    from kiln.processor import Executor, Pile, Processor
    from kiln.resilience import (
        Policy,
        call,
        call_in_thread,
        call_sync,
        in_thread,
        retrying,
        retrying_sync,
    )
    from kiln.run import amap, fan_out, gather, indexed, keyed
    from kiln.scope import Child, Scope
    from kiln.site_table import Site, site
    from kiln.streams import iterate
    from kiln.subflows import subflow
    from kiln.sync_entry import run_sync

__version__ = "0.1.0"

# Where each name is defined, imported when the name is first used (no name is
# also a module's: importing that module would bind the module in its place).
_DEFINED: dict[str, tuple[str, ...]] = {
    "kiln.calls": ("Backend", "Flow"),
    "kiln.closers": ("aclosing", "closing"),
    "kiln.decorators": ("ask", "flow", "node"),
    "kiln.errors": (
        "DeniedError",
        "DurableRunError",
        "KilnError",
        "LedgerError",
        "OptionError",
        "RefusedEntry",
        "ReservedNameError",
        "StaleModuleError",
        "Suspended",
        "UncacheableValue",
        "VisitLimitError",
        "visits",
    ),
    "kiln.events": ("Event", "EventStatus", "NodeEvent"),
    "kiln.memory": ("Memory",),
    "kiln.options": ("FlowOptions", "Limit", "NodeOptions"),
    "kiln.process": (
        "AsyncFunc",
        "AsyncProcess",
        "AsyncStreamProcess",
        "Func",
        "Process",
        "StreamProcess",
        "aforward",
        "astream",
        "forward",
        "stream",
    ),
    "kiln.processor": ("Executor", "Pile", "Processor"),
    "kiln.fallbacks": ("falling_back", "falling_back_async", "falling_back_sync"),
    "kiln.resilience": (
        "Policy",
        "call",
        "call_in_thread",
        "call_sync",
        "in_thread",
        "retrying",
        "retrying_sync",
    ),
    "kiln.run": ("amap", "fan_out", "gather", "indexed", "keyed"),
    "kiln.scope": ("Child", "Scope"),
    "kiln.site_table": ("Site", "site"),
    "kiln.streams": ("iterate",),
    "kiln.subflows": ("subflow",),
    "kiln.sync_entry": ("run_sync",),
    "kiln.durable": ("UNANSWERED", "Unanswered", "resume"),
    "kiln.ledger": ("Ledger", "LedgerStats", "NodeEntries", "RunHits"),
}
_HOMES = {name: module for module, names in _DEFINED.items() for name in names}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'kiln' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up as any module attribute from now on
    return value


__all__ = [
    "UNANSWERED",
    "AsyncFunc",
    "AsyncProcess",
    "AsyncStreamProcess",
    "Backend",
    "Child",
    "DeniedError",
    "DurableRunError",
    "Event",
    "EventStatus",
    "Executor",
    "Flow",
    "FlowOptions",
    "Func",
    "KilnError",
    "Ledger",
    "LedgerError",
    "LedgerStats",
    "Limit",
    "Memory",
    "NodeEntries",
    "NodeEvent",
    "NodeOptions",
    "OptionError",
    "Pile",
    "Policy",
    "Process",
    "Processor",
    "RefusedEntry",
    "ReservedNameError",
    "RunHits",
    "Scope",
    "Site",
    "StaleModuleError",
    "StreamProcess",
    "Suspended",
    "Unanswered",
    "UncacheableValue",
    "VisitLimitError",
    "__version__",
    "aclosing",
    "aforward",
    "amap",
    "ask",
    "astream",
    "call",
    "call_in_thread",
    "call_sync",
    "closing",
    "falling_back",
    "falling_back_async",
    "falling_back_sync",
    "fan_out",
    "flow",
    "forward",
    "gather",
    "in_thread",
    "indexed",
    "iterate",
    "keyed",
    "node",
    "resume",
    "retrying",
    "retrying_sync",
    "run_sync",
    "site",
    "stream",
    "subflow",
    "visits",
]
