"""The runtime's layout: the core at the top of kiln/, the optional parts in packages.

The rules kiln/__init__.py's docstring and docs/architecture.md state:

- the runtime never imports the compiler (`kilnc`);
- `import kiln` imports no optional part: not the ledger (nor sqlite3),
  durable runs, the Dask backend, OpenTelemetry tracing;
- the ledger never needs durable runs, and `kiln.dask` imports Dask
  distributed only when a backend first runs a call;
- no module is over 450 lines;
- no module imports another's private name (`from kiln.x import _y`);
- every package of the runtime ships in the wheel (pyproject lists it).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import kiln

RUNTIME = Path(kiln.__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(RUNTIME.rglob("*.py"))
MOST_LINES = 450

# What `import kiln` must leave unimported: the optional parts, and what only they use.
OPTIONAL = ("kiln.ledger", "kiln.durable", "kiln.dask", "kiln.otel")
THIRD_PARTY_OF_OPTIONAL = ("sqlite3", "distributed", "opentelemetry")


def module_name(path: Path) -> str:
    parts = path.relative_to(RUNTIME.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of the module, wherever it is (functions, TYPE_CHECKING)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return [node.module or ""] if node.level == 0 else []


def loaded_by(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `statement`."""
    script = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_the_layout_is_what_it_says() -> None:
    packages = {path.parent.name for path in RUNTIME.glob("*/__init__.py")}
    assert packages == {"dask", "durable", "ledger", "processor"}
    assert len(MODULES) > 30, "the runtime's modules were found"


def test_the_runtime_never_imports_the_compiler() -> None:
    offending = [
        f"{module_name(path)}:{node.lineno}"
        for path in MODULES
        for node in imports(path)
        if any(name.split(".")[0] == "kilnc" for name in imported(node))
    ]
    assert offending == []


def test_importing_kiln_loads_a_name_s_module_when_it_is_first_used() -> None:
    bare = loaded_by("import kiln")
    assert not {name for name in bare if name.startswith("kiln.")}
    # What the compiler reads of the runtime: the options' table, without asyncio.
    options = loaded_by("import kiln.options")
    assert "asyncio" not in options
    assert not {name for name in options if name.startswith("kiln.processor")}


def test_every_name_kiln_exports_is_found_where_its_table_says() -> None:
    """The lazy table and `__all__` (and the imports mypy reads) name the same."""
    assert set(kiln._HOMES) == set(kiln.__all__) - {"__version__"}
    for name, home in kiln._HOMES.items():
        assert getattr(kiln, name) is getattr(sys.modules[home], name), name


def test_no_name_kiln_exports_is_also_a_module_of_it() -> None:
    """`kiln.closing` must stay the function whichever module imported kiln.closers."""
    modules = {path.stem for path in RUNTIME.glob("*.py")}
    modules |= {path.parent.name for path in RUNTIME.glob("*/__init__.py")}
    assert modules & set(kiln.__all__) == set()


def test_using_kiln_s_core_imports_no_optional_part() -> None:
    loaded = loaded_by(
        "import kiln; kiln.Flow, kiln.flow, kiln.Memory, kiln.Processor, kiln.gather"
    )
    assert {"kiln.calls", "kiln.processor"} <= loaded
    optional = sorted(
        name
        for name in loaded
        if name in OPTIONAL
        or name.startswith(tuple(f"{part}." for part in OPTIONAL))
        or name.split(".")[0] in THIRD_PARTY_OF_OPTIONAL
    )
    assert optional == []


def test_the_optional_parts_import_only_what_they_need() -> None:
    ledger = loaded_by("import kiln.ledger")
    assert "sqlite3" in ledger
    assert not {name for name in ledger if name.startswith("kiln.durable")}
    dask = loaded_by("import kiln.dask")
    assert not {name for name in dask if name.split(".")[0] == "distributed"}


def test_no_module_is_over_the_limit() -> None:
    sizes = {module_name(path): len(path.read_text().splitlines()) for path in MODULES}
    assert {name: size for name, size in sizes.items() if size > MOST_LINES} == {}


def test_no_module_imports_another_one_s_private_name() -> None:
    found = set()
    for path in MODULES:
        for node in imports(path):
            if not isinstance(node, ast.ImportFrom) or node.level != 0:
                continue
            if not (node.module or "").startswith("kiln"):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((module_name(path), node.module, alias.name))
    assert found == set()


@pytest.mark.parametrize(
    "package", sorted({module_name(path.parent / "__init__.py") for path in MODULES})
)
def test_every_package_ships(package: str) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert package in pyproject["tool"]["setuptools"]["packages"]
