"""Who owns a durable run: a live process on this host, or nobody any more."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiln.durable.journal import alive

HOST = socket.gethostname()


def test_no_owner_and_this_process_are_not_live_owners() -> None:
    assert not alive("")
    assert not alive(f"{HOST}:{os.getpid()}")
    assert alive(
        f"another-host-{HOST}:1"
    ), "another host cannot be asked: taken as live"


def test_a_running_process_owns_its_run_until_it_exits() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert alive(f"{HOST}:{child.pid}")
    finally:
        child.kill()
        child.wait()
    assert not alive(f"{HOST}:{child.pid}")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_killed_process_not_reaped_yet_owns_nothing() -> None:
    """Right after SIGKILL the process is a zombie until its parent waits for it."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        child.kill()
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 30
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        assert not alive(f"{HOST}:{child.pid}")
    finally:
        child.wait()
