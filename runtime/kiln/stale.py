"""Whether the cached nodes a compiled module imports from their source are as compiled.

A cached node's ledger key carries the fingerprint the compiler made of its
code. A node of a module without flows is not copied into the generated
module, which imports it from its source: edit that file and run the module
without compiling it again, and the new code's results are stored under the
old code's key, where they stay after the edit is undone and the module
compiled again, answering as hits. So the compiler writes on such a site
the sha256 of the node's file as it read it (``file_sha256``), and a run
that caches checks the file first::

    check_sources(Main, sites)    # StaleModuleError: app/nodes.py changed since

Each file is hashed once per process. A file that cannot be read (a
deployment without sources), or a node that does not come from the file the
compiler read (a decorator that hides the function), is not checked. Nor
are the project modules a node reaches, which its fingerprint covers and
which run from their source too (docs/ledger.md §2 says so): checking them
needs their hashes by module name in the site, and a run hashing the file of
each in `sys.modules`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import StaleModuleError

if TYPE_CHECKING:
    from kiln.site_table import Site

__all__ = ["check_sources"]

# By file, the sha256 of its bytes when first checked; None when it cannot be read.
_HASHED: dict[str, str | None] = {}


def check_sources(kind: type, sites: Iterable[Site]) -> None:
    """Refuse, before a run of flow class `kind` caches, a node run from an edited file."""
    for site in sites:
        if site.file_sha256 is None or (path := _defining_file(site)) is None:
            continue
        digest = _HASHED[path] if path in _HASHED else _hash(path)
        if digest is not None and digest != site.file_sha256:
            module = kind.__module__
            raise StaleModuleError(
                f"{module} is stale: {path}, where its cached node {site.node!r} is "
                f"defined, changed after {module} was compiled; {module} runs the node "
                "from that file but keys its results by the code it was compiled "
                "from, so the ledger would keep the new code's results under the old "
                "code's key. Run kiln compile again",
                module=module,
                source=path,
                node=site.node,
            )


def _defining_file(site: Site) -> str | None:
    """The file `site`'s node runs from, if it is the one the compiler read."""
    try:
        code = getattr(inspect.unwrap(site.fn), "__code__", None)
    except ValueError:  # __wrapped__ in a cycle
        return None
    if code is None:
        return None
    path: str = code.co_filename
    compiled = site.defined.rpartition(":")[0]  # relative to the project's root
    if not f"/{Path(path).as_posix()}".endswith(f"/{compiled}"):
        return None
    return path


def _hash(path: str) -> str | None:
    try:
        digest: str | None = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        digest = None
    _HASHED[path] = digest
    return digest
