"""What the examples share: the `kiln` command, and compiling an example on demand.

Each example's `main()` runs its compiled flow beside its source flow; this
compiles the example into `examples/build/` when the output is missing or older
than the source, with the `kiln` command a user would run, and imports it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType


def kiln_command() -> str:
    """The `kiln` of the environment running us, else the one on PATH."""
    beside = Path(sys.executable).with_name("kiln")
    found = str(beside) if beside.is_file() else shutil.which("kiln")
    if found is None:
        raise SystemExit("the `kiln` command is not installed; run: pip install -e .")
    return found


def compiled_module(source: Path) -> ModuleType:
    """Compile `source` into build/ beside it when stale, and import the result."""
    build = source.parent / "build"
    target = build / source.name
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        command = [kiln_command(), "compile", str(source), "-o", str(build), "-q"]
        subprocess.run(command, check=True)
    spec = importlib.util.spec_from_file_location(f"build_{source.stem}", target)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = (
        module  # dataclasses look their module up while it executes
    )
    spec.loader.exec_module(module)
    return module
