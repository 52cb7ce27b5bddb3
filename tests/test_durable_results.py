"""A durable run journals every value the ledger stores, wherever its class is.

The journal writes a result as the ledger does (`kiln.ledger.keys.Shape`):
a class by its name in the module of the node that returns it, so a class
defined beside a node in another module than the flow's (a module of nodes
imported by a module of flows, a subflow's module) is journaled and replayed
as a cached result is. A `TypedDict` result is the dict it is at run time,
stored as one.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_durable import logged
from tests.test_packages import _kiln, _python

STEPS = """\
import json
import os
from dataclasses import dataclass

from kiln import node


@dataclass(frozen=True)
class Part:
    name: str
    size: int


@node
async def download(name: str) -> Part:
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(json.dumps(["download", name]) + "\\n")
    return Part(name, len(name))
"""

FLOWS = """\
from kiln import flow

from .steps import Part, download


@flow
async def parts(names: list[str]) -> list[Part]:
    return [await download(n) for n in names]
"""

SUB = """\
import json
import os
from dataclasses import dataclass

from kiln import flow, node


@dataclass(frozen=True)
class Piece:
    name: str


@node
async def make(name: str) -> Piece:
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(json.dumps(["make", name]) + "\\n")
    return Piece(name)


@flow
async def inner(names: list[str]) -> list[Piece]:
    return [await make(n) for n in names]
"""

MAIN = """\
from kiln import flow

from .sub import Piece, inner


@flow
async def outer(names: list[str]) -> list[Piece]:
    return await inner(names)
"""

RUN_TWICE = """
import json
from build.pkg.flows import Parts
from build.pkg.main import Outer
seen = []
for _ in range(2):  # the second run of each id replays its journal
    got = Parts(ledger="l.db", run_id="parts")(["ab", "c"])
    seen.append([[type(p).__module__, p.name, p.size] for p in got])
    got = Outer(ledger="l.db", run_id="outer")(["x"])
    seen.append([[type(p).__module__, p.name] for p in got])
print(json.dumps(seen))
"""


def test_a_result_whose_class_is_of_another_module_than_the_flow_is_journaled(
    tmp_path: Path, log: Path
) -> None:
    files = {
        "pyproject.toml": '[tool.kiln]\nsources = ["pkg"]\noutput = "build"\n',
        "pkg/__init__.py": "",
        "pkg/steps.py": STEPS,
        "pkg/flows.py": FLOWS,
        "pkg/sub.py": SUB,
        "pkg/main.py": MAIN,
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    compiled = _kiln("compile", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    seen = json.loads(_python(RUN_TWICE, tmp_path, tmp_path))
    parts = [["pkg.steps", "ab", 2], ["pkg.steps", "c", 1]]
    pieces = [["build.pkg.sub", "x"]]
    assert seen == [parts, pieces, parts, pieces]
    # Each node ran once: the second runs were answered from their journals.
    assert logged(log) == [["download", "ab"], ["download", "c"], ["make", "x"]]


TYPED = """\
import json
import os
from typing import NotRequired, TypedDict

from kiln import ask, flow, node


class Draft(TypedDict):
    text: str
    version: int
    notes: NotRequired[list[str]]


@node
async def write(topic: str) -> Draft:
    with open(os.environ["KILN_TEST_RUNS"], "a") as log:
        log.write(json.dumps(["write", topic]) + "\\n")
    return {"text": f"about {topic}", "version": 1}


@flow
async def pipeline(topic: str) -> Draft:
    draft = await write(topic)
    if await ask("approve", bool, draft):
        return draft
    return {"text": "rejected", "version": draft["version"]}
"""


def test_a_typed_dict_result_is_journaled_as_the_dict_it_is(
    tmp_path: Path, log: Path
) -> None:
    (tmp_path / "app.py").write_text(TYPED)
    compiled = _kiln("compile", "app.py", "-o", "build", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    ran = _python(
        """
        import json
        import kiln
        from build.app import Pipeline
        try:
            Pipeline(run_id="r1", ledger="l.db")("kiln")
        except kiln.Suspended as suspended:
            print(json.dumps(suspended.payload))
        print(json.dumps(Pipeline(run_id="r1", ledger="l.db").resume(approve=True)))
        """,
        tmp_path,
        tmp_path,
    )
    draft = {"text": "about kiln", "version": 1}
    assert [json.loads(line) for line in ran.splitlines()] == [draft, draft]
    assert logged(log) == [["write", "kiln"]]
