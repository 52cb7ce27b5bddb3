"""The ledger: one SQLite file that keeps the results of `cache=True` nodes.

Imported by the first run that caches (or journals: durable runs keep their
journal in the same file), never by `import kiln`, so a flow that caches
nothing loads no sqlite3. Its modules, from the call down to the disk:

- `store`: `Ledger`, one file per process, and the calls compiled flows make
  through it (`call`, `call_sync`);
- `lookup`: one call's way through the ledger, the same for both colours;
- `flights`: identical calls in flight at once on one event loop run once;
- `keys`: a call's key and its result's text (`Shape`: what they need of a node);
- `types`: whether a value is of the type the node's annotation names;
- `codec` and `decoding`: values as tagged JSON that keeps Python's types, never
  pickle, and back, rebuilding only the classes a node may return;
- `writer`: the thread that commits every result and journal row; `commits`:
  a caller's wait for its commit, on an event loop or a blocked thread;
- `file`: the file itself, its schema, and the statistics `kiln ledger stats` shows.
- `problems`: what an error of SQLite or the OS at the file means, and what to do.
"""

from kiln.ledger.file import LedgerStats, NodeEntries, RunHits
from kiln.ledger.store import DEFAULT_PATH, Ledger, Uncacheable

__all__ = [
    "DEFAULT_PATH",
    "Ledger",
    "LedgerStats",
    "NodeEntries",
    "RunHits",
    "Uncacheable",
]
