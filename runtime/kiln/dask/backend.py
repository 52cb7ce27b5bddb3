"""`DaskBackend`: a flow's node calls as Dask tasks, everything around them in the driver.

The calls of async and `thread=True` nodes become Dask tasks (an ``async
def`` node runs on the worker's event loop, a thread node in its thread
pool); everything else stays in the driver: limits and the Processor admit
each attempt before it is submitted, retries and timeouts wrap it, the ledger
and events are written here (so a call that Dask re-ran after a worker died
is recorded once). `local=True` nodes and plain sync nodes never reach the
backend, and a call passed a `Memory` runs in the driver too, since its writes
must land in the driver's Memory. Results and exceptions come back as the
original objects, notes included. A timeout or a cancelled run cancels the
Dask future and stops the node's coroutine on its worker (Dask alone would let
it run to the end); a thread node's call runs to its end, as it does locally.

The connection. A backend holds one asynchronous `Client` on an event loop of
its own, in a daemon thread, shared by every run on any loop or thread. A
Client belongs to the loop that made it, and a flow's sync entry runs each
call on a fresh loop: a client per loop would connect, ship and probe again on
every call. Runs hand their attempts over with `run_coroutine_threadsafe`,
microseconds beside Dask's own milliseconds. `close()` (or leaving ``with``)
closes the client and the LocalCluster that ``"local"`` started; a backend
left open is closed when it is collected or the interpreter exits.

Before the first call of a node from a module, the module (and the user's
modules it uses, see `kiln.dask.modules`) is sent to every worker with a
worker plugin, and a timed probe imports it on each: Dask itself would hang,
without an error, on a task whose module a worker cannot import. A failure is
a `DaskError` naming the module and the worker, within `probe_timeout`.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any, Final, final

from kiln.dask.errors import DaskUnavailableError
from kiln.errors import OptionError
from kiln.memory import Memory
from kiln.site_table import Site
from kiln.threads import in_own_thread

if TYPE_CHECKING:
    from types import TracebackType

    from distributed import Client
    from distributed.deploy.cluster import Cluster

    from kiln.dask.connection import Connection

__all__ = ["DaskBackend", "backend_from_address"]

_LOCAL: Final = "local"


def backend_from_address(text: str) -> DaskBackend:
    """The backend of ``kiln run --dask TEXT``: a scheduler's address, or ``local``."""
    address = text.strip()
    if not address:
        raise OptionError(
            "--dask needs a scheduler address (tcp://host:8786) or 'local'"
        )
    return DaskBackend(address)


@final
class DaskBackend:
    """A `kiln.Backend` that runs node calls on a Dask distributed cluster.

    `address_or_client` is a scheduler address (``"tcp://host:8786"``),
    ``"local"`` to start a LocalCluster of worker processes on this machine
    for trying it (`workers` and `threads_per_worker` size it), or a
    `distributed.Client` or cluster object whose scheduler to use (on a
    connection of the backend's own, with the same security settings).
    `connect_timeout` bounds reaching the scheduler; `probe_timeout` bounds
    waiting for a first worker and each check that the workers can import a
    node's module. The connection opens at the first call, not here.
    """

    def __init__(
        self,
        address_or_client: str | Client | Cluster,
        *,
        probe_timeout: float = 30.0,
        connect_timeout: float = 30.0,
        workers: int | None = None,
        threads_per_worker: int | None = None,
    ) -> None:
        distributed = _require_distributed()
        for name, seconds in (
            ("probe_timeout", probe_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise OptionError(
                    f"{name} must be a number of seconds; got {seconds!r}"
                )
            if not seconds > 0:
                raise OptionError(f"{name} must be above 0 seconds; got {seconds!r}")
        for name, count in (
            ("workers", workers),
            ("threads_per_worker", threads_per_worker),
        ):
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < 1
            ):
                raise OptionError(
                    f"{name} must be a whole number of at least 1; got {count!r}"
                )
        address, security = _scheduler_of(distributed, address_or_client)
        if address is not None and (
            workers is not None or threads_per_worker is not None
        ):
            raise OptionError(
                "workers and threads_per_worker size the cluster that 'local' starts; "
                f"the cluster at {address} has the workers it was started with"
            )
        from kiln.dask.connection import Settings  # noqa: PLC0415 - needs distributed

        self._settings = Settings(
            address,
            security,
            workers,
            threads_per_worker,
            probe_timeout,
            connect_timeout,
        )
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._closer: weakref.finalize[Any, DaskBackend] | None = None

    def __repr__(self) -> str:
        where = self._settings.address or _LOCAL
        state = "connected" if self._connection is not None else "not connected"
        return f"DaskBackend({where!r}, {state})"

    async def run(
        self, site: Site, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run one attempt of `site`'s node on the cluster; its result or its exception."""
        if any(isinstance(value, Memory) for value in (*args, *kwargs.values())):
            return await _run_here(site, args, kwargs)
        connection = self._connected()
        return await asyncio.wrap_future(
            connection.submit(connection.call(site, args, kwargs))
        )

    def close(self) -> None:
        """Close the connection and the LocalCluster it started; the next run opens a new one."""
        with self._lock:
            closer, self._closer, self._connection = self._closer, None, None
        if closer is not None:
            closer()

    async def aclose(self) -> None:
        """`close`, without blocking the running event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> DaskBackend:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _connected(self) -> Connection:
        from kiln.dask.connection import Connection  # noqa: PLC0415 - needs distributed

        with self._lock:
            if self._connection is None:
                connection = Connection(self._settings)
                self._connection = connection
                # Closed when the backend is collected, or at exit if it never is.
                self._closer = weakref.finalize(self, connection.close)
            return self._connection


def _require_distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415 - the optional extra, imported when used
    except ImportError as error:
        raise DaskUnavailableError(
            f"kiln.dask needs Dask distributed, which cannot be imported ({error}): "
            "pip install 'kiln[dask]'"
        ) from error
    return distributed


def _scheduler_of(distributed: Any, target: object) -> tuple[str | None, object | None]:
    """The scheduler's address (None for 'local') and security settings of `target`."""
    if isinstance(target, str):
        address = target.strip()
        if not address:
            raise OptionError(
                "a Dask scheduler address must not be empty (or use 'local')"
            )
        return (None, None) if address == _LOCAL else (address, None)
    if isinstance(target, distributed.Client):
        if target.scheduler is None:
            raise OptionError(f"{target!r} is not connected to a scheduler")
        return str(target.scheduler.address), target.security
    if isinstance(target, distributed.deploy.Cluster):
        return str(target.scheduler_address), target.security
    raise OptionError(
        "DaskBackend takes a scheduler address ('tcp://host:8786'), 'local', "
        f"a distributed.Client or a cluster; got {target!r}"
    )


async def _run_here(site: Site, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call in the driver, as the flow would make it without a backend."""
    if site.kind == "thread":
        # It waits for a slot of the process's node threads inside the attempt
        # that this call of the backend is.
        return await in_own_thread((), partial(site.fn, *args, **kwargs))
    return await site.fn(*args, **kwargs)
