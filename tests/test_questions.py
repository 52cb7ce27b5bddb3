"""Questions to a person (`kiln.ask`) in durable runs, compiled and run end to end.

Each node counts its executions in a log, so a test can tell that every node
ran exactly once however many times the run was suspended and resumed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest

import kiln
from tests.test_cache import runs
from tests.test_differential import compiled_and_source

SOURCE = """
import os
from dataclasses import dataclass
from typing import Literal
from kiln import ask, flow, node

RUNS = os.environ["KILN_TEST_RUNS"]


def count(what: str) -> None:
    with open(RUNS, "a") as log:
        log.write(what + "\\n")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    note: str


@node
async def write(doc: str) -> str:
    count(f"write {doc}")
    return doc + "!"


@node
async def score(part: str) -> int:
    count(f"score {part}")
    return len(part)


@node
async def post(text: str) -> str:
    count(f"post {text}")
    return "posted " + text


@flow
async def publish(doc: str) -> str:
    draft = await write(doc)
    ok = await ask("review", bool, draft)
    if ok:
        return await post(draft)
    return "rejected"


@flow
async def revise(doc: str) -> str:
    draft = await write(doc)
    while not await ask("approve", bool, draft):
        draft = await write(draft)
    return draft


@flow
async def pick(parts: list[str]) -> list[int]:
    kept = [await ask("keep", bool, await score(p)) for p in parts]
    return [len(p) for p, k in zip(parts, kept) if k]


@flow
async def judged(doc: str) -> str:
    verdict = await ask("verdict", Verdict, doc)
    return verdict.note if verdict.ok else "no"


@flow
async def toned(doc: str) -> str:
    tone = await ask("tone", Literal["formal", "casual"], doc)
    times = await ask("times", int | None, doc)
    return f"{tone} {times}"
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("KILN_TEST_RUNS", str(tmp_path / "runs.log"))
    monkeypatch.setenv("KILN_LEDGER", str(tmp_path / "ledger.db"))
    compiled, _ = compiled_and_source(dedent(SOURCE), tmp_path / "flows")
    return compiled


def answered(
    make: Callable[[], Any],
    first: tuple[object, ...],
    answers: list[Mapping[str, object]],
) -> tuple[object, list[tuple[str, object, str]]]:
    """Run, then resume with each answer in turn: the result and the questions asked."""
    asked: list[tuple[str, object, str]] = []
    try:
        return make()(*first), asked
    except kiln.Suspended as question:
        asked.append((question.question, question.payload, question.key))
    for answer in answers:
        try:
            return make().resume(**answer), asked
        except kiln.Suspended as question:
            asked.append((question.question, question.payload, question.key))
    raise AssertionError(f"still suspended after every answer: {asked}")


def test_a_question_suspends_the_run_and_its_answer_resumes_it(
    module: ModuleType, tmp_path: Path
) -> None:
    with pytest.raises(kiln.Suspended) as suspended:
        module.Publish(run_id="r1")("doc")
    question = suspended.value
    assert (question.run_id, question.question, question.payload) == (
        "r1",
        "review",
        "doc!",
    )
    assert question.expected is bool
    assert question.where == "generated_flow.py:42"
    assert module.Publish(run_id="r1").resume(review=True) == "posted doc!"
    # Done: running it again replays, and runs nothing; so does a retried answer.
    assert module.Publish(run_id="r1")("doc") == "posted doc!"
    assert module.Publish(run_id="r1").resume(review=True) == "posted doc!"
    assert runs(tmp_path / "runs.log") == ["write doc", "post doc!"]


def test_questions_in_a_loop_are_answered_per_visit(
    module: ModuleType, tmp_path: Path
) -> None:
    answers: list[Mapping[str, object]] = [
        {"approve": False},
        {"approve": False},
        {"approve": True},
    ]
    result, asked = answered(lambda: module.Revise(run_id="loop"), ("d",), answers)
    assert result == "d!!!"
    assert asked == [
        ("approve", "d!", "1.0"),
        ("approve", "d!!", "1.1"),
        ("approve", "d!!!", "1.2"),
    ]
    assert runs(tmp_path / "runs.log") == ["write d", "write d!", "write d!!"]


def test_questions_in_a_fan_out_are_answered_per_element(
    module: ModuleType, tmp_path: Path
) -> None:
    answers: list[Mapping[str, object]] = [
        {"keep": True},
        {"keep": False},
        {"keep": True},
    ]
    result, asked = answered(
        lambda: module.Pick(run_id="fan"), (["a", "bb", "ccc"],), answers
    )
    assert result == [1, 3]
    assert [payload for _, payload, _ in asked] == [1, 2, 3]
    assert (
        len({key for _, _, key in asked}) == 3
    ), "each element asks at a key of its own"
    assert sorted(runs(tmp_path / "runs.log")) == ["score a", "score bb", "score ccc"]


