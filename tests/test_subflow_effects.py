"""A subflow's own statements keep their place in the flow that calls it.

`await register("a"); return await sub()`, where `sub` does `n = len(REG)`:
written in the caller, `len(REG)` waits for `register`, which fills `REG`.
kiln once scheduled the call of `sub` by its data alone, so `sub` read `REG`
before `register` had run and the compiled flow returned 0 where the source
returns 1 (trial G, section B). A call of a subflow now carries the outside
effects of the subflow's own statements and argument expressions (a read or
change of module state, a print) into its caller, and keeps their place
there as they would keep it written inline, with the same KLN311. A
subflow's nodes are nodes: they overlap the caller's as two nodes sharing
module state do (README).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

FLOWS = """
import asyncio
from collections.abc import AsyncIterator

from kiln import flow, node

REG: dict[str, int] = {}
LOG: list[str] = []


@node
async def register(k: str) -> None:
    await asyncio.sleep(0.02)
    REG[k] = 1
    LOG.append(f"registered {k}")


@node
async def ident(x: int) -> int:
    return x


@node
async def count() -> int:
    return len(REG)


@flow
async def reads() -> int:
    n = len(REG)
    return n


@flow
async def reads_in_arguments() -> int:
    return await ident(len(REG))


@flow
async def logs(tag: str) -> int:
    LOG.append(f"sub {tag}")
    return await ident(len(tag))


@flow
async def nested() -> int:
    return await reads()


@flow
async def yields() -> AsyncIterator[int]:
    yield await ident(len(REG))
    yield len(REG)


@flow
async def statement_read() -> int:
    await register("a")
    return await reads()


@flow
async def argument_read() -> int:
    await register("a")
    return await reads_in_arguments()


@flow
async def through_two_subflows() -> int:
    await register("a")
    return await nested()


@flow
async def module_state_changed() -> list[str]:
    await register("a")
    await logs("one")
    await register("b")
    return list(LOG)


@flow
async def fan_out(tags: list[str]) -> list[str]:
    await register("a")
    sizes = [await logs(tag) for tag in tags]
    await register("b")
    return [*LOG, str(sizes)]


@flow
async def streamed() -> list[int]:
    await register("a")
    out = []
    async for n in yields():  # the subflow's statements run as the loop asks
        out.append(n)
    await register("b")
    return out


@flow
async def node_reads() -> int:
    await register("a")
    return await count()


@flow
async def node_in_subflow() -> int:
    await register("a")
    return await counted()


@flow
async def counted() -> int:
    return await count()
"""

CASES = [
    ("statement_read", ()),
    ("argument_read", ()),
    ("through_two_subflows", ()),
    ("module_state_changed", ()),
    ("fan_out", (["x", "yy", "zzz"],)),
    ("streamed", ()),
]


def reset(module: ModuleType) -> None:
    module.REG.clear()
    module.LOG.clear()


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return compiled_and_source(FLOWS, tmp_path_factory.mktemp("subflow_effects"))


@pytest.mark.parametrize(("name", "args"), CASES)
def test_a_subflow_s_statement_runs_where_the_source_runs_it(
    name: str, args: tuple[object, ...], modules: tuple[ModuleType, ModuleType]
) -> None:
    compiled, source = modules
    reset(source)
    expected = asyncio.run(getattr(source, name)(*args))
    for _ in range(3):
        reset(compiled)
        assert getattr(compiled, name)(*args) == expected


def test_a_subflow_s_print_comes_out_in_source_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compiled, source = compiled_and_source(
        """
import asyncio

from kiln import flow, node


@node
async def slow() -> int:
    await asyncio.sleep(0.02)
    print("node slow done")
    return 1


@flow
async def sub() -> int:
    print("sub runs")
    return 2


@flow
async def main() -> int:
    a = await slow()
    b = await sub()
    return a + b
