"""A reader that stops reading kiln's stdout (``kiln ... | head -1``): quiet, exit 141.

Each command runs with Python's default buffering (PYTHONUNBUFFERED left
out, as a user's shell has it): output smaller than the buffer is written
at the end, where Python's own flush at exit used to fail. The reader closes
the pipe either before kiln writes (``| true``: any output hits it) or after
the first line, when the output is larger than the pipe holds. An output
that cannot take what is left (a full disk) is one line on stderr, exit 1.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from kiln.ledger import Ledger
from tests.test_cli import KILN, write

EXIT_READER_GONE = 141
COMPLAINTS = ("Traceback", "BrokenPipe", "Exception ignored")

FLOWS = '''\
import time
from collections.abc import Iterator

from kiln import flow, node


@node
def step(x: int) -> int:
    return x + 1


@node
def lines(n: int) -> str:
    return "".join(f"line {i}\\n" for i in range(n))


@flow
def chain(x: int) -> int:
    a = step(x)
    b = step(a)
    c = step(b)
    return step(c)


@flow
def text(n: int) -> str:
    """n lines: far more than a pipe holds."""
    return lines(n)


@node
def numbered(n: int) -> Iterator[int]:
    yield from range(n)


@flow
def numbers(n: int) -> Iterator[int]:
    """A stream: each item printed as it comes."""
    for item in numbered(n):
        yield item


@node
def pause(x: int) -> int:
    time.sleep(1)
    return x


@flow
def late_end(x: int) -> Iterator[int]:
    """One item, then a second of work before the run (and its summary) ends."""
    yield x
    pause(x)
'''


def buffered() -> dict[str, str]:
    """The environment, with Python's default buffering of stdout and no ledger."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONUNBUFFERED", "KILN_LEDGER")
    }


def closed_early(
    *args: str | Path, cwd: Path, first_line: bool = False, merged: bool = False
) -> tuple[int, str]:
    """Run kiln with a reader that closes stdout at once or after one line: (status, stderr).

    `merged`: stderr goes to the same pipe (``2>&1 | head -1``).
    """
    process = subprocess.Popen(
        [*KILN, *map(str, args)],
        cwd=cwd,
        env=buffered(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if first_line:
            assert process.stdout.readline()
        process.stdout.close()
        errors = process.stderr.read() if process.stderr is not None else ""
        process.wait(timeout=120)
    finally:
        process.kill()
    assert not any(c in errors for c in COMPLAINTS), errors
    return process.returncode, errors


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipes")
    write(root / "flows.py", FLOWS)
    return root


@pytest.fixture(scope="module")
def big_ledger(project: Path) -> Path:
    """A ledger of 5,000 nodes: `stats` prints a row each, some 180 kB."""
    path = project / "ledger.db"

    async def value() -> int:
        return 1

    async def first() -> None:
        ledger = Ledger.at(path)
        await ledger.call("node0", "v1", value, (), {}, value)
        ledger.close()

    asyncio.run(first())
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO entries (key, node, source, value, checksum, created)"
            " VALUES (?, ?, 'v1', '1', x'00', ?)",
            [(f"key{i}".encode(), f"node{i}", time.time()) for i in range(1, 5000)],
        )
    connection.close()
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["compile", "flows.py", "--dump", "plan"],
        ["compile", "flows.py", "-o", "build", "--format", "json"],
        ["graph", "flows.py"],
        ["run", "flows.py:chain", "x=1"],
        ["run", "flows.py:chain", "x=1", "--json"],
    ],
    ids=["help", "dump", "compile", "graph", "run", "run-json"],
)
def test_a_reader_gone_before_kiln_writes(project: Path, args: list[str]) -> None:
    status, _ = closed_early(*args, cwd=project)
    assert status == EXIT_READER_GONE


def test_ledger_stats_to_a_reader_of_one_line(project: Path, big_ledger: Path) -> None:
    status, errors = closed_early(
        "ledger", "stats", big_ledger, cwd=project, first_line=True
    )
    assert status == EXIT_READER_GONE
    assert errors == ""


def test_a_run_result_to_a_reader_of_one_line(project: Path) -> None:
    status, errors = closed_early(
        "run", "flows.py:text", "n=50000", cwd=project, first_line=True
    )
    assert status == EXIT_READER_GONE
    assert "kiln run text: 1 node call" in errors, "the summary still goes to stderr"


def test_stderr_on_the_closed_pipe_too(project: Path) -> None:
    status, _ = closed_early(
        "run", "flows.py:text", "n=50000", cwd=project, first_line=True, merged=True
    )
    assert status == EXIT_READER_GONE


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_one_line(project: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*KILN, "compile", "flows.py", "--dump", "plan"],
            cwd=project,
            env=buffered(),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done
    assert (
        done.stderr == "kiln: error: cannot write the output: No space left on device\n"
    )


