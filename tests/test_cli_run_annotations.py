"""`kiln run` reads every argument by its annotation, or refuses it (trial H, A and F).

Through the installed command, on a source and on the module `kiln compile`
wrote from it: a quoted annotation (``code: "Optional[str]"``) reads ``123``
as the str it declares, not as JSON's int; an annotation kiln cannot evaluate
(a name imported only under TYPE_CHECKING) refuses the argument it annotates
instead of passing it on unread; a module under ``from __future__ import
annotations`` reads as the same module without it; and a TypedDict argument
is checked as a dataclass is: its required keys, no unknown key, each value
by its annotation, with the place of a mistake named.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import KILN, write

QUOTED = """\
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional
import typing

from kiln import flow, node

if TYPE_CHECKING:
    from decimal import Decimal


@dataclass
class Row:
    id: int
    note: "Optional[str]" = None


@node
async def show(value: object) -> str:
    return f"{value!r} is {type(value).__name__}"


@node
async def hints(row: "Row") -> str:
    return str(sorted(typing.get_type_hints(Row)))


@flow
async def quoted(code: "Optional[str]") -> str:
    return await show(code)


@flow
async def rows(row: "list[Row]") -> str:
    return await show(row)


@flow
async def typed(row: Row) -> str:
    return await hints(row)


@flow
async def hidden(amount: "Decimal | None" = None, n: int = 1) -> str:
    return await show((amount, n))
"""

RECORDS = """\
from dataclasses import dataclass, field
from typing import NotRequired, Required, TypedDict

from kiln import flow, node


class Cfg(TypedDict):
    k: int
    tags: list[str]


class Partial(TypedDict, total=False):
    name: Required[str]
    size: int


class Mixed(TypedDict):
    id: int
    parts: NotRequired[list[Partial]]


@dataclass
class Job:
    k: int
    tags: list[str] = field(default_factory=list)


@node
async def show(value: object) -> str:
    return repr(value)


@flow
async def cfg(cfg: Cfg) -> str:
    return await show(cfg)


@flow
async def partial(p: Partial) -> str:
    return await show(p)


@flow
async def mixed(m: Mixed) -> str:
    return await show(m)


@flow
async def job(job: Job) -> str:
    return await show(job)
"""


def kiln(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KILN, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def result(done: subprocess.CompletedProcess[str]) -> object:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)["result"]


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a refused run: exit 2, and nothing ran."""
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    return line


FUTURE = "from __future__ import annotations\n"


