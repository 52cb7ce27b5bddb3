"""The rules docs/architecture.md states about the tree, held.

Every module's imports are read with `ast` from its source (never imported,
so a lazy import inside a function counts too). The compiler's top level is
its passes, each a module or a package with one verb-named entry point, the
data they hand each other, and a few shared helpers; around them sit the
tools: the `kiln` command (`cli/`), what `kiln run` does (`run/`) and `kiln
graph`'s drawing (`drawing/`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPILER = ROOT / "compiler" / "kilnc"
RUNTIME = ROOT / "runtime" / "kiln"

# What passes hand each other: frozen data, and their printers.
DATA = frozenset({"front", "ir", "effect_ir", "plan", "diagnostics", "source"})
# Small facts and facilities several passes ask, none a pass of its own.
SHARED = frozenset(
    {
        "annotations",  # what a name in an annotation means (storable, schema, ...)
        "changing",  # which calls may change what they are passed (lower, emit)
        "depth",  # the stack and recursion limits libcst and black need
        "facts",  # what a module-level statement binds and reads (shake, reach)
        "final_bindings",  # which statement binds a name last (project, node_values)
        "import_effects",  # which definitions run code at import (facts)
        "graph",  # the dependency graphs the graph passes analyse
        "import_names",  # what the names import statements bind (collect, effects)
        "loads",  # what a module's imports load beyond the names (shake, copies)
        "mutability",  # tables: what builtins and the standard library change
        "names",  # which names code reads and binds
        "renaming",  # code with some of its variables named otherwise
        "project",  # the project's modules, read on demand by the pipeline's front end
        "reach",  # which module-level statements kept code observes
        "reflective",  # code that reaches its module's names by computed names (facts)
        "resolve",  # module names and files
        "syntax",  # small facts about libcst nodes
        "terminal",  # text made safe for a terminal
        "walk",  # a libcst visitor's walk over a tree, which rebuilds nothing
        "writer",  # the emitter's writer and name allocator (Names)
    }
)
# Each pass, and the helper modules only it imports (a package's own modules
# are the pass itself).
PASSES: dict[str, frozenset[str]] = {
    "parse": frozenset({"scopes"}),
    "stars": frozenset(),
    "collect": frozenset({"options", "node_checks", "classes", "node_forms"}),
    "imports": frozenset(),
    "effects": frozenset(),
    "lower": frozenset(),
    "ordering": frozenset(),
    "checks": frozenset(),
    "node_values": frozenset({"helper_nodes"}),
    "loops": frozenset(),
    "fingerprint": frozenset(),
    "result_classes": frozenset(),
    "storable": frozenset(),
    "schema": frozenset(),
    "determinism": frozenset({"set_order"}),
    "schedule": frozenset(),
    "packages": frozenset({"copies", "carried"}),
    "shake": frozenset(),
    "arrange": frozenset(),
    "emit": frozenset(
        {
            *("emit_flow", "emit_blocks", "emit_fan_outs", "emit_compound"),
            *("emit_names", "emit_parts", "emit_nesting", "emit_spawns"),
            *("emit_guards", "emit_narrowing", "emit_shapes", "emit_tasks"),
        }
    ),
    "format": frozenset(),
    "site_lines": frozenset({"black_stable"}),
    "linemap": frozenset(),
    "typecheck": frozenset({"pinpoint"}),
}
HELPERS = {helper: pass_ for pass_, helpers in PASSES.items() for helper in helpers}
# They run the passes in order; nothing else may.
SEQUENCERS = frozenset({"pipeline", "dumps"})
# The package (its version) and `python -m kilnc`.
ENTRY = frozenset({"__init__", "__main__"})
TOOLS = frozenset({"cli", "run", "drawing"})
# What run/ may use of cli/: the command's shared helpers, never a command.
RUN_USES_OF_CLI = frozenset({"interrupts", "outputs", "config", "closed_output"})
# networkx is imported by the passes that build and analyse graphs only.
GRAPH_PASSES = frozenset({"graph", "checks", "loops", "ordering", "schedule"})

MAX_LINES = 450


def modules(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.py"))


def top(path: Path) -> str:
    """The top-level module of kilnc a file belongs to: `lower` for lower/steps.py."""
    parts = path.relative_to(COMPILER).parts
    return parts[0] if len(parts) > 1 else path.stem


def imports(path: Path) -> Iterator[str]:
    """Every module a file imports, wherever in it; `from m import n` is m.n when
    n is a module of m."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{path}: kiln imports absolutely"
            for alias in node.names:
                whole = f"{node.module}.{alias.name}"
                yield whole if _is_module(whole) else node.module


