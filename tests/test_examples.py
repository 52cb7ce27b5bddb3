"""The examples: compiled by the `kiln` command, formatted, typed, standalone, and right.

For every example in examples/ (digest, fetcher, etl):

- `kiln compile` (the installed command, in a subprocess) writes its module;
- `black --check` accepts the module as written;
- `mypy --strict` passes on it, finding `kiln` where it is installed;
- the compiled flow's result equals the source flow's, run as plain Python
  with `asyncio.run` (the reference semantics), and so do the files it writes;
- the module runs in a fresh interpreter (`python -I`) in which libcst,
  networkx, black, mypy and kilnc cannot be imported;
- the example's own `main()` runs, and so does examples/run.py.

Results are compared as values: each module defines its own dataclasses, so
a dataclass is compared as its class name and its fields.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The examples import their shared helper `_build` as scripts do: from their directory.
sys.path.insert(0, str(EXAMPLES))
BLOCKED = ("libcst", "networkx", "black", "mypy", "kilnc")
# One worker compiles the examples and runs mypy on them, once.
pytestmark = pytest.mark.xdist_group("examples")

Arguments = Callable[
    [str], list[Any]
]  # the flow's arguments for a run labelled "source"/...


def tool(name: str) -> str:
    """A console script of the environment running the tests (else from PATH)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    assert (
        found is not None
    ), f"the `{name}` command is not installed; run: pip install -e '.[test]'"
    return found


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def plain(value: object) -> object:
    """`value` with every dataclass replaced by (class name, {field: value})."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
        return (type(value).__qualname__, fields)
    if isinstance(value, list | tuple):
        return type(value)(plain(item) for item in value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def written(directory: Path) -> dict[str, bytes]:
    if not directory.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


# --- the examples and their inputs (small latencies keep the suite fast) -------------------


@contextmanager
def digest_inputs(source: ModuleType, tmp: Path) -> Iterator[Arguments]:
    corpus = tmp / "corpus"
    corpus.mkdir()
    source.write_sample(corpus)
    yield lambda run: [str(corpus), 0.001]


@contextmanager
def fetcher_inputs(source: ModuleType, tmp: Path) -> Iterator[Arguments]:
    with source.serve_site(delay=0.002) as base:
        yield lambda run: [base]


@contextmanager
def etl_inputs(source: ModuleType, tmp: Path) -> Iterator[Arguments]:
    data = source.write_sales_csv(tmp / "sales.csv", rows=600)

    def arguments(run: str) -> list[Any]:
        out = tmp / run
        out.mkdir()
        return [str(data), str(out), 100, 0.001]

    yield arguments


Inputs = Callable[[ModuleType, Path], AbstractContextManager[Arguments]]

# example name -> (flow name, inputs)
EXAMPLE_FLOWS: dict[str, tuple[str, Inputs]] = {
    "digest": ("digest", digest_inputs),
    "fetcher": ("site_report", fetcher_inputs),
    "etl": ("etl", etl_inputs),
}
NAMES = sorted(EXAMPLE_FLOWS)


@pytest.fixture(scope="module")
def compilation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`kiln compile examples/*.py -o BUILD`, run once: the build directory and kiln's output."""
    build = tmp_path_factory.mktemp("build")
    sources = [str(EXAMPLES / f"{name}.py") for name in NAMES]
    result = subprocess.run(
        [tool("kiln"), "compile", *sources, "-o", str(build)],
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        build,
        f"kiln exited with {result.returncode}\n{result.stdout}{result.stderr}",
    )


@pytest.fixture
def build(compilation: tuple[Path, str]) -> Path:
    return compilation[0]


@pytest.fixture(params=NAMES)
def example(request: pytest.FixtureRequest, compilation: tuple[Path, str]) -> str:
    """An example's name; `kiln compile` wrote its module into `build`."""
    build, output = compilation
    name: str = request.param
    assert f"{name}.py -> " in output, output
    assert (build / f"{name}.py").is_file(), output
    return name


def source_module(name: str) -> ModuleType:
    return load_module(f"kiln_example_source_{name}", EXAMPLES / f"{name}.py")


def compiled_module(build: Path, name: str) -> ModuleType:
    return load_module(f"kiln_example_compiled_{name}", build / f"{name}.py")


# --- the tests -----------------------------------------------------------------------------


def test_every_example_is_covered() -> None:
    found = {
        p.stem
        for p in EXAMPLES.glob("*.py")
        if "@flow" in p.read_text(encoding="utf-8")
    }
    assert found == set(EXAMPLE_FLOWS)


