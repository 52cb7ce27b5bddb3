"""Property tests: no valid Python source makes the compiler raise or report KLN999.

hypothesmith generates arbitrary source from Python's grammar; a strategy of
our own generates flows from the constructs of the flow language (and a few
outside it). The compiler may accept a source or reject it with located
diagnostics, but an exception out of `compile_file`, an internal-error
diagnostic, or generated code that does not parse is always a bug in kiln.

`KILN_FUZZ_SCALE=10 pytest tests/test_never_crashes.py` runs ten times as many
examples (the default keeps the whole test set fast).
"""

from __future__ import annotations

import os
import textwrap
import warnings
from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from kilnc.diagnostics import Code
from kilnc.pipeline import Compilation, compile_file
from tests.test_differential import formatted_once

# Generated code is often odd (`1()`, `"a" "b" is 3`): CPython's SyntaxWarnings about it
# are expected here, and the compiler itself never shows them.
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

SCALE = float(os.environ.get("KILN_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# The defaults keep this module to about fifteen seconds. hypothesmith spends most of
# its time generating, from_node() several times as long as from_grammar(); a flow
# that compiles costs a black run.
GRAMMAR = fuzz_settings(40)
CST = fuzz_settings(10)
FLOWS = fuzz_settings(40)

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
    lines = max(1, len(source.splitlines()))
    for diagnostic in compilation.diagnostics:
        if diagnostic.span.path == compilation.source.path:
            assert diagnostic.span.line <= lines + 1, diagnostic
        assert diagnostic.span.line >= 1, diagnostic
        assert diagnostic.span.column >= 1, diagnostic
        if source.startswith((HEADER, FLOW_HEADER)):
            # 1:1 is where a node the compiler made lands: no place in the source.
            assert (diagnostic.span.line, diagnostic.span.column) != (1, 1), diagnostic
    if compilation.output is not None:
        compile(compilation.output, "generated-output.py", "exec", dont_inherit=True)
        assert formatted_once(compilation.output)
    return compilation


def as_flow_body(module: str) -> str:
    """`module`'s statements as the body of an async flow."""
    body = textwrap.indent(module, "    ", lambda line: True) if module.strip() else ""
    return f"{HEADER}@flow\nasync def f(x: int) -> int:\n{body}\n    pass\n"


@GRAMMAR
@given(source=hypothesmith.from_grammar())
@example(source="")
@example(source="from kiln import flow\n@flow\ndef f(): pass\n")
@example(source="from kiln import node\n@node\nclass C: pass\n")
def test_any_module(tmp_path_factory: pytest.TempPathFactory, source: str) -> None:
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)


@CST
@given(source=hypothesmith.from_node())
def test_any_module_from_cst(
    tmp_path_factory: pytest.TempPathFactory, source: str
) -> None:
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)


@GRAMMAR
@given(body=hypothesmith.from_grammar())
@example(body="")
@example(body="return x\n")
@example(body="y = [z async for z in x]\n")
@example(body="\n \\\n\n")  # a backslash alone on a line: tokenize refused the body
def test_any_flow_body(tmp_path_factory: pytest.TempPathFactory, body: str) -> None:
    source = as_flow_body(body)
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)


@CST
@given(body=hypothesmith.from_node())
# Form feeds in a copied statement's indentation, which black refuses.
@example(body="while ():\n\x0c    pass\n")
@example(body="if x:\n\x0c    y = 1\n    \x0c    z = 2\n")
def test_any_flow_body_from_cst(
    tmp_path_factory: pytest.TempPathFactory, body: str
) -> None:
    source = as_flow_body(body)
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("src"), source)


# --- flows written in (and around) the flow language -------------------------------------

FLOW_HEADER = """\
import asyncio
from collections.abc import AsyncIterator, Iterator

from kiln import Memory, flow, node


@node
def inc(x: int) -> int:
    return x + 1


@node(name="product")
def mul(x: int, y: int) -> int:
    return x * y


@node
async def dec(x: int) -> int:
    return x - 1


@node
def items(x: int) -> list[int]:
    return list(range(x % 4))


@node
def count(x: int) -> Iterator[int]:
    yield from range(x % 3)


@node
async def acount(x: int) -> AsyncIterator[int]:
    for i in range(x % 3):
        yield i


@node
def touch(memory: Memory, x: int) -> int:
    return x


@flow
async def sub(x: int) -> int:
    return inc(x)

"""
VARIABLES = ("a", "b", "c")

