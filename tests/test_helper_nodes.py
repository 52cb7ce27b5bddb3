"""A node called by a plain function a flow calls runs without its options: KLN317 says so.

`try` is refused in a flow (KLN305), so a port moves it into a helper,
`async def guarded(tag): try: return await flaky(tag) except ...`, and the
flow calls `await guarded(tag)`. The helper runs as written, compiled as in
the source: its call of `flaky` is the plain function's, and `flaky`'s
`retries=2` silently did nothing (trial Q9 §6). Now the helper's call of the
node is warned, in whatever module the helper is, through helpers that call
helpers; a node without options, a node's own calls, and a flow's parameter
named like a helper are not.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from kilnc.diagnostics import Code, Diagnostic, Severity
from kilnc.pipeline import compile_file

NODES = """
from kiln import node

ATTEMPTS: list[int] = []


@node(retries=2)
async def flaky(tag: str) -> str:
    ATTEMPTS.append(1)
    if len(ATTEMPTS) < 3:
        raise ConnectionError(f"attempt {len(ATTEMPTS)}")
    return tag


@node(thread=True, timeout=5)
def blocking(tag: str) -> str:
    return tag


@node
async def plain(tag: str) -> str:
    return tag


@node
async def outer(tag: str) -> str:
    return await flaky(tag)
"""

HELPERS = """
from nodes import blocking, flaky, plain


async def guarded(tag: str) -> str:
    try:
        return await flaky(tag)
    except ValueError:
        return "invalid"


def deeper(tag: str) -> str:
    return blocking(tag)


def through(tag: str) -> str:
    return deeper(tag)


async def harmless(tag: str) -> str:
    return await plain(tag)
"""


def _compiled(tmp_path: Path, flows: str) -> list[Diagnostic]:
    for name, text in [("nodes", NODES), ("helpers", HELPERS), ("flows", flows)]:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
    compilation = compile_file(tmp_path / "flows.py")
    assert compilation.output is not None, compilation.diagnostics
    return [d for d in compilation.diagnostics if d.code is Code.NODE_AS_VALUE]


def _line(text: str, written: str) -> int:
    return textwrap.dedent(text).splitlines().index(written) + 1


def test_a_helper_s_call_of_a_node_with_options_is_warned_there(
    tmp_path: Path,
) -> None:
    found = _compiled(
        tmp_path,
        """
        from helpers import guarded, through

        from kiln import flow


        @flow
        async def via_helper(tag: str) -> str:
            return await guarded(tag)


        @flow
        def via_two(tag: str) -> str:
            return through(tag)
        """,
    )
    assert {d.severity for d in found} == {Severity.WARNING}
    where = sorted((Path(d.span.path).name, d.span.line) for d in found)
    assert where == [
        ("helpers.py", _line(HELPERS, "        return await flaky(tag)")),
        ("helpers.py", _line(HELPERS, "    return blocking(tag)")),
    ]
    (retried,) = [d for d in found if "'flaky'" in d.message]
    assert "function 'guarded' calls node 'flaky' here" in retried.message
    assert "flow 'via_helper'" in retried.message
    assert "retries=2" in retried.message
    assert retried.hint is not None
    assert "fallback=" in retried.hint
    (threaded,) = [d for d in found if "'blocking'" in d.message]
    assert "through 'through'" in threaded.message
    assert "timeout=5" in threaded.message
    assert "thread=True" in threaded.message


def test_no_warning_without_options_or_outside_a_plain_function(
    tmp_path: Path,
) -> None:
    found = _compiled(
        tmp_path,
        """
        from helpers import harmless
        from nodes import flaky, outer

        from kiln import flow


        @flow
        async def direct(tag: str) -> str:
            return await flaky(tag)


        @flow
        async def options_none(tag: str) -> str:
            return await harmless(tag)


        @flow
        async def node_in_node(tag: str) -> str:
            return await outer(tag)
        """,
    )
    assert found == []