# Under PYTHONUNBUFFERED=1 (many containers and CI runners) every print writes at
# once, so a full disk fails inside the command, not in the last flush; and
# `kiln run --json` flushes its document itself (trial Q6b, finding 9).
FULL_DISK_COMMANDS = [
    ["compile", "flows.py", "--dump", "plan"],
    ["compile", "flows.py", "-o", "build", "--format", "json"],
    ["graph", "flows.py"],
    ["graph", "flows.py", "--format", "dot"],
    ["run", "flows.py:chain", "x=1"],
    ["run", "flows.py:chain", "x=1", "--json"],
    ["run", "flows.py:numbers", "n=3"],
    ["run", "flows.py:numbers", "n=3", "--json"],
    ["runs", "list"],
]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", FULL_DISK_COMMANDS, ids=lambda a: "-".join(a[:3]))
def test_a_full_disk_is_one_line_wherever_it_fails(
    project: Path, args: list[str], unbuffered: bool
) -> None:
    env = buffered() | ({"PYTHONUNBUFFERED": "1"} if unbuffered else {})
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*KILN, *args],
            cwd=project,
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert (done.returncode, done.stderr) == (
        1,
        "kiln: error: cannot write the output: No space left on device\n",
    ), done


def test_stderr_on_the_closed_pipe_too_unbuffered(project: Path) -> None:
    """`kiln run ... 2>&1 | head -1`, each write at once: rich's summary on the
    closed pipe is a reader gone, as any write of kiln's, not rich's exit 1.
    The stream's first item comes a second before the summary, which so is
    written once the reader has gone, however loaded the machine."""
    process = subprocess.Popen(
        [*KILN, "run", "flows.py:late_end", "x=5"],
        cwd=project,
        env=buffered() | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "5\n"
        process.stdout.close()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode == EXIT_READER_GONE


CLOSED_STDOUT_FLOW = """\
from kiln import flow, node


@node
def double(x: int) -> int:
    return 2 * x


@flow
def twice(x: int) -> int:
    return double(x)
"""


@pytest.mark.parametrize(
    "command",
    [
        ["--version"],
        ["compile", "pipeline.py", "-o", "build"],
        ["compile", "pipeline.py", "--dump", "plan"],
        ["graph", "pipeline.py"],
        ["run", "pipeline.py", "x=2"],
    ],
    ids=lambda c: "-".join(c[:2]),
)
def test_a_stdout_closed_before_kiln_starts_is_no_error(
    tmp_path: Path, command: list[str]
) -> None:
    """`kiln ... >&-`: Python has no sys.stdout at all; kiln writes nothing there."""
    (tmp_path / "pipeline.py").write_text(CLOSED_STDOUT_FLOW)
    done = subprocess.run(
        [*KILN, *command],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert "Traceback" not in done.stderr
    assert "internal error" not in done.stderr
    assert done.returncode == 0, done.stderr


# argparse writes help, usage and --version itself and ignores an OSError in
# that write: under PYTHONUNBUFFERED=1, `kiln --help > /dev/full` exited 0.
HELP_COMMANDS = [
    ["--help"],
    ["compile", "--help"],
    ["runs", "list", "--help"],
    ["ledger", "stats", "--help"],
    ["--version"],
]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", HELP_COMMANDS, ids="-".join)
def test_help_on_a_full_disk_is_one_line(
    tmp_path: Path, args: list[str], unbuffered: bool
) -> None:
    env = buffered() | ({"PYTHONUNBUFFERED": "1"} if unbuffered else {})
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*KILN, *args],
            cwd=tmp_path,
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert (done.returncode, done.stderr) == (
        1,
        "kiln: error: cannot write the output: No space left on device\n",
    ), done


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize(
    "args",
    [[], ["compile", "--bogus"], ["runs"], ["run", "flows.py:chain", "--no-such"]],
    ids=["no-command", "unknown-option", "no-action", "run-unknown-option"],
)
def test_a_usage_error_that_cannot_be_written(
    tmp_path: Path, args: list[str], unbuffered: bool
) -> None:
    """The usage goes to stderr, here a full disk: nowhere to say so, but the
    status is a write's that failed (1), not a usage error's (2) as if said."""
    env = buffered() | ({"PYTHONUNBUFFERED": "1"} if unbuffered else {})
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*KILN, *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=full,
            text=True,
            timeout=120,
            check=False,
        )
    assert (done.returncode, done.stdout) == (1, ""), done


@pytest.mark.parametrize("args", HELP_COMMANDS, ids="-".join)
def test_help_to_a_reader_gone_unbuffered(tmp_path: Path, args: list[str]) -> None:
    """`PYTHONUNBUFFERED=1 kiln --help | true`: a reader gone, as any command's."""
    process = subprocess.Popen(
        [*KILN, *args],
        cwd=tmp_path,
        env=buffered() | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        errors = process.stderr.read()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert (process.returncode, errors) == (EXIT_READER_GONE, "")