#: Expressions with holes `{}` for smaller expressions; `await` only in async flows.
COMPOUND = (
    "inc({})",
    "mul({}, {})",
    "dec({})",
    "({} + {})",
    "({} if {} else {})",
    "sum([inc(v) for v in items({})])",
    "sum(inc(v) for v in items({}) if v)",
    "len({{v: mul(v, {}) for v in items({})}})",
    "sum([w for w in count({})])",
    "max([mul(v, w) for v in items({}) for w in items(v)], default=0)",
    "len(items({}))",
    "touch(memory, {})",
    "touch(memory.clone({{}}), {})",
    "(lambda: inc({}))()",
    "f({})",
    "sum([mul(v, {}) for v in items({})])",
    "(a := {})",
    "inc(b := {})",
    "sum([v for v in items({}) if (c := v)])",
)
AWAITED = (
    "(await dec({}))",
    "(await sub({}))",
    "sum([await dec(v) for v in items({})])",
    "sum([w async for w in acount({})])",
    "sum([await dec(w) async for w in acount({})])",
    "sum([inc(await sub(v)) for v in items({})])",
    "(await asyncio.gather(dec({}), dec({})))[0]",
    "(await asyncio.wait_for(dec({}), 1))",
    "(await asyncio.shield(sub({})))",
    "(await asyncio.sleep(0, {}))",
    "sum([await dec(await dec(w)) async for w in acount({}) if w])",
    "len({{w: await dec(w) async for w in acount({})}})",
    "sum([await dec(w) async for (w) in acount({}) for v in items(w)])",
    "sum([(await dec(v)) + 1 for v in items({})])",
)
#: Statements outside the flow language: each must be a located error, never a crash.
OUTSIDE = (
    "try:",
    "with open(str(x)) as handle:",
    "def inner() -> None:",
    "class Inner:",
    "async with asyncio.TaskGroup() as group:",
)
SIMPLE = (
    "del a",
    "pass",
    "global out",
    "memory = memory.clone({{}})",
    "other = memory",
    "a, b = {}, {}",
    "a = b = {}",
    "a: int = {}",
    "print({})",
    "out[0] = {}",
    "raise ValueError({})",
    "assert {}",
    "yield {}",
)


@st.composite
def flow_expressions(draw: st.DrawFn, is_async: bool, depth: int = 0) -> str:
    leaf = st.one_of(st.sampled_from([*VARIABLES, "x"]), st.integers(-1, 3).map(str))
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return draw(leaf)
    shapes = COMPOUND + AWAITED if is_async else COMPOUND
    shape = draw(st.sampled_from(shapes))
    holes = shape.replace("{{", "").replace("}}", "").count("{}")
    parts = [draw(flow_expressions(is_async, depth + 1)) for _ in range(holes)]
    return shape.format(*parts)


