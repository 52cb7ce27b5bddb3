"""A DaskBackend's connection: one Client on an event loop of its own, and what it shipped.

Made by `kiln.dask.DaskBackend` at its first call, once Dask distributed is
known to be importable. Everything Dask sees happens on the connection's
loop, in a daemon thread; a run on any other loop hands each attempt over::

    result = await asyncio.wrap_future(connection.submit(connection.call(site, args, kwargs)))

`call` opens the connection once (a LocalCluster first, for ``"local"``),
waits for a worker, checks that the workers import the driver's kiln, ships
the node's module once (`kiln.dask.modules`, `kiln.dask.worker.Shipment`)
and probes that every worker imports it, then submits the attempt and awaits
it. An awaiting run that is cancelled cancels the Dask future and, through
`kiln.dask.worker.cancel_call`, the coroutine on the worker. A step shared by
concurrent calls (opening, shipping a module) runs once; when it failed, the
next call starts it again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, TypeVar, final

import distributed
from distributed import Client, Future, LocalCluster

import kiln
from kiln.dask.errors import DaskError
from kiln.dask.modules import modules_to_ship
from kiln.dask.worker import (
    RemoteCall,
    Shipment,
    call_async,
    call_thread,
    cancel_call,
    probe,
)
from kiln.site_table import Site

__all__ = ["Connection", "Settings"]

T = TypeVar("T")
_log: Final = logging.getLogger("kiln.dask")
_CLOSE_TIMEOUT: Final = (
    30.0  # seconds that closing the client and a local cluster may take
)
# Evaluated on each worker by `eval`, a builtin that every worker can unpickle.
_KILN_ON_WORKER: Final = "__import__('kiln.dask.worker').__version__"
# Client and LocalCluster are untyped callables in distributed: called as Any.
_untyped: Any = distributed


@final
@dataclass(frozen=True, slots=True)
class Settings:
    """Where to connect and how long to wait: what a connection is opened from."""

    address: str | None  # None: start a LocalCluster
    security: object | None
    workers: int | None
    threads_per_worker: int | None
    probe_timeout: float
    connect_timeout: float


@final
class Connection:
    """One Client, on an event loop of its own in a daemon thread; what it has shipped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.client: Client | None = None
        self.cluster: LocalCluster | None = None
        self._opening: asyncio.Task[Client] | None = None
        self._shipping: dict[str, asyncio.Task[None]] = {}
        self._ready_functions: set[Callable[..., Any]] = (
            set()
        )  # their modules are shipped
        self._sent: dict[str, str] = {}  # module name -> digest of the source sent
        self._probed: set[str] = set()  # modules every worker imported
        self._cancels: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(
            target=self._serve, name="kiln-dask", daemon=True
        )
        self._thread.start()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        try:
            return asyncio.run_coroutine_threadsafe(work, self.loop)
        except RuntimeError:  # the loop is closed
            work.close()
            raise DaskError(
                "this DaskBackend's connection was closed during the run"
            ) from None

    async def call(
        self, site: Site, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        client = self.client
        if client is None or site.fn not in self._ready_functions:
            client = await self._ready(site)
        key = f"kiln-{site.node}-{uuid.uuid4().hex}"
        remote = call_async if site.kind == "async" else call_thread
        try:
            future: Future[Any] = client.submit(
                remote, RemoteCall.of(key, site.fn, args, kwargs), key=key, pure=False
            )
        except Exception as error:
            error.add_note(
                f"kiln could not send the call of node {site.node!r} to Dask"
            )
            raise
        # The client batches concurrent gathers into one task that the first gatherer
        # awaits; cancelling that gatherer before the task runs leaves the client
        # awaiting a cancelled task forever after, so that every later result is a
        # CancelledError. The gather is therefore never cancelled: a cancelled run
        # stops waiting for it and cancels the Dask future instead.
        gathering = asyncio.ensure_future(_result_of(future))
        try:
            return await asyncio.shield(gathering)
        except asyncio.CancelledError:
            if not gathering.done():  # this run was cancelled
                gathering.add_done_callback(_retrieve)
                self._stop(client, future, key)
                raise
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            raise DaskError(
                f"the call of node {site.node!r} was cancelled on the Dask side, not by "
                "this run: a worker or the Dask client stopped it"
            ) from None
        except concurrent.futures.CancelledError as error:  # Dask's, an Exception
            raise DaskError(
                f"Dask dropped the call of node {site.node!r} ({error}): the backend was "
                "closed during the run, or the scheduler lost the task"
            ) from error

    def close(self) -> None:
        """Close the client and a local cluster, then stop the loop and its thread."""
        if not self._thread.is_alive():
            return
        if threading.current_thread() is self._thread:
            # The backend was collected on this very thread: close without waiting on it.
            closing = self.loop.create_task(self._close())
            closing.add_done_callback(lambda _: self.loop.stop())
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(
                _CLOSE_TIMEOUT
            )
        except Exception:  # closing must finish; what failed is logged
            _log.warning(
                "closing the Dask client did not finish cleanly", exc_info=True
            )
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()

    # --- on the connection's loop -------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            if left:
                self.loop.run_until_complete(asyncio.wait(left))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    async def _ready(self, site: Site) -> Client:
        """The client, once connected and once `site`'s module is on every worker."""
        if self._opening is None or _failed(self._opening):
            self._opening = asyncio.create_task(self._open())
        client = await asyncio.shield(self._opening)
        # A function not seen before may come from a module reloaded since: ship again
        # what changed. Concurrent first calls share one shipment.
        name = site.fn.__module__
        shipping = self._shipping.get(name)
        if shipping is None or shipping.done():
            shipping = asyncio.create_task(self._ship(client, name, site.node))
            self._shipping[name] = shipping
        await asyncio.shield(shipping)
        self._ready_functions.add(site.fn)
        return client

    async def _open(self) -> Client:
        try:
            return await self._connect()
        except BaseException:
            await self._discard()  # a later call starts over, with nothing left running
            raise

    async def _connect(self) -> Client:
        settings = self.settings
        address = settings.address
        if address is None:
            self.cluster = await _untyped.LocalCluster(
                n_workers=settings.workers,
                threads_per_worker=settings.threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",
                asynchronous=True,
            )
            address = str(self.cluster.scheduler_address)
        try:
            self.client = await _untyped.Client(
                address,
                asynchronous=True,
                timeout=settings.connect_timeout,
                security=settings.security,
                set_as_default=False,
            )
        except (OSError, TimeoutError) as error:
            raise DaskError(
                f"cannot reach the Dask scheduler at {address} within "
                f"{settings.connect_timeout:g} s ({error}): start one there with "
                "`dask scheduler`, or use 'local' to start a cluster on this machine"
            ) from error
        client: Client = self.client
        try:
            # A coroutine in asynchronous mode; the stub says None.
            await client.wait_for_workers(  # type: ignore[func-returns-value, misc]
                1, timeout=settings.probe_timeout
            )
        except TimeoutError:
            raise DaskError(
                f"no worker joined the Dask scheduler at {address} within "
                f"{settings.probe_timeout:g} s: start workers with "
                f"`dask worker {address} --nthreads N`"
            ) from None
        await self._check_kiln(client, address)
        return client

    async def _check_kiln(self, client: Client, address: str) -> None:
        """The scheduler and every worker import the driver's kiln: they unpickle its calls."""
        timeout = self.settings.probe_timeout
        versions: dict[str, object] = {}
        try:
            async with asyncio.timeout(timeout):
                answers = await client.run(eval, _KILN_ON_WORKER, on_error="return")
                versions.update((f"worker {w}", v) for w, v in answers.items())
                try:
                    on_scheduler = await client.run_on_scheduler(  # type: ignore[no-untyped-call]
                        eval, _KILN_ON_WORKER
                    )
                except Exception as error:  # reported below, as a worker's would be
                    on_scheduler = error
                versions[f"scheduler {address}"] = on_scheduler
        except TimeoutError:
            raise DaskError(
                f"the Dask scheduler at {address} and its workers did not answer within "
                f"{timeout:g} s whether they can import kiln"
            ) from None
        for where, version in sorted(versions.items()):
            if isinstance(version, BaseException):
                raise DaskError(
                    f"the Dask {where} cannot import kiln.dask.worker "
                    f"({type(version).__name__}: {version}): install kiln[dask] "
                    f"{kiln.__version__}, the driver's, where the scheduler and the "
                    "workers run"
                )
            if version != kiln.__version__:
                raise DaskError(
                    f"the Dask {where} runs kiln {version} and the driver kiln "
                    f"{kiln.__version__}: install the driver's version there"
                )

    async def _ship(self, client: Client, name: str, node: str) -> None:
        """Send module `name` and the user's modules it uses to every worker; probe them."""
        module = sys.modules.get(name)
        if name == "__main__" or module is None:
            return  # cloudpickle sends what __main__ defines by value
        shipped = modules_to_ship(module)
        fresh = [m for m in shipped if self._sent.get(m.name) != m.digest]
        if not fresh and name in self._probed:
            return
        names = [name, *(m.name for m in shipped if m.name != name)]
        timeout = self.settings.probe_timeout
        try:
            async with asyncio.timeout(timeout):
                for each in fresh:
                    await client.register_plugin(
                        Shipment(each), name=f"kiln-module:{each.name}"
                    )
                answers = await client.run(probe, names, on_error="return")
        except TimeoutError:
            raise DaskError(
                f"the Dask workers did not confirm within {timeout:g} s that they can "
                f"import module {name!r}, which node {node!r} comes from; check the "
                "workers' logs, and that they run the driver's Python and packages"
            ) from None
        for worker, answer in sorted(answers.items()):
            if answer is None:
                continue
            failed, why = (
                answer
                if isinstance(answer, tuple)
                else (name, f"{type(answer).__name__}: {answer}")
            )
            raise DaskError(
                f"Dask worker {worker} cannot import module {failed!r}, needed by node "
                f"{node!r} ({why}): install on the workers the packages it imports, "
                "at the driver's versions (kiln sends the driver's own modules, not "
                "installed packages)"
            )
        self._sent.update((m.name, m.digest) for m in fresh)
        self._probed.add(name)

    def _stop(self, client: Client, future: Future[Any], key: str) -> None:
        """Cancel the Dask future, and the node's coroutine on the worker running it."""
        task = self.loop.create_task(self._cancel(client, future, key))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _cancel(self, client: Client, future: Future[Any], key: str) -> None:
        try:
            await future.cancel()  # type: ignore[no-untyped-call]  # a coroutine here
            async with asyncio.timeout(self.settings.probe_timeout):
                await client.run(cancel_call, key, on_error="ignore")
        except Exception:  # the run has moved on; the worker may be gone
            _log.warning("could not cancel %s on the Dask workers", key, exc_info=True)

    async def _close(self) -> None:
        if self._cancels:
            await asyncio.wait(self._cancels, timeout=self.settings.probe_timeout)
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            await asyncio.wait((self._opening,))
        await self._discard()

    async def _discard(self) -> None:
        client, cluster, self.client, self.cluster = (
            self.client,
            self.cluster,
            None,
            None,
        )
        # Both return a coroutine in asynchronous mode; their stubs say otherwise.
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            await cluster.close()  # type: ignore[misc]


async def _result_of(future: Future[T]) -> T:
    result: T = await future  # Future.__await__ is untyped in distributed
    return result


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark an abandoned gather's outcome as seen: asyncio would log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _failed(task: asyncio.Task[Any]) -> bool:
    """A shared step that ended without success, so the next call starts it again."""
    return task.done() and (task.cancelled() or task.exception() is not None)
