"""Ctrl-C anywhere in the `kiln` command: exit 130, "kiln: interrupted", no traceback (12.2).

SIGINT is sent to the installed command while it imports its own libraries,
compiles a large source, imports the user's module, runs a sync or an async
flow, writes outputs, and at random moments; what kiln made in the meantime
(the temporary directory of `kiln run`, temporary output files) is gone, and
an output it was replacing is whole. Python's own start-up, before any of
kiln's code runs, is the one moment kiln cannot answer: there the process
ends by the signal itself (status -SIGINT, nothing printed), still without a
traceback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kilnc.source import is_generated_module
from tests.test_cli import KILN, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SLOW_FLOW = """\
import asyncio
import time
from pathlib import Path

from kiln import flow, node


@node
async def wait(marker: str) -> int:
    Path(marker).touch()
    await asyncio.sleep(60)
    return 1


@node
def block(marker: str) -> int:
    Path(marker).touch()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return 1


@flow
async def slow(marker: str) -> int:
    return await wait(marker)


@flow
def blocking(marker: str) -> int:
    return block(marker)


@node
async def nested(marker: str) -> int:
    return blocking(marker)  # the sync entry point: the flow runs on a worker thread


@flow
async def calls_slow(marker: str) -> int:
    return await nested(marker)
"""


def big_source(nodes: int) -> str:
    """A chain of `nodes` async nodes: seconds of compiling."""
    lines = ["from kiln import flow, node", ""]
    for i in range(nodes):
        lines += ["@node", f"async def n{i}(x: int) -> int:", "    return x + 1", ""]
    lines += ["@flow", "async def big(x: int) -> int:"]
    previous = "x"
    for i in range(nodes):
        lines.append(f"    v{i} = await n{i}({previous})")
        previous = f"v{i}"
    return "\n".join([*lines, f"    return {previous}", ""])


def spawn(
    *args: str, cwd: Path, temporary: Path | None = None
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if temporary is not None:
        temporary.mkdir(exist_ok=True)
        env["TMPDIR"] = str(temporary)
    # The command must start as from a shell: an ignored SIGINT (a test runner started
    # in the background) would be inherited through exec; a handler never is.
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        return subprocess.Popen(
            [*KILN, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for(check: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not check():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)


def interrupt(process: subprocess.Popen[str], times: int = 1) -> tuple[str, str]:
    try:
        for _ in range(times):
            process.send_signal(signal.SIGINT)
            time.sleep(0.02)
        return process.communicate(timeout=120)
    finally:
        process.kill()


def assert_interrupted(
    process: subprocess.Popen[str], errors: str, out: str = ""
) -> None:
    assert process.returncode == 130, errors
    assert "kiln: interrupted" in errors
    assert "Traceback" not in errors + out


def loaded(process: subprocess.Popen[str], library: str) -> Callable[[], bool]:
    maps = Path(f"/proc/{process.pid}/maps")

    def check() -> bool:
        try:
            return library in maps.read_text()
        except OSError:
            return False

    return check


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_while_kiln_imports_its_libraries(tmp_path: Path) -> None:
    write(tmp_path / "slow.py", SLOW_FLOW)
    process = spawn("run", "slow.py:slow", f"marker={tmp_path / 'm'}", cwd=tmp_path)
    wait_for(loaded(process, "libcst"), process)  # its native parser: mid-import
    _, errors = interrupt(process)
    assert_interrupted(process, errors)


def test_while_compiling_a_source(tmp_path: Path) -> None:
    write(tmp_path / "big.py", big_source(200))
    temporary = tmp_path / "tmp"
    process = spawn("run", "big.py", "x=1", cwd=tmp_path, temporary=temporary)
    wait_for(lambda: any(temporary.glob("kiln-run-*")), process)
    time.sleep(0.3)
    _, errors = interrupt(process)
    assert_interrupted(process, errors)
    assert list(temporary.iterdir()) == [], "the temporary directory is removed"


def test_while_importing_the_users_module(tmp_path: Path) -> None:
    marker = tmp_path / "importing"
    write(
        tmp_path / "slow_import.py",
        f"import time\nfrom pathlib import Path\n\nPath({str(marker)!r}).touch()\n"
        "time.sleep(60)\nOFFSET = 1\n",
    )
    write(
        tmp_path / "flows.py",
        "from kiln import flow, node\n\nfrom slow_import import OFFSET\n\n\n@node\n"
        "def add(x: int) -> int:\n    return x + OFFSET\n\n\n@flow\n"
        "async def flows(x: int) -> int:\n    return add(x)\n",
    )
    temporary = tmp_path / "tmp"
    process = spawn("run", "flows.py", "x=1", cwd=tmp_path, temporary=temporary)
    wait_for(marker.exists, process)
    _, errors = interrupt(process)
    assert_interrupted(process, errors)
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize(
    ("flow", "node"),
    [("slow", "wait"), ("blocking", "block"), ("calls_slow", "nested")],
)
def test_while_the_flow_runs(tmp_path: Path, flow: str, node: str) -> None:
    write(tmp_path / "slow.py", SLOW_FLOW)
    marker = tmp_path / "running"
    process = spawn("run", f"slow.py:{flow}", f"marker={marker}", cwd=tmp_path)
    wait_for(marker.exists, process)
    began = time.monotonic()
    out, errors = interrupt(process)
    assert_interrupted(process, errors, out)
    assert node in errors, "the summary so far"
    # A sync node blocking the event loop, or a node waiting for a sync entry
    # point's worker thread, is interrupted a second later, not when it returns
    # (a minute): the node's own 60 s are far from any machine's load.
    assert time.monotonic() - began < 30


def test_twice_while_the_flow_runs(tmp_path: Path) -> None:
    write(tmp_path / "slow.py", SLOW_FLOW)
    marker = tmp_path / "running"
    process = spawn("run", "slow.py:slow", f"marker={marker}", cwd=tmp_path)
    wait_for(marker.exists, process)
    out, errors = interrupt(process, times=3)
    assert_interrupted(process, errors, out)


def test_while_compile_writes_outputs(tmp_path: Path) -> None:
    """Interrupted at any point, each output is the old module or the new one, whole."""
    write(tmp_path / "big.py", big_source(120))
    done = subprocess.run(
        [*KILN, "compile", "big.py", "-o", "build", "-q"],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done
    target = tmp_path / "build" / "big.py"
    old = target.read_bytes()
    write(tmp_path / "big.py", big_source(121))
    process = spawn("compile", "big.py", "-o", "build", cwd=tmp_path)
    wait_for(
        loaded(process, "libcst") if Path("/proc").is_dir() else lambda: True, process
    )
    time.sleep(1.0)
    out, errors = interrupt(process)
    assert process.returncode in (0, 130), errors
    assert "Traceback" not in out + errors
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "__init__.py",
        "big.py",
    ], "no temporary left"
    assert is_generated_module(target)
    if process.returncode == 130:
        assert target.read_bytes() == old


# What CPython prints when a Ctrl-C interrupts `pymain`'s zipimport of argv[0].
CPYTHON_ZIP_CHECK = "Failed checking if argv[0] is an import path entry"


def test_across_start_up(tmp_path: Path) -> None:
    """Ctrl-C at evenly spread moments of the first 120 ms, where kiln imports itself.

    Random moments (below) rarely land in the few milliseconds between the
    script's first import of kiln and kiln's own handler; this walks them.
    """
    for step in range(24):
        process = spawn("--help", cwd=tmp_path)
        time.sleep(step * 0.005)
        out, errors = interrupt(process)
        if out and process.returncode != 130:
            # --help finished first; a Ctrl-C in Python's exit after it (which
            # puts SIGINT's default back) kills the process silently. One that
            # lands in CPython's start-up check of whether the script is a zip
            # archive is reported by CPython, which goes on; no kiln code ran yet.
            assert process.returncode in (0, -signal.SIGINT)
            assert errors == "" or (
                errors.startswith(CPYTHON_ZIP_CHECK)
                and errors.rstrip().endswith("KeyboardInterrupt")
                and re.search(r'File "[^"]*/kilnc?/[^"/]+\.py"', errors) is None
            ), errors
        else:
            assert_interrupted_or_not_started(process, errors, out)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(delay=st.floats(min_value=0.0, max_value=2.5))
def test_at_any_moment(tmp_path: Path, delay: float) -> None:
    write(tmp_path / "slow.py", SLOW_FLOW)
    process = spawn("run", "slow.py:slow", f"marker={tmp_path / 'm'}", cwd=tmp_path)
    time.sleep(delay)
    out, errors = interrupt(process)
    assert_interrupted_or_not_started(process, errors, out)


def assert_interrupted_or_not_started(
    process: subprocess.Popen[str], errors: str, out: str
) -> None:
    """Answered by kiln, or stopped before any code of kiln's ran.

    Before kiln's `cli_entry` takes over, Python's own handler answers: in its
    start-up (silently, or as a fatal error of the `site` import) or in the
    lines pip writes into the `kiln` script (`import re`, the import of kiln
    itself). Its traceback may end in the script's import of kiln, the import
    system finding it, but in no module of kiln's packages (a checkout whose
    directory is named `kiln`, holding the venv and its script, is not one).
    """
    if process.returncode == 130:
        assert_interrupted(process, errors, out)
    else:
        assert out == ""
        assert errors == "" or (
            errors.rstrip().endswith("KeyboardInterrupt")
            and re.search(r'File "[^"]*/kilnc?/[^"/]+\.py"', errors) is None
        ), errors


# SIGTERM (`timeout`, `docker stop`, a CI cancel) and SIGHUP (a closed terminal)
# take Ctrl-C's path: the temporary compile directory is removed, a run prints
# its summary so far, and the status is 128 + the signal (trial Q6b, finding 5).
STOPS = [signal.SIGTERM, signal.SIGHUP]


def assert_stopped(
    process: subprocess.Popen[str], stop: signal.Signals, errors: str, out: str = ""
) -> None:
    assert process.returncode == 128 + stop, (process.returncode, errors)
    assert f"kiln: interrupted by {stop.name}" in errors
    assert "Traceback" not in errors + out


def terminate(process: subprocess.Popen[str], stop: signal.Signals) -> tuple[str, str]:
    try:
        process.send_signal(stop)
        return process.communicate(timeout=120)
    finally:
        process.kill()


@pytest.mark.parametrize("stop", STOPS, ids=lambda s: s.name)
@pytest.mark.parametrize(("flow", "node"), [("slow", "wait"), ("blocking", "block")])
def test_stopped_while_the_flow_runs(
    tmp_path: Path, stop: signal.Signals, flow: str, node: str
) -> None:
    write(tmp_path / "slow.py", SLOW_FLOW)
    marker = tmp_path / "running"
    temporary = tmp_path / "tmp"
    process = spawn(
        "run", f"slow.py:{flow}", f"marker={marker}", cwd=tmp_path, temporary=temporary
    )
    wait_for(marker.exists, process)
    began = time.monotonic()
    out, errors = terminate(process, stop)
    assert_stopped(process, stop, errors, out)
    assert node in errors, "the summary so far"
    assert list(temporary.iterdir()) == [], "the temporary directory is removed"
    assert time.monotonic() - began < 30


@pytest.mark.parametrize("stop", STOPS, ids=lambda s: s.name)
def test_stopped_while_compiling_a_source(tmp_path: Path, stop: signal.Signals) -> None:
    write(tmp_path / "big.py", big_source(200))
    temporary = tmp_path / "tmp"
    process = spawn("run", "big.py", "x=1", cwd=tmp_path, temporary=temporary)
    wait_for(lambda: any(temporary.glob("kiln-run-*")), process)
    time.sleep(0.3)
    out, errors = terminate(process, stop)
    assert_stopped(process, stop, errors, out)
    assert list(temporary.iterdir()) == [], "the temporary directory is removed"


NAPPING_FLOW = """\
import time
from pathlib import Path

from kiln import flow, node


@node
def nap(marker: str) -> int:
    Path(marker).touch()
    time.sleep(1)
    return 4


@flow
def napping(marker: str) -> int:
    return nap(marker)
"""


def test_a_signal_ignored_at_start_stays_ignored(tmp_path: Path) -> None:
    """`nohup kiln run ...`: SIGHUP was ignored, and the run goes on through it."""
    write(tmp_path / "napping.py", NAPPING_FLOW)
    marker = tmp_path / "running"
    # An ignored signal is inherited through exec: as nohup starts the command.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        process = spawn("run", "napping.py", f"marker={marker}", cwd=tmp_path)
    finally:
        signal.signal(signal.SIGHUP, previous)
    wait_for(marker.exists, process)
    process.send_signal(signal.SIGHUP)
    out, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors
    assert out == "4\n"
