"""The compiler across a project: decorators however imported, nodes of other modules,
option hints, and what `--dump graph` says of loops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from kiln import Memory
from kilnc.pipeline import compile_file
from tests.test_differential import load


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")


def test_decorators_are_recognised_however_they_were_imported(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"aliases.py": """
                import kiln
                from kiln import flow as pipeline, node as step

                @step
                async def a(x: int) -> int:
                    return x + 1

                @kiln.node(name="bee")
                async def b(x: int) -> int:
                    return x * 2

                @pipeline
                async def both(x: int) -> int:
                    return await b(await a(x))
            """},
    )
    compilation = compile_file(tmp_path / "aliases.py")
    assert compilation.output is not None, compilation.diagnostics
    assert "@step" not in compilation.output
    assert "@kiln.node" not in compilation.output
    assert re.search(r'_kiln\.site\(\s*b,\s*"bee"', compilation.output)
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    assert load(out).both(1) == 4


def test_nodes_of_other_modules_are_read_and_imported_by_absolute_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path,
        {
            "pipelines/__init__.py": "",
            "pipelines/nodes.py": """
                import asyncio
                from kiln import node

                @node
                async def fetch(url: str) -> str:
                    await asyncio.sleep(0.2)
                    return url.upper()
            """,
            "pipelines/crawl.py": """
                from kiln import flow
                from . import nodes
                from .nodes import fetch

                @flow
                async def crawl(a: str, b: str) -> str:
                    x = await fetch(a)
                    y = await nodes.fetch(b)
                    return x + y
            """,
        },
    )
    compilation = compile_file(tmp_path / "pipelines" / "crawl.py")
    assert compilation.output is not None, compilation.diagnostics
    assert "from pipelines.nodes import fetch" in compilation.output
    assert "from pipelines import nodes" in compilation.output
    assert "from ." not in compilation.output
    build = tmp_path / "build"
    build.mkdir()
    (build / "crawl.py").write_text(compilation.output, encoding="utf-8")
    script = (
        "import time, crawl; t = time.perf_counter(); "
        "print(crawl.crawl('a', 'b'), time.perf_counter() - t)"
    )
    env_path = f"{build}:{tmp_path}"
    monkeypatch.setenv("PYTHONPATH", env_path)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    value, seconds = result.stdout.split()
    assert value == "AB"
    assert float(seconds) < 0.35  # the two fetches of other modules' nodes overlap


@pytest.mark.parametrize(
    ("decorator", "written", "meant"),
    [
        ("node", "retires", "retries"),
        ("node", "retry", "retries"),  # nearer `retry_on` in spelling
        ("node", "retry_delay_seconds", "wait"),  # Prefect's
        ("flow", "recursion_limit", "max_visits"),  # LangGraph's
    ],
)
def test_an_unknown_option_suggests_the_one_meant(
    tmp_path: Path, decorator: str, written: str, meant: str
) -> None:
    write(
        tmp_path,
        {"typo.py": f"""
                from kiln import {decorator}

                @{decorator}({written}=2)
                async def f(x: int) -> int:
                    return x
            """},
    )
    (diagnostic,) = compile_file(tmp_path / "typo.py").diagnostics
    assert diagnostic.message == f"unknown option '{written}'"
    assert diagnostic.hint == f"did you mean '{meant}'?"


def test_dump_graph_shows_each_loop_its_bounds_and_the_worst_case(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {"loop.py": """
                from kiln import flow, node

                @node
                async def draft(topic: str) -> str:
                    return topic

                @node(max_visits=3)
                async def review(text: str) -> bool:
                    return len(text) > 5

                @node
                async def revise(text: str) -> str:
                    return text + "!"

                @flow(max_visits=4)
                async def write(topic: str) -> str:
                    text = await draft(topic)
                    while not await review(text):
                        text = await revise(text)
                    return text
            """},
    )
    kiln = Path(sys.executable).with_name("kiln")
    result = subprocess.run(
        [str(kiln), "compile", "loop.py", "-o", "build", "--dump", "graph"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cycle while@19: review@19 (max 3), revise@20 (max 4)" in result.stdout
    assert "worst case: 8 node executions" in result.stdout


@pytest.mark.parametrize("imported_here", [False, True])
def test_an_imported_node_retries_on_the_classes_of_its_own_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imported_here: bool
) -> None:
    """The generated module imports them from the node's module, as its fallback;
    the flow's module need not import them (and may)."""
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/errors.py": """
                class Transient(Exception):
                    pass
            """,
            "app/nodes.py": """
                from kiln import node

                from . import errors

                class Flaky(Exception):
                    pass

                FAILURES = [Flaky("once"), errors.Transient("twice")]

                @node(retries=2, retry_on=(Flaky, errors.Transient, ConnectionError))
                async def fetch(url: str) -> str:
                    if FAILURES:
                        raise FAILURES.pop(0)
                    return url.upper()
            """,
            "app/flows.py": f"""
                from kiln import flow
                from .nodes import fetch{", Flaky" if imported_here else ""}

                @flow
                async def run(url: str) -> str:
                    return await fetch(url)
            """,
        },
    )
    compilation = compile_file(tmp_path / "app" / "flows.py")
    assert compilation.output is not None, [d.message for d in compilation.diagnostics]
    assert not compilation.diagnostics
    build = tmp_path / "build"
    build.mkdir()
    (build / "flows.py").write_text(compilation.output, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", f"{build}:{tmp_path}")
    result = subprocess.run(
        [sys.executable, "-c", "import flows; print(flows.run('a'))"],
        capture_output=True,
        text=True,
        check=False,  # its stderr says why, below
    )
    assert (result.returncode, result.stdout) == (0, "A\n"), result.stderr


SUBFLOWS = {
    "flows/__init__.py": "",
    "flows/sub.py": """
        from collections.abc import AsyncIterator
        from kiln import flow, node

        @node
        async def double(x: int) -> int:
            return 2 * x

        @flow
        async def twice(x: int) -> int:
            return await double(await double(x))

        @flow
        def parse(text: str) -> list[int]:
            return [int(word) for word in text.split()]

        @flow
        async def count(n: int) -> AsyncIterator[int]:
            for i in range(n):
                yield await double(i)
    """,
    "flows/main.py": """
        from kiln import flow, node
        from flows import sub
        from flows.sub import count, parse

        @node
        async def total(xs: list[int]) -> int:
            return sum(xs)

        @flow
        async def main(text: str) -> int:
            numbers = parse(text)
            quadrupled = [await sub.twice(n) for n in numbers]
            counted = [c async for c in count(len(numbers))]
            return await total(quadrupled + counted)
    """,
}


@pytest.mark.parametrize("sub_compiled", [True, False], ids=["compiled", "source"])
def test_a_flow_of_another_module_is_called_compiled_or_not(
    tmp_path: Path, sub_compiled: bool
) -> None:
    """The compiler reads one module at a time, so a flow it imports may be a compiled
    flow or a plain source function at run time; the call works either way."""
    write(tmp_path / "src", SUBFLOWS)
    build = tmp_path / "build"
    build.mkdir()
    main = compile_file(tmp_path / "src" / "flows" / "main.py")
    assert main.output is not None, main.diagnostics
    (build / "app.py").write_text(main.output, encoding="utf-8")
    if sub_compiled:  # found before the source package, which it shadows
        sub = compile_file(tmp_path / "src" / "flows" / "sub.py")
        assert sub.output is not None, sub.diagnostics
        write(build, {"flows/__init__.py": "", "flows/sub.py": sub.output})
    script = (
        "import kiln, app, flows.sub; "
        "print(isinstance(flows.sub.twice, kiln.Flow), app.main('1 2 3'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": f"{build}:{tmp_path / 'src'}"},
    )
    assert result.returncode == 0, result.stderr
    is_compiled, value = result.stdout.split()
    assert is_compiled == str(sub_compiled)
    assert int(value) == 4 * (1 + 2 + 3) + 2 * (0 + 1 + 2)
    # And the call type-checks against either: the compiled class, or the function.
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "app.py"],
        cwd=build,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MYPYPATH": f"{build}:{tmp_path / 'src'}"},
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- star imports ------------------------------------------------------------------------

STARS = {
    "app/__init__.py": "",
    "app/nodes.py": """
        import asyncio
        from kiln import node

        @node
        async def fetch(x: int) -> int:
            await asyncio.sleep(0.2)
            return x * 2

        def helper(x: int) -> int:
            return x + 100

        @node
        async def _private(x: int) -> int:
            return x
    """,
    "app/listed.py": """
        from kiln import node

        __all__ = ["triple", "_shown"]

        @node
        async def triple(x: int) -> int:
            return x * 3

        @node
        async def _shown(x: int) -> int:
            return x - 1

        @node
        async def unlisted(x: int) -> int:
            return x
    """,
    "app/again.py": """
        from .nodes import *
    """,
    "app/flows.py": """
        from kiln import flow
        from .nodes import *
        from .listed import *
        from app.again import fetch as refetch

        @flow
        async def f(x: int) -> int:
            a = await fetch(x)
            b = await refetch(x + 1)
            c = await triple(a)
            d = await _shown(c)
            return helper(a + b + c + d)
    """,
}


def test_star_imports_of_project_modules_bind_what_python_binds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names the module defines, or its `__all__`; re-exported through another star."""
    write(tmp_path, STARS)
    compilation = compile_file(tmp_path / "app" / "flows.py")
    assert compilation.output is not None, compilation.diagnostics
    assert "from app.nodes import *" in compilation.output
    assert "from ." not in compilation.output
    for site in ("fetch", "triple", "_shown"):  # called as nodes, not plain functions
        assert re.search(rf'_kiln\.site\(\s*{site},\s*"{site}"', compilation.output)
    build = tmp_path / "build"
    build.mkdir()
    (build / "flows.py").write_text(compilation.output, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", f"{build}:{tmp_path}")
    script = (
        "import asyncio, flows, app.flows as s; print(flows.f(1), asyncio.run(s.f(1)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    compiled, expected = result.stdout.split()
    assert compiled == expected


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("from .nodes import *", "_private"),  # underscored, no __all__
        ("from .listed import *", "unlisted"),  # not in __all__
    ],
)
def test_a_name_a_star_import_does_not_bind_is_undefined(
    tmp_path: Path, line: str, name: str
) -> None:
    write(
        tmp_path,
        {
            **STARS,
            "app/flows.py": f"""
                from kiln import flow
                {line}

                @flow
                async def f(x: int) -> int:
                    return await {name}(x)
            """,
        },
    )
    (diagnostic,) = compile_file(tmp_path / "app" / "flows.py").diagnostics
    assert diagnostic.message == f"name '{name}' is not defined"


