"""The runtime package: its public names, and nothing imported beyond the stdlib."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kiln

RUNTIME = Path(kiln.__file__).resolve().parent

PUBLIC = {
    "node",
    "flow",
    "Limit",
    "NodeOptions",
    "FlowOptions",
    "Memory",
    "Process",
    "AsyncProcess",
    "StreamProcess",
    "AsyncStreamProcess",
    "forward",
    "aforward",
    "stream",
    "subflow",
    "astream",
    "Func",
    "AsyncFunc",
    "aclosing",
    "closing",
    "KilnError",
    "OptionError",
    "RefusedEntry",
    "ReservedNameError",
    "VisitLimitError",
    "Scope",
    "Child",
    "fan_out",
    "visits",
    "gather",
    "keyed",
    "indexed",
    "amap",
    "run_sync",
    "site",
    "Policy",
    "call",
    "call_sync",
    "call_in_thread",
    "iterate",
    "Event",
    "EventStatus",
    "NodeEvent",
    "Processor",
    "Executor",
    "Pile",
    "DeniedError",
    "Backend",
    "Flow",
    "Site",
    "retrying",
    "retrying_sync",
    "in_thread",
    "LedgerError",
    "UncacheableValue",
    "Ledger",
    "LedgerStats",
    "NodeEntries",
    "RunHits",
    "ask",
    "Suspended",
    "DurableRunError",
    "StaleModuleError",
    "resume",
    "Unanswered",
    "UNANSWERED",
    "falling_back",
    "falling_back_async",
    "falling_back_sync",
}


def test_public_names_and_version() -> None:
    assert set(kiln.__all__) == PUBLIC | {"__version__"}
    assert kiln.__version__ == "0.1.0"
    for name in PUBLIC:
        assert getattr(kiln, name) is not None


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for statement in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(statement, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.level == 0:
            modules.add((statement.module or "").split(".")[0])
    return modules


_EXTRAS = {"dask": {"distributed", "opentelemetry"}, "otel": {"opentelemetry"}}


def test_the_runtime_imports_only_the_standard_library() -> None:
    sources = sorted(RUNTIME.rglob("*.py"))
    assert len(sources) >= 7
    for source in sources:
        outside = {
            module
            for module in imported_modules(source)
            if module not in sys.stdlib_module_names
            and module not in {"kiln", "__future__"}
        }
        # kiln.dask and its modules are the optional extra kiln[dask],
        # kiln.otel the optional extra kiln[otel]; the dask worker side reads the
        # trace context only when OpenTelemetry is there.
        extra = source.relative_to(RUNTIME).parts[0].removesuffix(".py")
        allowed = _EXTRAS.get(extra, set())
        assert outside <= allowed, f"{source.name} imports {outside}"


def test_importing_kiln_loads_no_compiler_and_no_third_party_module() -> None:
    script = (
        "import sys, kiln\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] not in sys.stdlib_module_names"
        " and m.split('.')[0] not in ('kiln', '__main__', '_distutils_hack')"
        " and not m.startswith('__editable__'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_py_typed_ships_with_the_package() -> None:
    assert (RUNTIME / "py.typed").exists()
