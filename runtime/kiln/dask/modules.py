"""Which of the driver's modules the Dask workers need, with their sources.

A node function travels to a worker by reference (its module's name and its
own), so the worker must import that module, and whatever the module imports
from the user's project. Example: a flow compiled to build/digest.py, loaded
as ``digest``, whose nodes call ``tokenize`` from the user's ``helpers.py``::

    modules_to_ship(sys.modules["digest"])
    # (ShippedModule(name="digest", path=".../build/digest.py", ...),
    #  ShippedModule(name="helpers", path=".../helpers.py", ...))

A module is shipped when the workers cannot be expected to have it: not the
standard library, not part of an installed distribution (kiln, Dask, numpy:
the workers install those, at the versions the driver has), not ``__main__``
(cloudpickle sends what it defines by value), and when its source can be read.
The walk follows the module's globals: the modules it imported, and the
modules of the functions and classes it imported, transitively; a package
module brings its parent packages along, since importing ``a.b`` imports ``a``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import final

__all__ = ["ShippedModule", "modules_to_ship"]


@final
@dataclass(frozen=True, slots=True)
class ShippedModule:
    """A module's source as the driver has it, under the name the driver imported it by."""

    name: str
    path: str  # the driver's file: what tracebacks name
    source: str
    package: bool
    digest: str  # of the source: a worker re-imports a module whose source changed


def modules_to_ship(module: ModuleType) -> tuple[ShippedModule, ...]:
    """`module` and the modules it reaches that the workers need, `module` first."""
    found: dict[str, ShippedModule] = {}
    pending = [module]
    while pending:
        current = pending.pop()
        name = current.__name__
        if name in found or not _is_users(name):
            continue
        shipped = _shipped(current)
        if shipped is None:
            continue
        found[name] = shipped
        pending.extend(_parents(name))
        pending.extend(_referenced(current))
    return tuple(found.values())


@cache
def _installed() -> frozenset[str]:
    """Top-level names the workers are expected to have: the stdlib and every distribution."""
    return frozenset(
        {
            "__main__",
            "kiln",  # even from a source checkout: the workers need their own kiln
            *sys.stdlib_module_names,
            *sys.builtin_module_names,
            *importlib.metadata.packages_distributions(),
        }
    )


def _is_users(name: str) -> bool:
    return name.partition(".")[0] not in _installed()


def _shipped(module: ModuleType) -> ShippedModule | None:
    """`module` as a worker can import it, or None when its source cannot be read."""
    name = module.__name__
    package = hasattr(module, "__path__")
    path = getattr(module, "__file__", None)
    if path is None:
        # A namespace package has no file and no source: an empty package stands in.
        return (
            ShippedModule(name, f"<namespace {name}>", "", True, "")
            if package
            else None
        )
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):  # a compiled extension, or a module built in memory
        return None
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return ShippedModule(name, str(path), source, package, digest)


def _parents(name: str) -> Iterator[ModuleType]:
    parts = name.split(".")
    for end in range(1, len(parts)):
        parent = sys.modules.get(".".join(parts[:end]))
        if parent is not None:
            yield parent


def _referenced(module: ModuleType) -> Iterator[ModuleType]:
    """The modules that `module`'s globals are, or that its functions and classes come from."""
    for value in list(vars(module).values()):
        if isinstance(value, ModuleType):
            yield value
        elif inspect.isfunction(value) or inspect.isclass(value):
            owner = sys.modules.get(value.__module__)
            if owner is not None:
                yield owner
