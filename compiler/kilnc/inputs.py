"""find_sources: the files a command line names, directories searched for flows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def find_sources(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The files to compile, and what is wrong with the arguments (usage errors)."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.py") if _declares_flow(p))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"kiln: error: no such file or directory: {path}")
    stems: dict[str, Path] = {}
    for file in files:
        other = stems.setdefault(file.stem, file)
        if other != file:
            problems.append(
                f"kiln: error: {other} and {file} would both be written as {file.stem}.py"
            )
    return files, problems


def _declares_flow(path: Path) -> bool:
    """A cheap filter for directory arguments; the compiler decides for real."""
    try:
        return b"flow" in path.read_bytes()
    except OSError:
        return False
