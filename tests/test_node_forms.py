"""A node made or named other than by `@node` on its def (trial Q3, finding 4).

A Hamilton user wraps existing functions (`fetch = node(retries=2)(_fetch)`),
or calls a node by another name (`again = fetch`, `class Ops: rev =
staticmethod(rev)`). kiln compiled those calls as plain calls, silently: the
retries, limits, events and overlap the decorator asked for were lost. Now a
call form at module level marks its def as the decorator would, an alias bound
once is the node it names, and what kiln cannot read is said: KLN206 for a
use of `node` or `flow` it cannot follow, KLN317 where a flow calls a node
through a value (a conditional, a dict, a name bound twice).
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from kilnc.diagnostics import Code, Diagnostic
from kilnc.pipeline import compile_file
from tests.test_differential import compiled_and_source

FLAKY = """
    import asyncio

    from kiln import flow, node

    ATTEMPTS = {"fetch": 0, "rev": 0}


    async def _fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        ATTEMPTS["fetch"] += 1
        if ATTEMPTS["fetch"] == 1:
            raise ConnectionError("flaky")
        return x + 1


    @node(retries=1)
    async def rev(x: int) -> int:
        ATTEMPTS["rev"] += 1
        if ATTEMPTS["rev"] == 1:
            raise ConnectionError("flaky")
        return -x
"""

# Each form a flow may call a node by, written above the flow or below it.
FORMS = {
    "a_call_of_node_with_options": ("fetch = node(retries=2)(_fetch)", "fetch"),
    "an_annotated_call": ("fetch: object = node(retries=2)(_fetch)", "_fetch"),
    "the_call_alone": ("node(retries=2)(_fetch)", "_fetch"),
    "an_alias_of_a_node": ("again = rev", "again"),
    "an_alias_of_an_alias": ("again = rev\nonce_more = again", "once_more"),
    "a_static_method": ("class Ops:\n    rev = staticmethod(rev)", "Ops.rev"),
    "a_class_attribute": ("class Ops:\n    rev = rev", "Ops.rev"),
}


def _source(binding: str, called: str, below: bool) -> str:
    flow = f"""
    @flow
    async def main(x: int) -> int:
        return await {called}(x)
    """
    binding = textwrap.indent(binding, "    ")
    parts = [FLAKY, flow, binding] if below else [FLAKY, binding, flow]
    return textwrap.dedent("\n\n".join(parts))


@pytest.mark.parametrize("below", [False, True], ids=["above", "below"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_node_called_by_another_form_keeps_its_options(
    form: str, below: bool, tmp_path: Path
) -> None:
    """The compiled call retries as the node's options say; the source's, run
    undecorated, fails on the flaky first attempt as before."""
    binding, called = FORMS[form]
    compiled, reference = compiled_and_source(_source(binding, called, below), tmp_path)
    output = (tmp_path / "out.py").read_text(encoding="utf-8")
    assert f"_kiln.site(\n            {called}," in output or (
        f"_kiln.site({called}," in output
    ), output
    expected = 2 if "fetch" in binding or called == "_fetch" else -1
    assert compiled.main(1) == expected
    with pytest.raises(ConnectionError):
        asyncio.run(reference.main(1))


def test_a_node_marked_by_a_call_is_named_after_its_function(tmp_path: Path) -> None:
    """`node(...)` returns the function it marks: its name is the function's, as
    the runtime's attribute says, in events and in KLN202."""
    source = _source("fetch = node(retries=2)(_fetch)", "fetch", below=False)
    _, reference = compiled_and_source(source, tmp_path)
    assert reference._fetch.__kiln_node__.name == "_fetch"
    output = (tmp_path / "out.py").read_text(encoding="utf-8")
    assert '"_fetch"' in output
    assert "retries=2" in output


def test_an_imported_node_made_by_a_call_or_an_alias_is_the_node(
    tmp_path: Path,
) -> None:
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "wrapped.py").write_text(
        textwrap.dedent(FLAKY) + "\n\nfetch = node(retries=2)(_fetch)\nagain = rev\n",
        encoding="utf-8",
    )
    (package / "aliases.py").write_text(
        "from app.wrapped import rev\n\nrenamed = rev\n", encoding="utf-8"
    )
    main = package / "main.py"
    main.write_text(
        textwrap.dedent("""
            from kiln import flow

            from . import wrapped
            from .aliases import renamed
            from .wrapped import again, fetch


            @flow
            async def main(x: int) -> int:
                return await fetch(x) + await again(x) + await wrapped.again(x) + await renamed(x)
            """),
        encoding="utf-8",
    )
    compilation = compile_file(main)
    assert compilation.output is not None, compilation.diagnostics
    assert compilation.output.count("_kiln.site(") == 4
    assert compilation.output.count("policy=") == 4


def _diagnostics(tmp_path: Path, body: str) -> list[Diagnostic]:
    path = tmp_path / "case.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return list(compile_file(path).diagnostics)


def _at(diagnostics: list[Diagnostic], code: Code) -> list[tuple[int, int]]:
    return sorted((d.span.line, d.span.column) for d in diagnostics if d.code is code)


