"""find_sources: the files a command line names, directories searched for flows.

A directory's sources are the `.py` files under it that mention `flow`, less
what kiln wrote: nothing under the output directory, no module with kiln's
header, nothing in a hidden directory (`.venv`, `.git`), a virtual environment
(a folder with `pyvenv.cfg`), `site-packages`, `node_modules` or `__pycache__`.
A path that is not a
file or a directory is named for what it is ("a character device"), not
reported missing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from kilnc.cli.outputs import describe
from kilnc.source import is_generated_module


def find_sources(
    paths: Sequence[Path], output: Path | None = None
) -> tuple[list[Path], list[str]]:
    """The files to compile, and what is wrong with the arguments (usage errors)."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError as error:
            problems.append(f"kiln: error: {_missing(path, error)}")
            continue
        if stat.S_ISDIR(mode):
            found = sorted(_search(path, output))
            if not found:
                problems.append(
                    f"kiln: error: {path} is a directory with no flow sources "
                    "(no .py file under it mentions 'flow')"
                )
            files += found
        elif stat.S_ISREG(mode) and is_generated_module(path):
            problems.append(
                f"kiln: error: {path} is a module kiln generated; name its source instead"
            )
        elif stat.S_ISREG(mode):
            files.append(path)
        else:
            problems.append(
                f"kiln: error: {path} is {describe(mode)}, not a source file"
            )
    return _once(files), problems


def _once(files: list[Path]) -> list[Path]:
    """Each file once, though named twice (`pipes` and `pipes/a.py`, or through a link)."""
    seen: set[Path] = set()
    unique = []
    for file in files:
        if real_path(file) not in seen:
            seen.add(real_path(file))
            unique.append(file)
    return unique


def _missing(path: Path, error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        if path.is_symlink():
            return f"{path} is a symbolic link to a path that does not exist"
        return f"no such file or directory: {path}"
    return f"cannot read {path}: {error.strerror or error}"


def _search(directory: Path, output: Path | None) -> Iterator[Path]:
    skipped = output_inside(output, directory)
    for folder, subfolders, names in os.walk(directory):
        subfolders[:] = sorted(
            name for name in subfolders if not _installed(Path(folder) / name)
        )
        for name in sorted(names):
            path = Path(folder) / name
            if not name.endswith(".py") or not _declares_flow(path):
                continue
            if is_generated_module(path):
                continue
            if skipped is None or not real_path(path).is_relative_to(skipped):
                yield path


def _installed(folder: Path) -> bool:
    """A folder of no sources of the project: hidden (`.venv`, `.git`), a
    virtual environment (`venv/`, its `pyvenv.cfg`), installed packages
    (`site-packages`, `node_modules`) or bytecode (`__pycache__`)."""
    name = folder.name
    return (
        name.startswith(".")
        or name in ("__pycache__", "site-packages", "node_modules")
        or (folder / "pyvenv.cfg").is_file()
    )


def output_inside(output: Path | None, directory: Path) -> Path | None:
    """The output directory when it lies inside `directory`; its files are no sources.

    An output that is the directory itself, or above it, is not skipped: its
    sources are found, and writing over them refused (outputs.py).
    """
    if output is None:
        return None
    inner, outer = real_path(output), real_path(directory)
    return inner if inner != outer and inner.is_relative_to(outer) else None


def real_path(path: Path) -> Path:
    """`path` with every link resolved; unlike `Path.resolve`, never raises on a loop."""
    return Path(os.path.realpath(path))


def _declares_flow(path: Path) -> bool:
    """A cheap filter for directory arguments; the compiler decides for real."""
    try:
        return path.is_file() and b"flow" in path.read_bytes()
    except OSError:
        return False
