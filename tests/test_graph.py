"""`kiln graph`: drawings of flows as Mermaid, DOT, SVG and PNG.

The goldens are tests/data/graphs/<case>.py with the drawing kiln makes of it
beside it, <case>.mmd and <case>.dot; `pytest --update-goldens` rewrites them
(read the diff before committing it). The command itself is run as a user runs
it, through the installed `kiln`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kilnc.drawing.draw import draw_flow
from kilnc.drawing.model import EdgeKind, FlowDrawing, Shape
from kilnc.drawing.text import to_dot, to_mermaid
from kilnc.pipeline import compile_file
from tests.test_cli import VENV_BIN, kiln, write

GRAPHS = Path(__file__).parent / "data" / "graphs"
CASES = sorted(path.stem for path in GRAPHS.glob("*.py"))
RENDER = {"mmd": to_mermaid, "dot": to_dot}
NEEDS_DOT = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot program is not installed (apt install graphviz)",
)


def drawings(path: Path) -> list[FlowDrawing]:
    compilation = compile_file(path)
    assert not compilation.failed, compilation.diagnostics
    return [draw_flow(flow, f"f{i}") for i, flow in enumerate(compilation.flows)]


def drawing_of(tmp_path: Path, source: str) -> FlowDrawing:
    (found,) = drawings(write(tmp_path / "flows.py", source))
    return found


def test_every_construct_has_a_case() -> None:
    assert set(CASES) >= {
        "chain",
        "fan_out",
        "branch",
        "match",
        "loops",
        "memory",
        "options",
        "escaping",
    }


@pytest.mark.parametrize("suffix", sorted(RENDER))
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, suffix: str, request: pytest.FixtureRequest) -> None:
    text = RENDER[suffix](drawings(GRAPHS / f"{case}.py"))
    golden = GRAPHS / f"{case}.{suffix}"
    if request.config.getoption("--update-goldens"):
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden yet: run pytest {__file__} --update-goldens"
    assert text == golden.read_text(encoding="utf-8")


# --- the text is well formed in each format ------------------------------------------

MERMAID_SHAPE = (
    r'(?:\(\[|\[\[|\[/|\[|\(\(|\(|\{\{|\{)"[^"]*"(?:\]\)|\]\]|/\]|\]|\)\)|\)|\}\}|\})'
)
MERMAID_LINES = [
    re.compile(r"flowchart TD"),
    re.compile(r'subgraph f\d+(?:_c\d+)? \["[^"]*"\]'),
    re.compile(r"end"),
    re.compile(rf"f\d+_\w+{MERMAID_SHAPE}"),
    re.compile(r'f\d+_\w+ (?:-->|-\.->|==>)(?:\|"[^"]*"\|)? f\d+_\w+'),
]
DOT_STRING = r'"(?:[^"\\]|\\.)*"'
DOT_LINES = [
    re.compile(r"digraph kiln \{|\}|style=rounded;"),
    re.compile(r"(?:graph|node|edge) \[[^\]]*\];"),
    re.compile(r"subgraph cluster_f\d+(?:_c\d+)? \{"),
    re.compile(rf"label={DOT_STRING};"),
    re.compile(
        rf"f\d+_\w+ \[shape=\w+(?:, style={DOT_STRING})?(?:, peripheries=2)?, label={DOT_STRING}\];"
    ),
    re.compile(
        rf"f\d+_\w+ -> f\d+_\w+(?: \[(?:style=\w+)?(?:, )?(?:label={DOT_STRING})?\])?;"
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_every_line_is_well_formed(case: str) -> None:
    """Labels never break out of their quotes, whatever the code in them holds."""
    found = drawings(GRAPHS / f"{case}.py")
    for text, grammar in (
        (to_mermaid(found), MERMAID_LINES),
        (to_dot(found), DOT_LINES),
    ):
        for line in text.splitlines():
            assert any(rule.fullmatch(line.strip()) for rule in grammar), line


@NEEDS_DOT
@pytest.mark.parametrize("case", CASES)
def test_dot_accepts_every_golden(case: str) -> None:
    done = subprocess.run(
        ["dot", "-Tsvg"],
        input=(GRAPHS / f"{case}.dot").read_bytes(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"<svg" in done.stdout
    assert not done.stderr, done.stderr.decode()  # no syntax warnings either


def test_labels_escape_what_each_format_reads_as_syntax(tmp_path: Path) -> None:
    found = [
        drawing_of(
            tmp_path,
            """\
from kiln import flow, node


@node(name='a "b" #c |d| <e> & `f` \\\\ [g] {h}')
def f(x: str) -> str:
    return x


@flow
def run(x: str) -> str:
    y = f(x)
    return y