def test_what_kiln_cannot_read_of_node_and_flow_is_an_error(tmp_path: Path) -> None:
    found = _diagnostics(
        tmp_path,
        """\
        from kiln import flow, node
        import kiln


        async def _fetch(x: int) -> int:
            return x


        @flow
        async def _main(x: int) -> int:
            return x


        fetch = node(retries=2)(_fetch)
        fetch2 = node(_fetch)
        retrying = node(retries=3)
        wrapped = node(len)
        main = flow(_main)
        both = node(_main)


        def make(fn):
            return kiln.node(fn)
        """,
    )
    assert _at(found, Code.NODE_FORM) == [
        (15, 10),
        (16, 12),
        (17, 11),
        (18, 8),
        (23, 12),
    ]
    assert _at(found, Code.NODE_AND_FLOW) == [(19, 8)]
    messages = {d.span.line: d for d in found}
    assert "already marked a node at" in messages[15].message
    assert "@node(...) async def fetch2(...): return await _fetch(...)" in (
        messages[15].hint or ""
    )
    assert "'len', which is no function defined above it" in messages[17].message
    assert messages[18].hint == "write @flow(...) on the def of '_main'"


def test_a_node_called_through_a_value_is_a_warning(tmp_path: Path) -> None:
    found = _diagnostics(
        tmp_path,
        """\
        from kiln import flow, node


        @node(retries=2)
        async def rev(x: int) -> int:
            return -x


        @node
        async def up(x: int) -> int:
            return x


        HANDLERS = {"rev": rev, "up": up}
        twice = rev
        twice = up
        once = rev


        @flow
        async def main(x: int, kind: str) -> int:
            pick = rev if kind == "rev" else up
            a = await pick(x)
            b = await HANDLERS[kind](a)
            c = await HANDLERS.get(kind, up)(b)
            d = await twice(c)
            e = await once(d)
            for f in HANDLERS.values():
                e = await f(e)
            return e
        """,
    )
    assert not any(d.is_error for d in found), found
    assert _at(found, Code.NODE_AS_VALUE) == [
        (23, 15),
        (24, 15),
        (25, 15),
        (26, 15),
        (29, 19),
    ]
    first = next(d for d in found if d.code is Code.NODE_AS_VALUE)
    assert first.message.startswith(
        "flow 'main' calls 'pick', which may be node 'rev' or 'up', through a value "
        "kiln does not follow"
    )


def test_calls_through_another_name_of_a_node_overlap(tmp_path: Path) -> None:
    """A node's other names are no module state: the calls through them are
    ordered as calls of the node itself are, and independent ones overlap."""
    found = _diagnostics(
        tmp_path,
        """
        import asyncio

        from kiln import flow, node


        async def _fetch(x: int) -> int:
            await asyncio.sleep(0.01)
            return x


        fetch = node(retries=2)(_fetch)


        @node
        async def rev(x: int) -> int:
            return -x


        again = rev


        @flow
        async def main() -> list[int]:
            return [await fetch(1), await fetch(2), await again(3), await again(4)]
        """,
    )
    assert _at(found, Code.EFFECT_ORDER) == []


SHADOWED = """
import asyncio

from kiln import flow, node


@node
def score(a: int) -> int:
    return a * 10


@flow
async def rebound(x: int) -> int:
    score = x + 1
    return score(2)


@flow
async def a_parameter(score: int) -> int:
    return score(2)


@flow
async def in_a_comprehension(xs: list[int]) -> list[int]:
    first = score(1)
    return [first, *[score(score) for score in xs]]
"""


@pytest.mark.parametrize("name", ["rebound", "a_parameter", "in_a_comprehension"])
def test_a_name_the_flow_binds_is_its_own_not_the_node_of_that_name(
    tmp_path: Path, name: str
) -> None:
    """`score = x + 1; score(2)` calls the int, as Python does, where kiln called
    the node `score` (trial Q7): the call of a name the flow or a comprehension
    binds is a plain call of that value; the node's name elsewhere is the node."""
    compiled, source = compiled_and_source(SHADOWED, tmp_path)
    argument: object = [1, 2] if name == "in_a_comprehension" else 1

    def outcome(run: object) -> object:
        try:
            return run()  # type: ignore[operator]
        except TypeError as error:
            return str(error)

    expected = outcome(lambda: asyncio.run(getattr(source, name)(argument)))
    assert outcome(lambda: getattr(compiled, name)(argument)) == expected


def test_a_node_form_that_marks_no_named_function_says_what_it_marks(
    tmp_path: Path,
) -> None:
    """`node(lambda t: t[:10])` has no name to put in the message (trial Q8:
    "'the function'"): it says it marks a lambda, and to write a def."""
    found = _diagnostics(
        tmp_path,
        """\
        from kiln import node


        def make() -> object:
            return len


        summarize = node(lambda t: t[:10])
        counted = node(make())
        """,
    )
    messages = {d.span.line: d for d in found if d.code is Code.NODE_FORM}
    assert "marks a lambda" in messages[8].message
    assert messages[8].hint == "write it as a def: @node(...) def summarize(...): ..."
    assert "marks the value of 'make(...)'" in messages[9].message
    assert all("the function" not in d.message for d in messages.values())
