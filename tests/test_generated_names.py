"""User names never collide with the names the generated code introduces.

Generated code names its own things: the receiver of its methods (`self`),
the loop variable of a derived stream method (`item`), the builtins it calls
(`int`, `dict`, `zip`, `set`), its methods
(`forward`, `aforward`, `stream`, `astream`) and one class per flow. Each of
those names, and names a reader might expect generated code to use (`cls`,
`asyncio`, `typing`, `Any`, `cast`, `kiln`), is given here to the user in
every role a name can have (a module-level helper, a node, a flow, a class
used in a flow's annotations and defaults, a flow parameter, local and
comprehension target): the compiled flows compute what the source computes,
and fail where it fails.
"""

from __future__ import annotations

import asyncio
import keyword
import re
from collections.abc import Callable
from pathlib import Path
from textwrap import dedent, indent
from typing import Any

import pytest

from kilnc.emit_names import GENERATED_NAMES
from kilnc.pipeline import compile_file
from tests.goldens import DATA, load_cases
from tests.test_differential import compiled_and_source, load, nothing_after_return
from tests.test_typecheck import mypy_strict

#: Names a reader might expect generated code to use, beyond those it does use.
EXPECTED_NAMES = frozenset(
    {
        *("cls", "asyncio", "typing", "Any", "cast", "kiln", "Flow", "Process"),
        *("error", "Exception", "range", "len"),
    }
)
#: Each generated name alone; the others, which generated code never uses, at once.
NAMES = [(name,) for name in sorted(GENERATED_NAMES)] + [tuple(sorted(EXPECTED_NAMES))]

# The user code here calls none of the builtins generated code calls, so a
# module-level name like one of them leaves the source working.
TEMPLATE = """\
from collections.abc import Iterator, Mapping, Set as AbstractSet

from kiln import flow, node

{defs}


@node
async def double(v: int) -> int:
    return v * 2


@node
def inc(v: int) -> int:
    return v + 1


@node
def span(n: int) -> list[int]:
    values: list[int] = []
    while n > 0:
        n -= 1
        values.insert(0, n)
    return values


@node
def total(parts: list[int], table: Mapping[int, int], unique: AbstractSet[int]) -> int:
    return sum(parts) + sum(table.values()) + sum(unique)


def rescue(v: int, *, error: BaseException) -> int:
    return -1


@node(fallback=rescue)
async def fragile(v: int) -> int:
    if v > 1000:
        raise ValueError(v)
    return v


@flow
async def main(x: int{params}) -> int:
{pre}
    values = span(x)
    pairs = [inc(await double(v)) for v in values]
    table = {{v: inc(await double(v)) for v in values}}
    unique = {{inc(await double(v)) for v in values}}
    safe = await fragile(x)
    count = 0
    while count < 2:
        count = inc(count)
{post}
    return total(pairs, table, unique) + safe + count + {extra}


@flow
def numbers(n: int{params}) -> Iterator[int]:
    for v in span(n):
        yield inc(v){streamed}
"""


def role(
    defs: str = "",
    params: str = "",
    pre: str = "",
    post: str = "",
    extra: str = "0",
    streamed: str = "",
) -> Callable[[tuple[str, ...]], str]:
    """A source giving each of some names the role: `NAME` in the parts is the name."""

    def source(names: tuple[str, ...]) -> str:
        def fill(text: str, separator: str) -> str:
            return separator.join(text.replace("NAME", name) for name in names)

        return TEMPLATE.format(
            defs=fill(dedent(defs), "\n\n"),
            params=fill(params, ""),
            pre=indent(fill(dedent(pre), "\n"), "    ") or "    pass",
            post=indent(fill(dedent(post), "\n"), "    "),
            extra=fill(extra, " + "),
            streamed=fill(streamed, ""),
        )

    return source


ROLES: dict[str, Callable[[tuple[str, ...]], str]] = {
    "helper": role(
        defs="""
        def NAME(v: int) -> int:
            return v + 100
        """,
        post="helped_NAME = NAME(x)",
        extra="helped_NAME",
    ),
    "node": role(
        defs="""
        @node
        async def NAME(v: int) -> int:
            return v * 3
        """,
        post="tripled_NAME = await NAME(x)",
        extra="tripled_NAME",
    ),
    "flow": role(
        defs="""
        @flow
        async def NAME(v: int) -> int:
            return await double(v)
        """,
        post="sub_NAME = await NAME(x)",
        extra="sub_NAME",
    ),
    # Annotations and defaults of a flow's parameters are read where its class's
    # methods are defined.
    "class in annotations and defaults": role(
        defs="""
        class NAME:
            size = 4
        """,
        params=", tag_NAME: NAME | None = None, k_NAME: int = NAME.size",
        extra="k_NAME + (0 if tag_NAME is None else tag_NAME.size)",
        streamed="\n    yield k_NAME",
    ),
    "parameter, local and comprehension target": role(
        params=", NAME: int = 7",
        post="""
        comp_NAME = [await double(NAME) for NAME in values]
        NAME = await double(NAME)
        """,
        extra="NAME + sum(comp_NAME)",
        streamed="\n    yield NAME",
    ),
}


def outcome(run: Callable[[], object]) -> object:
    try:
        return run()
    except Exception as exc:  # the source may fail: the compiled flow must fail alike
        return type(exc)


