"""The errors of the Dask backend, apart so that its connection can raise them too."""

from kiln.errors import KilnError

__all__ = ["DaskError", "DaskUnavailableError"]


class DaskError(KilnError):
    """The Dask cluster cannot run the flow's calls: unreachable, no workers, a module missing.

    The message names the scheduler, the worker or the module, and what to do.
    """


class DaskUnavailableError(DaskError, ImportError):
    """Dask distributed is not installed where `kiln.dask` was used."""
