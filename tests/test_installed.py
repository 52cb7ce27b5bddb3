"""What users install: kiln's wheel in a fresh venv, used from outside the checkout.

Once per test session the wheel is built (`pip wheel --no-deps` of a copy of
the files that make the distribution, so the checkout gains no build/ and no
stale build/lib gets in) and installed into a new venv with `pip install
WHEEL`, its dependencies from the package index or pip's cache. Every command
then runs in a project directory outside the checkout, with no PYTHONPATH or
MYPYPATH and the checkout on no path:

- `kiln compile` of a project of two modules, and `kiln run` of its flow;
- `kiln check` of a flow whose types do not meet at an edge: exit 1, the error
  at the source line of the call;
- `kiln check` of a good flow: silent, exit 0;
- the venv's own `mypy --strict` on a generated module, from another directory;
- `import kiln` comes from the venv's site-packages;
- a package of several modules with subflows across them, compiled from its
  pyproject.toml: run (compiled on the fly and compiled), its limit held, plain
  mypy on the tree, and `kiln check` finding a type error from anywhere.

Without a network (and an empty pip cache) the wheel cannot be built: the
tests skip, except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

from tests.test_check import HEAD, MISMATCHES, marked_line
from tests.test_packages import make_package_project

ROOT = Path(__file__).resolve().parent.parent
# What `pip wheel` needs of the checkout to build the distribution.
DISTRIBUTION = ("pyproject.toml", "README.md", "LICENSE", "runtime", "compiler")
# pip's words for a package index it cannot reach.
OFFLINE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Name or service not known"
    r"|Network is unreachable|ConnectTimeoutError|Max retries exceeded"
)
# Under xdist's --dist loadgroup (pyproject.toml) one worker runs them all; should
# several, the first to take the lock installs and the others share its venv.
pytestmark = pytest.mark.xdist_group("installed")


@dataclass(frozen=True)
class Installed:
    venv: Path
    build_log: str

    def command(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def run(
    command: list[str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`command` as a user runs it: no PYTHONPATH or MYPYPATH, no other venv active."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "MYPYPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build_and_install(directory: Path) -> dict[str, str]:
    """Build the wheel and install it into directory/venv; what happened, for every worker."""
    source = directory / "source"
    for name in DISTRIBUTION:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(
                origin, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    wheels = directory / "wheels"
    pip = [sys.executable, "-m", "pip"]
    steps = [
        [*pip, "wheel", str(source), "--no-deps", "-w", str(wheels), "-v"],
        [sys.executable, "-m", "venv", str(directory / "venv")],
    ]
    log = ""
    for step in steps:
        done = run(step, cwd=directory, timeout=900)
        log += done.stdout + done.stderr
        if done.returncode:
            return {"status": _failure(log), "log": log}
    (wheel,) = wheels.glob("kiln-*.whl")
    python = str(directory / "venv" / "bin" / "python")
    done = run([python, "-m", "pip", "install", str(wheel)], cwd=directory, timeout=900)
    if done.returncode:
        log += done.stdout + done.stderr
        return {"status": _failure(log), "log": log}
    return {"status": "installed", "log": log}


def _failure(log: str) -> str:
    return "offline" if OFFLINE.search(log) else "failed"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    directory = shared / "installed-kiln"
    with (shared / "installed-kiln.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        outcome = directory / "outcome.json"
        if not outcome.exists():
            directory.mkdir(exist_ok=True)
            outcome.write_text(json.dumps(build_and_install(directory)))
        found = json.loads(outcome.read_text())
    if found["status"] == "offline":
        reason = (
            "the wheel cannot be built or installed: no network to fetch what they need"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (under CI this is a failure, not a skip)")
        pytest.skip(reason)
    assert found["status"] == "installed", found["log"]
    return Installed(directory / "venv", found["log"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory outside the checkout, where a user works."""
    assert not tmp_path.is_relative_to(ROOT)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


NODES = """\
    from kiln import node


    @node
    def words(text: str) -> list[str]:
        return text.split()


    @node
    async def shout(word: str) -> str:
        return word.upper()
    """

REPORT = """\
    from kiln import flow, node

    from .nodes import shout, words


    @node
    def join(parts: list[str]) -> str:
        return " ".join(parts)


    @flow
    async def report(text: str) -> str:
        found = words(text)
        loud = [await shout(w) for w in found]
        return join(loud)
    """

EDGE = HEAD + MISMATCHES["argument"]  # list[str] into list[int], at the `# here` line
GOOD = EDGE.replace(
    "values = await produce(n)", "values = [len(v) for v in await produce(n)]"
)


def test_the_wheel_builds_without_warnings(installed: Installed) -> None:
    assert not re.findall(r"(?i)deprecat|\b\w+Warning\b", installed.build_log)