def test_from_kiln_import_star_compiles_the_flow(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"everything.py": """
                from kiln import *

                @node
                async def fetch(x: int) -> int:
                    return x * 2

                @flow(limits={"db": Limit(2)})
                async def f(x: int, memory: Memory) -> int:
                    y = await fetch(x)
                    memory.last = y
                    return y + 1
            """},
    )
    compilation = compile_file(tmp_path / "everything.py")
    assert compilation.output is not None, compilation.diagnostics
    assert "@node" not in compilation.output
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    memory = Memory({})
    assert load(out).f(3, memory) == 7
    assert memory.last == 6


def test_a_star_import_kiln_cannot_read_asks_for_the_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"outside.py": """
                from kiln import flow, node
                from math import *

                @node
                def root(x: float) -> float:
                    return sqrt(x)

                @flow
                def f(x: float) -> float:
                    return root(x)
            """},
    )
    (diagnostic,) = compile_file(tmp_path / "outside.py").diagnostics
    assert diagnostic.code.value == "KLN402"
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 1)
    assert diagnostic.hint == (
        "import the names this module uses by name: 'from math import a, b'"
    )


def test_a_package_whose_names_come_through_other_modules_type_checks_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiled as a package, as users do: a class the flow's module imports only
    for the types of its values stays imported, and a `retry_on` class its node's
    module imports from a third is imported from where it is defined, which
    `mypy --strict` requires (a module does not export what it imports)."""
    write(
        tmp_path / "project",
        {
            "app/__init__.py": "",
            "app/types.py": """
                from dataclasses import dataclass

                @dataclass
                class Summary:
                    n: int

                class FetchError(Exception):
                    pass
            """,
            "app/nodes.py": """
                from kiln import node

                from .types import FetchError, Summary

                FAILURES = [FetchError("once")]

                @node
                async def count(text: str) -> Summary:
                    return Summary(len(text))

                @node
                def key(summary: Summary) -> int:
                    return -summary.n

                @node(retries=1, retry_on=(FetchError,))
                async def score(summary: Summary) -> int:
                    if FAILURES:
                        raise FAILURES.pop()
                    return summary.n
            """,
            "app/flows.py": """
                from kiln import flow

                from .nodes import count, key, score
                from .types import Summary

                @flow
                async def scores(texts: list[str]) -> tuple[list[int], list[int]]:
                    sums = [await count(text) for text in texts]
                    keys = [key(s) for s in sums]
                    return keys, [await score(s) for s in sums if s.n]
            """,
        },
    )
    kiln = Path(sys.executable).with_name("kiln")
    subprocess.run(
        [str(kiln), "compile", "project/app", "-o", "build", "-q"],
        cwd=tmp_path,
        check=True,
    )
    output = (tmp_path / "build" / "app" / "flows.py").read_text(encoding="utf-8")
    assert "from app.types import FetchError as _KILN_CLASS_FETCHERROR" in output
    monkeypatch.setenv("MYPYPATH", str(tmp_path / "project"))
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "build/app/flows.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "project"))
    result = subprocess.run(
        [sys.executable, "-c", "import flows; print(flows.scores(['ab', '', 'c']))"],
        cwd=tmp_path / "build" / "app",
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (
        0,
        "([-2, 0, -1], [2, 1])\n",
    ), result.stderr


IMPORTER = """
    from kiln import flow, node
    from .nodes import fetch

    @node
    def double(x: int) -> int:
        return 2 * x

    @flow
    def f(x: int) -> int:
        return double(x)