""",
        )
    ]
    mermaid = to_mermaid(found)
    assert (
        '"a #quot;b#quot; #35;c #124;d#124; #lt;e#gt; #amp; #96;f#96; \\ [g] {h}'
        in mermaid
    )
    dot = to_dot(found)
    assert 'label="a \\"b\\" #c |d| <e> & `f` \\\\ [g] {h}\\nsync"' in dot


# --- what the drawing says -----------------------------------------------------------


def edges(drawing: FlowDrawing) -> set[tuple[str, str, EdgeKind, str]]:
    def short(box: str) -> str:
        return box.split("_", 1)[1]

    return {(short(e.source), short(e.target), e.kind, e.label) for e in drawing.edges}


def boxes(drawing: FlowDrawing) -> dict[str, tuple[Shape, tuple[str, ...]]]:
    found = {}
    pending = [drawing.cluster]
    while pending:
        cluster = pending.pop()
        for member in cluster.members:
            if hasattr(member, "shape"):
                found[member.id.split("_", 1)[1]] = (member.shape, member.lines)
            else:
                pending.append(member)
    return found


NODES = """\
from kiln import Memory, flow, node


@node
async def fetch(x: int) -> int:
    return x


@node
async def good(x: int) -> bool:
    return x > 3


@node
def note(memory: Memory, x: int) -> Memory:
    return memory
"""


def test_a_value_carried_around_a_loop_is_an_edge_back(tmp_path: Path) -> None:
    drawing = drawing_of(
        tmp_path,
        NODES + """

@flow(max_visits=4)
async def run(x: int) -> int:
    while not await good(x):
        x = await fetch(x)
    return x
""",
    )
    shown = boxes(drawing)
    assert shown["s0"] == (Shape.CALL, ("good", "async", "max 4 visits"))
    assert shown["s1"] == (Shape.CALL, ("fetch", "async", "max 4 visits"))
    assert shown["s2"] == (Shape.DECISION, ("while not await good(x)",))
    found = edges(drawing)
    assert ("s1", "s0", EdgeKind.DATA, "x") in found  # the next iteration's test
    assert ("s2", "s1", EdgeKind.CONTROL, "true") in found
    assert {
        ("in", "out", EdgeKind.DATA, "x"),
        ("s1", "out", EdgeKind.DATA, "x"),
    } <= found


def test_memory_edges_keep_order_and_data_edges_carry_values(tmp_path: Path) -> None:
    drawing = drawing_of(
        tmp_path,
        NODES + """

@flow
def run(memory: Memory, x: int) -> Memory:
    memory = note(memory, x)
    memory = note(memory, x + 1)
    return memory
""",
    )
    assert edges(drawing) == {
        ("in", "s0", EdgeKind.ORDER, "memory"),
        ("in", "s0", EdgeKind.DATA, "x"),
        ("in", "s1", EdgeKind.DATA, "x"),
        ("s0", "s1", EdgeKind.ORDER, "memory"),
        ("s1", "out", EdgeKind.ORDER, "memory"),
    }


def test_an_arm_that_returns_hands_nothing_on(tmp_path: Path) -> None:
    drawing = drawing_of(
        tmp_path,
        NODES + """

@flow
async def run(x: int) -> int:
    if x > 1:
        return 0
    else:
        y = await fetch(x)
    return y
""",
    )
    found = edges(drawing)
    assert ("s2", "out", EdgeKind.CONTROL, "true") in found
    assert ("s1", "out", EdgeKind.DATA, "y") in found
    assert not any(source == "in" and target == "out" for source, target, *_ in found)


def test_default_max_visits_is_five(tmp_path: Path) -> None:
    drawing = drawing_of(
        tmp_path,
        NODES + """

@flow
async def run(x: int) -> int:
    while x < 10:
        x = await fetch(x)
    return x
""",
    )
    assert "max 5 visits" in boxes(drawing)["s0"][1]


# --- the command ---------------------------------------------------------------------


@pytest.mark.parametrize(("form", "suffix"), [(None, "mmd"), ("dot", "dot")])
def test_the_command_prints_the_golden(
    tmp_path: Path, form: str | None, suffix: str
) -> None:
    source = shutil.copy(GRAPHS / "loops.py", tmp_path / "loops.py")
    args = ["graph", source] + (["--format", form] if form else [])
    result = kiln(*args, cwd=tmp_path)
    assert result.returncode == 0, result
    assert result.stdout == (GRAPHS / f"loops.{suffix}").read_text(encoding="utf-8")


def test_same_input_same_bytes_across_processes(tmp_path: Path) -> None:
    """Set order is per process (string hashing): the output must not depend on it."""
    source = shutil.copy(GRAPHS / "fan_out.py", tmp_path / "fan_out.py")
    outputs = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            [str(VENV_BIN / "kiln"), "graph", str(source), "--format", "dot"],
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


def test_flow_picks_one_flow_and_o_writes_a_file(tmp_path: Path) -> None:
    source = shutil.copy(GRAPHS / "options.py", tmp_path / "options.py")
    result = kiln("graph", source, "--flow", "twice", "-o", "twice.mmd", cwd=tmp_path)
    assert result.returncode == 0, result
    assert result.stdout == ""
    text = (tmp_path / "twice.mmd").read_text(encoding="utf-8")
    assert 'subgraph f0 ["flow twice"]' in text
    assert "flow answer" not in text


def test_flow_shows_the_warnings_of_the_flow_it_draws(tmp_path: Path) -> None:
    flow = """
