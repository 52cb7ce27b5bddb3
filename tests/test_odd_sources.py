"""Odd but legal sources: positions stay right and nothing crashes (DESIGN.md §4.7).

Each source either compiles or is rejected with located diagnostics; never an
exception out of the compiler, never an internal error (KLN999).
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.diagnostics import Code, render_all
from kilnc.pipeline import Compilation, compile_file
from tests.diagnostic_shape import assert_caret_under_column, parse_report, python_lines
from tests.test_cli import KILN

HEADER = "from kiln import flow, node\n\n\n"

#: One error per line that is easy to place: an unknown option, and an async node
#: called without `await` inside a flow.
ERRORS = """\
from kiln import flow, node


@node(retrys=3)
def f(x: int) -> int:
    return x


@node
async def g(x: int) -> int:
    return x


@flow
async def h(x: int) -> int:
    y = f(x)
    z = g(y)
    return z
"""
ERROR_LINES = {"KLN101": 4, "KLN301": 17}


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(
        tmp_path
    )  # diagnostics show paths relative to the working directory


def compile_text(
    directory: Path, text: str | bytes, name: str = "odd.py"
) -> Compilation:
    path = directory / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    compilation = compile_file(shown)
    assert not [
        d for d in compilation.diagnostics if d.code is Code.INTERNAL
    ], "\n".join(compilation.dumps)
    return compilation


def assert_located(compilation: Compilation, text: str) -> None:
    """Every diagnostic is rendered with its excerpt and the caret under its column."""
    assert compilation.failed
    assert compilation.output is None
    lines = python_lines(text)
    rendered = render_all(compilation.diagnostics, compilation.sources)
    reported = parse_report(rendered)
    assert len(reported) == len(compilation.diagnostics), rendered
    for r in reported:
        assert 1 <= r.line <= len(lines)
        if lines[r.line - 1].strip():
            assert_caret_under_column(r, text)


def load(path: Path, text: str) -> ModuleType:
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"kiln_odd_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def errors_by_code(compilation: Compilation) -> dict[str, tuple[int, int]]:
    return {d.code.value: (d.span.line, d.span.column) for d in compilation.diagnostics}


# --- line ends, byte-order mark, tabs ---------------------------------------------------


@pytest.fixture
def reference(tmp_path: Path) -> dict[str, tuple[int, int]]:
    compilation = compile_text(tmp_path, ERRORS, "reference.py")
    found = errors_by_code(compilation)
    assert set(found) == set(ERROR_LINES)
    assert {code: line for code, (line, _) in found.items()} == ERROR_LINES
    assert found["KLN301"] == (17, 9)  # the call of the async node 'g'
    return found


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda t: b"\xef\xbb\xbf" + t.encode(), id="bom"),
        pytest.param(lambda t: t.replace("\n", "\r\n").encode(), id="crlf"),
        pytest.param(
            lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode(), id="bom-crlf"
        ),
        pytest.param(lambda t: t.replace("\n", "\r").encode(), id="cr"),
    ],
)
def test_positions_survive_bom_and_line_ends(
    tmp_path: Path, reference: dict[str, tuple[int, int]], encode: object
) -> None:
    assert callable(encode)
    data = encode(ERRORS)
    compilation = compile_text(tmp_path, data)
    assert errors_by_code(compilation) == reference
    assert_located(compilation, data.decode("utf-8-sig"))


def test_bom_and_crlf_compile_to_the_same_module(tmp_path: Path) -> None:
    text = (
        HEADER
        + "@node\ndef f(x: int) -> int:\n    return x\n\n\n@flow\ndef g(x: int) -> int:\n"
    )
    text += "    return f(x)\n"
    plain = compile_text(tmp_path, text, "same.py")
    odd = compile_text(
        tmp_path, b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(), "same.py"
    )
    assert plain.output is not None
    assert odd.output is not None
    assert (
        odd.output.splitlines()[2:] == plain.output.splitlines()[2:]
    )  # the header hashes bytes
    module = load(tmp_path / "built.py", odd.output)
    assert module.g(4) == 4


FLOW_OF_F = "\n\n@flow\ndef g(x: str) -> str:\n    return f(x)\n"


@pytest.mark.parametrize(
    ("data", "where", "message"),
    [
        pytest.param(
            b'@node\ndef f(x: str) -> str:\n    return x + "caf\xc3"\n',
            (6, 20),
            "Non-UTF-8 code starting with '\\xc3' in file odd.py on line 6, but no "
            "encoding declared; see https://peps.python.org/pep-0263/ for details",
            id="in-a-string",
        ),
        pytest.param(
            b"@node\ndef f(x: str) -> str:\n    return x \xff+ x\n",
            (6, 14),
            "Non-UTF-8 code starting with '\\xff' in file odd.py on line 6, but no "
            "encoding declared; see https://peps.python.org/pep-0263/ for details",
            id="in-code",
        ),
        pytest.param(
            b"@node\ndef f(x: str) -> str:  # caf\xe9\n    return x\n",
            (5, 29),
            "Non-UTF-8 code starting with '\\xe9' in file odd.py on line 5, but no "
            "encoding declared; see https://peps.python.org/pep-0263/ for details",
            id="in-a-comment",
        ),
    ],
)
def test_bytes_python_would_not_decode_are_its_error_where_they_are(
    tmp_path: Path, data: bytes, where: tuple[int, int], message: str
) -> None:
    compilation = compile_text(tmp_path, HEADER.encode() + data + FLOW_OF_F.encode())
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.code is Code.SYNTAX
    assert (diagnostic.span.line, diagnostic.span.column) == where
    assert diagnostic.message == f"invalid syntax: {message}"


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (b"# coding: ascii\n", "'ascii' codec can't decode byte 0xe9 in position "),
        (b"# coding: no-such-codec\n", "unknown encoding: no-such-codec"),
        (b"\xef\xbb\xbf# coding: latin-1\n", "encoding problem: iso-8859-1 with BOM"),
    ],
)
def test_an_encoding_declaration_python_refuses_is_its_error(
    tmp_path: Path, declared: bytes, message: str
) -> None:
    data = declared + HEADER.encode() + b"@node\ndef f(x: str) -> str:\n"
    data += b'    return x + "caf\xe9"\n' + FLOW_OF_F.encode()
    (diagnostic,) = compile_text(tmp_path, data).diagnostics
    assert diagnostic.code is Code.SYNTAX
    assert diagnostic.message.startswith(f"invalid syntax: {message}")
    assert diagnostic.span.line == (7 if "ascii" in message else 1)


def test_a_source_in_the_encoding_it_declares_keeps_its_text(tmp_path: Path) -> None:
    """Read as UTF-8, "café" in Latin-1 was "caf\ufffd" in the compiled module."""
    data = b"# -*- coding: latin-1 -*-\n" + HEADER.encode()
    data += b'@node\ndef f(x: str) -> str:\n    return x + "caf\xe9"\n'
    compilation = compile_text(tmp_path, data + FLOW_OF_F.encode())
    assert compilation.output is not None, compilation.diagnostics
    assert load(tmp_path / "built.py", compilation.output).g("") == "caf\xe9"


def test_tabs(tmp_path: Path) -> None:
    text = (
        HEADER + "@node(\tretrys=3)\n"  # line 4: the option 'retrys' is at column 8
        "def f(x: int) -> int:\n"
        "\treturn x\n"
        "\n\n"
        "@node\n"
        "async def g(x: int) -> int:\n"
        "\treturn x\n"
        "\n\n"
        "@flow\n"
        "async def h(x: int) -> int:\n"
        "\tif x:\n"
        "\t\ty = 1;\tz =\tg(x)\n"  # line 17: the call to g is at column 14
        "\telse:\n"
        "\t\tz = 0\n"
        "\treturn z\n"
    )
    compilation = compile_text(tmp_path, text)
    found = errors_by_code(compilation)
    assert found["KLN301"] == (17, 14)
    assert found["KLN101"] == (4, 8)
    assert_located(compilation, text)


def test_tabs_through_the_cli(tmp_path: Path) -> None:
    text = HEADER + "@node\nasync def g(x: int) -> int:\n\treturn x\n\n\n@flow\n"
    text += "async def h(x: int) -> int:\n\ty =\tg(x)\n\treturn y\n"
    (tmp_path / "tabs.py").write_text(text, encoding="utf-8")
    result = subprocess.run(
        [*KILN, "compile", "tabs.py", "-o", "build"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    [reported] = parse_report(result.stdout)
    assert (reported.line, reported.column, reported.code) == (11, 6, "KLN301")
    assert_caret_under_column(reported, text)
    # '\ty =\tg(x)' expands to 'y =     g(x)' once the indentation is dropped
    assert reported.excerpt == "    y =     g(x)"
    assert reported.caret == "    " + " " * 8 + "^~~~"


# --- hostile strings --------------------------------------------------------------------

HOSTILE = "\x00\n'\"\\ ${}{{}}"
HOSTILE_SOURCE = r'''from kiln import flow, node


@node(name="\x00\n'\"\\ ${}{{}}")
def f(x: int) -> int:
    if x < 0:
        raise ValueError(x)
    return x


@flow(name="\x00\n'\"\\ ${}{{}}")
def g(x: int) -> int:
    """Doc \\ \""" \x00 {} '' ' \N{SNOWMAN} %s"""
    return f(x)
