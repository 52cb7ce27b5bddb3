"""The Processor and the Executor: lionagi 0.36's contract, with admission the moment it is due.

A `Processor` queues `Event`s and runs them under an admission gate: at most
`queue_capacity` starts in any `capacity_refresh_time` seconds (a sliding
window) and at most `concurrency_limit` events in flight. Compiled flows use
the same gate directly (a `Limit`'s processor) for their node calls. An
`Executor` keeps a `Pile` of events and forwards the pending ones to its
processor; compiled flows `record()` the `NodeEvent`s of their calls in one.
docs/processor.md is the specification. Its modules:

- `admission`: the gate, shared across threads and event loops;
- `running`: `Processor`, which runs queued events the moment the gate admits them;
- `queue`: the events a processor holds, safe from any thread and loop;
- `executor`: `Executor` and `Pile`.
"""

from kiln.processor.executor import Executor, Pile
from kiln.processor.running import Processor

__all__ = ["Executor", "Pile", "Processor"]
