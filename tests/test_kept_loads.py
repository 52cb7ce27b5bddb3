"""What a module runs as it loads, beyond the names kept code reads: the output runs it too.

Trial q12 found the tree shaker and the import rewriter leaving out of the
compiled module what the source module runs: an import whose name nothing
uses (`from . import plugins  # registers handlers`), the source package's
`__init__.py` (`os.environ.setdefault(...)` there), the definitions a node
finds through `globals()`, the import that makes a submodule the attribute
a kept package is read through (`steps.sub.inner(n)`), and a submodule
without output of a compiled package (`from .steps import ingest`, which
pointed at the output package, where there is no `ingest`).

Each case is a project of packages compiled with the `kiln` command, its
flow run as source and compiled, each in a fresh interpreter (what loads
is process-wide): the results are equal. `SHAPES` crosses what a module
does as it loads with how the flow's module comes to load it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent

import pytest

KILN = [sys.executable, "-m", "kilnc"]

# What the loaded module does as it loads; `probe` (PROBE) sees each.
EFFECTS: dict[str, str] = {
    "call": 'from probe_{v} import SEEN\n\nSEEN.append("called")\n',
    "decorator": (
        "from probe_{v} import register\n\n\n@register\n"
        'def hello() -> str:\n    return "registered"\n'
    ),
    "subclass": "from probe_{v} import Plugin\n\n\nclass Csv(Plugin):\n    pass\n",
    "environment": 'import os\n\nos.environ.setdefault("KILN_{v}", "set")\n',
    "precision": "import decimal\n\ndecimal.getcontext().prec = 6\n",
    "logging": 'import logging\n\nlogging.getLogger("{v}").setLevel(logging.ERROR)\n',
    "file": 'open("{root}/probe_{v}.mark", "w").write("written")\n',
}

PROBE = """\
import decimal
import logging
import os
from collections.abc import Callable
from pathlib import Path

SEEN: list[str] = []
MARK = Path(__file__).with_suffix(".mark")


def register(fn: Callable[[], str]) -> Callable[[], str]:
    SEEN.append(fn())
    return fn


class Plugin:
    def __init_subclass__(cls) -> None:
        SEEN.append(cls.__name__)


def probe() -> list[str]:
    third = str(decimal.Decimal(1) / decimal.Decimal(3))
    level = logging.getLogger("{v}").level
    written = MARK.read_text() if MARK.exists() else "none"
    MARK.unlink(missing_ok=True)  # for the next run
    return [*SEEN, os.environ.get("KILN_{v}", "unset"), third, str(level), written]
"""

FLOWS = """\
{head}from kiln import flow, node
from probe_{v} import probe

{imports}


@node
def look() -> list[str]:
    return probe()


@flow
def run() -> list[str]:
    return look()
"""

Files = dict[str, str]
# How the flow's module loads the module with the effect `e`: its files, by
# path in the package `v`, and the flow module's dotted path there.
Form = Callable[[str, str], tuple[Files, str]]


def _side(imports: str, head: str = "") -> Form:
    """The effect in `v/side.py`; the flow module imports it as `imports` says."""

    def form(v: str, effect: str) -> tuple[Files, str]:
        flows = FLOWS.format(v=v, head=head, imports=imports.format(v=v))
        return {"side.py": effect + "\nUNUSED = 1\n", "flows.py": flows}, "flows"

    return form


def _through_a_module(v: str, effect: str) -> tuple[Files, str]:
    loader = (
        "from . import side  # noqa: F401\n\n\ndef unused() -> int:\n    return 1\n"
    )
    flows = FLOWS.format(v=v, head="", imports="from . import loader  # noqa: F401")
    return {"side.py": effect, "loader.py": loader, "flows.py": flows}, "flows"


def _subpackage(v: str, effect: str) -> tuple[Files, str]:
    flows = FLOWS.format(v=v, head="", imports="from . import side  # noqa: F401")
    init = "from . import impl  # noqa: F401\n"
    return {
        "side/__init__.py": init,
        "side/impl.py": effect,
        "flows.py": flows,
    }, "flows"


def _package_init(v: str, effect: str) -> tuple[Files, str]:
    """The effect in the flow module's own package: nothing imports it by name."""
    return {
        "__init__.py": effect,
        "flows.py": FLOWS.format(v=v, head="", imports=""),
    }, "flows"


def _outer_package_init(v: str, effect: str) -> tuple[Files, str]:
    flows = FLOWS.format(v=v, head="", imports="")
    files = {"__init__.py": effect, "inner/__init__.py": "", "inner/flows.py": flows}
    return files, "inner.flows"


def _own_module(v: str, effect: str) -> tuple[Files, str]:
    """The effect in the flow module itself, beside the code kept for the flow."""
    return {"flows.py": FLOWS.format(v=v, head="", imports=effect)}, "flows"