'''


def test_hostile_strings_reach_the_output_only_as_literals(tmp_path: Path) -> None:
    compilation = compile_text(tmp_path, HOSTILE_SOURCE)
    assert not compilation.failed, render_all(
        compilation.diagnostics, compilation.sources
    )
    assert compilation.output is not None
    compile(compilation.output, "generated.py", "exec")
    module = load(tmp_path / "hostile_built.py", compilation.output)
    assert module.g(3) == 3
    with pytest.raises(ValueError, match="-1") as caught:
        module.g(-1)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert repr(HOSTILE) in notes or HOSTILE in notes, notes


def test_hostile_string_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "hostile.py").write_text(HOSTILE_SOURCE, encoding="utf-8")
    result = subprocess.run(
        [*KILN, "compile", "hostile.py", "-o", "build"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result
    checked = subprocess.run(
        [sys.executable, "-c", "import hostile; assert hostile.g(7) == 7"],
        cwd=tmp_path / "build",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked


def test_path_with_a_newline(tmp_path: Path) -> None:
    text = (
        HEADER
        + "@node\ndef f(x: int) -> int:\n    return x\n\n\n@flow\ndef g(x: int) -> int:\n"
    )
    text += "    return f(x)\n"
    compilation = compile_text(tmp_path, text, "odd\nimport os.py")
    assert compilation.output is not None


def test_path_with_quotes(tmp_path: Path) -> None:
    text = (
        HEADER
        + "@node\ndef f(x: int) -> int:\n    return x\n\n\n@flow\ndef g(x: int) -> int:\n"
    )
    text += "    return f(x)\n"
    compilation = compile_text(tmp_path, text, "it's \"odd\\.py")
    assert compilation.output is not None
    assert load(tmp_path / "built.py", compilation.output).g(2) == 2


# --- non-ASCII --------------------------------------------------------------------------

UNICODE_SOURCE = """\
from kiln import flow, node


@node(name="naïve ☃ 名前")
def größe(wert: str) -> str:
    return wert + "é☃"


@node
async def 数える(text: str) -> int:
    return len(text)


@flow
async def 流れ(入力: str) -> int:
    \"\"\"Ünïcödé ☃.\"\"\"
    ü = größe(入力)
    return await 数える(ü)
"""


def test_non_ascii_identifiers_and_strings(tmp_path: Path) -> None:
    compilation = compile_text(tmp_path, UNICODE_SOURCE)
    assert not compilation.failed, render_all(
        compilation.diagnostics, compilation.sources
    )
    assert compilation.output is not None
    module = load(tmp_path / "unicode_built.py", compilation.output)
    assert module.流れ("ab") == 4


def test_non_ascii_before_the_error_keeps_the_column(tmp_path: Path) -> None:
    # columns count characters, not UTF-8 bytes
    text = (
        HEADER
        + '@node(name="☃☃☃", retrys=1)\ndef größe(x: int) -> int:\n    return x\n'
    )
    compilation = compile_text(tmp_path, text)
    [diagnostic] = compilation.diagnostics
    assert diagnostic.span.line == 4
    assert_located(compilation, text)


# Python reads identifiers in NFKC form: `_\uff4biln_f` (a fullwidth k) *is* `_kiln_f`,
# and `\ufb01nd` (the fi ligature) *is* `find`.
RESERVED_LOOKALIKE = (
    HEADER
    + "@node\ndef f(x: int) -> int:\n    return x\n\n\n@flow\ndef g(x: int) -> int:\n"
    "    _\uff4biln_f = 100\n"
    "    return f(x) + _\uff4biln_f\n"
)


def test_reserved_prefix_in_compatibility_form(tmp_path: Path) -> None:
    compilation = compile_text(tmp_path, RESERVED_LOOKALIKE)
    if compilation.failed:
        assert {d.code for d in compilation.diagnostics} == {Code.RESERVED_NAME}
        return
    assert compilation.output is not None
    module = load(tmp_path / "lookalike_built.py", compilation.output)
    assert module.g(1) == 101  # what the source computes


def test_node_name_in_compatibility_form(tmp_path: Path) -> None:
    text = (
        HEADER
        + "@node\nasync def \ufb01nd(x: int) -> int:\n    return x\n\n\n"
        + "@flow\nasync def g(x: int) -> int:\n    y = await find(x)\n    return y\n"
    )
    compilation = compile_text(tmp_path, text)
    assert not compilation.failed, render_all(
        compilation.diagnostics, compilation.sources
    )
    assert compilation.output is not None
    assert load(tmp_path / "ligature_built.py", compilation.output).g(3) == 3


# --- empty and flowless files -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("\n\n\n", id="blank-lines"),
        pytest.param("# only\n# comments\n", id="only-comments"),
        pytest.param("# no newline at the end", id="comment-no-newline"),
        pytest.param('"""Only a docstring."""\n', id="docstring"),
        pytest.param("\ufeff", id="bom-only"),
        pytest.param(
            HEADER + "@node\ndef f(x: int) -> int:\n    return x\n", id="no-flow"
        ),
        pytest.param("import os\n\nX = os.sep\n", id="plain-module"),
    ],
)
def test_nothing_to_compile(tmp_path: Path, text: str) -> None:
    compilation = compile_text(tmp_path, text)
    assert not compilation.failed, render_all(
        compilation.diagnostics, compilation.sources
    )
    assert compilation.output is None


def test_empty_file_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_bytes(b"")
    result = subprocess.run(
        [*KILN, "compile", "empty.py", "-o", "build"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "build" / "empty.py").exists()


# --- deep nesting -----------------------------------------------------------------------

FLOW_PREFIX = (
    HEADER
    + "@node\ndef f(x: int) -> int:\n    return x\n\n\n@flow\ndef g(x: int) -> int:\n"
)
FLOW_LINE = FLOW_PREFIX.count("\n") + 1  # the first line of the flow's body


def nested_parens(depth: int) -> str:
    return "(" * depth + "1" + ")" * depth


def nested_call(depth: int) -> str:
    return "(" * depth + "f(x)" + ")" * depth


def chained_plus(terms: int) -> str:
    return " + ".join(["x"] * terms)


DEEP = [
    pytest.param("x = " + nested_parens(150) + "\n", 1, id="150-parens-module"),
    pytest.param("x = " + nested_parens(200) + "\n", 1, id="200-parens-module"),
    pytest.param("x = " + nested_parens(2000) + "\n", 1, id="2000-parens-module"),
    pytest.param("x = 1\ny = " + chained_plus(5000) + "\n", 2, id="5000-plus-module"),
    pytest.param(
        FLOW_PREFIX + "    y = " + nested_call(150) + "\n    return y\n",
        FLOW_LINE,
        id="150-parens-flow",
    ),
    pytest.param(
        FLOW_PREFIX + "    y = " + nested_call(200) + "\n    return y\n",
        FLOW_LINE,
        id="200-parens-flow",
    ),
    pytest.param(
        FLOW_PREFIX + "    y = " + nested_call(2000) + "\n    return y\n",
        FLOW_LINE,
        id="2000-parens-flow",
    ),
    pytest.param(
        FLOW_PREFIX + "    y = f(" + chained_plus(5000) + ")\n    return y\n",
        FLOW_LINE,
        id="5000-plus-flow",
    ),
    pytest.param(
        FLOW_PREFIX + "    y = " + chained_plus(5000) + "\n    return f(y)\n",
        FLOW_LINE,
        id="5000-plus-inline-flow",
    ),
]


@pytest.mark.parametrize(("text", "deep_line"), DEEP)
def test_deep_nesting_never_crashes(tmp_path: Path, text: str, deep_line: int) -> None:
    compilation = compile_text(tmp_path, text)
    if compilation.failed:
        assert {d.code for d in compilation.diagnostics} <= {
            Code.TOO_COMPLEX,
            Code.SYNTAX,
        }
        rendered = render_all(compilation.diagnostics, compilation.sources)
        assert parse_report(rendered), rendered
        for diagnostic in compilation.diagnostics:
            assert 1 <= diagnostic.span.line <= len(python_lines(text))
    elif "@flow" in text:
        assert compilation.output is not None


@pytest.fixture
def default_recursion_limit() -> Iterator[None]:
    """Python's default limit: a library loaded by another test may have raised it."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(before)


def python_rejects(text: str) -> bool:
    try:
        compile(text, "deep.py", "exec", dont_inherit=True)
    except (SyntaxError, RecursionError, MemoryError):
        return True
    return False


@pytest.mark.parametrize(
    ("text", "deep_line"),
    [p for p in DEEP if "5000-plus" not in str(p.id)],
)
def test_deep_nesting_is_reported_at_its_line(
    tmp_path: Path, text: str, deep_line: int
) -> None:
    if not python_rejects(text):
        return
    compilation = compile_text(tmp_path, text)
    assert compilation.failed
    assert [d.span.line for d in compilation.diagnostics] == [deep_line]


@pytest.mark.parametrize(
    ("text", "deep_line"),
    [p for p in DEEP if "5000-plus" in str(p.id)],
)
def test_deep_chain_is_reported_at_its_line(
    tmp_path: Path, text: str, deep_line: int, default_recursion_limit: None
) -> None:
    assert python_rejects(text)
    compilation = compile_text(tmp_path, text)
    assert compilation.failed
    assert [d.span.line for d in compilation.diagnostics] == [deep_line]


def test_deep_nesting_through_the_cli(tmp_path: Path) -> None:
    text = FLOW_PREFIX + "    y = " + nested_call(2000) + "\n    return y\n"
    (tmp_path / "deep.py").write_text(text, encoding="utf-8")
    result = subprocess.run(
        [*KILN, "compile", "deep.py", "-o", "build"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    assert "KLN999" not in result.stdout
    [reported] = parse_report(result.stdout)
    assert reported.line == FLOW_LINE
    assert (
        result.stdout.rstrip().splitlines()[-1]
        == "Found 1 error in 1 file; nothing written"
    )


# --- characters Python does not count as line ends --------------------------------------


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param("# a\u2028b\n", id="line-separator-in-comment"),
        pytest.param('S = "\u2029"\n', id="paragraph-separator-in-string"),
        pytest.param('S = "\x85"\n', id="nel-in-string"),
    ],
)
def test_unicode_line_separators_keep_the_excerpt(tmp_path: Path, odd: str) -> None:
    text = ERRORS.replace("\n\n\n@node(retrys", "\n" + odd + "\n@node(retrys", 1)
    compilation = compile_text(tmp_path, text)
    assert errors_by_code(compilation)["KLN101"][0] == 4
    assert_located(compilation, text)


def test_form_feed_keeps_the_column(
    tmp_path: Path, reference: dict[str, tuple[int, int]]
) -> None:
    text = ERRORS.replace("\n@node(retrys", "\n\x0c@node(retrys", 1)
    compilation = compile_text(tmp_path, text)
    line, column = reference["KLN101"]
    assert errors_by_code(compilation)["KLN101"] == (line, column + 1)
    assert_located(compilation, text)


# --- nesting Python's compiler refuses ----------------------------------------------------


def nested_loops(depth: int) -> str:
    """A flow whose node call sits inside `depth` nested `for` loops."""
    lines = [
        "from kiln import flow, node",
        "",
        "@node",
        "def f(x: int) -> int:",
        "    return x",
        "",
        "@flow",
        "def g(x: int) -> int:",
    ]
    lines += [
        f"{'    ' * (level + 1)}for a{level} in range(1):" for level in range(depth)
    ]
    lines += [f"{'    ' * (depth + 1)}x = f(x)", "    return x", ""]
    return "\n".join(lines)


def test_a_source_nested_past_pythons_limit_is_an_error_at_its_line(
    tmp_path: Path,
) -> None:
    text = nested_loops(21)
    compilation = compile_text(tmp_path, text)
    assert_located(compilation, text)
    assert [(d.code, d.span.line) for d in compilation.diagnostics] == [
        (Code.TOO_COMPLEX, 29)  # the 21st `for`
    ]


@pytest.mark.parametrize("depth", [18, 19, 20])
def test_a_flow_nested_as_deep_as_python_allows_compiles(
    tmp_path: Path, depth: int
) -> None:
    """Python compiles 20 nested loops; the `try` noting a failed call fits anyway."""
    text = nested_loops(depth)
    source = load(tmp_path / "plain.py", text)  # Python runs the source itself
    compilation = compile_text(tmp_path, text)
    assert compilation.output is not None, compilation.diagnostics
    compiled = load(tmp_path / "compiled.py", compilation.output)
    assert compiled.g(3) == source.g(3)


STRING_LINES_SOURCE = '''
import asyncio
from kiln import flow, node

