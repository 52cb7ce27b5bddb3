"""`kiln run` prints any value and any error, and never a traceback (issue 12.2).

Each case is a flow returning (or a node raising) something Python itself
struggles to print: an int beyond `sys.get_int_max_str_digits()`, an object
whose `__repr__` raises, an exception whose `__str__` raises, a structure
deeper than the recursion limit, bytes, a lone surrogate, NaN. Each runs as
text and as `--json`, through the installed command; `--json` must always be
one valid JSON document. Then names and messages carrying terminal escapes,
and a Hypothesis property over nested values.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_cli import KILN, write

PRELUDE = """\
from typing import Any

from kiln import flow, node


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class NotAString:
    def __repr__(self) -> Any:
        return 42


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class SelfRef:
    def __repr__(self) -> str:
        return repr(self)


def deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


def loop() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value
"""

VALUES = {
    "big_int": "10 ** 5000",
    "negative_big_int": "-(10 ** 5000)",
    "big_int_in_a_list": "[1, 10 ** 5000]",
    "bad_repr": "BadRepr()",
    "bad_repr_in_a_dict": "{'k': BadRepr()}",
    "repr_not_a_string": "NotAString()",
    "recursive_repr": "SelfRef()",
    "deep": "deep(100_000)",
    "cycle": "loop()",
    "bytes": "b'\\x1b[31mred\\x00\\xff'",
    "surrogate": "'\\ud800 lone'",
    "nan": "float('nan')",
    "tuple_keys": "{(1, 2): 'a'}",
    "mixed_set": "{1, 'a', (2,)}",
}


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*KILN, "run", *args, "--no-progress"],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result
    return result


def returning(tmp_path: Path, expression: str, kind: str = "Any") -> Path:
    body = f"""
@node
def make(x: int) -> {kind}:
    return {expression}


@flow
async def value(x: int) -> {kind}:
    return make(x)
"""
    return write(tmp_path / "values.py", PRELUDE + body)


@pytest.mark.parametrize("name", list(VALUES))
def test_any_result_prints(tmp_path: Path, name: str) -> None:
    returning(tmp_path, VALUES[name])
    text = run(tmp_path, "values.py:value", "x=1")
    assert text.returncode == 0, text
    assert text.stdout.strip(), text
    as_json = run(tmp_path, "values.py:value", "x=1", "--json")
    assert as_json.returncode == 0, as_json
    document = json.loads(as_json.stdout)
    assert document["ok"] is True
    assert "result" in document


def test_a_big_int_prints_in_hexadecimal(tmp_path: Path) -> None:
    returning(tmp_path, "10 ** 5000 + 7", "int")
    result = run(tmp_path, "values.py:value", "x=1")
    assert int(result.stdout.strip(), 16) == 10**5000 + 7
    assert "hexadecimal" in result.stderr


def test_a_bytes_result_is_base64_as_the_schema_and_the_readme_say(
    tmp_path: Path,
) -> None:
    returning(tmp_path, "bytes([3, 255])", "bytes")
    document = json.loads(run(tmp_path, "values.py:value", "x=1", "--json").stdout)
    assert document["result"] == "A/8="
    dumped = subprocess.run(
        [*KILN, "compile", "values.py", "--dump", "schema"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    [schema] = json.loads(dumped.stdout)
    assert schema["result"]["contentEncoding"] == "base64"
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    said = " ".join(readme.split("`--json` prints one document")[1].split())
    assert 'bytes as base64 (`b"\\x03\\xff"` is `"A/8="`)' in said.split("`--trace")[0]


def test_a_nan_result_is_not_invalid_json(tmp_path: Path) -> None:
    returning(tmp_path, "float('nan')", "float")
    document = json.loads(run(tmp_path, "values.py:value", "x=1", "--json").stdout)
    assert document["result"] == "nan"


def test_with_json_what_the_flow_prints_goes_to_stderr(tmp_path: Path) -> None:
    returning(tmp_path, "print('computing', x) or x * 2", "int")
    result = run(tmp_path, "values.py:value", "x=1", "--json")
    assert json.loads(result.stdout)["result"] == 2
    assert "computing 1" in result.stderr


RAISING = {
    "bad_str": "raise BadStr()",
    "bad_str_with_note": "e = BadStr()\n    e.add_note('a note')\n    raise e",
    "big_int_message": "raise KeyError(10 ** 5000)",
    "escape_in_message": "raise ValueError('\\x1b]0;owned\\x07 \\x1b[2J')",
    "deep_chain": (
        "error: Exception = ValueError('root')\n"
        "    for i in range(3000):\n"
        "        try:\n"
        "            raise ValueError(i) from error\n"
        "        except ValueError as e:\n"
        "            error = e\n"
        "    raise error"
    ),
}


@pytest.mark.parametrize("name", list(RAISING))
@pytest.mark.parametrize("traceback", [False, True], ids=["plain", "show-traceback"])
def test_any_error_prints(tmp_path: Path, name: str, traceback: bool) -> None:
    body = f"""
@node
def boom(x: int) -> int:
    {RAISING[name]}


@flow
async def failing(x: int) -> int:
    return boom(x)