def indented(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


@st.composite
def flow_blocks(
    draw: st.DrawFn, is_async: bool, in_loop: bool, depth: int = 0
) -> list[str]:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        lines += draw(flow_statements(is_async, in_loop, depth))
    return lines


@st.composite
def flow_statements(
    draw: st.DrawFn, is_async: bool, in_loop: bool, depth: int
) -> list[str]:
    def expression() -> str:
        return draw(flow_expressions(is_async))

    def block(loop: bool = in_loop) -> list[str]:
        return draw(flow_blocks(is_async, loop, depth + 1))

    name = draw(st.sampled_from(VARIABLES))
    kinds = ["assign", "assign", "augment", "append", "bare", "simple"]
    if in_loop:
        kinds.append("jump")
    if depth < 2:
        kinds += ["if", "for", "while", "match", "stream-for", "outside"]
    kind = draw(st.sampled_from(kinds))
    if kind == "assign":
        return [f"{name} = {expression()}"]
    if kind == "augment":
        return [f"{name} += {expression()}"]
    if kind == "append":
        return [f"out.append({expression()})"]
    if kind == "bare":
        return [expression()]
    if kind == "jump":
        return [draw(st.sampled_from(["break", "continue"]))]
    if kind == "simple":
        shape = draw(st.sampled_from(SIMPLE))
        holes = shape.replace("{{", "").replace("}}", "").count("{}")
        return [shape.format(*(expression() for _ in range(holes)))]
    if kind == "if":
        lines = [f"if {expression()}:", *indented(block())]
        if draw(st.booleans()):
            lines += [f"elif {expression()}:", *indented(block())]
        if draw(st.booleans()):
            lines += ["else:", *indented(block())]
        return lines
    if kind == "for":
        return [f"for {name} in items({expression()}):", *indented(block(True))]
    if kind == "while":
        return [
            (
                f"while ({name} := {name} + 1) < 3:"
                if draw(st.booleans())
                else f"while {name} < 3:"
            ),
            f"    {name} = {name} + 1",
            *indented(block(True)),
        ]
    if kind == "match":
        return [
            f"match {expression()}:",
            "    case 0:",
            *indented(indented(block())),
            "    case _:",
            *indented(indented(block())),
        ]
    if kind == "stream-for":
        loop = "async for" if is_async else "for"
        stream = "acount" if is_async else "count"
        return [f"{loop} {name} in {stream}({expression()}):", *indented(block(True))]
    return [draw(st.sampled_from(OUTSIDE)), *indented(block())]


@st.composite
def flow_sources(draw: st.DrawFn) -> str:
    is_async = draw(st.booleans())
    options = draw(st.sampled_from(["", "(max_visits=3)", '(name="named")']))
    body = ["a = x", "b = x", "c = x", "out: list[int] = []"]
    body += draw(flow_blocks(is_async, in_loop=False))
    if draw(st.booleans()):
        body.append("return (a, b, c, out)")
    head = "async def" if is_async else "def"
    signature = f"{head} f(x: int, memory: Memory) -> object:"
    return (
        f"{FLOW_HEADER}\n@flow{options}\n{signature}\n"
        + "\n".join(indented(body))
        + "\n"
    )


def flow_with(body: str, head: str = "async def") -> str:
    return f"{FLOW_HEADER}\n@flow\n{head} f(x: int, memory: Memory) -> object:\n{body}"


@FLOWS
@given(source=flow_sources())
# regressions: each of these once crashed kiln or produced wrong code
@example(source=flow_with("    return sum(inc(v) for v in items(x))\n"))
@example(
    source=flow_with("    return sum(inc(v) for v in items(x) if v)\n", head="def")
)
@example(source=flow_with("    return [inc(await sub(v)) for v in items(x)]\n"))
@example(source=flow_with("    return sum([w + 1 for w in items(x)])\n"))
@example(source=flow_with("    return [w async for w in acount(x)]\n"))
@example(
    source=flow_with(
        "    return [inc(sum([w async for w in acount(v)])) for v in items(x)]\n"
    )
)
@example(
    source=flow_with(
        "    return [inc(sum([inc(w) for w in range(v)])) for v in range(x)]\n",
        head="def",
    )
)
def test_any_flow(tmp_path_factory: pytest.TempPathFactory, source: str) -> None:
    assume(python_accepts(source))
    compile_text(tmp_path_factory.mktemp("flow"), source)


def test_a_string_holding_a_line_separator_python_does_not_break_at(
    tmp_path: Path,
) -> None:
    """\\x1e, \\x85 and \\u2028 end a line for str.splitlines, not for Python."""
    source = tmp_path / "odd.py"
    source.write_text(
        'from kiln import flow\n\n\n@flow\ndef f() -> str:\n    return "a\x1eb\x85c\u2028d"\n',
        encoding="utf-8",
    )
    compilation = compile_file(source)
    assert compilation.output is not None
    assert '"a\x1eb\x85c\u2028d"' in compilation.output