# A constant whose text has trailing spaces and indented lines.
BANNER = """first line  \x20
    indented, then trailing tab\t
last"""


@node
async def shout(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


@flow
async def banner(name: str) -> tuple[str, str, str]:
    # the call, then a literal whose lines the flow's indentation must not touch
    loud = await shout(name)
    template = """
    {loud}  \x20
        and {name}\t
"""
    return loud, template.format(loud=loud, name=name), BANNER
'''


def test_string_literals_keep_their_lines_as_written(tmp_path: Path) -> None:
    """A string's lines are its text: the compiled module copies them as they are."""
    compilation = compile_text(tmp_path, STRING_LINES_SOURCE)
    assert compilation.output is not None, render_all(
        compilation.diagnostics, compilation.sources
    )
    compiled = load(tmp_path / "strings_built.py", compilation.output)
    source = load(tmp_path / "strings_source.py", STRING_LINES_SOURCE)
    assert compiled.banner("ada") == asyncio.run(source.banner("ada"))
    assert "# the call, then a literal" in compilation.output  # the comment goes along
    assert "# A constant whose text" in compilation.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def f(:\n    pass\n", "invalid syntax"),
        ("x = [1 2]\n", "invalid syntax. Perhaps you forgot a comma?"),
        ("if x\n    pass\n", "invalid syntax: expected ':'"),
    ],
)
def test_python_s_own_syntax_message_is_said_once(
    tmp_path: Path, text: str, message: str
) -> None:
    (diagnostic,) = compile_text(tmp_path, text.encode()).diagnostics
    assert diagnostic.code is Code.SYNTAX
    assert diagnostic.message == message
