"""The ledger: the durable results of `cache=True` nodes, and the calls that use them.

A compiled flow hands every call of a cached node to its ledger::

    ledger = Ledger.at(path)                 # one per file per process; opened lazily
    value, hit = await ledger.call("summarize", "3f2a…", summarize, args, kwargs,
                                   compute, classes=(Summary,), run=run_id)
    value, hit = ledger.call_sync("load", "9b1c…", load, args, kwargs, compute, run=run_id)

The key is the node's name, the hash of its source (computed by the compiler
over the node and the project code it reaches: an edited node misses its old
results), and the text of its arguments bound to their parameters, so
``f(1)``, ``f(x=1)`` and a default of 1 are one key (`keys`; `codec`
writes the values). A hit decodes the stored result, rebuilding only the
`classes` the compiler found in the node's return annotation, and answers
with it only when it is of the annotated type and its row's checksum holds;
any other row is a `RefusedEntry` warning and a miss. A miss runs `compute`,
and returns once the result is committed by the writer thread
(`writer`): a process killed at any moment has lost no call that had
returned. A call that fails is not stored, so the next run retries it.

Identical calls in flight at once run once (`flights`): in one run, across
runs, across event loops and threads of the process. `hit` is True when the
call did not run `compute`: the ledger answered it, or an identical call in
flight did. If the caller computing a key is cancelled, a waiting caller
takes over and computes it itself.

A value that cannot be stored, or a result that would not come back as it
was returned, raises `UncacheableValue` (naming the node, the argument or
"its result", and the type), or with ``uncacheable="run"`` runs the call
without the cache (and returns, without storing, such a result).

The first call opens the file (`file.prepare`: a blocking moment,
once per process); reads use one connection per thread and, in WAL mode,
never wait for writers, so a hit never leaves the calling thread.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sqlite3
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, TypeVar, cast, final

from kiln.errors import LedgerError, RefusedEntry, UncacheableValue
from kiln.ledger.codec import Undecodable
from kiln.ledger.file import (
    LedgerStats,
    NodeEntries,
    RunHits,
    checksum,
    connect,
    delete_entries,
    prepare,
    problem,
    read_stats,
)
from kiln.ledger.flights import (
    ABANDONED,
    Failed,
    Flight,
    Flights,
    Landed,
    Outcome,
    Shared,
)
from kiln.ledger.keys import Shape, call_key, result_text, shape_of
from kiln.ledger.writer import Settle, Writer, WriterClosed

__all__ = ["Ledger", "LedgerStats", "NodeEntries", "RunHits", "Uncacheable"]

R = TypeVar("R")
T = TypeVar("T")
Uncacheable = Literal["raise", "run"]

DEFAULT_PATH: Final = Path(".kiln") / "ledger.db"


@final
class _Missing:
    __slots__ = ()


_MISSING: Final = _Missing()


class Ledger:
    """One ledger file, shared by every flow of the process that uses it: get it with `at`."""

    _shared: ClassVar[dict[Path, Ledger]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def at(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        default: str | os.PathLike[str] | None = None,
    ) -> Ledger:
        """The process's ledger at `path`.

        Without a path: ``$KILN_LEDGER``, else `default` (a project's configured
        ledger), else ``.kiln/ledger.db``. Nothing is opened or created until
        the ledger is first used.
        """
        chosen = Path(
            path
            if path is not None
            else os.environ.get("KILN_LEDGER") or default or DEFAULT_PATH
        )
        resolved = chosen.expanduser().resolve()
        with cls._shared_lock:
            ledger = cls._shared.get(resolved)
            if ledger is None:
                ledger = cls._shared[resolved] = cls(resolved)
            return ledger

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open_lock = threading.Lock()
        self._writer: Writer | None = None
        self._flights = Flights()
        # By node, source and Shape (the classes it may rebuild): the refusal of a
        # result, so that no later call pays for one.
        self._refused: dict[tuple[str, str, Shape], UncacheableValue] = {}
        # This thread's connection (.reader), and the generation it belongs to:
        # close() bumps the generation, which makes every thread's reader stale.
        self._local = threading.local()
        self._generation = 0
        self._readers: list[sqlite3.Connection] = []

    def __repr__(self) -> str:
        return f"Ledger.at({str(self.path)!r})"

    # --- the calls compiled flows make -----------------------------------------------

    async def call(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        compute: Callable[[], Awaitable[R]],
        *,
        classes: tuple[object, ...] = (),
        run: str = "",
        uncacheable: Uncacheable = "raise",
    ) -> tuple[R, bool]:
        """The stored result of ``fn(*args, **kwargs)``, else `compute`'s, stored; and hit.

        `classes` are those a stored result may rebuild (the compiler lists them
        from the node's return annotation); `run` names the flow run in the hit
        statistics ("" counts nothing).
        """
        shape = shape_of(fn, classes)
        key = self._key(node, source, shape, args, kwargs, uncacheable)
        if key is None:
            self._tally(run, hit=False)
            return await compute(), False
        writer = self._open()
        while True:
            found = self._found(node, key, shape)
            if found is not _MISSING:
                self._tally(run, hit=True)
                return cast(R, found), True
            flight, leading = self._flights.join(key)
            if leading:
                break
            shared = self._shared_value(await self._flights.wait(flight), shape)
            if shared is not _MISSING:
                self._tally(run, hit=True)
                return cast(R, shared), True
        self._tally(run, hit=False)
        if uncacheable == "raise":
            self._refuse_again(node, source, shape, key, flight)
        try:
            value = await compute()
        except BaseException as error:
            self._flights.land(key, flight, _failure(error))
            raise
        text = self._storable(node, source, shape, value, key, flight, uncacheable)
        if text is None:
            return value, False
        committed, settled = _committed()

        def settle(error: BaseException | None) -> None:  # on the writer thread
            self._flights.land(
                key, flight, Landed(text) if error is None else Failed(error)
            )
            settled.settle(committed, error)

        self._store(writer, key, node, source, text, settle)
        await committed
        return value, False

    def call_sync(
        self,
        node: str,
        source: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        compute: Callable[[], R],
        *,
        classes: tuple[object, ...] = (),
        run: str = "",
        uncacheable: Uncacheable = "raise",
    ) -> tuple[R, bool]:
        """`call` for a sync node: the calling thread waits for the commit (a moment)."""
        shape = shape_of(fn, classes)
        key = self._key(node, source, shape, args, kwargs, uncacheable)
        if key is None:
            self._tally(run, hit=False)
            return compute(), False
        writer = self._open()
        while True:
            found = self._found(node, key, shape)
            if found is not _MISSING:
                self._tally(run, hit=True)
                return cast(R, found), True
            flight, leading = self._flights.join(key)
            if leading:
                break
            if flight.leader == threading.get_ident():
                # Led by an async call suspended on this very thread's loop:
                # blocking for it would block it. Compute alongside; storing twice
                # writes the same row twice.
                flight = Flight(flight.leader)
                break
            shared = self._shared_value(self._flights.wait_sync(flight), shape)
            if shared is not _MISSING:
                self._tally(run, hit=True)
                return cast(R, shared), True
        self._tally(run, hit=False)
        if uncacheable == "raise":
            self._refuse_again(node, source, shape, key, flight)
        try:
            value = compute()
        except BaseException as error:
            self._flights.land(key, flight, _failure(error))
            raise
        text = self._storable(node, source, shape, value, key, flight, uncacheable)
        if text is None:
            return value, False
        committed = threading.Event()
        failures: list[BaseException] = []

        def settle(error: BaseException | None) -> None:  # on the writer thread
            self._flights.land(
                key, flight, Landed(text) if error is None else Failed(error)
            )
            if error is not None:
                failures.append(error)
            committed.set()

        self._store(writer, key, node, source, text, settle)
        committed.wait()
        if failures:
            raise failures[0]
        return value, False

    # --- keys and values ---------------------------------------------------------------

    def _key(
        self,
        node: str,
        source: str,
        shape: Shape,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        uncacheable: Uncacheable,
    ) -> bytes | None:
        """The call's key; None when it runs uncached (arguments `fn` does not take too)."""
        try:
            return call_key(node, source, shape, args, kwargs)
        except UncacheableValue:
            if uncacheable == "run":
                return None
            raise

    def _storable(
        self,
        node: str,
        source: str,
        shape: Shape,
        value: object,
        key: bytes,
        flight: Flight,
        uncacheable: Uncacheable,
    ) -> str | None:
        """The text to store for `value`; None to return it unstored.

        Lands the flight unless there is text to store.
        """
        try:
            return result_text(node, shape, value)
        except UncacheableValue as failure:
            if uncacheable == "run":
                self._flights.land(key, flight, Shared(value))
                return None
            self._flights.land(key, flight, Failed(failure))
            self._refused[node, source, shape] = failure
            raise

    def _refuse_again(
        self, node: str, source: str, shape: Shape, key: bytes, flight: Flight
    ) -> None:
        """Refuse a call, before it runs, of a node one of whose results was refused.

        Its annotation could not tell (`Any`, a base class): the first result
        told, and a second call would only pay for a value it cannot store.
        """
        earlier = self._refused.get((node, source, shape))
        if earlier is None:
            return
        error = UncacheableValue(
            f"{earlier} (an earlier call's; this call of {node!r} did not run: with "
            "cache=True each of its calls would pay for a result the ledger refuses)",
            node=earlier.node,
            what=earlier.what,
            kind=earlier.kind,
        )
        self._flights.land(key, flight, Failed(error))
        raise error

    def _found(self, node: str, key: bytes, shape: Shape) -> object:
        """The stored value of `key`, or _MISSING: none, or one the ledger refuses."""
        try:
            row = (
                self._reader()
                .execute(
                    # As bytes: a damaged value may not even be UTF-8.
                    "SELECT CAST(value AS BLOB), checksum FROM entries WHERE key = ?",
                    (key,),
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            raise problem(self.path, error) from error
        if row is None:
            return _MISSING
        value, stored = row
        if stored != checksum(key, value):
            self._refuse(
                node, key, "its checksum fails: the file was damaged or edited"
            )
            return _MISSING
        try:
            return shape.decode(value.decode("ascii"))
        except UnicodeDecodeError:
            self._refuse(node, key, "its value is not the ASCII text kiln writes")
        except Undecodable as error:
            self._refuse(node, key, f"it is not a value the node may return: {error}")
        return _MISSING

    def _refuse(self, node: str, key: bytes, why: str) -> None:
        warnings.warn(
            RefusedEntry(
                f"the ledger {self.path} holds an entry for node {node!r} (key "
                f"{key.hex()[:16]}...) that it will not answer with, since {why}; the "
                "call runs, and its result replaces the entry",
                node=node,
                key=key,
            ),
            stacklevel=1,
        )

    def _shared_value(self, outcome: Outcome, shape: Shape) -> object:
        """What a waiter of a flight returns; _MISSING to start over (the leader left)."""
        if isinstance(outcome, Failed):
            raise outcome.error
        if isinstance(outcome, Shared):
            return outcome.value
        if isinstance(outcome, Landed):
            # Undecodable: this waiter's fn is another, which computes for itself.
            with suppress(Undecodable):
                return shape.decode(outcome.text)
        return _MISSING

    def _tally(self, run: str, *, hit: bool) -> None:
        if run:
            while not self._open().tally(run, hit=hit):
                pass  # closed meanwhile: the next _open() starts another writer

    def _store(
        self,
        writer: Writer,
        key: bytes,
        node: str,
        source: str,
        text: str,
        settle: Settle,
    ) -> None:
        while not writer.store(key, node, source, text, settle):
            writer = self._open()  # closed meanwhile: the next one takes it

    def _run(
        self, work: Callable[[sqlite3.Connection], T], *, transaction: bool = True
    ) -> T:
        while True:
            try:
                return self._open().run(work, transaction=transaction)
            except WriterClosed:
                continue  # closed meanwhile: the next _open() starts another writer

    # --- the file ----------------------------------------------------------------------

    def _open(self) -> Writer:
        writer = self._writer
        if writer is not None:
            return writer
        with self._open_lock:
            if self._writer is None:
                try:
                    prepare(self.path, create=True)
                except OSError as error:
                    raise problem(self.path, error) from error
                self._writer = Writer(self.path)
            return self._writer

    def _reader(self) -> sqlite3.Connection:
        local = self._local
        reader: sqlite3.Connection | None = getattr(local, "reader", None)
        if reader is None or local.generation != self._generation:
            try:
                reader = connect(self.path, reader=True)
            except sqlite3.Error as error:
                raise problem(self.path, error) from error
            local.reader, local.generation = reader, self._generation
            with self._open_lock:
                self._readers.append(reader)
        return reader

    # --- tools -------------------------------------------------------------------------

    def stats(self, runs: int = 10) -> LedgerStats:
        """Entries per node, size on disk, and the hits and misses of the last `runs` runs.

        A path without a ledger has empty stats (and is not created).
        """
        if self._writer is not None:
            self.flush()
        elif not self._exists():
            return LedgerStats(self.path, 0, (), ())
        try:
            return read_stats(self._reader(), self.path, runs)
        except sqlite3.Error as error:
            raise problem(self.path, error) from error

    def clear(self, node: str | None = None) -> int:
        """Remove the entries of `node` (of every node, and the run history, if None).

        Returns how many entries were removed, and gives their space back.
        """
        if self._writer is None and not self._exists():
            return 0
        removed = self._run(lambda connection: delete_entries(connection, node))
        self._run(lambda c: c.execute("PRAGMA incremental_vacuum").fetchall())
        self._run(
            lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(),
            transaction=False,
        )
        return removed

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work`'s result, run on the writer's connection in a transaction of its own.

        Every result and journal row handed to the writer before is committed first.
        """
        return self._run(work)

    def record(
        self, run: str, key: str, node: str, digest: str, text: str
    ) -> Awaitable[None]:
        """Journal one outcome of durable run `run`; the awaitable is done once it is committed."""
        committed, settled = _committed()
        settle = partial(settled.settle, committed)
        while not self._open().record(run, key, node, digest, text, settle):
            pass  # closed meanwhile: the next _open() starts another writer
        return committed

    def record_sync(
        self, run: str, key: str, node: str, digest: str, text: str
    ) -> None:
        """`record` for a sync call: the calling thread waits for the commit."""
        committed = threading.Event()
        failures: list[BaseException] = []

        def settle(error: BaseException | None) -> None:  # on the writer thread
            if error is not None:
                failures.append(error)
            committed.set()

        while not self._open().record(run, key, node, digest, text, settle):
            pass
        committed.wait()
        if failures:
            raise failures[0]

    def flush(self) -> None:
        """Wait until the hit and miss counts handed to the writer are committed.

        (Results are committed before their calls return; only counts wait.)
        """
        if self._writer is not None:
            self._run(lambda connection: None)

    def close(self) -> None:
        """Commit what waits, stop the writer, close the connections; reopened on next use."""
        with self._open_lock:
            writer, self._writer = self._writer, None
            readers, self._readers = self._readers, []
            self._generation += 1
        if writer is not None:
            writer.close(timeout=30.0)
        for reader in readers:
            with suppress(sqlite3.Error):
                reader.close()

    def _exists(self) -> bool:
        try:
            return prepare(self.path, create=False)
        except OSError as error:
            raise problem(self.path, error) from error

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's thread and connections, never close them."""
        _INHERITED.extend(self._readers)
        self._open_lock = threading.Lock()
        self._writer = None
        self._readers = []
        self._flights = Flights()
        self._generation += 1


# Connections a forked child inherited: closing them there could disturb the parent's.
_INHERITED: list[sqlite3.Connection] = []


def _failure(error: BaseException) -> Outcome:
    """A computation's exception as its waiters see it: shared, or the leader's own end."""
    return Failed(error) if isinstance(error, Exception) else ABANDONED


@final
class _Settled:
    """The commits the writer settled for one event loop, handed back to it in batches.

    One wake-up of the loop per batch, not per commit: a fan-out of a thousand
    cached or journaled calls would otherwise write a thousand bytes to the
    loop's self-pipe, and the loop poll as often.
    """

    __slots__ = ("__weakref__", "_lock", "_loop", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[None], BaseException | None]] = []

    def settle(
        self, committed: asyncio.Future[None], error: BaseException | None
    ) -> None:
        """On the writer thread: `committed` is on disk (or failed with `error`)."""
        with self._lock:
            first = not self._pending
            self._pending.append((committed, error))
        if first:
            with suppress(RuntimeError):  # the loop is closed: nobody waits for these
                self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for committed, error in pending:
            if committed.done():  # its caller was cancelled meanwhile
                continue
            if error is None:
                committed.set_result(None)
            else:
                committed.set_exception(error)


_SETTLED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Settled] = (
    weakref.WeakKeyDictionary()
)


def _committed() -> tuple[asyncio.Future[None], _Settled]:
    """A future of the running loop for a commit, and where the writer settles it."""
    loop = asyncio.get_running_loop()
    settled = _SETTLED.get(loop)
    if settled is None:
        settled = _SETTLED[loop] = _Settled(loop)
    return loop.create_future(), settled


def _close_all() -> None:
    for ledger in list(Ledger._shared.values()):
        with suppress(LedgerError, sqlite3.Error, OSError):
            ledger.close()


def _forget_all() -> None:
    Ledger._shared_lock = threading.Lock()
    for ledger in Ledger._shared.values():
        ledger._after_fork()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_forget_all)