def test_a_project_of_two_modules_compiles_and_runs(
    installed: Installed, project: Path
) -> None:
    write(project / "pipelines" / "__init__.py", "")
    write(project / "pipelines" / "nodes.py", NODES)
    write(project / "pipelines" / "report.py", REPORT)
    kiln = installed.command("kiln")
    compiled = run([kiln, "compile", "pipelines", "-o", "build"], cwd=project)
    assert compiled.returncode == 0, compiled
    (module,) = (project / "build").rglob("report.py")
    ran = run(
        [kiln, "run", f"{module}:report", "text=hello kiln", "--json", "--no-progress"],
        cwd=project,
    )
    assert ran.returncode == 0, ran
    summary = json.loads(ran.stdout)
    assert (summary["ok"], summary["result"]) == (True, "HELLO KILN")
    assert {n["node"]: n["calls"] for n in summary["nodes"]} == {
        "words": 1,
        "shout": 2,
        "join": 1,
    }


def test_check_reports_a_broken_edge_at_the_source_line(
    installed: Installed, project: Path
) -> None:
    write(project / "edge.py", EDGE)
    kiln = installed.command("kiln")
    assert run([kiln, "compile", "edge.py", "-o", "build"], cwd=project).returncode == 0
    checked = run([kiln, "check", "edge.py", "-o", "build"], cwd=project)
    assert (checked.returncode, checked.stderr) == (1, ""), checked
    assert checked.stdout.splitlines() == [
        f'edge.py:{marked_line(EDGE)}:26: error: Argument 1 to "consume" has incompatible '
        'type "list[str]"; expected "list[int]" (mypy: arg-type)  [KLN501]',
        "    return await consume(values)  # here",
        "                         ^~~~~~",
    ]


def test_check_passes_a_good_flow(installed: Installed, project: Path) -> None:
    write(project / "edge.py", GOOD)
    kiln = installed.command("kiln")
    assert run([kiln, "compile", "edge.py", "-o", "build"], cwd=project).returncode == 0
    checked = run([kiln, "check", "edge.py", "-o", "build"], cwd=project)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


def test_plain_mypy_passes_a_generated_module_from_elsewhere(
    installed: Installed, project: Path
) -> None:
    write(project / "edge.py", GOOD)
    compiled = run(
        [installed.command("kiln"), "compile", "edge.py", "-o", "build"], cwd=project
    )
    assert compiled.returncode == 0, compiled
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    checked = run(
        [installed.command("mypy"), "--strict", str(project / "build" / "edge.py")],
        cwd=elsewhere,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_kiln_is_imported_from_the_venv(installed: Installed, project: Path) -> None:
    script = (
        "import json, sys, sysconfig, kiln, kilnc; print(json.dumps("
        "[sysconfig.get_paths()['purelib'], kiln.__file__, kilnc.__file__, sys.path]))"
    )
    found = run([installed.command("python"), "-c", script], cwd=project)
    assert found.returncode == 0, found
    site_packages, kiln, kilnc, path = json.loads(found.stdout)
    assert Path(site_packages).is_relative_to(installed.venv)
    assert Path(kiln) == Path(site_packages) / "kiln" / "__init__.py"
    assert Path(kilnc) == Path(site_packages) / "kilnc" / "__init__.py"
    assert (Path(site_packages) / "kiln" / "py.typed").is_file()
    assert not [p for p in path if p and Path(p).resolve().is_relative_to(ROOT)]


def test_a_package_of_modules_compiles_runs_and_checks(
    installed: Installed, project: Path
) -> None:
    """The issue's whole path on the wheel: a project of several modules, compiled
    from its pyproject.toml, run, checked from anywhere, and plain mypy on it."""
    root = make_package_project(project / "proj")
    kiln = installed.command("kiln")
    compiled = run([kiln, "compile"], cwd=root)
    assert compiled.returncode == 0, compiled
    assert "warning" not in compiled.stdout + compiled.stderr
    for target in ("app/main.py:outer", "build/app/main.py:outer"):
        ran = run([kiln, "run", target, "n=4", "--json", "--no-progress"], cwd=root)
        assert ran.returncode == 0, ran
        calls = {n["node"]: n["calls"] for n in json.loads(ran.stdout)["nodes"]}
        assert calls == {"ask": 4, "double": 1, "negate": 1}, target
    limited = run(
        [
            installed.command("python"),
            "-c",
            "from build.app.main import outer; from app import nodes; "
            "outer(6); print(nodes.IN_FLIGHT[1])",
        ],
        cwd=root,
    )
    assert (limited.returncode, limited.stdout) == (0, "1\n"), limited
    mypy = run([installed.command("mypy"), "--strict", "build"], cwd=root)
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    sources = ["app/main.py", "app/sub.py", "app/util.py", "tools/util.py"]
    assert run([kiln, "check", *sources, "-o", "build"], cwd=root).returncode == 0
    sub = root / "app" / "sub.py"
    sub.write_text(sub.read_text().replace("return a + 1", "return str(a)"))
    line = sub.read_text().splitlines().index("    return str(a)") + 1
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    for cwd, named, output in (
        (root, sources, "build"),
        (root, sources[::-1], "build"),
        (elsewhere, [str(root / s) for s in sources[::-1]], str(root / "build")),
    ):
        checked = run([kiln, "check", *named, "-o", output], cwd=cwd)
        assert checked.returncode == 1, checked
        assert f"app/sub.py:{line}:12: error: Incompatible return value" in (
            checked.stdout
        )