"""
    write(tmp_path / "failing.py", PRELUDE + body)
    flags = ["--show-traceback"] if traceback else []
    text = subprocess.run(
        [*KILN, "run", "failing.py", "x=1", "--no-progress", *flags],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert text.returncode == 1, text
    assert "kiln: flow 'failing' failed:" in text.stderr
    assert "\x1b" not in text.stderr
    assert "\x07" not in text.stderr
    if not traceback:
        assert "Traceback" not in text.stderr
    as_json = run(tmp_path, "failing.py", "x=1", "--json")
    assert as_json.returncode == 1, as_json
    error = json.loads(as_json.stdout)["error"]
    assert error["type"] in ("BadStr", "KeyError", "ValueError")


def test_names_with_terminal_escapes_and_markup(tmp_path: Path) -> None:
    write(
        tmp_path / "names.py",
        "from kiln import flow, node\n\n\n"
        '@node(name="x[/b]\\x1b]0;owned\\x07\\u202e")\n'
        "def double(x: int) -> int:\n    return 2 * x\n\n\n"
        '@node(name="[bold red]loud")\n'
        "async def loud(x: int) -> int:\n    raise ValueError('\\x1b[2J')\n\n\n"
        "@flow\nasync def names(x: int) -> int:\n    y = double(x)\n    return await loud(y)\n",
    )
    result = run(tmp_path, "names.py", "x=1")
    assert result.returncode == 1, result
    assert "\x1b" not in result.stderr
    assert "\u202e" not in result.stderr
    assert "x[/b]\\x1b]0;owned\\x07\\u202e" in result.stderr
    assert "[bold red]loud" in result.stderr, "a name is not rich markup"
    document = json.loads(run(tmp_path, "names.py", "x=1", "--json").stdout)
    assert {n["node"] for n in document["nodes"]} == {
        "x[/b]\x1b]0;owned\x07\u202e",
        "[bold red]loud",
    }


def test_stream_items_print_whatever_they_are(tmp_path: Path) -> None:
    body = """
@node
async def items(n: int):
    yield BadRepr()
    yield 10 ** 5000
    yield deep(50_000)
    yield b"\\x00"


@flow
async def stream(n: int):
    async for item in items(n):
        yield item
"""
    write(tmp_path / "stream.py", PRELUDE + body)
    text = run(tmp_path, "stream.py", "n=1")
    assert text.returncode == 0, text
    assert len(text.stdout.splitlines()) == 4, text.stdout
    document = json.loads(run(tmp_path, "stream.py", "n=1", "--json").stdout)
    assert len(document["result"]) == 4


# --- a property over nested values ----------------------------------------------------

# Each atom as the Python expression that makes it.
ATOMS = st.one_of(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.none(),
        st.booleans(),
    ).map(repr),
    st.sampled_from(
        [
            "10 ** 4400",
            "-(2 ** 20000)",
            "float('nan')",
            "float('-inf')",
            "BadRepr()",
            "NotAString()",
            "SelfRef()",
            "deep(5000)",
            "loop()",
        ]
    ),
)


def expressions() -> st.SearchStrategy[str]:
    return st.recursive(
        ATOMS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
            st.lists(inner, max_size=3).map(
                lambda xs: f"({''.join(x + ', ' for x in xs)})"
            ),
            st.lists(st.tuples(st.text(max_size=4), inner), max_size=3).map(
                lambda kv: "{" + ", ".join(f"{k!r}: {v}" for k, v in kv) + "}"
            ),
        ),
        max_leaves=8,
    )


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(expression=expressions())
def test_any_nested_value_prints(tmp_path: Path, expression: str) -> None:
    returning(tmp_path, expression)
    for flags in ([], ["--json"]):
        result = run(tmp_path, "values.py:value", "x=1", *flags)
        assert result.returncode == 0, (expression, result)
        if flags:
            document: dict[str, Any] = json.loads(result.stdout)
            assert document["ok"] is True


GROUPED = """\
from kiln import flow, node


@node
async def validate(x: int) -> int:
    inner = ExceptionGroup("deeper", [KeyError("k")])
    wide = [ValueError(f"extra {i}") for i in range(20)]
    raise ExceptionGroup(
        "3 checks failed",
        [ValueError("x must be even"), TypeError("x must be a str"), inner],
    ) if x == 1 else ExceptionGroup("many", wide)


@flow
async def grouped(x: int) -> int:
    return await validate(x)
"""


def test_an_exception_group_shows_its_members(tmp_path: Path) -> None:
    write(tmp_path / "grouped.py", GROUPED)
    text = run(tmp_path, "grouped.py", "x=1")
    assert text.returncode == 1, text
    assert (
        "ExceptionGroup: 3 checks failed (3 sub-exceptions)\n"
        "  - ValueError: x must be even\n"
        "  - TypeError: x must be a str\n"
        "  - ExceptionGroup: deeper (1 sub-exception)\n"
        "    - KeyError: 'k'\n"
        "kiln: node 'validate' failed"
    ) in text.stderr
    assert "Traceback" not in text.stderr
    error = json.loads(run(tmp_path, "grouped.py", "x=1", "--json").stdout)["error"]
    members = [(e["type"], e["message"]) for e in error["exceptions"]]
    assert members == [
        ("ValueError", "x must be even"),
        ("TypeError", "x must be a str"),
        ("ExceptionGroup", "deeper (1 sub-exception)"),
    ]
    assert error["exceptions"][2]["exceptions"][0]["type"] == "KeyError"
    many = run(tmp_path, "grouped.py", "x=2")
    assert "  - ValueError: extra 14\n  ... and 5 more\n" in many.stderr
    assert "extra 15" not in many.stderr
    document = json.loads(run(tmp_path, "grouped.py", "x=2", "--json").stdout)
    assert (
        len(document["error"]["exceptions"]),
        document["error"]["more_exceptions"],
    ) == (15, 5)