def test_output_passes_black_check(example: str, build: Path) -> None:
    result = subprocess.run(
        [tool("black"), "--check", "--quiet", str(build / f"{example}.py")],
        capture_output=True,
        text=True,
        check=False,
        cwd=build,  # no pyproject.toml above: black's defaults, as kiln formats
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def mypy_report(compilation: tuple[Path, str]) -> tuple[int, str]:
    """`mypy --strict` over every compiled example at once (one start-up instead of three)."""
    build, _ = compilation
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(build)  # no project configuration here: --strict alone
        stdout, stderr, status = api.run(
            [
                "--strict",
                "--no-incremental",
                "--cache-dir",
                str(build / ".mypy_cache"),
                "--show-error-codes",
                *(
                    str(build / f"{name}.py")
                    for name in NAMES
                    if (build / f"{name}.py").is_file()
                ),
            ]
        )
    return status, stdout + stderr


def test_output_passes_mypy_strict(
    example: str, build: Path, mypy_report: tuple[int, str]
) -> None:
    status, report = mypy_report
    mine = [line for line in report.splitlines() if line.startswith(f"{example}.py:")]
    assert not mine, report
    assert status == 0, report


def test_compiled_result_equals_source_result(
    example: str, build: Path, tmp_path: Path
) -> None:
    flow_name, inputs = EXAMPLE_FLOWS[example]
    source = source_module(example)
    compiled = compiled_module(build, example)
    with inputs(source, tmp_path) as arguments:
        expected = asyncio.run(getattr(source, flow_name)(*arguments("source")))
        result = asyncio.run(
            getattr(compiled, flow_name).aforward(*arguments("compiled"))
        )
        again = getattr(compiled, flow_name)(
            *arguments("compiled_sync")
        )  # the sync entry
    assert plain(result) == plain(expected)
    assert plain(again) == plain(expected)
    assert written(tmp_path / "compiled") == written(tmp_path / "source")
    assert written(tmp_path / "compiled_sync") == written(tmp_path / "source")


def test_digest_of_this_repository(build: Path) -> None:
    source = source_module("digest")
    compiled = compiled_module(build, "digest")
    assert source.find_documents(str(ROOT)), "the repository has README.md or docs/*.md"
    expected = asyncio.run(source.digest(str(ROOT), 0.001))
    assert compiled.digest(str(ROOT), 0.001) == expected


# Run in `python -I -c`: blocks the compiler's imports, runs the flow, prints its value.
STANDALONE = """
import dataclasses, importlib.abc, importlib.util, json, sys

BLOCKED = {blocked!r}
preloaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
attempts = []

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
            raise ImportError(f"{{name}} is blocked: a generated module must not need it")
        return None

sys.meta_path.insert(0, Blocker())
module_path, flow_name, arguments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = importlib.util.spec_from_file_location("generated", module_path)
module = importlib.util.module_from_spec(spec)
sys.modules["generated"] = module
spec.loader.exec_module(module)
result = getattr(module, flow_name)(*arguments)

{plain}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({{"preloaded": preloaded, "attempts": attempts, "loaded": loaded}}))
print(repr(plain(result)))
"""


def test_output_runs_without_the_compiler(
    example: str, build: Path, tmp_path: Path
) -> None:
    flow_name, inputs = EXAMPLE_FLOWS[example]
    source = source_module(example)
    script = STANDALONE.format(
        blocked=BLOCKED, plain=textwrap.dedent(inspect.getsource(plain))
    )
    with inputs(source, tmp_path) as arguments:
        expected = asyncio.run(getattr(source, flow_name)(*arguments("source")))
        run = subprocess.run(
            [
                sys.executable,
                "-I",
                "-c",
                script,
                str(build / f"{example}.py"),
                flow_name,
                json.dumps(arguments("compiled")),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
    assert run.returncode == 0, run.stderr
    imports, value = run.stdout.split("\n", 1)
    assert json.loads(imports) == {"preloaded": [], "attempts": [], "loaded": []}
    assert value.strip() == repr(plain(expected))
    assert written(tmp_path / "compiled") == written(tmp_path / "source")


@pytest.mark.parametrize("name", NAMES)
def test_example_main_runs(name: str, build: Path, tmp_path: Path) -> None:
    """`python examples/NAME.py`, on a copy, with its module in build/ beside it."""
    copy = Path(shutil.copy(EXAMPLES / f"{name}.py", tmp_path))
    shutil.copy(EXAMPLES / "_build.py", tmp_path)
    # Compiled already, and newer than the source, so main() imports it as it is
    # (compiling is covered by the run script's test below).
    compiled = Path(shutil.copytree(build, tmp_path / "build")) / f"{name}.py"
    later = copy.stat().st_mtime + 1
    os.utime(compiled, (later, later))
    run = subprocess.run(
        [sys.executable, copy],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "compiled result == source result" in run.stdout


def test_run_script_compiles_every_example_and_runs_the_digest(tmp_path: Path) -> None:
    for path in EXAMPLES.glob("*.py"):
        shutil.copy(path, tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    source_module("digest").write_sample(corpus)
    run = subprocess.run(
        [sys.executable, tmp_path / "run.py", corpus],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in (tmp_path / "build").glob("*.py")) == [
        "__init__.py",
        "digest.py",
        "etl.py",
        "fetcher.py",
    ]
    assert "# Digest" in run.stdout
    assert "compiled result == source result" in run.stdout