FORMS: dict[str, Form] = {
    "from_package": _side("from . import side  # noqa: F401"),
    "import_dotted": _side("import {v}.side  # noqa: F401"),
    "import_as": _side("import {v}.side as _side  # noqa: F401"),
    "from_module_a_name": _side("from .side import UNUSED  # noqa: F401"),
    "from_absolute": _side("from {v} import side as _side  # noqa: F401"),
    "in_try": _side(
        "try:\n    from . import side  # noqa: F401\nexcept ImportError:\n    pass"
    ),
    "in_if": _side(
        "if sys.version_info >= (3, 8):\n    from . import side  # noqa: F401",
        "import sys\n",
    ),
    "builtin_import": _side('__import__("{v}.side")'),
    "importlib": _side('importlib.import_module("{v}.side")', "import importlib\n"),
    "star": _side("from .side import *  # noqa: F403"),
    "through_a_module": _through_a_module,
    "subpackage": _subpackage,
    "package_init": _package_init,
    "outer_package_init": _outer_package_init,
    "own_module": _own_module,
}

# Every form, each with two effects, and every effect with the plainest form.
SHAPES = sorted(
    {
        (form, sorted(EFFECTS)[(i + k) % len(EFFECTS)])
        for i, form in enumerate(FORMS)
        for k in (0, 3)
    }
    | {(form, effect) for form in ("from_package", "own_module") for effect in EFFECTS}
)
NOTHING_SEEN = ["unset", "0." + "3" * 28, "0", "none"]


def write(root: Path, files: Files) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")


def compile_tree(root: Path, *sources: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KILN, "compile", *sources, "-o", "build"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def outcome(root: Path, module: str, flow: str, *args: object) -> object:
    """The flow's result (or the name of the exception it raised), run in a fresh
    interpreter with `root` on its path."""
    code = f"""
import asyncio, importlib, json
try:
    result = getattr(importlib.import_module({module!r}), {flow!r})(*{args!r})
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    print(json.dumps(["ok", result]))
except Exception as exc:
    print(json.dumps(["raised", type(exc).__name__, str(exc)]))
"""
    ran = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout.splitlines()[-1])


def same_both_ways(root: Path, module: str, flow: str, *args: object) -> object:
    """The source's outcome, which the compiled module's equals."""
    source = outcome(root, module, flow, *args)
    assert source[0] == "ok", source
    assert outcome(root, f"build.{module}", flow, *args) == source
    return source


def mypy_strict(root: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "build"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(root)},
        timeout=600,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One project holding every shape, each its package `v<n>`, compiled at once."""
    root = tmp_path_factory.mktemp("shapes")
    modules: dict[str, str] = {}
    for index, (form, effect) in enumerate(SHAPES):
        v = f"v{index}"
        files, flows = FORMS[form](v, EFFECTS[effect].format(v=v, root=root))
        files.setdefault("__init__.py", "")
        if flows.count("."):
            files.setdefault(
                f"{flows.rpartition('.')[0].replace('.', '/')}/__init__.py", ""
            )
        write(root, {f"{v}/{name}": text for name, text in files.items()})
        write(root, {f"probe_{v}.py": PROBE.format(v=v)})
        modules[f"{form}-{effect}"] = f"{v}.{flows}"
    done = compile_tree(root, *sorted({m.partition(".")[0] for m in modules.values()}))
    assert done.returncode == 0, done.stdout + done.stderr
    return root, modules


@pytest.mark.parametrize(
    ("form", "effect"), SHAPES, ids=[f"{f}-{e}" for f, e in SHAPES]
)
def test_what_a_module_loads_runs_in_the_compiled_module_too(
    shapes: tuple[Path, dict[str, str]], form: str, effect: str
) -> None:
    root, modules = shapes
    result = same_both_ways(root, modules[f"{form}-{effect}"], "run")
    # The source sees the effect: a shape that loaded nothing would prove nothing.
    assert result[1] != NOTHING_SEEN, "the source saw no effect"


def test_the_shapes_outputs_pass_mypy_strict(
    shapes: tuple[Path, dict[str, str]],
) -> None:
    mypy_strict(shapes[0])


DISPATCH = """\
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

from kiln import flow, node

{prelude}

def handle_csv(x: str) -> str:
    return f"csv:{{x}}"


def handle_json(x: str) -> str:
    return f"json:{{x}}"


def unused_helper() -> int:
    return 7

{after}

@node
def dispatch(kind: str, x: str) -> str:
    {body}


@flow
def run(kind: str, x: str) -> str:
    return dispatch(kind, x)
