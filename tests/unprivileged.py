"""Running the `kiln` command where permissions hold: as an unprivileged user.

A test of a read-only directory means nothing to root, who writes anywhere.
`kiln_as_user` runs the command as the current user when that is not root,
else as root without the capabilities that override file permissions (through
`setpriv`), so a mode's bits bind it as they bind any owner. Dropping the
capabilities rather than switching to `nobody` keeps every path root can
traverse in reach: a clone under a private `mktemp -d` directory, its venv.
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

# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH bypass permission bits; CAP_FOWNER
# bypasses the owner check of chmod and utime.
OVERRIDES = "-dac_override,-dac_read_search,-fowner"


def _without_overrides() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv to drop privileges")
    return [setpriv, f"--bounding-set={OVERRIDES}", "--"]


def kiln_as_user(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command as a user that permissions apply to; no traceback, ever."""
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    switch = _without_overrides() if os.geteuid() == 0 else []
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
    """A directory for permission tests, removed even where a test left it read-only."""
    directory = Path(tempfile.mkdtemp(prefix="kiln-perm-"))
    try:
        yield directory
    finally:
        for path in [directory, *directory.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o777)
        shutil.rmtree(directory, ignore_errors=True)