@pytest.fixture(scope="module", params=["plain", "future"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The sources, plain and under `from __future__ import annotations`, and
    their compiled modules in build/."""
    root = tmp_path_factory.mktemp(f"annotations_{request.param}")
    prefix = FUTURE if request.param == "future" else ""
    write(root / "quoted.py", prefix + QUOTED)
    write(root / "records.py", prefix + RECORDS)
    compiled = kiln("compile", "quoted.py", "records.py", "-o", "build", cwd=root)
    assert compiled.returncode == 0, compiled.stderr
    return root


@pytest.fixture(params=["source", "compiled"])
def where(request: pytest.FixtureRequest) -> str:
    """The module kiln run is given: the source, or the module kiln wrote."""
    return "" if request.param == "source" else "build/"


def test_a_quoted_annotation_reads_its_argument_as_the_type_it_names(
    project: Path, where: str
) -> None:
    run = f"{where}quoted.py:quoted"
    for text, shown in [("123", "'123' is str"), ("true", "'true' is str")]:
        done = kiln("run", run, f"code={text}", "--json", cwd=project)
        assert result(done) == shown
    assert result(kiln("run", run, "code=none", "--json", cwd=project)) == (
        "None is NoneType"
    )


def test_a_quoted_generic_of_a_class_checks_its_fields(
    project: Path, where: str
) -> None:
    run = f"{where}quoted.py:rows"
    given = 'row=[{"id": 1, "note": 5}]'
    assert refused(kiln("run", run, given, cwd=project)).endswith(
        'got \'[{"id": 1, "note": 5}]\': 0.note: the JSON is int, not str | None'
    )
    done = kiln("run", run, 'row=[{"id": 1, "note": "5"}]', "--json", cwd=project)
    assert result(done) == "[Row(id=1, note='5')] is list"


def test_the_compiled_module_evaluates_the_classes_annotations(
    project: Path, where: str
) -> None:
    done = kiln(
        "run", f"{where}quoted.py:typed", 'row={"id": 1}', "--json", cwd=project
    )
    assert result(done) == "['id', 'note']"


def test_an_annotation_kiln_cannot_evaluate_refuses_its_argument(
    project: Path, where: str
) -> None:
    run = f"{where}quoted.py:hidden"
    line = refused(kiln("run", run, "amount=1.5", cwd=project))
    assert line == (
        f"kiln: error: {where}quoted.py:hidden: argument 'amount' is annotated"
        " 'Decimal | None', which kiln cannot evaluate (NameError: name 'Decimal'"
        " is not defined), so it cannot tell how to read '1.5'; make the names the"
        " annotation uses importable when its module runs (not only under"
        " TYPE_CHECKING)"
    )
    # Not given, it is not read: the flow runs with its default.
    assert result(kiln("run", run, "n=2", "--json", cwd=project)) == (
        "(None, 2) is tuple"
    )


TYPED_DICT_REFUSALS = [
    (
        "cfg",
        'cfg={"k": "x", "tags": ["a"]}',
        'argument \'cfg\' expects Cfg; got \'{"k": "x", "tags": ["a"]}\':'
        " k: the JSON is str, not int",
    ),
    (
        "cfg",
        'cfg={"k": 1, "tags": [1]}',
        "tags.0: the JSON is int, not str",
    ),
    (
        "cfg",
        "cfg={}",
        "got '{}': missing required keys of Cfg: k (int), tags (list[str])",
    ),
    (
        "cfg",
        'cfg={"k": 1, "tags": [], "tgas": []}',
        "unknown key 'tgas' (Cfg's keys: k, tags); did you mean 'tags'?",
    ),
    ("cfg", "cfg=[1]", "got '[1]': a JSON object of Cfg's keys"),
    (
        "partial",
        'p={"size": 1}',
        "missing required key of Partial: name (str)",
    ),
    (
        "partial",
        'p={"name": "a", "size": "big"}',
        "size: the JSON is str, not int",
    ),
    (
        "mixed",
        'm={"id": 1, "parts": [{"name": "a"}, {"size": 2}]}',
        "parts.1: missing required key of Partial: name (str)",
    ),
    (
        "job",
        'job={"k": "x"}',
        "argument 'job' expects Job; got '{\"k\": \"x\"}': k: the JSON is str, not int",
    ),
    ("job", "job={}", "missing required field of Job: k (int)"),
    (
        "job",
        'job={"k": 1, "tag": []}',
        "unknown field 'tag' (Job's fields: k, tags); did you mean 'tags'?",
    ),
]


@pytest.mark.parametrize(("flow", "given", "message"), TYPED_DICT_REFUSALS)
def test_a_typed_dict_argument_is_checked_as_a_dataclass_is(
    project: Path, where: str, flow: str, given: str, message: str
) -> None:
    line = refused(kiln("run", f"{where}records.py:{flow}", given, cwd=project))
    assert line.startswith(f"kiln: error: {where}records.py:{flow}: argument "), line
    assert line.endswith(message), line


TYPED_DICT_READS = [
    ("cfg", 'cfg={"k": 1, "tags": ["a"]}', "{'k': 1, 'tags': ['a']}"),
    ("partial", 'p={"name": "a"}', "{'name': 'a'}"),
    ("partial", 'p={"name": "a", "size": 2}', "{'name': 'a', 'size': 2}"),
    ("mixed", 'm={"id": 1}', "{'id': 1}"),
    (
        "mixed",
        'm={"id": 1, "parts": [{"name": "a"}]}',
        "{'id': 1, 'parts': [{'name': 'a'}]}",
    ),
    ("job", 'job={"k": 1}', "Job(k=1, tags=[])"),
]


@pytest.mark.parametrize(("flow", "given", "shown"), TYPED_DICT_READS)
def test_a_typed_dict_argument_that_fits_is_read_as_given(
    project: Path, where: str, flow: str, given: str, shown: str
) -> None:
    done = kiln("run", f"{where}records.py:{flow}", given, "--json", cwd=project)
    assert result(done) == shown
