"""kiln's runtime: what flow sources and the modules `kiln compile` writes import.

Standard library only, and small enough to read in one sitting:

- `decorators` / `options`: `@node`, `@flow` and `Limit`, transparent markers
  that the compiler reads and plain Python ignores;
- `process`: the four process modes and the helpers that run any callable in
  any of them;
- `memory`: `Memory`, global and local state with BrainyFlow's semantics;
- `run`: the run context of generated code (`Scope`, `gather`, `amap`, `keyed`) and the
  sync entry point `run_sync`;
- `resilience`: a node's retries and timeout (`Policy`, `call`, `call_sync`,
  `call_in_thread`);
- `streams`: `iterate`, a sync loop over an async stream;
- `closing`: `closing` and `aclosing`, which close a stream a loop opened;
- `errors`: `KilnError` and its subclasses.
"""

from kiln.closing import aclosing, closing
from kiln.decorators import flow, node
from kiln.errors import KilnError, OptionError, ReservedNameError, VisitLimitError
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
from kiln.resilience import Policy, call, call_in_thread, call_sync
from kiln.run import Scope, amap, gather, keyed, run_sync
from kiln.streams import iterate

__version__ = "0.1.0"

__all__ = [
    "AsyncFunc",
    "AsyncProcess",
    "AsyncStreamProcess",
    "FlowOptions",
    "Func",
    "KilnError",
    "Limit",
    "Memory",
    "NodeOptions",
    "OptionError",
    "Policy",
    "Process",
    "ReservedNameError",
    "Scope",
    "StreamProcess",
    "VisitLimitError",
    "__version__",
    "aclosing",
    "aforward",
    "amap",
    "astream",
    "call",
    "call_in_thread",
    "call_sync",
    "closing",
    "flow",
    "forward",
    "gather",
    "iterate",
    "keyed",
    "node",
    "run_sync",
    "stream",
]