"""

# How a node (or the module) reaches a definition by a name it computes.
REFLECTIONS: dict[str, tuple[str, str, str]] = {
    "globals": ("", "", 'return str(globals()[f"handle_{kind}"](x))'),
    "sys_modules": (
        "",
        "",
        'return str(getattr(sys.modules[__name__], f"handle_{kind}")(x))',
    ),
    "sys_modules_get": (
        "",
        "",
        'return str(getattr(sys.modules.get(__name__), f"handle_{kind}")(x))',
    ),
    "import_module": (
        "",
        "",
        'return str(getattr(importlib.import_module(__name__), f"handle_{kind}")(x))',
    ),
    "eval": ("", "", 'return str(eval(f"handle_{kind}")(x))'),
    "self_import": (
        "from . import flows as _me\n",
        "",
        'return str(getattr(_me, f"handle_{kind}")(x))',
    ),
    "frame": (
        "",
        "",
        "frame = inspect.currentframe()\n    assert frame is not None\n"
        '    return str(frame.f_globals[f"handle_{kind}"](x))',
    ),
    "module_table": (
        "",
        "_NAMES = dict(vars())\nTABLE: dict[str, Any] = {\n"
        '    k[7:]: v for k, v in _NAMES.items() if k.startswith("handle_")\n}\n',
        "return str(TABLE[kind](x))",
    ),
    "exec_at_import": (
        "exec(\"def handle_made(x): return 'made:' + x\")\n",
        "",
        'return str(globals()[f"handle_{kind}"](x))',
    ),
    "written_by_name": (
        "def _make(name: str) -> Callable[[str], str]:\n"
        '    return lambda x: f"{name}!{x}"\n\n\n'
        'for _name in ("yaml", "toml"):\n    globals()[f"handle_{_name}"] = _make(_name)\n',
        "",
        'return str(globals()[f"handle_{kind}"](x))',
    ),
}
KINDS = {"exec_at_import": "made", "written_by_name": "toml"}


@pytest.fixture(scope="module")
def reflections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reflections")
    for name, (prelude, after, body) in REFLECTIONS.items():
        text = DISPATCH.format(prelude=prelude, after=after, body=body)
        write(root, {f"r_{name}/__init__.py": "", f"r_{name}/flows.py": text})
    done = compile_tree(root, *(f"r_{name}" for name in REFLECTIONS))
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.mark.parametrize("name", sorted(REFLECTIONS))
def test_code_that_reads_its_module_by_name_keeps_every_definition(
    reflections: Path, name: str
) -> None:
    kind = KINDS.get(name, "json")
    result = same_both_ways(reflections, f"r_{name}.flows", "run", kind, "a")
    assert result == ["ok", f"{kind}{'!' if kind == 'toml' else ':'}a"]
    output = (reflections / f"build/r_{name}/flows.py").read_text(encoding="utf-8")
    assert "def unused_helper" in output  # kept: any definition may be the one


def test_reading_another_module_or_an_object_by_name_keeps_no_more(
    tmp_path: Path,
) -> None:
    body = (
        'json = sys.modules["json"]\n    assert getattr(json, "dumps") is not None\n'
        '    return str(getattr(handle_csv, "__name__")) + handle_json(x) + kind'
    )
    text = DISPATCH.format(prelude="", after="", body=body)
    write(tmp_path, {"app/__init__.py": "", "app/flows.py": text})
    done = compile_tree(tmp_path, "app")
    assert done.returncode == 0, done.stdout + done.stderr
    same_both_ways(tmp_path, "app.flows", "run", "csv", "a")
    output = (tmp_path / "build/app/flows.py").read_text(encoding="utf-8")
    assert "def unused_helper" not in output


def test_what_loads_nothing_kept_code_sees_stays_out(tmp_path: Path) -> None:
    """The standard library's modules, and a module of the project that only
    defines (its imports only the standard library's), are left out unused."""
    flows = FLOWS.format(
        v="v",
        head="import json\nimport textwrap as _tw\n",
        imports="from . import cli  # noqa: F401\nfrom .cli import main as _main",
    )
    cli = "import sys\n\n\ndef main() -> None:\n    print(sys.argv)\n"
    write(
        tmp_path,
        {
            "v/__init__.py": '"""The package."""\n\n__all__ = ["flows"]\n',
            "v/cli.py": cli,
            "v/flows.py": flows,
            "probe_v.py": PROBE.format(v="v"),
        },
    )
    done = compile_tree(tmp_path, "v")
    assert done.returncode == 0, done.stdout + done.stderr
    same_both_ways(tmp_path, "v.flows", "run")
    output = (tmp_path / "build/v/flows.py").read_text(encoding="utf-8")
    for dropped in ("json", "textwrap", "cli", "_kiln_package"):
        assert dropped not in output, dropped


STEPS_WITH_A_FLOW = """\
from kiln import flow

from . import ingest


@flow
def quick(n: int) -> int:
    return sum(ingest.load(n))
"""
INGEST = """\
from kiln import node


@node
def load(n: int) -> list[int]:
    return list(range(n))
"""
SUB = """\
from kiln import flow, node


@node
def double(n: int) -> int:
    return 2 * n


@flow
def inner(n: int) -> int:
    return double(n)
"""
MAIN = """\
from kiln import flow

{imports}


@flow
def main(n: int) -> int:
    return {body}
"""
# By module: its imports, and what its flow returns. Package `a`'s steps/ has
# a flow of its own (an output), `b`'s none.
MAINS: dict[str, tuple[str, str]] = {
    "a/ingest_of_a_compiled_package": (
        "from .steps import ingest",
        "sum(ingest.load(n))",
    ),
    "a/ingest_beside_a_flow": (
        "from .steps import ingest, quick",
        "quick(n) + sum(ingest.load(n))",
    ),
    "a/through_the_compiled_package": (
        "from . import steps\nimport a.steps.sub  # noqa: F401",
        "steps.sub.inner(n) + 1",
    ),
    "a/through_the_compiled_package_from": (
        "from . import steps\nfrom .steps import sub as _sub  # noqa: F401",
        "steps.sub.inner(n) + 1",
    ),
    "b/through_the_package": (
        "from . import steps\nimport b.steps.sub  # noqa: F401",
        "steps.sub.inner(n) + 1",
    ),
    "b/through_the_package_from": (
        "from . import steps\nfrom .steps import sub as _sub  # noqa: F401",
        "steps.sub.inner(n) + 1",
    ),
    "b/a_library_s_submodule": (
        "import xml\nimport xml.dom.minidom as _minidom  # noqa: F401",
        'len(xml.dom.minidom.parseString("<a/>").toxml()) + n',
    ),
    "b/through_the_package_as": (
        "from . import steps\nimport b.steps.sub as _sub  # noqa: F401",
        "steps.sub.inner(n) + 1",
    ),
}


@pytest.fixture(scope="module")
def submodules(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("submodules")
    files = {
        "a/__init__.py": "",
        "a/steps/__init__.py": STEPS_WITH_A_FLOW,
        "a/steps/ingest.py": INGEST,
        "a/steps/sub.py": SUB,
        "b/__init__.py": "",
        "b/steps/__init__.py": "",
        "b/steps/sub.py": SUB,
    }
    files |= {
        f"{name}.py": MAIN.format(imports=imports, body=body)
        for name, (imports, body) in MAINS.items()
    }
    write(root, files)
    done = compile_tree(root, "a", "b")
    assert done.returncode == 0, done.stdout + done.stderr
    return root, done


@pytest.mark.parametrize("name", sorted(MAINS))
def test_a_submodule_loads_where_the_source_loads_it(
    submodules: tuple[Path, subprocess.CompletedProcess[str]], name: str
) -> None:
    root, _ = submodules
    module = name.replace("/", ".")
    assert same_both_ways(root, module, "main", 4)[1] in (6, 12, 9, 30)


def test_a_flow_called_through_a_package_is_warned_in_the_source_s_words(
    submodules: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    said = submodules[1].stdout + submodules[1].stderr
    imported = "b/through_the_package_from.py:9:12: warning: flow 'inner' is called"
    assert f"{imported} through the package b.steps that `steps` names," in said
    assert "`import b.steps.sub` binds" not in said


def test_the_submodules_outputs_pass_mypy_strict(
    submodules: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    mypy_strict(submodules[0])


def test_a_kept_load_that_would_use_a_source_copy_is_refused(tmp_path: Path) -> None:
    """`from . import plugins`, kept for what it registers, registers into the
    source's copy of the compiled module's table: KLN404 at the import there."""
    flows = """\
        from collections.abc import Callable

        from kiln import flow, node

        from . import plugins  # noqa: F401

        HANDLERS: dict[str, Callable[[int], int]] = {}


        @node
        def apply(name: str, x: int) -> int:
            return HANDLERS[name](x)


        @flow
        def run(name: str, x: int) -> int:
            return apply(name, x)
        """
    plugins = 'from .flows import HANDLERS\n\nHANDLERS["double"] = lambda x: 2 * x\n'
    write(
        tmp_path,
        {"app/__init__.py": "", "app/flows.py": flows, "app/plugins.py": plugins},
    )
    done = compile_tree(tmp_path, "app")
    assert done.returncode == 1, done.stdout
    assert "app/plugins.py:1:20: error: 'HANDLERS' of app.flows" in done.stdout
    assert "[KLN404]" in done.stdout