def _is_module(name: str) -> bool:
    parts = name.split(".")
    base = {"kilnc": COMPILER, "kiln": RUNTIME}.get(parts[0])
    if base is None:
        return False
    found = base.joinpath(*parts[1:])
    return found.with_suffix(".py").is_file() or (found / "__init__.py").is_file()


def kilnc_imports(path: Path) -> Iterator[str]:
    """The dotted names below kilnc a compiler file imports (`lower.steps`)."""
    for name in imports(path):
        if name.startswith("kilnc."):
            yield name.removeprefix("kilnc.")


CORE = DATA | SHARED | set(PASSES) | set(HELPERS) | SEQUENCERS


def test_every_top_level_module_has_its_place() -> None:
    """A new module is placed here and in docs/architecture.md, once."""
    found = {top(path) for path in modules(COMPILER)}
    places = [DATA, SHARED, set(PASSES), set(HELPERS), SEQUENCERS, ENTRY, TOOLS]
    unplaced = sorted(found - set().union(*places))
    assert not unplaced, f"in no list of tests/test_architecture.py: {unplaced}"
    twice = [name for name in found if sum(name in place for place in places) > 1]
    assert not twice, twice


def allowed(module: str) -> frozenset[str]:
    """What a module of the compiler's top level may import of kilnc."""
    if module in SEQUENCERS:
        return frozenset(CORE)
    if module in DATA or module in SHARED:
        return DATA | SHARED
    owner = HELPERS.get(module, module)
    return DATA | SHARED | PASSES[owner] | {owner}


@pytest.mark.parametrize(
    "path", [p for p in modules(COMPILER) if top(p) in CORE], ids=str
)
def test_passes_import_data_and_shared_modules_only(path: Path) -> None:
    """Never another pass (the pipeline hands each what it needs), never a tool."""
    module = top(path)
    refused = sorted(
        name
        for name in kilnc_imports(path)
        if name.partition(".")[0] not in allowed(module)
    )
    assert not refused, f"{module} imports {refused}"


def test_the_tools_sit_around_the_compiler() -> None:
    """drawing/ uses neither the command nor kiln run; run/ only the command's
    shared helpers."""
    refused = []
    for path in modules(COMPILER):
        module = top(path)
        for name in kilnc_imports(path):
            head, _, rest = name.partition(".")
            if module == "drawing" and head in {"cli", "run"}:
                refused.append((path.name, name))
            if module == "run" and head == "cli" and rest not in RUN_USES_OF_CLI:
                refused.append((path.name, name))
    assert not refused


def test_networkx_stays_in_the_graph_passes() -> None:
    users = sorted(
        str(path.relative_to(COMPILER))
        for path in modules(COMPILER)
        if any(name.partition(".")[0] == "networkx" for name in imports(path))
    )
    assert users, "no module imports networkx: is this test reading the sources?"
    outside = [user for user in users if top(COMPILER / user) not in GRAPH_PASSES]
    assert not outside, outside


def test_the_runtime_never_imports_the_compiler() -> None:
    found = sorted(
        str(path.relative_to(RUNTIME))
        for path in modules(RUNTIME)
        if any(name.partition(".")[0] == "kilnc" for name in imports(path))
    )
    assert not found, found


def test_no_compiler_module_is_over_450_lines() -> None:
    long = {
        str(path.relative_to(COMPILER)): length
        for path in modules(COMPILER)
        if (length := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, long


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        ("from kilnc.schedule import schedule_flow\n", "schedule"),
        ("def f():\n    from kilnc.cli.main import main\n", "cli.main"),
        ("import networkx as nx\n", None),
    ],
)
def test_these_rules_can_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, refused: str | None
) -> None:
    """A pass that imports another pass, or a tool, even lazily, is refused."""
    shake = tmp_path / "compiler" / "kilnc" / "shake.py"
    shake.parent.mkdir(parents=True)
    shake.write_text(source, encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.COMPILER", shake.parent)
    names = [
        n for n in kilnc_imports(shake) if n.partition(".")[0] not in allowed("shake")
    ]
    if refused is None:
        assert "networkx" in {n.partition(".")[0] for n in imports(shake)}
        assert top(shake) not in GRAPH_PASSES
    else:
        assert names == [refused]