"""


@pytest.mark.parametrize(
    "nodes",
    [
        "if len(__name__) > 1:\n    fetch = 1\n",
        "try:\n    from json import loads as fetch\nexcept ImportError:\n    fetch = None\n",
        "import os as fetch\n",
        "import fetch.sub\n",
        "from os import path as fetch\n",
        "def _set() -> None:\n    global fetch\n    fetch = 1\n",
        "def __getattr__(name: str) -> object:\n    return name\n",
        "from math import *\n",
        "from .more import *\n",
        "globals()['fetch'] = 1\n",
        "import sys\nsetattr(sys.modules[__name__], 'fetch', 1)\n",
        "exec('fetch = 1')\n",
        "match 1:\n    case fetch:\n        pass\n",
        "match [1]:\n    case [*fetch]:\n        pass\n",
        "[y for y in [1] if (fetch := y)]\n",
        "for fetch in []:\n    pass\n",
        "with open(__file__) as fetch:\n    pass\n",
        "try:\n    pass\nexcept ValueError as fetch:\n    pass\n",
        "class fetch:\n    pass\n",
        "fetch: int = 1\n",
        "fetch = other = 1\n",
        "a, (b, *fetch) = 1, (2, 3)\n",
    ],
)
def test_a_name_the_imported_module_may_bind_is_imported(
    tmp_path: Path, nodes: str
) -> None:
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/more.py": "def fetch() -> None:\n    pass\n",
            "app/nodes.py": nodes,
            "app/flows.py": IMPORTER,
        },
    )
    compilation = compile_file(tmp_path / "app" / "flows.py")
    assert not compilation.diagnostics
    assert compilation.output is not None


@pytest.mark.parametrize(
    ("nodes", "hint"),
    [
        ("def fetch_page() -> None:\n    pass\n", "did you mean 'fetch_page'?"),
        ("class Client:\n    fetch = 1\n", "define it in app/nodes.py"),
        ("def get() -> None:\n    fetch = 1\n", "define it in app/nodes.py"),
        ("pages = [fetch for fetch in []]\n", "define it in app/nodes.py"),
        ("use = lambda fetch: fetch\n", "define it in app/nodes.py"),
    ],
)
def test_a_name_the_imported_module_does_not_bind_is_an_error_at_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: str, hint: str
) -> None:
    write(
        tmp_path,
        {"app/__init__.py": "", "app/nodes.py": nodes, "app/flows.py": IMPORTER},
    )
    monkeypatch.chdir(tmp_path)
    compilation = compile_file(tmp_path / "app" / "flows.py")
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.code.value == "KLN402"
    assert diagnostic.message == "name 'fetch' is not defined in app/nodes.py"
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 20)
    assert diagnostic.hint == hint
    assert compilation.output is None


@pytest.mark.parametrize(
    ("line", "defined"),
    [
        ("from . import fetch", True),  # app/fetch.py, a submodule
        ("from . import __version__", True),  # a dunder: the module object may have it
        ("from . import nodes, missing", False),
    ],
)
def test_a_name_taken_from_a_package_may_be_its_submodule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, defined: bool
) -> None:
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/fetch.py": "",
            "app/nodes.py": "",
            "app/flows.py": IMPORTER.replace("from .nodes import fetch", line),
        },
    )
    monkeypatch.chdir(tmp_path)
    diagnostics = compile_file(tmp_path / "app" / "flows.py").diagnostics
    missing = "name 'missing' is not defined in app/__init__.py"
    assert [d.message for d in diagnostics] == ([] if defined else [missing])


@pytest.mark.parametrize(
    ("files", "compiled", "message"),
    [
        (
            {"b4.py": IMPORTER, "nodes.py": "fetch = 1\n"},
            "b4.py",
            "a relative import in a module that is in no package: its directory"
            " has no __init__.py, and kiln reads no namespace package",
        ),
        (
            {"app/__init__.py": "", "app/b4.py": IMPORTER.replace(".nodes", "..nodes")},
            "app/b4.py",
            "this relative import reaches above the top-level package",
        ),
        (
            {"b4.py": IMPORTER.replace("from .nodes import fetch", "from . import *")},
            "b4.py",
            "a relative import in a module that is in no package: its directory"
            " has no __init__.py, and kiln reads no namespace package",
        ),
    ],
)
def test_a_relative_import_python_refuses_is_an_error_at_the_import(
    tmp_path: Path, files: dict[str, str], compiled: str, message: str
) -> None:
    write(tmp_path, files)
    (diagnostic,) = compile_file(tmp_path / compiled).diagnostics
    assert diagnostic.code.value == "KLN402"
    assert diagnostic.message == message
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 1)


def test_the_flows_importing_a_module_that_does_not_parse_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read without the names it binds, the flows would be read wrongly."""
    write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/nodes.py": "def fetch(:\n",
            "app/flows.py": IMPORTER + "\n    with open(x):\n        pass\n",
        },
    )
    monkeypatch.chdir(tmp_path)
    (diagnostic,) = compile_file(tmp_path / "app" / "flows.py").diagnostics
    assert (diagnostic.span.path, diagnostic.code.value) == ("app/nodes.py", "KLN001")
