"""kiln's runtime: what flow sources and the modules `kiln compile` writes import.

Standard library only, and small enough to read in one sitting:

- `decorators` / `options`: `@node`, `@flow` and `Limit`, transparent markers
  that the compiler reads and plain Python ignores;
- `process`: the four process modes and the helpers that run any callable in
  any of them;
- `memory`: `Memory`, global and local state with BrainyFlow's semantics;
- `run`: the run context of generated code (`Scope` and its `Child` tasks,
  `gather`, `amap`, `keyed`, `indexed`) and the sync entry point `run_sync`;
- `calls`: `Flow`, the base of compiled flow classes, and `Site`, a node call
  site: how a run binds its calls, with limits, the ledger and events;
- `subflow`: a flow imported from another module, compiled or not, in the shape
  compiled flows call; `stream_calls`: the calls of stream nodes in an observed run;
- `resilience`: a node's retries and timeout (`Policy`, `call`, `call_sync`,
  `call_in_thread`, and `retrying`, `retrying_sync`, `in_thread` that bind them);
- `events`: `Event`, `EventStatus`, and `NodeEvent`, the record of one node call;
- `durable` (with `durable.journal`): durable runs (``F(run_id=...)``), which journal every call
  in the ledger file and replay it, and `resume`, which answers a question (`ask`)
  and goes on (imported by the first durable run);
- `processor`: `Processor`, which admits events and calls under a start window and
  a cap on calls in flight, and `Executor`, a `Pile` of events forwarded to one
  (the gate itself is in `admission`);
- `ledger` / `codec`: the durable results of `cache=True` nodes on SQLite, their
  arguments and results as tagged JSON, checked against the node's return
  annotation by `ledger.types` (imported by the first run that caches);
- `streams`: `iterate`, a sync loop over an async stream;
- `closing`: `closing` and `aclosing`, which close a stream a loop opened;
- `errors`: `KilnError` and its subclasses.

Not imported here: `kiln.dask` (`DaskBackend`, which runs a flow's node calls
on a Dask cluster: the optional extra ``kiln[dask]``), with the modules it
loads once Dask distributed is known to be installed, `dask.connection`,
`dask.modules` and `dask.worker`.
"""

from typing import TYPE_CHECKING

from kiln.calls import Backend, Flow, Site, fan_out_bound
from kiln.closing import aclosing, closing
from kiln.decorators import ask, flow, node
from kiln.errors import (
    DeniedError,
    DurableRunError,
    KilnError,
    LedgerError,
    OptionError,
    RefusedEntry,
    ReservedNameError,
    Suspended,
    UncacheableValue,
    VisitLimitError,
)
from kiln.events import Event, EventStatus, NodeEvent
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
    falling_back,
    falling_back_async,
    falling_back_sync,
    in_thread,
    retrying,
    retrying_sync,
)
from kiln.run import amap, gather, indexed, keyed, run_sync
from kiln.scope import Child, Scope
from kiln.streams import iterate
from kiln.subflow import subflow

if TYPE_CHECKING:  # imported on first use, so that `import kiln` loads no sqlite3
    from kiln.durable import UNANSWERED, Unanswered, resume
    from kiln.ledger import Ledger, LedgerStats, NodeEntries, RunHits

__version__ = "0.1.0"

_LEDGER_NAMES = frozenset({"Ledger", "LedgerStats", "NodeEntries", "RunHits"})
_DURABLE_NAMES = frozenset({"UNANSWERED", "Unanswered", "resume"})


def __getattr__(name: str) -> object:
    if name in _LEDGER_NAMES:
        from kiln import ledger  # noqa: PLC0415

        return getattr(ledger, name)
    if name in _DURABLE_NAMES:
        from kiln import durable  # noqa: PLC0415

        return getattr(durable, name)
    raise AttributeError(f"module 'kiln' has no attribute {name!r}")


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
    "fan_out_bound",
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
    "stream",
    "subflow",
]