@pytest.mark.parametrize("names", NAMES, ids="-".join)
@pytest.mark.parametrize("kind", list(ROLES))
def test_a_user_name_like_a_generated_one_changes_nothing(
    tmp_path: Path, kind: str, names: tuple[str, ...]
) -> None:
    path = tmp_path / "named.py"
    path.write_text(ROLES[kind](names), encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, [str(d) for d in compilation.diagnostics]
    assert nothing_after_return(compilation.output)
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    source = outcome(lambda: load(path))
    compiled = outcome(lambda: load(out))
    if isinstance(source, type):
        assert compiled is source
        return
    assert not isinstance(compiled, type), compiled
    for entry in ("main", "numbers"):
        assert callable(getattr(compiled, entry))

    def plain(module: Any) -> object:
        return (asyncio.run(module.main(3)), list(module.numbers(2)))

    def built(module: Any) -> object:
        return (
            module.main(3),
            asyncio.run(module.main.aforward(3)),
            list(module.numbers(2)),
        )

    expected = outcome(lambda: plain(source))
    assert outcome(lambda: built(compiled)) == (
        expected
        if isinstance(expected, type)
        else (expected[0], *expected)  # type: ignore[index]
    )


IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z_0-9]*\b")
NOT_VARIABLES = (
    re.compile(r"#.*$", re.MULTILINE),  # comments
    re.compile(r'"""(?:.|\n)*?"""'),  # docstrings
    re.compile(r"(['\"]).*?\1"),  # strings: notes, sites
    re.compile(r"\.\s*[A-Za-z_][A-Za-z_0-9]*"),  # attributes
    re.compile(r"\b[A-Za-z_][A-Za-z_0-9]*=(?!=)"),  # keyword arguments
)


# The readable names the emitter allocates around every name of the flow and the
# module (`Names.local`): they can hide nothing, so they need no prefix.
ALLOCATED = re.compile(
    r"(?:scope|compute_\w+|\w+_task|\w+_before|\w+_visits)(?:_[0-9]+)?"
)
SITE_LOCAL = re.compile(r"(?P<node>\w+)_[0-9]+")


def test_the_generated_names_are_every_name_the_emitter_adds_to_the_goldens() -> None:
    """Each variable a golden's output uses and its source does not is reserved or listed."""
    for path in sorted(DATA.glob("*.test")):
        for case in load_cases(path):
            if not case.expected:
                continue
            code = case.expected
            for pattern in NOT_VARIABLES:
                code = pattern.sub(" ", code)
            written = set(IDENTIFIER.findall(case.source))
            added = set(IDENTIFIER.findall(code)) - written
            unexplained = {
                name
                for name in added - GENERATED_NAMES - set(keyword.kwlist)
                if not name.lower().startswith("_kiln")
                and not ALLOCATED.fullmatch(name)
                # a call site's local, after the node it calls: `fetch_2`
                and not (
                    (site := SITE_LOCAL.fullmatch(name)) and site["node"] in written
                )
                # the class of a flow, named from it: `digest` is `Digest`
                and name.lower() not in case.source.lower().replace("_", "")
            }
            assert not unexplained, (case.name, sorted(unexplained))


#: A user name hiding a generated one, where the source type-checks: a class in a
#: flow's signature, a flow parameter or local.
TYPED = [
    *(("class in annotations and defaults", n) for n in ("self", "forward", "stream")),
    *(
        ("parameter, local and comprehension target", n)
        for n in ("self", "item", "int", "Exception", "dict", "set", "aforward")
    ),
]


def test_the_compiled_flows_type_check_when_their_source_does(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "out").mkdir()
    for index, (kind, name) in enumerate(TYPED):
        path = tmp_path / "src" / f"m{index}.py"
        path.write_text(ROLES[kind]((name,)), encoding="utf-8")
        compilation = compile_file(path)
        assert compilation.output is not None
        (tmp_path / "out" / path.name).write_text(compilation.output, encoding="utf-8")
    mypy_strict(sorted((tmp_path / "src").iterdir()))
    mypy_strict(sorted((tmp_path / "out").iterdir()))


READ_AS_A_VALUE = """\
import asyncio

from kiln import flow, node


@node
async def double(v: int) -> int:
    await asyncio.sleep(0)
    return v * 2


@node
def inc(v: int) -> int:
    return v + 1


@node
async def half(v: int) -> int:
    return v // 2


@flow
async def main(x: int) -> tuple[int, str, list[int], int]:
    a = await double(x)
    b = await double(a)
    name = double.__name__
    bumped = list(map(inc, [a, b]))
    c = await half(b)
    return inc(a + b), name, bumped, await half(c)
"""


def test_a_node_the_flow_also_reads_is_the_node_where_it_is_read(
    tmp_path: Path,
) -> None:
    """Calls of a node the flow only calls are bound to its own name; the others not.

    `double` and `inc` are read as values too (`double.__name__`, `map(inc, ...)`):
    their calls get kiln's names, and what reads them reads the module's
    functions, in an observed run too, whose calls are wrappers.
    """
    compiled, source = compiled_and_source(READ_AS_A_VALUE, tmp_path)
    output = (tmp_path / "out.py").read_text(encoding="utf-8")
    # The locals in the `with`'s targets, or unpacked first in its body.
    binding = re.search(
        r"with self\._kiln_bind\(self\._kiln_sites\) as "
        r"(?:\(([^)]*)\)|(\w+):\n\s*(.*) = \2\n)",
        output,
    )
    assert binding is not None, output
    targets = binding[1] if binding[1] is not None else binding[3]
    bound = [name.strip() for name in targets.split(",") if name.strip()]
    assert bound == ["_kiln_double", "_kiln_double_2", "half", "_kiln_inc", "half_2"]
    expected = asyncio.run(source.main(5))
    assert expected == (31, "double", [11, 21], 5)
    assert compiled.main(5) == expected
    events: list[object] = []
    observed = type(compiled.main)(on_event=events.append)
    assert observed(5) == expected
    assert len(events) == 2 * 5  # each call of a site starts and ends: map's are not
