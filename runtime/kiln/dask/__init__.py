"""Run a compiled flow's node calls on a Dask cluster: ``F(backend=DaskBackend(address))``.

::

    from kiln.dask import DaskBackend

    with DaskBackend("tcp://scheduler:8786") as dask:   # or "local", a Client, a cluster
        report = Digest(backend=dask)("docs")

The optional extra ``kiln[dask]``: `import kiln` never imports this package,
and this package imports Dask distributed only at a backend's first call.
Its modules:

- `backend`: `DaskBackend`, what stays in the driver and what a worker runs;
- `connection`: the backend's one Client, on an event loop of its own;
- `modules`: which of the user's modules a node needs on the workers;
- `worker`: what runs on the workers (the shipped modules, the calls, their
  cancellation);
- `errors`: `DaskError` and `DaskUnavailableError`.
"""

from kiln.dask.backend import DaskBackend, backend_from_address
from kiln.dask.errors import DaskError, DaskUnavailableError

__all__ = ["DaskBackend", "DaskError", "DaskUnavailableError", "backend_from_address"]