@flow
async def NAME(d: dict[str, int]) -> int:
    await fill(d)
    return await peek(d)
"""
    write(
        tmp_path / "two.py",
        "from kiln import flow, node\n\n\n@node\nasync def fill(d: dict[str, int])"
        ' -> None:\n    d["k"] = 1\n\n\n@node\nasync def peek(d: dict[str, int])'
        " -> int:\n    return len(d)\n"
        + flow.replace("NAME", "first")
        + flow.replace("NAME", "second"),
    )
    for drawn, line in (("first", 16), ("second", 21)):
        result = kiln("graph", "two.py", "--flow", drawn, cwd=tmp_path)
        assert result.returncode == 0, result
        assert [
            w.split(":")[1] for w in result.stderr.splitlines() if "warning" in w
        ] == [str(line)], result.stderr


def test_unknown_flow_lists_the_flows(tmp_path: Path) -> None:
    source = shutil.copy(GRAPHS / "options.py", tmp_path / "options.py")
    result = kiln("graph", source, "--flow", "thrice", cwd=tmp_path)
    assert result.returncode == 2, result
    assert "no flow named 'thrice'" in result.stderr
    assert "answer, twice" in result.stderr


def test_a_file_without_flows_is_a_usage_error(tmp_path: Path) -> None:
    write(
        tmp_path / "nodes.py",
        "from kiln import node\n\n\n@node\ndef f() -> int:\n    return 1\n",
    )
    result = kiln("graph", "nodes.py", cwd=tmp_path)
    assert result.returncode == 2, result
    assert "defines no @flow" in result.stderr
    missing = kiln("graph", "missing.py", cwd=tmp_path)
    assert missing.returncode == 2, missing
    assert "no such file" in missing.stderr


BROKEN = """\
from kiln import flow, node


@node
async def f(x: int) -> int:
    return x


@flow
async def run(x: int) -> int:
    y = f(x)
    return y
"""


def test_a_source_with_errors_prints_them_and_exits_1(tmp_path: Path) -> None:
    write(tmp_path / "broken.py", BROKEN)
    result = kiln("graph", "broken.py", cwd=tmp_path)
    assert result.returncode == 1, result
    assert "broken.py:11:9: error: call to async node 'f' is not awaited  [KLN301]" in (
        result.stdout
    )
    as_json = kiln("graph", "broken.py", "--diagnostics", "json", cwd=tmp_path)
    assert as_json.returncode == 1, as_json
    (reported,) = json.loads(as_json.stdout)
    assert (reported["path"], reported["line"], reported["code"]) == (
        "broken.py",
        11,
        "KLN301",
    )


@NEEDS_DOT
@pytest.mark.parametrize(("form", "magic"), [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_svg_and_png_come_from_dot(tmp_path: Path, form: str, magic: bytes) -> None:
    source = shutil.copy(GRAPHS / "chain.py", tmp_path / "chain.py")
    result = kiln(
        "graph", source, "--format", form, "-o", f"chain.{form}", cwd=tmp_path
    )
    assert result.returncode == 0, result
    data = (tmp_path / f"chain.{form}").read_bytes()
    assert magic in data[:400]
    if form == "svg":
        assert b"flow words" in data


def test_svg_without_dot_names_the_package_to_install(tmp_path: Path) -> None:
    source = shutil.copy(GRAPHS / "chain.py", tmp_path / "chain.py")
    done = subprocess.run(
        [str(VENV_BIN / "kiln"), "graph", str(source), "--format", "svg"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path)},  # nowhere to find dot
        check=False,
    )
    assert done.returncode == 1, done
    assert "graphviz (apt install graphviz / brew install graphviz)" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_readme_shows_what_kiln_graph_draws() -> None:
    """The README's drawing of examples/digest.py is regenerated, not hand-edited."""
    root = GRAPHS.parent.parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"```mermaid\n(.*?)```", readme, re.DOTALL)
    assert shown is not None, "the README shows a Mermaid drawing"
    drawn = to_mermaid(drawings(root / "examples" / "digest.py"))
    assert shown[1] == drawn, "run: kiln graph examples/digest.py, paste into README.md"


def test_a_memory_made_in_the_flow_orders_the_steps_given_it(tmp_path: Path) -> None:
    """`stats: Memory = Memory(...)` in the body is a state token like a parameter."""
    drawing = drawing_of(
        tmp_path,
        """\
from kiln import Memory, flow, node


@node
def bump(stats: Memory) -> None:
    stats.n += 1


@node
async def show(stats: Memory) -> str:
    return str(stats.n)


@flow
async def run(x: int) -> str:
    stats: Memory = Memory({"n": 0})
    bump(stats)
    return await show(stats)
""",
    )
    assert {
        ("s0", "s1", EdgeKind.ORDER, "stats"),
        ("s1", "s2", EdgeKind.ORDER, "stats"),
    } <= (edges(drawing))
