"""Module names and files: where a project import lives, found without importing it.

A file's module name follows Python's package rules: walk up while the directory
holds an `__init__.py`; the first directory without one is the import root.
`examples/pipelines/digest.py` with `examples/pipelines/__init__.py` is module
`pipelines.digest` under root `examples/`. `from .nodes import fetch` in it
resolves to `pipelines.nodes`, file `examples/pipelines/nodes.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import final


@final
@dataclass(frozen=True, slots=True)
class ModuleLocation:
    name: str
    root: Path
    is_package: bool  # an `__init__.py`: relative imports start at the module itself


def locate(path: Path) -> ModuleLocation:
    # By the path as written, as Python's import system names a module: a
    # link `app/current.py -> impl.py` is the module `app.current`.
    path = Path(os.path.abspath(path))
    is_package = path.name == "__init__.py"
    parts = [] if is_package else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").exists() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    return ModuleLocation(".".join(parts), directory, is_package)


def absolute_module(location: ModuleLocation, module: str, level: int) -> str | None:
    """The absolute name of `from <level dots><module> import ...`; None past the root,
    as Python refuses it: each dot past the first climbs one package, and a module
    that is in no package has none to start from."""
    if level == 0:
        return module
    package = location.name.split(".") if location.name else []
    if not location.is_package:
        package = package[:-1]
    if level > len(package):
        return None
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def unresolved_relative(location: ModuleLocation) -> str:
    """Why a relative import of the module has no absolute name (`absolute_module`)."""
    if location.is_package or "." in location.name:
        return "this relative import reaches above the top-level package"
    # Python may import it as part of a namespace package (PEP 420), from a
    # directory on its path kiln cannot know: a module's package is its
    # `__init__.py` files.
    return (
        "a relative import in a module that is in no package: its directory has"
        " no __init__.py, and kiln reads no namespace package"
    )


def module_file(root: Path, module: str) -> Path | None:
    """The project file of an absolute module name, or None when it is not the project's."""
    if not module:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None
