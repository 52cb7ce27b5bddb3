"""What `kiln.dask` runs on the Dask workers: the driver's modules, and calls it can stop.

Imported on a worker when it unpickles what the driver sends, and by
`kiln.dask` once Dask distributed is known to be installed (this module needs
it: `Shipment` is a `WorkerPlugin`).

Modules. A compiled flow's node functions are pickled by reference (module
and name), so a worker must import the generated module, under the name the
driver gave it, before it can run a call; Dask does not ship it, and a worker
that cannot import it breaks its connection to the scheduler without a word.
`Shipment` carries a module's source to every worker, present and future (a
worker that replaces a dead one too); `ShippedFinder`, first on each worker's
`sys.meta_path`, imports it from there, with the driver's file name in its
code objects and its source behind `__loader__`, so tracebacks show the lines.

Calls. Dask never stops a task it has started: cancelling a future only
forgets its result. `call_async` runs a node's coroutine as a task of its own
and registers it under the Dask key, so that `cancel_call`, which the driver
broadcasts when a timeout or a cancelled flow abandons the call, can cancel
it; a key cancelled before its task started is remembered, and the task ends
at once. A `thread=True` node's call cannot be interrupted once it runs (no
Python thread can be), as in a local run; only its result is dropped.

Traces. When the driver runs OpenTelemetry, a call carries the trace
context of its node span (the W3C headers `propagate.inject` writes); a
worker with OpenTelemetry installed runs the node in that context, so the
spans the node's code makes there are the node span's children.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import CodeType, ModuleType
from typing import Any, Final, final

from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol import pickle as dask_pickle

from kiln.awaitables import as_coroutine
from kiln.dask.modules import ShippedModule
from kiln.errors import carried

__all__ = [
    "RemoteCall",
    "Shipment",
    "ShippedFinder",
    "call_async",
    "call_thread",
    "cancel_call",
    "probe",
]

# distributed's pickle (cloudpickle for what pickle cannot send by reference); untyped.
_dumps: Callable[[object], bytes] = dask_pickle.dumps
_loads: Callable[[bytes], Any] = dask_pickle.loads

# Keys cancelled before their call started, kept for the call to see; a key is
# remembered by every worker (the broadcast does not know which one has it),
# so the memory is bounded rather than cleared.
_REMEMBERED_CANCELS: Final = 4096


@final
class ShippedFinder(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Imports shipped modules by name on a worker; one per worker process."""

    def __init__(self) -> None:
        self.modules: dict[str, ShippedModule] = {}
        self.loaded: dict[str, str] = {}  # name -> digest of the source it was run from

    def install(self, modules: Sequence[ShippedModule]) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        for module in modules:
            self.modules[module.name] = module
            if self.loaded.get(module.name) != module.digest:
                # Never imported from this source: the next import runs it.
                sys.modules.pop(module.name, None)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        shipped = self.modules.get(fullname)
        if shipped is None:
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname, self, origin=shipped.path, is_package=shipped.package
        )
        spec.has_location = True  # sets __file__, which dataclasses and users may read
        return spec

    def get_source(self, fullname: str) -> str:
        return self.modules[fullname].source

    def is_package(self, fullname: str) -> bool:
        return self.modules[fullname].package

    def get_code(self, fullname: str) -> CodeType:
        shipped = self.modules[fullname]
        return compile(shipped.source, shipped.path, "exec", dont_inherit=True)

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        exec(
            self.get_code(name), module.__dict__
        )  # the driver's own module, sent to run
        self.loaded[name] = self.modules[name].digest


_FINDER: Final = ShippedFinder()


class Shipment(WorkerPlugin):
    """One module for every worker: set up on those there now and on any that joins later."""

    def __init__(self, module: ShippedModule) -> None:
        self.module = module

    def setup(self, worker: object) -> None:
        _FINDER.install((self.module,))


