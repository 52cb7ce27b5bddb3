"""A flow calls what its module's last binding of a name left there (trial Q7, finding 4).

Python looks a flow's global `f` up when the flow runs, after the module has
run: a node rebound below the flow (`@node def f` again, `g = helper`, an
import, a binding in a block or by a function's `global`) is not what the
flow calls. kiln took the binding above the flow: the compiled flow called
the old node where the source called the new function. Now a name's last
binding decides: a node there is called as that node, with its options;
anything else is a plain call, as in the source, and KLN317 says the node's
options are not applied. The same for a name another module binds again.

Each case runs its source and its compiled flow in fresh interpreters.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code, Diagnostic
from kilnc.pipeline import compile_file

NODE = """
    import contextlib

    from kiln import flow, node


    def helper(a: int) -> int:
        return a + 5


    @node
    def f(a: int) -> int:
        return a * 10
"""
FLOW = """
    @flow
    async def main(x: int) -> int:
        return f(x)
"""
# The bindings of `f` below the flow, and whether the last is a node.
REBOUND = {
    "a_node_defined_again": (
        "@node(retries=1)\ndef f(a: int) -> int:\n    return a * 1000",
        True,
    ),
    "an_assignment": ("f = helper", False),
    "a_plain_def": ("def f(a: int) -> int:\n    return a - 1", False),
    "an_import": ("from operator import neg as f", False),
    "an_if_block": ("if helper(0):\n    f = helper", False),
    "a_try_block": ("try:\n    f = helper\nexcept NameError:\n    pass", False),
    "a_for_loop": ("for f in [helper]:\n    pass", False),
    "a_with_block": ("with contextlib.nullcontext(helper) as f:\n    pass", False),
    "a_function_s_global": (
        "def install() -> None:\n    global f\n    f = helper\n\n\ninstall()",
        False,
    ),
    "a_walrus": ("if (f := helper):\n    pass", False),
}

RUNNER = """
import asyncio, importlib, sys
sys.path.insert(0, sys.argv[1])
module = importlib.import_module(sys.argv[2])
try:
    value = module.main(1) if sys.argv[3] == "compiled" else asyncio.run(module.main(1))
except Exception as error:
    value = type(error).__name__
print(repr(value))
"""


def _run(directory: Path, module: str, how: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(directory), module, how],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


def _compiled(path: Path, out: str) -> list[Diagnostic]:
    compilation = compile_file(path)
    assert compilation.output is not None, compilation.diagnostics
    (path.parent / f"{out}.py").write_text(compilation.output, encoding="utf-8")
    return list(compilation.diagnostics)


def _warned(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.message for d in diagnostics if d.code is Code.NODE_AS_VALUE]


@pytest.mark.parametrize("above", [False, True], ids=["below", "above"])
@pytest.mark.parametrize("form", sorted(REBOUND))
def test_a_flow_calls_the_last_binding_of_a_name(
    form: str, above: bool, tmp_path: Path
) -> None:
    binding, is_node = REBOUND[form]
    parts = [NODE, textwrap.indent(binding, "    "), FLOW]
    if not above:
        parts[1:] = parts[:0:-1]
    source = tmp_path / "case.py"
    source.write_text(textwrap.dedent("\n\n".join(parts)), encoding="utf-8")
    diagnostics = _compiled(source, "compiled_case")
    assert not any(d.is_error for d in diagnostics), diagnostics
    assert _run(tmp_path, "compiled_case", "compiled") == _run(
        tmp_path, "case", "source"
    )
    output = (tmp_path / "compiled_case.py").read_text(encoding="utf-8")
    if is_node:  # the node of the last def, with its options
        assert re.search(r"_kiln\.site\(\s*f,", output)
        assert "retries=1" in output
        assert _warned(diagnostics) == []
    else:  # a plain call, as in the source, said
        assert "_kiln.site(" not in output
        [message] = _warned(diagnostics)
        assert message.startswith(
            "flow 'main' calls 'f', which the module binds to node 'f'"
        )


def test_a_plain_def_defined_again_as_a_node_is_the_node(tmp_path: Path) -> None:
    source = tmp_path / "case.py"
    source.write_text(
        textwrap.dedent("""
            from kiln import flow, node


            def f(a: int) -> int:
                return a


            @flow
            async def main(x: int) -> int:
                return f(x)


            @node(retries=2)
            def f(a: int) -> int:
                return a * 3
            """),
        encoding="utf-8",
    )
    assert _warned(_compiled(source, "compiled_case")) == []
    assert _run(tmp_path, "compiled_case", "compiled") == "3"
    assert "retries=2" in (tmp_path / "compiled_case.py").read_text(encoding="utf-8")


STEPS = """
from kiln import node


def helper(a: int) -> int:
    return a + 5


@node
def f(a: int) -> int:
    return a * 10


@node
def g(a: int) -> int:
    return a * 10


@node(retries=1)
def g(a: int) -> int:
    return a * 1000


f = helper
"""


def test_a_name_another_module_binds_again_is_its_last_binding(tmp_path: Path) -> None:
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "steps.py").write_text(STEPS, encoding="utf-8")
    main = package / "main.py"
    main.write_text(
        textwrap.dedent("""
            from kiln import flow

            from app import steps
            from app.steps import f, g


            @flow
            async def main(x: int) -> int:
                return f(x) + g(x) + steps.f(x) + steps.g(x)
            """),
        encoding="utf-8",
    )
    diagnostics = _compiled(main, "compiled_main")
    assert _run(tmp_path, "app.compiled_main", "compiled") == _run(
        tmp_path, "app.main", "source"
    )
    output = (package / "compiled_main.py").read_text(encoding="utf-8")
    assert output.count("_kiln.site(") == 2  # g and steps.g: the second node g
    assert output.count("policy=") == 2
    warned = _warned(diagnostics)
    assert len(warned) == 2
    assert all("which module 'app.steps' binds to node 'f'" in m for m in warned)


def test_an_alias_holds_what_the_name_held_where_it_was_bound(tmp_path: Path) -> None:
    """`get = fetch`, then `fetch` defined again: `get` is the first def, plain."""
    source = tmp_path / "case.py"
    source.write_text(
        textwrap.dedent("""
            from kiln import flow, node


            @node
            def fetch(a: int) -> int:
                return a * 10


            get = fetch


            @node(retries=2)
            def fetch(a: int) -> int:
                return a * 1000


            @flow
            async def main(x: int) -> int:
                return get(x) + fetch(x)
            """),
        encoding="utf-8",
    )
    [warned] = _warned(_compiled(source, "compiled_case"))
    assert warned.startswith("flow 'main' calls 'get', which may be node 'fetch'")
    assert _run(tmp_path, "compiled_case", "compiled") == _run(
        tmp_path, "case", "source"
    )
    output = (tmp_path / "compiled_case.py").read_text(encoding="utf-8")
    assert output.count("_kiln.site(") == 1  # `fetch` alone, the second def
