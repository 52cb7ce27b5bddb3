"""`kiln check` keeps mypy's cache between checks, and a kept cache hides nothing.

A cold mypy reads the standard library's stubs again, most of a check's
seconds; `kiln check` keeps the cache in `$KILN_CACHE_DIR` (else the user's
cache directory). A check must still see every edit: of the flow's module, of
a module the generated code imports from the source, and back again; two
checks at once share the cache; a cache directory kiln cannot make falls back
to a cold one, and the check is the same.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.test_cli import KILN, kiln, write

TYPES = """\
def label(n: int) -> str:
    return str(n)
"""

FLOW = """\
from kiln import flow, node

from types_of import label


@node
async def count(text: str) -> int:
    return len(text)


@flow
async def titled(text: str) -> str:
    n = await count(text)
    return label(n)
"""


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "types_of.py", TYPES)
    write(root / "app.py", FLOW)
    return root


def check(root: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """The module compiled again, then checked."""
    assert kiln("compile", "app.py", "-o", "build", cwd=root).returncode in (0, 1)
    return kiln("check", "app.py", "-o", "build", cwd=root, KILN_CACHE_DIR=str(cache))


def test_a_kept_cache_sees_every_edit(tmp_path: Path) -> None:
    root, cache = project(tmp_path), tmp_path / "cache"
    assert check(root, cache).returncode == 0
    assert any(cache.rglob("*.json")), "mypy kept what it learned"
    # The flow's own module: its result is no longer what the flow returns.
    write(root / "app.py", FLOW.replace("return label(n)", "return n"))
    broken = check(root, cache)
    assert broken.returncode == 1
    assert "app.py:14:" in broken.stdout
    assert "[KLN501]" in broken.stdout
    write(root / "app.py", FLOW)
    assert check(root, cache).returncode == 0
    # A module the generated code imports from the source, edited under it.
    write(
        root / "types_of.py", TYPES.replace("-> str", "-> int").replace("str(n)", "n")
    )
    broken = check(root, cache)
    assert broken.returncode == 1
    assert "[KLN501]" in broken.stdout
    write(root / "types_of.py", TYPES)
    assert check(root, cache).returncode == 0


def test_the_same_module_checked_before_elsewhere_reports_its_error_again(
    tmp_path: Path,
) -> None:
    """Another project's `build.app` of the same text, or this one's checked
    again: mypy's kept cache would take it as checked, and say nothing."""
    cache = tmp_path / "cache"
    for copy in ("first", "second", "second"):
        root = project(tmp_path / copy)
        write(root / "app.py", FLOW.replace("return label(n)", "return n"))
        broken = check(root, cache)
        assert broken.returncode == 1, (copy, broken.stdout)
        assert "app.py:14:" in broken.stdout


def test_two_checks_at_once_share_the_cache(tmp_path: Path) -> None:
    good, bad = project(tmp_path / "good"), project(tmp_path / "bad")
    write(bad / "app.py", FLOW.replace("return label(n)", "return n"))
    for root in (good, bad):
        assert kiln("compile", "app.py", "-o", "build", cwd=root).returncode == 0
    cache = tmp_path / "cache"
    running = [
        subprocess.Popen(
            [*KILN, "check", "app.py", "-o", "build"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "KILN_CACHE_DIR": str(cache)},
        )
        for root in (good, bad, good, bad)
    ]
    outcomes = [
        (process.communicate(timeout=120)[0], process.returncode) for process in running
    ]
    for (output, status), expected in zip(outcomes, (0, 1, 0, 1), strict=True):
        assert status == expected, output
        assert "Traceback" not in output


def test_a_cache_directory_kiln_cannot_make_falls_back_to_a_cold_one(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    blocked = write(tmp_path / "a-file", "not a directory\n")
    assert check(root, blocked).returncode == 0
    write(root / "app.py", FLOW.replace("return label(n)", "return n"))
    broken = check(root, blocked)
    assert broken.returncode == 1
    assert "[KLN501]" in broken.stdout
    assert blocked.read_text() == "not a directory\n"
