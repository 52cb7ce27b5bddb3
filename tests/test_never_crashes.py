"""Property tests: no valid Python source makes the compiler raise or report KLN999.

hypothesmith generates arbitrary source from Python's grammar. The compiler
may accept it or reject it with located diagnostics, but an exception out of
`compile_file`, or an internal-error diagnostic, is always a bug in kiln.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, assume, example, given, settings

from kilnc.diagnostics import Code
from kilnc.pipeline import Compilation, compile_file

# Generated code is often odd (`1()`, `"a" "b" is 3`): CPython's SyntaxWarnings about it
# are expected here, and the compiler itself never shows them.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

HEADER = "from kiln import flow, node\n\n\n"


def python_accepts(source: str) -> bool:
    """Whether CPython compiles `source` (the test may; the compiler never runs user code)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<generated>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def compile_text(directory: Path, source: str) -> Compilation:
    path = directory / "generated.py"
    path.write_text(source, encoding="utf-8")
    compilation = compile_file(path)
    internal = [d for d in compilation.diagnostics if d.code is Code.INTERNAL]
    assert not internal, (internal, "\n".join(compilation.dumps))
    for diagnostic in compilation.diagnostics:
        assert diagnostic.span.line >= 1
        assert diagnostic.span.column >= 1
    return compilation


def as_flow_body(module: str) -> str:
    """`module`'s statements as the body of an async flow."""
    body = textwrap.indent(module, "    ", lambda line: True) if module.strip() else ""
    return f"{HEADER}@flow\nasync def f(x: int) -> int:\n{body}\n    pass\n"


@SETTINGS
@given(source=hypothesmith.from_grammar())
@example(source="")
@example(source="from kiln import flow\n@flow\ndef f(): pass\n")
@example(source="from kiln import node\n@node\nclass C: pass\n")
def test_any_module(tmp_path_factory: pytest.TempPathFactory, source: str) -> None:
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)


@SETTINGS
@given(source=hypothesmith.from_node())
def test_any_module_from_cst(
    tmp_path_factory: pytest.TempPathFactory, source: str
) -> None:
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)


@SETTINGS
@given(body=hypothesmith.from_grammar())
@example(body="")
@example(body="return x\n")
@example(body="y = [z async for z in x]\n")
def test_any_flow_body(tmp_path_factory: pytest.TempPathFactory, body: str) -> None:
    source = as_flow_body(body)
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)


@SETTINGS
@given(body=hypothesmith.from_node())
def test_any_flow_body_from_cst(
    tmp_path_factory: pytest.TempPathFactory, body: str
) -> None:
    source = as_flow_body(body)
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)