""",
        tmp_path,
    )
    assert asyncio.run(source.main()) == 3
    expected = capsys.readouterr().out
    assert expected == "node slow done\nsub runs\n"
    assert compiled.main() == 3
    assert capsys.readouterr().out == expected


def test_the_warning_names_the_subflow_s_statement(tmp_path: Path) -> None:
    path = tmp_path / "subflows.py"
    path.write_text(FLOWS, encoding="utf-8")
    warned = {
        d.span.line: d.message
        for d in compile_file(path).diagnostics
        if d.code is Code.EFFECT_ORDER
    }
    lines = FLOWS.splitlines()

    def line(text: str, after: str = "") -> int:
        return lines.index(text, lines.index(after) if after else 0) + 1

    read = line("    n = len(REG)")
    call = line("    return await reads()", "async def statement_read() -> int:")
    assert warned[call] == (
        f"'reads' waits for 'register' (line {call - 1}) because the statement at "
        f"line {call} calls the flow 'reads', whose statement at line {read} reads "
        "REG, module state, and kiln keeps such a statement after every step "
        "before it"
    )
    # Through a subflow that calls it: each flow on the way says where.
    nested = line("    return await nested()")
    assert (
        f"calls the flow 'nested', whose statement at line {line('    return await reads()')}"
        f" calls the flow 'reads', whose statement at line {read} reads REG"
        in warned[nested]
    )
    fanned = line("    sizes = [await logs(tag) for tag in tags]")
    assert "the elements of this fan-out run one after another" in warned[fanned]
    assert "calls the flow 'logs'" in warned[fanned]
    # A node that reads what an earlier one changes waits for it, whether the
    # flow calls it or a subflow that calls it.
    counts = line("    return await count()", "async def node_reads() -> int:")
    assert warned[counts].startswith(
        f"'count' waits for 'register' (line {counts - 1}) because 'register' "
        "changes the module state 'subflows.REG'"
    ), warned[counts]
    assert "module state 'subflows.REG'" in warned[line("    return await counted()")]


def test_a_subflow_of_another_module_carries_its_statements_into_the_caller(
    tmp_path: Path,
) -> None:
    """`sub` is read from its module (compiled alone, the caller runs its source)."""
    files = {
        "app/__init__.py": "",
        "app/sub.py": """
from kiln import flow

REG: dict[str, int] = {}


@flow
async def sub() -> int:
    return len(REG)
""",
        "app/main.py": """
import asyncio

from kiln import flow, node

from app.sub import REG, sub


@node
async def register(k: str) -> None:
    await asyncio.sleep(0.02)
    REG[k] = 1


@flow
async def main() -> int:
    await register("a")
    return await sub()
""",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    compiled = compile_file(tmp_path / "app" / "main.py")
    assert compiled.output is not None, compiled.diagnostics
    [warned] = [d for d in compiled.diagnostics if d.code is Code.EFFECT_ORDER]
    assert "whose statement at " in warned.message
    assert "app/sub.py:9 reads REG, module state" in warned.message
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "main.py").write_text(compiled.output, encoding="utf-8")
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/build']\n"
        "import main\n"
        "print(main.main())\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["1"]


RAISES = """
import asyncio

from kiln import flow, node


@node
async def lookup(x: int) -> int:
    await asyncio.sleep(0.01)
    return x


@flow
async def validate(x: int) -> int:
    v = await lookup(x)
    if v == 17:
        raise KeyError(v)
    if v < 0:
        raise ExceptionGroup("bad", [ValueError(v)])
    return v


@flow
async def outer(x: int, y: int) -> int:
    a = await validate(x)
    b = await lookup(y)
    return a + b
"""


def test_making_a_builtin_exception_to_raise_is_no_outside_effect(
    tmp_path: Path,
) -> None:
    """`raise KeyError(v)` in a subflow makes an exception, as `raise ValueError`
    names one: no call of code kiln cannot see into, so the caller's independent
    `lookup(y)` overlaps the subflow (trial Q9 §7: it waited, "calls KeyError")."""
    path = tmp_path / "raises.py"
    path.write_text(RAISES, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    assert [d.message for d in compilation.diagnostics] == []
    compiled, source = compiled_and_source(RAISES, tmp_path / "run")
    assert compiled.outer(1, 2) == asyncio.run(source.outer(1, 2)) == 3
    for x, error in ((17, KeyError), (-1, ExceptionGroup)):
        with pytest.raises(error):
            asyncio.run(source.outer(x, 2))
        with pytest.raises(error):
            compiled.outer(x, 2)
