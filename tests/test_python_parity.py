"""The compiler accepts what Python accepts, or refuses it at the line.

Each source here runs as plain Python; the compiled flow must compute what the
source computes (its plain run is the reference semantics), or the compiler
must say at the source line why it cannot, and never report KLN999. The
sources are the shapes that once crashed the scheduler, read a stale value
or were refused although Python runs them.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from textwrap import dedent
from types import ModuleType

import pytest

from kilnc.diagnostics import Code
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

NODES = """\
import asyncio
from collections.abc import AsyncIterator

from kiln import flow, node


@node
async def amul(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a * b


@node
async def ainc(a: int) -> int:
    await asyncio.sleep(0.001 * (a % 3))
    return a + 1


@node
def inc(a: int) -> int:
    return a + 1


@node
def add(a: int, b: int) -> int:
    return a + b


@node
def total(xs: list[int]) -> int:
    return sum(xs)


@node
async def aupto(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@node
async def pair(x: int) -> tuple[int, int]:
    await asyncio.sleep(0.001 * (x % 2))
    return x + 1, x + 2


@node
async def triple(x: int) -> list[int]:
    await asyncio.sleep(0.001 * (x % 3))
    return [x, x * 2, x * 3]


@node
async def g(a: int, b: int) -> int:
    await asyncio.sleep(0.002 * (a % 2))
    return a * 10000 + b


"""


def run(function: object, *args: object) -> object:
    assert callable(function)
    result = function(*args)
    return asyncio.run(result) if inspect.isawaitable(result) else result


def both(flow: str, tmp_path: Path) -> tuple[ModuleType, ModuleType]:
    """The compiled module and the source module of NODES followed by `flow`."""
    return compiled_and_source(NODES + dedent(flow), tmp_path)


def outcome(function: object, *args: object) -> object:
    """What a call returns, or the type and text of what it raises."""
    try:
        return run(function, *args)
    except Exception as error:  # the source's error is the reference too
        return (type(error), str(error))


def assert_same(flow: str, tmp_path: Path, *inputs: tuple[object, ...]) -> None:
    """`f` compiled computes (or raises) what `f` run as plain Python does, on every input."""
    compiled, source = both(flow, tmp_path)
    for args in inputs:
        assert outcome(compiled.f.aforward, *args) == outcome(source.f, *args), args


# --- the scheduler ------------------------------------------------------------------


def test_a_task_waiting_for_a_task_made_after_it_is_spawned_in_order(
    tmp_path: Path,
) -> None:
    # The chain computing v9 starts at `v2 = y` and waits for the chain of v4,
    # which starts later: spawning that one must let the first one start too.
    assert_same(
        """
        @flow
        async def f(x: int, y: int) -> int:
            v0 = total([await amul(v, x) async for v in aupto(y % 5)])
            if x % 2 == 0:
                v1 = inc(x)
            else:
                v1 = await ainc(v0)
            v2 = y
            v0 = inc(v0)
            v3 = add(v0, v2)
            v4 = await ainc(v0)
            v5 = add(v4, v4)
            v7 = x
            v9 = total([await amul(v, v5) async for v in aupto(v3 % 5)])
            return (v7 + v0 + y + v9) % 100003
        """,
        tmp_path,
        (1, 2),
        (2, 3),
        (3, 9),
        (0, 0),
    )


# --- rebinding names a task binds ------------------------------------------------------

REBINDINGS = {
    "tuple": """
        a, b = await pair(x)
        a, c = await pair(x + 10)
        e = await g(await ainc(x), a)
        return [a, b, c, e]
    """,
    "list": """
        [a, b] = await pair(x)
        [a, c] = await pair(x + 10)
        e = await g(await ainc(x), a)
        return [a, b, c, e]
    """,
    "parenthesized": """
        (a, b) = await pair(x)
        (c, a) = await pair(x + 10)
        e = await g(await ainc(x), a)
        return [a, b, c, e]
    """,
    "starred": """
        a, *rest = await triple(x)
        a, *more = await triple(x + 10)
        e = await g(await ainc(x), a)
        return [a, *rest, *more, e]
    """,
    "every name rebound": """
        a, b = await pair(x)
        a, b = await pair(x + 10)
        e = await g(await ainc(x), a)
        return [a, b, e]
    """,
    "a task reading both": """
        a, b = await pair(x)
        a, c = await pair(x + 10)
        d = await g(a, b)
        d = await g(d, c)
        return [a, b, c, d]
    """,
    "through a third writer": """
        a, b = await pair(x)
        a = await ainc(a)
        a, c = await pair(a)
        e = await g(await ainc(x), a)
        return [a, b, c, e]
    """,
    "a task reading a name main rebound": """
        a, b = await pair(x)
        a = inc(a + b)
        c, d = await pair(a + b)
        e = total([await amul(k, a) async for k in aupto(x % 3)])
        return [a, b, c, d, e]
    """,
    "chained assignment": """
        a = b = await ainc(x)
        a = await ainc(a)
        c, b = await pair(b)
        return [a, b, c]
    """,
    "for target": """
        a, b = await pair(x)
        c = 0
        for a, c in [(await ainc(x), 7)]:
            c = await g(a, c)
        e = await g(await ainc(x), a)
        return [a, b, c, e]
    """,
    "in an arm": """
        a, b = await pair(x)
        if x % 2:
            a, c = await pair(x + 10)
        else:
            c, a = await pair(x + 20)
        e = await g(await ainc(x), a)
        return [a, b, c, e]
    """,
    "in a loop": """
        a, b = 0, 0
        for k in range(3):
            a, b = await pair(x + k)
            a, c = await pair(a)
            b = await g(b, a)
        return [a, b]
    """,
}


@pytest.mark.parametrize("body", list(REBINDINGS))
def test_rebinding_a_name_of_a_multiple_target(tmp_path: Path, body: str) -> None:
    flow = "@flow\nasync def f(x: int) -> list[int]:\n" + "\n".join(
        line[4:] for line in REBINDINGS[body].splitlines()
    )
    assert_same(flow, tmp_path, (0,), (1,), (4,))


# --- what `:=` binds ------------------------------------------------------------------

WALRUSES = {
    "while test": """
        while (y := await ainc(x)) < 40:
            x = y * 3
        return y + x
    """,
    "while test without a call": """
        while (y := x * 2) < 50:
            x = await ainc(y)
        return y + x
    """,
    "while test, the body reading it": """
        done = 0
        while (k := await ainc(done)) < 10:
            done = await amul(k, 2)
        return done + k
    """,
    "if test": """
        if (y := await ainc(x)) > 3:
            x = await ainc(y)
        return y + x
    """,
    "elif test": """
        if x > 100:
            y = 0
        elif (y := await ainc(x)) > 3:
            x = await ainc(y)
        return y + x
    """,
    "elif test without a call": """
        if x > 100:
            y = 0
        elif (y := x + 7) > 3:
            x = await ainc(y)
        return y + x
    """,
    "a call's argument": """
        z = await ainc(y := x + 1)
        return y + z
    """,
    "a call's argument, then calls that overlap": """
        z = await ainc(y := x + 1)
        w = await ainc(z)
        v = await amul(y, 2)
        return y + z + w + v
    """,
    "a lifted call's argument": """
        z = await amul(await ainc(y := x + 2), y)
        return z + y
    """,
    "a call in a test": """
        if await ainc(y := x * 3) > 5:
            x = y
        return x + y
    """,
    "a fan-out's condition": """
        last = -1
        r = [await ainc(v) for v in range(x % 7) if (last := v) % 2]
        return sum(r) + last
    """,
    "a comprehension's condition": """
        n = await ainc(x)
        r = [v for v in range(n % 7) if (last := v) % 2]
        return sum(r) + last
    """,
    "a match subject": """
        match (y := await ainc(x)) % 3:
            case 0:
                x = await ainc(y)
            case _:
                x = y
        return x + y
    """,
    "a return value": """
        return (y := await ainc(x)) + y
    """,
}


@pytest.mark.parametrize("body", list(WALRUSES))
def test_walrus_binds_as_python_does(tmp_path: Path, body: str) -> None:
    flow = "@flow\nasync def f(x: int) -> int:\n" + "\n".join(
        line[4:] for line in WALRUSES[body].splitlines()
    )
    assert_same(flow, tmp_path, (0,), (1,), (5,), (20,))


def test_an_elif_test_waits_for_what_it_reads(tmp_path: Path) -> None:
    assert_same(
        """
        @flow
        async def f(x: int) -> int:
            a = await ainc(x)
            if x > 100:
                y = 0
            elif a > 1:
                y = await ainc(x)
            else:
                y = 5
            return y
        """,
        tmp_path,
        (0,),
        (1,),
        (200,),
    )


def test_walrus_in_a_fan_out_element_is_refused_at_it(tmp_path: Path) -> None:
    source = NODES + dedent("""
        @flow
        async def f(x: int) -> int:
            r = [await ainc(last := v) for v in range(x)]
            return sum(r) + last
        """)
    path = tmp_path / "element.py"
    path.write_text(source, encoding="utf-8")
    [diagnostic] = compile_file(path).diagnostics
    assert diagnostic.code is Code.FAN_OUT_SHAPE
    assert (diagnostic.span.line, diagnostic.span.column) == (
        len(NODES.splitlines()) + 4,
        10,
    )
    assert "':='" in diagnostic.message


def test_a_nested_fan_out_is_refused_with_the_loop_that_writes_it(
    tmp_path: Path,
) -> None:
    """The element is a comprehension already: the note says how to fan out the
    inner one (trial L: it said "or into a second comprehension")."""
    source = NODES + dedent("""
        @flow
        async def f(x: int) -> list[list[int]]:
            return [[await ainc(v) for v in range(w)] for w in range(x)]
        """)
    path = tmp_path / "nested.py"
    path.write_text(source, encoding="utf-8")
    [diagnostic] = compile_file(path).diagnostics
    assert diagnostic.code is Code.FAN_OUT_SHAPE
    assert diagnostic.hint is not None
    assert diagnostic.hint.startswith("fan out the inner comprehension in a loop")


# --- long and deep expressions --------------------------------------------------------


def test_a_thousand_terms_after_a_node_call_compile(tmp_path: Path) -> None:
    terms = " + ".join(["x"] * 1000)
    assert_same(
        f"""
        @flow
        async def f(x: int) -> int:
            x = await ainc(x)
            return {terms}
        """,
        tmp_path,
        (3,),
    )


def test_hundreds_of_node_calls_in_one_expression_compile(tmp_path: Path) -> None:
    terms = " + ".join(["inc(x)"] * 300)
    assert_same(
        f"""
        @flow
        async def f(x: int) -> int:
            return {terms}
        """,
        tmp_path,
        (3,),
    )


def test_199_nested_node_calls_compile(tmp_path: Path) -> None:
    # 200 nested brackets are as many as CPython's tokenizer takes.
    sync = "inc(" * 199 + "x" + ")" * 199
    awaited = "await ainc(" * 199 + "x" + ")" * 199
    assert_same(
        f"""
        @flow
        async def f(x: int) -> list[int]:
            y = {sync}
            z = {awaited}
            return [y, z]
        """,
        tmp_path,
        (3,),
    )


def test_a_statement_python_refuses_is_refused_at_its_line(tmp_path: Path) -> None:
    terms = " + ".join(["x"] * 5000)
    source = NODES + f"@flow\nasync def f(x: int) -> int:\n    return {terms}\n"
    path = tmp_path / "deep.py"
    path.write_text(source, encoding="utf-8")
    [diagnostic] = compile_file(path).diagnostics
    assert diagnostic.code is Code.TOO_COMPLEX
    assert diagnostic.span.line == len(NODES.splitlines()) + 3
    assert "CPython itself refuses it" in diagnostic.message


def nested(depth: int, body: str, kind: str = "for") -> str:
    """`body` inside `depth` nested loops of `kind`; the outermost runs twice."""
    lines = []
    for level in range(depth):
        indent = "    " * level
        times = 2 if level == 0 else 1
        if kind == "for":
            lines.append(f"{indent}for a{level} in range({times}):")
        elif kind == "stream":
            lines.append(f"{indent}async for a{level} in aupto({times}):")
        else:
            lines += [f"{indent}a{level} = 0", f"{indent}while a{level} < {times}:"]
            lines.append(f"{indent}    a{level} += 1")
    indent = "    " * depth
    lines += [indent + line for line in dedent(body).strip().splitlines()]
    return "\n".join("    " + line for line in lines)


DEEP_BODIES = {
    "sync call": "x = inc(x)",
    "async call": "x = await ainc(x)",
    "bare call": "await ainc(x)",
    "two overlapping calls": "y = await ainc(x)\nz = await amul(x, 2)\nx = y + z",
    "chained calls": "y = await ainc(x)\ny = await ainc(y)\nx = add(y, x)",
    "fan-out": "x = x + total([await amul(k, x) for k in range(3)])",
    "fan-out of two calls": "x = x + total([await ainc(await ainc(k)) for k in range(3)])",
    "sync fan-out": "x = x + total([inc(k) for k in range(3)])",
    "fallback": "x = await risky(x)",
    "while calling in its test": "while await ainc(x) < 4:\n    x = await ainc(x)",
    "stream loop": "async for k in aupto(2):\n    x = await amul(x, k + 1)",
}
RISKY = """\
def spare(x: int, *, error: Exception) -> int:
    return -x


@node(fallback=spare)
async def risky(x: int) -> int:
    if x < 0:
        raise ValueError(x)
    return x + 3


"""


@pytest.mark.parametrize("kind", ["for", "while", "stream"])
@pytest.mark.parametrize("body", list(DEEP_BODIES))
def test_calls_as_deep_as_python_nests_blocks_compile(
    tmp_path: Path, kind: str, body: str
) -> None:
    """CPython allows 20 nested blocks; a call's `try`, a scope, a stream's `with`
    come on top in the compiled flow, and must find room anyway."""
    inner = DEEP_BODIES[body]
    own = _statement_depth(inner)
    depth = 20 - own
    flow = f"""
@flow
async def f(x: int) -> int:
{nested(depth, inner, kind)}
    return x
"""
    compiled, source = compiled_and_source(NODES + RISKY + flow, tmp_path)
    written = source.risky

    async def risky(x: int) -> int:  # what the compiled call does with the fallback
        try:
            return int(await written(x))
        except ValueError as error:
            return int(source.spare(x, error=error))

    source.risky = risky
    for x in (1, 2, -1) if body == "fallback" else (1, 2):
        assert run(compiled.f.aforward, x) == run(source.f, x)


def _statement_depth(body: str) -> int:
    return sum(
        1 for line in body.splitlines() if line.startswith(("while", "async for"))
    )


# --- asyncio around node calls ------------------------------------------------------------

IDIOMS = {
    # statement: (the asyncio call's text, what the note must say)
    "a, b = await asyncio.gather(ainc(x), ainc(x + 1))": (
        "asyncio.gather(ainc(x), ainc(x + 1))",
        "'a = await ainc(x)', 'b = await ainc(x + 1)'",
    ),
    "a = await aio.gather(*[ainc(k) for k in range(x)])": (
        "aio.gather(*[ainc(k) for k in range(x)])",
        "'[await ainc(k) for k in range(x)]'",
    ),
    "a = await aio.wait_for(ainc(x), 5)": (
        "aio.wait_for(ainc(x), 5)",
        "'@node(timeout=...)'",
    ),
    "a = await wait_for(ainc(x), timeout=5)": (
        "wait_for(ainc(x), timeout=5)",
        "'a = await ainc(x)'",
    ),
    "t = asyncio.create_task(ainc(x))": (
        "asyncio.create_task(ainc(x))",
        "'t = await ainc(x)'",
    ),
    "a = await asyncio.ensure_future(ainc(x))": (
        "asyncio.ensure_future(ainc(x))",
        "as soon as the values it reads exist",
    ),
    "a = await asyncio.shield(ainc(x))": (
        "asyncio.shield(ainc(x))",
        "'a = await ainc(x)'",
    ),
    "a = await asyncio.to_thread(inc, x)": (
        "asyncio.to_thread(inc, x)",
        "'@node(thread=True)' and call it as 'a = inc(x)'",
    ),
    "if (await asyncio.gather(ainc(x)))[0] > 1:\n        a = 1": (
        "asyncio.gather(ainc(x))",
        "one statement per call",
    ),
    "async with asyncio.TaskGroup() as group:\n        t = group.create_task(ainc(x))": (
        "asyncio.TaskGroup()",
        "cancels the others when one fails",
    ),
    "async with aio.timeout(3):\n        a = await ainc(x)": (
        "aio.timeout(3)",
        "'@node(timeout=...)'",
    ),
}


@pytest.mark.parametrize("statement", list(IDIOMS))
def test_asyncio_around_node_calls_says_what_kiln_does_instead(
    tmp_path: Path, statement: str
) -> None:
    """However asyncio was imported; the node calls inside are not reported again."""
    header = "import asyncio as aio\nfrom asyncio import wait_for\n"
    source = (
        header
        + NODES
        + (
            "@flow\nasync def f(x: int) -> int:\n"
            "    a = t = 0\n"
            f"    {statement}\n"
            "    return a\n"
        )
    )
    path = tmp_path / "idiom.py"
    path.write_text(source, encoding="utf-8")
    compilation = compile_file(path)
    [diagnostic] = compilation.diagnostics
    written, instead = IDIOMS[statement]
    line = len((header + NODES).splitlines()) + 4
    column = source.splitlines()[line - 1].index(written) + 1
    assert diagnostic.code is Code.ASYNCIO_IDIOM
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column)
    assert instead in (diagnostic.hint or ""), diagnostic.hint


def test_asyncio_on_plain_values_stays_plain_code(tmp_path: Path) -> None:
    assert_same(
        """
        @flow
        async def f(x: int) -> int:
            await asyncio.sleep(0)
            y = await ainc(x)
            await asyncio.sleep(await ainc(y) * 0)
            return y
        """,
        tmp_path,
        (1,),
    )


def nested_ifs(depth: int) -> str:
    lines = ["@flow", "async def f(x: int) -> int:"]
    lines += [f"{'    ' * (level + 1)}if x > {-level - 1}:" for level in range(depth)]
    lines += [f"{'    ' * (depth + 1)}x = await ainc(x)", "    return x", ""]
    return NODES + "\n".join(lines)


def test_branches_nested_near_pythons_indentation_limit_compile(
    tmp_path: Path,
) -> None:
    compiled, source = compiled_and_source(nested_ifs(96), tmp_path)
    assert run(compiled.f.aforward, 1) == run(source.f, 1)


def test_branches_past_the_compiled_flows_indentation_are_refused_at_the_call(
    tmp_path: Path,
) -> None:
    """Python takes 100 levels of indentation; the compiled flow adds its class and
    the body's `try`, so a call 98 branches deep is the one thing kiln refuses
    Python takes: at its innermost branch, the line that passes the limit."""
    text = nested_ifs(98)
    compile(text, "nested.py", "exec")
    path = tmp_path / "nested.py"
    path.write_text(text, encoding="utf-8")
    [diagnostic] = compile_file(path).diagnostics
    assert diagnostic.code is Code.TOO_COMPLEX
    assert diagnostic.span.line == len(NODES.splitlines()) + 2 + 98
    assert "100 levels of indentation" in diagnostic.message
