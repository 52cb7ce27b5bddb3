"""Running the `kiln` command where permissions hold: as an unprivileged user.

A test of a read-only directory means nothing to root, who writes anywhere.
`place` makes a directory every user can reach, and `kiln_as_user` runs the
command as the current user when that is not root, else as `nobody` (through
`setpriv`); a test skips when neither can run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_cli import KILN

NOBODY = 65534


def _as_nobody() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv to drop privileges")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def kiln_as_user(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as a user that permissions apply to; no traceback, ever."""
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    switch = _as_nobody() if os.geteuid() == 0 else []
    try:
        result = subprocess.run(
            [*switch, *KILN, *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except PermissionError:
        pytest.skip("the unprivileged user cannot run this kiln")
    if switch and "Permission denied" in result.stderr and "kiln:" not in result.stderr:
        pytest.skip("the unprivileged user cannot run this kiln")
    assert "Traceback" not in result.stdout + result.stderr, result
    return result


@contextmanager
def place() -> Iterator[Path]:
    """A directory that `kiln_as_user`'s user can enter, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="kiln-perm-"))
    directory.chmod(0o777)
    try:
        yield directory
    finally:
        for path in [directory, *directory.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o777)
        shutil.rmtree(directory, ignore_errors=True)
