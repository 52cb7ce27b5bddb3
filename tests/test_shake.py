"""The generated module is the source's module: what the nodes can observe is kept.

Tree shaking copies the module-level code the nodes use into the generated
module. Each case here has a statement that changes such code without binding
a name (an item or attribute store, a mutating call, `+=`, `del x[k]`, a
seeding call, a loop filling a table): the compiled flow must compute what the
source computes, and statements that touch only what nothing kept uses, and
the `__main__` block, must stay out.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from kilnc.diagnostics import Code
from kilnc.front import ParsedModule
from kilnc.parse import parse_source
from kilnc.pipeline import compile_file
from kilnc.reach import reached
from kilnc.source import SourceFile
from tests.test_differential import load

FLOW = """
@flow
def main(key: str) -> object:
    return look(key)
"""


def source_then_compiled(
    tmp_path: Path, text: str, *args: Any
) -> tuple[object, object, str]:
    """The source flow's result, then the compiled one's, each run right after its import.

    Module-level code may seed or configure process-wide state, so each
    module runs before the next one is imported, and the environment the
    source set is gone before the compiled module is imported.
    """
    path = tmp_path / "shaken.py"
    path.write_text(dedent(text), encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, [str(d) for d in compilation.diagnostics]
    environment = dict(os.environ)
    expected = load(path).main(*args)
    os.environ.clear()
    os.environ.update(environment)
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    return expected, load(out).main(*args), compilation.output


CASES = {
    "item assignment": """
        PRICES = {}
        PRICES["apple"] = 3

        @node
        def look(key: str) -> object:
            return PRICES.get(key)
        """,
    "mutating method call": """
        PRICES = {"apple": 1}
        PRICES.update(apple=5)

        @node
        def look(key: str) -> object:
            return PRICES[key]
        """,
    "attribute assignment": """
        class Settings:
            currency = "EUR"

        Settings.currency = "USD"

        @node
        def look(key: str) -> object:
            return f"{key} {Settings.currency}"
        """,
    "seeding through a name no node uses": """
        from random import random as draw, seed

        seed(1234)

        @node
        def look(key: str) -> object:
            return draw()
        """,
    "del of an item": """
        TABLE = {"apple": 1, "pear": 2}
        del TABLE["apple"]

        @node
        def look(key: str) -> object:
            return sorted(TABLE)
        """,
    "augmented assignment": """
        ITEMS = [1]
        ITEMS += [2, 3]

        @node
        def look(key: str) -> object:
            return ITEMS
        """,
    "for loop filling a table": """
        SQUARES = {}
        for i in range(4):
            SQUARES[i] = i * i

        @node
        def look(key: str) -> object:
            return SQUARES
        """,
    "if filling a table": """
        import sys

        TABLE = {}
        if sys.version_info >= (3, 0):
            TABLE["modern"] = True

        @node
        def look(key: str) -> object:
            return TABLE
        """,
    "while loop": """
        STACK = []
        while len(STACK) < 3:
            STACK.append(len(STACK))

        @node
        def look(key: str) -> object:
            return STACK
        """,
    "helper called at module level": """
        TABLE = {}

        def setup() -> None:
            TABLE["ready"] = True

        setup()

        @node
        def look(key: str) -> object:
            return TABLE
        """,
    "registration through a class method": """
        class Registry:
            names: list[str] = []

            @classmethod
            def add(cls, name: str) -> None:
                cls.names.append(name)

        Registry.add("apple")

        @node
        def look(key: str) -> object:
            return Registry.names
        """,
    "environment set at import": """
        import os

        os.environ["KILN_TEST_SHAKE"] = "set"

        @node
        def look(key: str) -> object:
            return os.environ.get("KILN_TEST_SHAKE")
        """,
    "try import fallback": """
        try:
            import ujson_is_not_installed as json  # type: ignore
        except ImportError:
            import json

        @node
        def look(key: str) -> object:
            return json.dumps({key: 1})
        """,
    "value built through a temporary": """
        TEMP = {"apple": 7}
        PRICES = dict(TEMP)
        del TEMP

        @node
        def look(key: str) -> object:
            return PRICES[key]
        """,
}


@pytest.mark.parametrize("body", list(CASES.values()), ids=list(CASES))
def test_module_code_the_nodes_observe_is_kept(tmp_path: Path, body: str) -> None:
    text = "from kiln import flow, node\n" + dedent(body) + FLOW
    expected, actual, _ = source_then_compiled(tmp_path, text, "apple")
    assert actual == expected


def test_the_quote_example_runs_as_its_source_in_a_fresh_interpreter(
    tmp_path: Path,
) -> None:
    source = tmp_path / "quote.py"
    source.write_text(
        dedent("""
        import logging
        import random
        from kiln import flow, node

        PRICES = {}
        PRICES["apple"] = 3
        PRICES.update(pear=5)

        class Settings:
            currency = "EUR"

        Settings.currency = "USD"
        random.seed(1234)
        logging.basicConfig(level=logging.WARNING - 1)
        LOG = logging.getLogger("prices")  # a name no node uses
        LOG.setLevel(logging.ERROR)

        @node
        def price(item: str) -> str:
            levels = logging.getLogger().level, logging.getLogger("prices").level
            return f"{PRICES[item]} {Settings.currency} {random.random()} {levels}"

        @flow
        def quote(item: str) -> str:
            return price(item)

        if __name__ == "__main__":
            print("main")
        """),
        encoding="utf-8",
    )
    compilation = compile_file(source)
    assert compilation.output is not None
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "quote.py").write_text(compilation.output, encoding="utf-8")

    def run(directory: Path) -> str:
        return subprocess.run(
            [sys.executable, "-c", "import quote; print(quote.quote('apple'))"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    expected = run(tmp_path)
    assert expected.startswith("3 USD ")
    assert run(tmp_path / "out") == expected
    assert "main" not in compilation.output.split("class Quote")[0]


def test_code_that_touches_only_unused_names_and_the_main_block_stay_out(
    tmp_path: Path,
) -> None:
    text = """
        from kiln import flow, node

        UNUSED = []
        UNUSED.append(1)
        COUNT = 0
        COUNT += 1
        print("imported")

        @node
        def look(key: str) -> object:
            return key

        @flow
        def main(key: str) -> object:
            return look(key)

        if __name__ == "__main__":
            print(main("apple"))
        """
    expected, actual, output = source_then_compiled(tmp_path, text, "apple")
    assert actual == expected
    for dropped in ("UNUSED", "COUNT", "print", "__main__"):
        assert dropped not in output, dropped


def test_a_relative_import_inside_kept_code_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "util.py").write_text("def twice(x: int) -> int:\n    return 2 * x\n")
    (package / "flows.py").write_text(dedent("""
        from kiln import flow, node

        try:
            from .util import twice
        except ImportError:
            twice = None

        @node
        def double(x: int) -> int:
            from .util import twice as again
            return again(x) + twice(0)

        @flow
        def main(x: int) -> int:
            return double(x)
        """))
    compilation = compile_file(package / "flows.py")
    assert compilation.output is not None
    assert "from ." not in compilation.output
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    assert load(out).main(4) == 8


# Each layout, and what the node calls through it (the rest is dropped).
IMPORT_LAYOUTS = {
    "parenthesized, a name a line": (
        "from os.path import (\n    join,\n    sep,\n    isabs,\n)",
        "join(x, sep)",
    ),
    "with aliases and comments": (
        "from os.path import (  # paths\n    join as joined,  # kept\n"
        "    sep,\n    isabs as absolute,  # dropped\n)",
        "joined(x, sep)",
    ),
    "relative, split over lines": (
        "from .util import (\n    twice,\n    UNUSED,\n)",
        "twice(x)",
    ),
    "continued with backslashes": (
        "import os.path, \\\n    json, \\\n    sys",
        "json.dumps(x)",
    ),
}


@pytest.mark.parametrize(
    ("imports", "use"), list(IMPORT_LAYOUTS.values()), ids=list(IMPORT_LAYOUTS)
)
def test_an_import_keeps_the_names_the_nodes_use_whatever_its_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imports: str, use: str
) -> None:
    # A package of its own name: another test's `pkg` may be imported already.
    name = f"layouts_{uuid.uuid4().hex}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "util.py").write_text(
        "UNUSED = 0\n\n\ndef twice(x: str) -> str:\n    return 2 * x\n"
    )
    (package / "flows.py").write_text(
        f"{imports}\n\nfrom kiln import flow, node\n\n\n@node\nasync def step(x: str) -> str:\n"
        f"    return {use}\n\n\n@flow\nasync def main(x: str) -> str:\n"
        "    return await step(x)\n",
        encoding="utf-8",
    )
    compilation = compile_file(package / "flows.py")
    assert compilation.output is not None, [d.message for d in compilation.diagnostics]
    monkeypatch.syspath_prepend(str(tmp_path))
    source = load(package / "flows.py", f"{name}.flows")
    out = tmp_path / "out.py"
    out.write_text(compilation.output, encoding="utf-8")
    assert load(out).main("ab") == asyncio.run(source.main("ab"))


FLOW_AT_IMPORT = {
    "a call given the flow": ("register(quote)", "quote)"),
    "a call of the flow": ('print(quote("x"))', 'quote("x")'),
    "the flow rebound": ("quote = wrap(quote)", "quote = wrap(quote)"),
    "an attribute of the flow changed": (
        'quote.__defaults__ = ("pear",)',
        "quote.__defaults__",
    ),
}


@pytest.mark.parametrize(
    ("statement", "located"), list(FLOW_AT_IMPORT.values()), ids=list(FLOW_AT_IMPORT)
)
def test_module_code_that_uses_a_flow_at_import_is_an_error(
    tmp_path: Path, statement: str, located: str
) -> None:
    text = dedent("""
        from kiln import flow, node

        def register(f: object) -> None:
            pass

        def wrap(f: object) -> object:
            return f

        @node
        def look(key: str) -> str:
            return key

        @flow
        def quote(key: str) -> str:
            return look(key)

        """) + statement + "\n"
    path = tmp_path / "uses.py"
    path.write_text(text, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is None
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.code is Code.FLOW_AT_IMPORT
    line = text.splitlines()[diagnostic.span.line - 1]
    assert line[diagnostic.span.column - 1 :].startswith(located)
    assert "quote" in diagnostic.message


FIELDS_NAMED_LIKE_A_FLOW = {
    "a TypedDict field": "class State(TypedDict):\n    quote: str",
    "a dataclass field": "@dataclass\nclass State:\n    quote: str = 'x'",
    "a class attribute": "class State:\n    quote = 'x'",
}


@pytest.mark.parametrize(
    "definition",
    list(FIELDS_NAMED_LIKE_A_FLOW.values()),
    ids=list(FIELDS_NAMED_LIKE_A_FLOW),
)
def test_a_name_bound_in_a_class_body_does_not_use_the_flow_it_names(
    tmp_path: Path, definition: str
) -> None:
    # `quote: str` binds a field; the module's `quote` is not read at import.
    text = (
        dedent("""
        from dataclasses import dataclass
        from typing import TypedDict

        from kiln import flow, node

        """)
        + definition
        + dedent("""


        @node
        def look(key: str, state: State) -> str:
            return key

        @flow
        def quote(key: str, state: State) -> str:
            return look(key, state)
        """)
    )
    path = tmp_path / "fields.py"
    path.write_text(text, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None, [d.message for d in compilation.diagnostics]


def test_a_definition_naming_a_flow_is_dropped_unless_kept_code_needs_it(
    tmp_path: Path,
) -> None:
    text = dedent("""
        from kiln import flow, node

        @node
        def look(key: str) -> str:
            return key

        @flow
        def quote(key: str) -> str:
            return look(key)

        FLOWS = {"quote": quote}
        """)
    path = tmp_path / "named.py"
    path.write_text(text, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is not None
    assert "FLOWS" not in compilation.output
    path.write_text(
        text.replace("return key", "return str(sorted(FLOWS))"), encoding="utf-8"
    )
    compilation = compile_file(path)
    assert [d.code for d in compilation.diagnostics] == [Code.FLOW_AT_IMPORT]


def parsed(text: str) -> ParsedModule:
    result = parse_source(SourceFile.from_bytes("m.py", "m", dedent(text).encode()))
    assert isinstance(result, ParsedModule)
    return result


FINGERPRINTED = """
    import random
    from kiln import flow, node

    PRICES = {}
    PRICES["apple"] = 3
    random.seed(1)
    OTHER = []
    OTHER.append(1)

    @node(cache=True)
    def look(key: str) -> object:
        return PRICES[key] + random.random()
    """


@pytest.mark.parametrize(
    ("edit", "changes"),
    [
        (('PRICES["apple"] = 3', 'PRICES["apple"] = 4'), True),
        (("random.seed(1)", "random.seed(2)"), True),
        (("OTHER.append(1)", "OTHER.append(2)"), False),
    ],
)
def test_the_cache_fingerprint_covers_the_statements_kept_with_the_node(
    edit: tuple[str, str], changes: bool
) -> None:
    def kept(text: str) -> list[str]:
        module = parsed(text)
        return [module.module.code_for_node(s) for s in reached(module, {"look"})]

    assert (kept(FINGERPRINTED) != kept(FINGERPRINTED.replace(*edit))) is changes
