"""The compiler accepts an option value exactly when the decorator accepts it at import.

The source run as plain Python is the reference: a source whose decorators
raise when it is imported must not compile, and a source kiln compiles must
import, compiled or not. Option values (types, ranges, infinities, exception
classes, fallbacks, limits, stacked decorators) are drawn at random, and a
list of known disagreements is checked by name.

Both read one table, the runtime's `kiln.options`: the same options, the same
defaults, and what is said of a value that does not fit, `OptionError` and the
compiler's diagnostic in the same words (the tests below the random ones).

Values are literals: the compiler reads options without running code, so an
expression (`60 * 5`, `f"llm"`, a constant's name) is KLN102 by design, even
where the decorator would accept what it computes.
"""

from __future__ import annotations

import argparse
import importlib
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Any

import libcst
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln import Limit, OptionError
from kiln import options as table
from kilnc.classes import exception_class
from kilnc.cli.config import load_config
from kilnc.cli.settle import visit_limit
from kilnc.diagnostics import Diagnostic
from kilnc.ir import FlowOptions, NodeOptions
from kilnc.pipeline import compile_file
from tests.test_differential import load

NUMBERS = [
    "0", "1", "2", "-1", "+1", "7", "1000000000000000000000",
    "9" * 400, "0.0", "-0.0", "0.5", "1.0", "2.5", "-0.5", "1e-400", "1e309",
    "-1e309", "1e308", "True", "False", "1j",
]  # fmt: skip
TEXTS = ['"llm"', '"x y"', '""', '" "', "'a' 'b'", "None", "b'llm'"]
SHAPES = ["[1]", "(1,)", "{}", "UNDEFINED", "len"]
EXCEPTIONS = [
    "(ValueError,)", "(ValueError, KeyError)", "(Flaky,)", "(Flaky, OSError)",
    "(int,)", "(NotAnError,)", "(Late,)", "(Alias,)", "(Pair,)", "()",
    "ValueError", "(ValueError)", '("ValueError",)', "[ValueError]",
    "(BaseException,)", "(KeyboardInterrupt,)", "(Exception, object)", "None",
]  # fmt: skip
FALLBACKS = [
    "rescue",
    "rescue_async",
    "None",
    "later",
    "NotAnError",
    "print",
    "nowhere",
]
VALUES: dict[str, list[str]] = {
    "name": TEXTS + NUMBERS[:3],
    "retries": [*NUMBERS, "None"],
    "wait": [*NUMBERS, "None", *TEXTS[:2]],
    "backoff": [*NUMBERS, "None"],
    "retry_on": EXCEPTIONS,
    "timeout": [*NUMBERS, "None", *TEXTS[:2]],
    "fallback": FALLBACKS,
    "limit": TEXTS + NUMBERS[:2],
    "cache": ["True", "False", "None", "0", "1"],
    "thread": ["True", "False", "None", "1"],
    "max_visits": [*NUMBERS, "None"],
    "local": ["True", "False", "None"],
}
FLOW_VALUES: dict[str, list[str]] = {
    "name": TEXTS + NUMBERS[:3],
    "max_visits": [*NUMBERS, "None"],
    "concurrency": [*NUMBERS, "None"],
}
CAPACITIES = ["1", "8", "0", "-1", "2.5", "True", "None", "+3"]
REFRESHES = ["None", "1.0", "1", "0", "-1.0", "1e309", "1e-400", '"1"', "0.25"]
GROUPS = ['"llm"', '"db"', '""', '" "', "3", "None"]

#: How the node is written, by kind: definition and how a flow uses it.
KINDS = {
    "sync": ("def", "return v", "out = step(v)", False),
    "async": ("async def", "return v", "out = await step(v)", True),
    "stream": ("def", "yield v", "out = [x for x in step(v)]", False),
    "async stream": ("async def", "yield v", "out = [x async for x in step(v)]", True),
}
PARAMS = ["v: int", "v: int, error: int = 0"]
STACKS = ["", "@node\n", "@flow\n", "below @flow"]