def probe(names: Sequence[str]) -> tuple[str, str] | None:
    """Import `names` on this worker: None, or the first that failed and why."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # any failure is the answer the driver reports
            return name, f"{type(error).__name__}: {error}"
    return None


# --- calls that the driver can stop ----------------------------------------------------

_running: dict[str, asyncio.Task[Any]] = {}
_cancelled: OrderedDict[str, None] = OrderedDict()
_cancelled_lock = threading.Lock()  # call_thread reads it from the worker's threads


def _was_cancelled(key: str) -> bool:
    with _cancelled_lock:
        return _cancelled.pop(key, False) is None


@final
@dataclass(frozen=True, slots=True)
class RemoteCall:
    """One attempt of a node call: its Dask key, and the node with its arguments, pickled.

    The scheduler unpickles every task it is given (to read its dependencies),
    but only a worker can import the node's module, which kiln ships to the
    workers alone; and Dask reads a task's arguments for keys and for tuples
    that start with a callable (its older task format), while a node's
    arguments must reach the node as they are. Pickled once more, the call is
    bytes to both.
    """

    key: str  # the Dask key of the task: what `cancel_call` is given
    payload: bytes  # (fn, args, kwargs), by distributed's pickle
    trace: tuple[tuple[str, str], ...] = ()  # the driver's trace context, if traced

    @classmethod
    def of(
        cls,
        key: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> RemoteCall:
        return cls(key, _dumps((fn, args, kwargs)), _trace_context())

    def context(self) -> contextvars.Context | None:
        """A context to run the call in, holding the driver's trace; None if there is none."""
        if not self.trace:
            return None
        try:
            from opentelemetry import context, propagate  # noqa: PLC0415 - if installed
        except ImportError:  # a worker without OpenTelemetry runs the call untraced
            return None
        made = contextvars.copy_context()
        made.run(context.attach, propagate.extract(dict(self.trace)))
        return made

    def unpacked(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        if _was_cancelled(self.key):
            raise asyncio.CancelledError(f"kiln cancelled {self.key} before it started")
        fn, args, kwargs = _loads(self.payload)
        return fn, args, kwargs


def _trace_context() -> tuple[tuple[str, str], ...]:
    """The current trace context as headers, when the driver runs OpenTelemetry."""
    if "opentelemetry.trace" not in sys.modules:
        return ()  # nothing imported it: nothing is traced
    from opentelemetry import propagate  # noqa: PLC0415 - imported already, or cheap

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


async def call_async(call: RemoteCall) -> Any:
    """``await fn(*args, **kwargs)`` on the worker's loop, until done or `cancel_call(key)`."""
    fn, args, kwargs = call.unpacked()
    # Any awaitable: a node through the user's decorator may return a Future.
    coroutine: Coroutine[Any, Any, Any] = as_coroutine(fn(*args, **kwargs))
    # A task of its own: cancelling it leaves the worker's task, which awaits it, intact.
    task = asyncio.get_running_loop().create_task(coroutine, context=call.context())
    _running[call.key] = task
    try:
        return await task
    finally:
        _running.pop(call.key, None)


def call_thread(call: RemoteCall) -> Any:
    """``fn(*args, **kwargs)`` in a worker thread, unless `cancel_call(key)` came first.

    A StopIteration leaves as its carrier (`kiln.errors.carried`): the worker's
    future would refuse it, and the driver's retries, fallback and sync entry
    point see the node's StopIteration through it.
    """
    fn, args, kwargs = call.unpacked()
    traced = call.context()
    try:
        if traced is None:
            return fn(*args, **kwargs)
        return traced.run(fn, *args, **kwargs)
    except StopIteration as stop:
        raise carried(stop) from stop


def cancel_call(key: str) -> bool:
    """Stop the call under `key` on this worker (run on its event loop): whether it ran here."""
    task = _running.get(key)
    if task is not None:
        task.cancel()
        return True
    with _cancelled_lock:
        _cancelled[key] = None
        while len(_cancelled) > _REMEMBERED_CANCELS:
            _cancelled.popitem(last=False)
    return False
