"""`kiln run`'s ledger, however it is named, checked before anything runs (trial Q6b).

The ledger of a run is `--ledger FILE`, else `$KILN_LEDGER`, else the
`[tool.kiln] ledger` of the source's project, else `.kiln/ledger.db`. Each is
refused up front as `--ledger` is, `kiln: error: ...` and exit 2, when it is
no kiln ledger or a damaged one (a truncated copy, pages zeroed), so that no
node with side effects runs on a run bound to fail; the check makes and changes
nothing. And `--trace` may name none of them, nor a file SQLite keeps beside
one: the trace, written when the run ends, would replace it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_ledger import kiln
from tests.test_cli_outputs import snapshot

FLOW = """\
from pathlib import Path

from kiln import flow, node


@node
def send(to: str) -> str:
    Path("sent").write_text(to)  # the side effect
    return to


@node(cache=True)
def summarize(x: str) -> str:
    return x.upper()


@flow
def notify(to: str = "boss") -> str:
    return summarize(send(to))
"""

# How each way of naming the ledger is set up in the project, and the message's prefix.
NAMED = {
    "option": ([], {}, "", "--ledger: "),
    "env": ([], {"KILN_LEDGER": "LEDGER"}, "", "KILN_LEDGER: "),
    "config": ([], {}, '[tool.kiln]\nledger = "LEDGER"\n', "[tool.kiln] ledger: "),
    "default": ([], {}, "", "the default ledger: "),
}


def good_ledger(tmp_path: Path) -> bytes:
    """The bytes of a kiln ledger that holds a cached result (several pages)."""
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    result = kiln("run", "flow.py", "--ledger", "good.db", cwd=tmp_path)
    assert result.returncode == 0, result
    data = (tmp_path / "good.db").read_bytes()
    for leftover in (tmp_path / "good.db", tmp_path / "sent"):
        leftover.unlink()
    assert len(data) > 8192, len(data)
    return data


def damaged(data: bytes, how: str) -> bytes:
    if how == "truncated":  # a half-finished copy
        return data[:5000]
    return data[:100] + bytes(len(data) - 100)  # the pages past the header zeroed


def place(project: Path, where: str, data: bytes) -> tuple[list[str], dict[str, str]]:
    """The ledger's bytes where `where` names it: the command's options and environment."""
    path = project / (".kiln/ledger.db" if where == "default" else "cache.db")
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    options, env, config, _ = NAMED[where]
    if where == "option":
        options = ["--ledger", "cache.db"]
    env = {k: str(path) for k in env}
    if config:
        (project / "pyproject.toml").write_text(config.replace("LEDGER", "cache.db"))
    return options, env


@pytest.mark.parametrize("how", ["truncated", "zeroed"])
@pytest.mark.parametrize("where", list(NAMED))
def test_a_damaged_ledger_is_refused_before_anything_runs(
    tmp_path: Path, where: str, how: str
) -> None:
    data = good_ledger(tmp_path)
    options, env = place(tmp_path, where, damaged(data, how))
    before = snapshot(tmp_path)
    result = kiln("run", "flow.py", *options, cwd=tmp_path, env=env)
    assert result.returncode == 2, result
    prefix = NAMED[where][3]
    assert result.stderr.startswith(f"kiln: error: {prefix}the ledger "), result.stderr
    assert "is damaged (" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "sent").exists(), "the side effect ran"
    assert snapshot(tmp_path) == before, "the check made or changed a file"


@pytest.mark.parametrize("where", ["env", "config", "default"])
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello\n", "is not a kiln ledger (not even a SQLite database)"),
        (b"", "is an empty file, not a kiln ledger"),
    ],
)
def test_a_foreign_ledger_is_refused_however_it_is_named(
    tmp_path: Path, where: str, data: bytes, message: str
) -> None:
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    options, env = place(tmp_path, where, data)
    before = snapshot(tmp_path)
    result = kiln("run", "flow.py", *options, cwd=tmp_path, env=env)
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"kiln: error: {NAMED[where][3]}"), result.stderr
    assert message in result.stderr
    assert not (tmp_path / "sent").exists()
    assert snapshot(tmp_path) == before


def test_a_device_named_by_kiln_ledger_is_refused(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    result = kiln("run", "flow.py", cwd=tmp_path, env={"KILN_LEDGER": "/dev/null"})
    assert result.returncode == 2, result
    assert result.stderr == (
        "kiln: error: KILN_LEDGER: /dev/null is a character device, not a ledger\n"
    )
    assert not (tmp_path / "sent").exists()


@pytest.mark.parametrize("where", list(NAMED))
def test_a_good_ledger_is_used_however_it_is_named(tmp_path: Path, where: str) -> None:
    options, env = place(tmp_path, where, good_ledger(tmp_path))
    result = kiln("run", "flow.py", *options, cwd=tmp_path, env=env)
    assert result.returncode == 0, result
    assert result.stdout == "BOSS\n"
    row = next(line for line in result.stderr.splitlines() if " summarize " in line)
    assert row.split()[4] == "1", result.stderr  # a cache hit: the ledger was used


@pytest.mark.parametrize("beside", ["", "-wal", "-shm", "-journal"])
@pytest.mark.parametrize("where", list(NAMED))
def test_the_trace_may_not_be_the_ledger_however_it_is_named(
    tmp_path: Path, where: str, beside: str
) -> None:
    """There or not yet: the run makes the ledger, and the trace would replace it."""
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    options, env = place(tmp_path, where, b"")
    ledger = tmp_path / (".kiln/ledger.db" if where == "default" else "cache.db")
    ledger.unlink()
    trace = f"{ledger.relative_to(tmp_path)}{beside}"
    result = kiln("run", "flow.py", *options, "--trace", trace, cwd=tmp_path, env=env)
    assert result.returncode == 2, result
    assert result.stderr.startswith(
        f"kiln: error: --trace: {trace} is the "
    ), result.stderr
    assert "this run keeps its results in; give the trace another path" in (
        result.stderr
    )
    assert not (tmp_path / "sent").exists()
    assert not ledger.exists()


def test_the_trace_may_not_be_the_configured_ledger_through_another_path(
    tmp_path: Path,
) -> None:
    """Paths are compared resolved: `./sub/../cache.db` is `cache.db`."""
    (tmp_path / "flow.py").write_text(FLOW, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.kiln]\nledger = "cache.db"\n')
    result = kiln("run", "flow.py", "--trace", "./sub/../cache.db", cwd=tmp_path)
    assert result.returncode == 2, result
    assert "is the ledger this run keeps its results in" in result.stderr