PRELUDE = """\
from kiln import Limit, flow, node


class Flaky(Exception):
    pass


class NotAnError:
    pass


Alias = Flaky
Pair = (ValueError, KeyError)


def rescue(v: int, *, error: BaseException) -> int:
    return -1


async def rescue_async(v: int, *, error: BaseException) -> int:
    return -2

"""

AFTER = """

class Late(Exception):
    pass


def later(v: int, *, error: BaseException) -> int:
    return -3
"""


def source(
    kind: str,
    params: str,
    options: dict[str, str],
    flow_options: dict[str, str],
    limits: list[tuple[str, str, str]] | None,
    stack: str,
) -> str:
    define, body, use, is_async = KINDS[kind]
    written = ", ".join(f"{key}={value}" for key, value in options.items())
    limits = list(limits or [])
    if options.get("limit", "").strip("\"'").strip() and options["limit"][0] in "\"'":
        limits.append((options["limit"], "1", "None"))  # the group its flow declares
    shown = dict(flow_options)
    if limits:
        groups = ", ".join(f"{g}: Limit({c}, refresh={r})" for g, c, r in limits)
        shown["limits"] = "{" + groups + "}"
    flow_written = ", ".join(f"{key}={value}" for key, value in shown.items())
    above = stack if stack in ("@node\n", "@flow\n") else ""
    below = "@flow\n" if stack == "below @flow" else ""
    flow_def = "async def" if is_async else "def"
    return (
        PRELUDE
        + f"\n{above}@node({written})\n{below}{define} step({params}):\n    {body}\n\n\n"
        + f"@flow({flow_written})\n{flow_def} main(v: int) -> object:\n"
        + f"    {use}\n    return out\n"
        + AFTER
    )


def outcomes(tmp_path: Path, text: str) -> tuple[bool, bool]:
    """Whether the source imports, and whether kiln compiles it (to a module that imports)."""
    path = tmp_path / "options_case.py"
    path.write_text(text, encoding="utf-8")
    try:
        load(path)
        imports = True
    except Exception:
        imports = False
    compilation = compile_file(path)
    if compilation.output is not None:
        out = tmp_path / "options_out.py"
        out.write_text(compilation.output, encoding="utf-8")
        load(out)  # a module kiln wrote must import
    return imports, compilation.output is not None


@st.composite
def cases(draw: Any) -> str:
    keys = draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=3, unique=True))
    options = {key: draw(st.sampled_from(VALUES[key])) for key in keys}
    flow_keys = draw(
        st.lists(st.sampled_from(sorted(FLOW_VALUES)), max_size=2, unique=True)
    )
    flow_options = {key: draw(st.sampled_from(FLOW_VALUES[key])) for key in flow_keys}
    limits = draw(
        st.none()
        | st.lists(
            st.tuples(
                st.sampled_from(GROUPS),
                st.sampled_from(CAPACITIES),
                st.sampled_from(REFRESHES),
            ),
            max_size=2,
        )
    )
    return source(
        draw(st.sampled_from(sorted(KINDS))),
        draw(st.sampled_from(PARAMS)),
        options,
        flow_options,
        limits,
        draw(st.sampled_from(STACKS)),
    )


@settings(max_examples=60, deadline=None)
@given(text=cases())
def test_random_options_compile_iff_the_source_imports(
    text: str, tmp_path_factory: Any
) -> None:
    imports, compiles = outcomes(tmp_path_factory.mktemp("options"), text)
    assert compiles == imports, text