def test_an_answer_of_a_dataclass_is_journaled_and_rebuilt(module: ModuleType) -> None:
    with pytest.raises(kiln.Suspended):
        module.Judged(run_id="j")("x")
    verdict = module.Verdict(ok=True, note="fine")
    assert module.Judged(run_id="j").resume(verdict=verdict) == "fine"


def test_an_answer_of_a_literal_or_a_union_is_checked(module: ModuleType) -> None:
    with pytest.raises(kiln.Suspended) as asked:
        module.Toned(run_id="t")("x")
    assert asked.value.question == "tone"
    with pytest.raises(kiln.DurableRunError, match="must be a Literal"):
        module.Toned(run_id="t").resume(tone="loud")
    with pytest.raises(kiln.Suspended) as asked:
        module.Toned(run_id="t").resume(tone="formal")
    assert asked.value.question == "times"
    assert module.Toned(run_id="t").resume(times=None) == "formal None"


def test_wrong_answers_are_refused_before_anything_is_recorded(
    module: ModuleType,
) -> None:
    with pytest.raises(kiln.Suspended):
        module.Publish(run_id="w")("doc")
    with pytest.raises(kiln.DurableRunError, match="must be a bool; got 'yes'"):
        module.Publish(run_id="w").resume(review="yes")
    with pytest.raises(kiln.DurableRunError, match="one question at a time"):
        kiln.run_sync(
            kiln.resume(
                module.Publish(run_id="w"),
                module.publish.aforward,
                review=True,
                other=1,
            )
        )
    with pytest.raises(kiln.DurableRunError, match="no durable run 'nothing'"):
        module.Publish(run_id="nothing").resume(review=True)
    assert module.Publish(run_id="w").resume(review=False) == "rejected"


def test_a_question_needs_a_durable_run(module: ModuleType) -> None:
    with pytest.raises(kiln.DurableRunError, match="needs one"):
        module.publish("doc")
    with pytest.raises(kiln.DurableRunError, match="needs one"):
        module.Publish(record=True)("doc")


def test_the_source_run_says_a_question_needs_a_compiled_durable_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_TEST_RUNS", str(tmp_path / "runs.log"))
    _, source = compiled_and_source(dedent(SOURCE), tmp_path / "flows")
    with pytest.raises(kiln.DurableRunError, match="compile the flow"):
        kiln.run_sync(source.publish("doc"))


def test_an_answer_from_another_interpreter_resumes_the_run(
    module: ModuleType, tmp_path: Path
) -> None:
    with pytest.raises(kiln.Suspended):
        module.Publish(run_id="later")("doc")
    script = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('flows_out', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(module.Publish(run_id='later').resume(review=True))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "flows" / "out.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "posted doc!\n"
    assert runs(tmp_path / "runs.log") == ["write doc", "post doc!"]


def test_mypy_rejects_an_answer_of_the_wrong_type(
    module: ModuleType, tmp_path: Path
) -> None:
    directory = tmp_path / "flows"
    (directory / "use.py").write_text(
        "from out import Publish\n\n"
        "Publish(run_id='r').resume(review=True)\n"
        "Publish(run_id='r').resume(review='yes')\n"
        "Publish(run_id='r').resume(reviwe=True)\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "use.py"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["4", "5"], checked.stdout
    assert (
        'Argument "review" to "resume" of "Publish" has incompatible type' in errors[0]
    )
    assert 'Unexpected keyword argument "reviwe"' in errors[1]


UNSTORABLE = """
import datetime
from dataclasses import dataclass
from kiln import flow, node


@dataclass(frozen=True)
class Stamp:
    at: complex


@node
async def now() -> complex:
    return complex(datetime.datetime.now().year, 1)


@node
async def stamp() -> Stamp:
    return Stamp(complex(1, 2))


@node
async def fine() -> list[tuple[int, str]]:
    return [(1, "a")]


@flow
async def clock() -> str:
    return str(await now())


@flow
async def stamped() -> str:
    return str(await stamp())


@flow
async def plain() -> int:
    return len(await fine())
"""


def test_a_durable_run_refuses_a_result_type_it_cannot_journal_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_LEDGER", str(tmp_path / "ledger.db"))
    compiled, _ = compiled_and_source(dedent(UNSTORABLE), tmp_path / "flows")
    with pytest.raises(
        kiln.DurableRunError,
        match=r"node 'now', called at .*returns complex, .*cannot be a complex",
    ):
        compiled.Clock(run_id="c")
    with pytest.raises(
        kiln.DurableRunError, match=r"node 'stamp'.*returns Stamp.*cannot be a complex"
    ):
        compiled.Stamped(run_id="s")
    assert compiled.Plain(run_id="p")() == 1
    assert compiled.clock().startswith("(20"), "without a run id it runs"