KNOWN = {
    "@flow on @node": ("async", PARAMS[0], {}, {}, None, "@flow\n"),
    "@node on @flow": ("async", PARAMS[0], {}, {}, None, "below @flow"),
    "@node on @node": ("async", PARAMS[0], {"retries": "1"}, {}, None, "@node\n"),
    "retry_on=(int,)": ("async", PARAMS[0], {"retry_on": "(int,)"}, {}, None, ""),
    "retry_on=(NotAnError,)": (
        "async", PARAMS[0], {"retry_on": "(NotAnError,)"}, {}, None, "",
    ),
    "retry_on=(Alias,)": ("async", PARAMS[0], {"retry_on": "(Alias,)"}, {}, None, ""),
    "retry_on=(Pair,)": ("async", PARAMS[0], {"retry_on": "(Pair,)"}, {}, None, ""),
    "retry_on=ValueError": (
        "async", PARAMS[0], {"retry_on": "ValueError"}, {}, None, "",
    ),
    "retry_on=()": ("async", PARAMS[0], {"retry_on": "()"}, {}, None, ""),
    "retry_on defined below": (
        "async", PARAMS[0], {"retry_on": "(Late,)"}, {}, None, "",
    ),
    "timeout=1e309": ("async", PARAMS[0], {"timeout": "1e309"}, {}, None, ""),
    "wait of 400 digits": ("async", PARAMS[0], {"wait": "9" * 400}, {}, None, ""),
    "retries=+1": ("async", PARAMS[0], {"retries": "+1"}, {}, None, ""),
    "name=None": ("async", PARAMS[0], {"name": "None"}, {"name": "None"}, None, ""),
    "fallback=None": ("async", PARAMS[0], {"fallback": "None"}, {}, None, ""),
    "fallback defined below": ("async", PARAMS[0], {"fallback": "later"}, {}, None, ""),
    "fallback and a parameter named error": (
        "async", PARAMS[1], {"fallback": "rescue"}, {}, None, "",
    ),
    "timeout on a sync node": ("sync", PARAMS[0], {"timeout": "5"}, {}, None, ""),
    "limit on a sync node": ("sync", PARAMS[0], {"limit": '"llm"'}, {}, None, ""),
    "thread on an async node": ("async", PARAMS[0], {"thread": "True"}, {}, None, ""),
    "retries=0 on a stream": ("stream", PARAMS[0], {"retries": "0"}, {}, None, ""),
    "retries=1 on a stream": ("stream", PARAMS[0], {"retries": "1"}, {}, None, ""),
    "limits=None": ("async", PARAMS[0], {}, {"limits": "None"}, None, ""),
    "refresh=1e309": ("async", PARAMS[0], {}, {}, [('"llm"', "1", "1e309")], ""),
    "a blank group": ("async", PARAMS[0], {}, {}, [('" "', "1", "None")], ""),
    "a group given twice": (
        "async", PARAMS[0], {}, {}, [('"a"', "0", "None"), ('"a"', "1", "None")], "",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(KNOWN.values()), ids=list(KNOWN))
def test_known_disagreements_are_gone(tmp_path: Path, case: Any) -> None:
    text = source(*case)
    imports, compiles = outcomes(tmp_path, text)
    assert compiles == imports, text


CLASSES = """
import errors
from errors import Imported

class Flaky(Exception): ...
class Deeper(Flaky): ...
class Plain: ...
class Mixed(Plain, Imported): ...
class Both(Plain, ValueError): ...
def function() -> None: ...
Alias = Deeper
Pair = (ValueError, KeyError)
Made = type("Made", (Exception,), {})
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ValueError", True),
        ("BaseException", True),
        ("int", False),
        ("len", False),
        ("Flaky", True),
        ("Deeper", True),
        ("Alias", True),
        ("Plain", False),
        ("Both", True),
        ("Mixed", None),
        ("Imported", None),
        ("errors.Transient", None),
        ("function", False),
        ("Pair", False),
        ("Made", None),
        ("Undefined", None),
    ],
)
def test_what_the_source_shows_of_an_exception_class(
    name: str, expected: bool | None
) -> None:
    module = libcst.parse_module(CLASSES)
    assert exception_class(module.body, name) is expected


@pytest.mark.parametrize(
    ("imported", "accepted"),
    [
        ("from .errors import Transient", True),
        ("from .errors import NotAnError as Transient", False),
        ("from . import errors\nTransient = errors.Transient", True),
        ("from PKG.errors import Alias as Transient", True),
        ("from PKG.errors import Pair as Transient", False),
        ("from json import JSONDecodeError as Transient", True),
    ],
)
def test_exception_classes_of_other_project_modules_are_checked_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imported: str, accepted: bool
) -> None:
    name = f"kiln_pkg_{uuid.uuid4().hex}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "errors.py").write_text(
        "class Transient(Exception): ...\n\n\nclass NotAnError: ...\n\n\n"
        "Alias = Transient\nPair = (Transient, KeyError)\n",
        encoding="utf-8",
    )
    text = f"from kiln import flow, node\n{imported.replace('PKG', name)}\n\n\n" + (
        "@node(retry_on=(Transient,))\nasync def step(v: int) -> int:\n    return v\n"
        "\n\n@flow\nasync def main(v: int) -> int:\n    return await step(v)\n"
    )
    (package / "flows.py").write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module(f"{name}.flows")
        imports = True
    except Exception:
        imports = False
    compiles = compile_file(package / "flows.py").output is not None
    assert (imports, compiles) == (accepted, accepted)


# --- one table: the same options, defaults and words on both sides ---------------------

# Values each kind of option refuses, as the source writes them and as the
# decorator is given them: a wrong type, then (where there is one) out of range.
REFUSED: dict[str, list[tuple[str, object]]] = {
    "int": [("1.5", 1.5), ("-1", -1)],
    "real": [('"x"', "x"), ("-1.0", -1.0)],
    "name": [("3", 3), ('""', "")],
    "bool": [("1", 1)],
    "exceptions": [("ValueError", ValueError), ("()", ())],
    "function": [('"rescue"', "rescue")],
    "limits": [("[1]", [1])],
}
ONE_TABLE = [
    (kind, option, written, value)
    for kind, rules in (("node", table.NODE_RULES), ("flow", table.FLOW_RULES))
    for option, rule in rules.items()
    for written, value in REFUSED[rule.kind]
    if not rule.accepts(value)
] + [
    ("limit", option, written, value)
    for option, rule in table.LIMIT_RULES.items()
    for written, value in REFUSED[rule.kind]
    if not rule.accepts(value)
]


def compiled_diagnostics(tmp_path: Path, text: str) -> list[Diagnostic]:
    path = tmp_path / "options_case.py"
    path.write_text(text, encoding="utf-8")
    compilation = compile_file(path)
    assert compilation.output is None, text
    return list(compilation.diagnostics)


def refusal(check: Any) -> str:
    with pytest.raises(OptionError) as caught:
        check()
    return str(caught.value)


@pytest.mark.parametrize(
    ("kind", "option", "written", "value"),
    ONE_TABLE,
    ids=[f"{t}-{o}={w}" for t, o, w, _ in ONE_TABLE],
)
def test_a_refused_value_is_refused_in_the_table_s_words(
    tmp_path: Path, kind: str, option: str, written: str, value: object
) -> None:
    rule: table.Rule
    if kind == "node":
        rule = table.NODE_RULES[option]
        text = source("async", PARAMS[0], {option: written}, {}, None, "")
        subject, runtime = f"option '{option}'", option
        raised = refusal(lambda: table.NodeOptions(**{option: value}))
    elif kind == "flow":
        rule = table.FLOW_RULES[option]
        text = source("async", PARAMS[0], {}, {option: written}, None, "")
        subject, runtime = f"option '{option}'", option
        raised = refusal(lambda: table.FlowOptions(**{option: value}))
    else:
        rule = table.LIMIT_RULES[option]
        capacity, refresh = (
            (written, "None") if option == "capacity" else ("1", written)
        )
        text = source("async", PARAMS[0], {}, {}, [('"g"', capacity, refresh)], "")
        subject, runtime = f"the {option} of limit group 'g'", f"Limit {option}"
        arguments = {"capacity": 1, option: value}
        raised = refusal(lambda: Limit(**arguments))  # type: ignore[arg-type]
    messages = [d.message for d in compiled_diagnostics(tmp_path, text)]
    said = [m for m in messages if m.startswith(rule.message(subject))]
    assert said, messages
    assert raised.startswith(rule.message(runtime)), raised
    # What the compiler says past the table's words, the runtime says too: that
    # a function goes where a string was given (`fallback="rescue"`).
    detail = said[0].removeprefix(rule.message(subject))
    assert raised.removeprefix(rule.message(runtime)).startswith(detail), raised


def test_what_limits_maps_is_said_alike(tmp_path: Path) -> None:
    """A group that is no Limit, and a group's name that is blank."""
    text = source("async", PARAMS[0], {}, {"limits": '{"db": 2}'}, None, "")
    messages = [d.message for d in compiled_diagnostics(tmp_path, text)]
    assert table.must_be("option 'limits'", table.LIMIT_CALL) in messages
    raised = refusal(lambda: table.FlowOptions(limits={"db": 2}))  # type: ignore[dict-item]
    assert raised.startswith(table.must_be("limits['db']", table.LIMIT_CALL))

    text = source("async", PARAMS[0], {}, {"limits": '{"": Limit(1)}'}, None, "")
    (found,) = compiled_diagnostics(tmp_path, text)
    assert found.message == table.FLOW_RULES["limits"].message("option 'limits'")
    assert found.hint == table.LIMIT_GROUP.message("each key")
    raised = refusal(lambda: table.FlowOptions(limits={"": Limit(1)}))
    assert raised.startswith(table.LIMIT_GROUP.message("each key of limits"))


def test_the_compiler_knows_the_runtime_s_options_and_their_defaults() -> None:
    node, runtime_node = NodeOptions(name="f"), table.NodeOptions(name="f")
    assert set(table.NODE_RULES) == {f.name for f in fields(NodeOptions)}
    assert set(table.NODE_RULES) == {f.name for f in fields(table.NodeOptions)}
    for option in set(table.NODE_RULES) - {"name"}:
        default = getattr(runtime_node, option)
        if option == "retry_on":  # the compiler reads the classes' names
            default = tuple(error.__name__ for error in default)
        assert getattr(node, option) == default, option
    flow, runtime_flow = FlowOptions(name="f"), table.FlowOptions(name="f")
    assert set(table.FLOW_RULES) == {f.name for f in fields(FlowOptions)}
    assert set(table.FLOW_RULES) == {f.name for f in fields(table.FlowOptions)}
    # None: the project's default, DEFAULT_MAX_VISITS unless [tool.kiln] says.
    assert (flow.max_visits, runtime_flow.max_visits) == (
        None,
        table.DEFAULT_MAX_VISITS,
    )
    assert (flow.limits, runtime_flow.limits) == ((), None)
    assert flow.concurrency == runtime_flow.concurrency


@pytest.mark.parametrize("value", ["0", "1", "-3", "true", "2.5", '"3"', "10000"])
def test_the_project_s_max_visits_is_a_flow_s(tmp_path: Path, value: str) -> None:
    """[tool.kiln] max_visits and --max-visits default every flow's max_visits."""
    rule = table.FLOW_RULES["max_visits"]
    (tmp_path / "pyproject.toml").write_text(f"[tool.kiln]\nmax_visits = {value}\n")
    config, problems = load_config(tmp_path)
    accepted = rule.accepts(config.max_visits) if not problems else False
    assert [p.message for p in problems] == (
        [] if accepted else [f"'max_visits' in [tool.kiln] must be {rule.requirement}"]
    )
    try:
        flag: object = visit_limit(value)
    except argparse.ArgumentTypeError as refused:
        flag = str(refused)
    written = int(value) if value.lstrip("-").isdigit() else None
    if written is not None and rule.accepts(written):
        assert flag == written
    elif written is not None:
        assert flag == f"must be {rule.requirement}: {written}"
