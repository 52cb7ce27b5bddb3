"""The values LLM and API code passes around, end to end (issue 17): pydantic, dates, money.

Tried as a new user would, through the installed `kiln` command: a pipeline
whose nodes return pydantic models holding datetimes, UUIDs and Decimals,
with `cache=True`, run twice (the second run served from the ledger, the
models equal and of their classes), run durably and resumed, its arguments
read from the command line and its result printed as JSON; and a node whose
return type the ledger cannot store, refused before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import kiln, write

PIPELINE = """\
import datetime
import decimal
import os
import uuid

from pydantic import BaseModel

from kiln import flow, node


class Usage(BaseModel):
    tokens: int
    cost: decimal.Decimal


class Reply(BaseModel):
    prompt: str
    text: str
    at: datetime.datetime
    id: uuid.UUID
    usage: Usage


def count(what: str) -> None:
    with open(os.environ["COUNTS"], "a", encoding="utf-8") as file:
        file.write(what + "\\n")


@node(cache=True)
async def complete(prompt: str, at: datetime.datetime) -> Reply:
    count(prompt)
    if os.environ.get("FAIL") == prompt:
        raise ConnectionError(prompt)
    return Reply(
        prompt=prompt,
        text=prompt.upper(),
        at=at,
        id=uuid.uuid4(),  # another on every call: a rerun must not call again
        usage=Usage(tokens=len(prompt), cost=decimal.Decimal("0.0010") * len(prompt)),
    )


@node
def total(replies: list[Reply]) -> decimal.Decimal:
    return sum((reply.usage.cost for reply in replies), decimal.Decimal(0))


@flow
async def answer(prompts: list[str], at: datetime.datetime) -> tuple[list[Reply], decimal.Decimal]:
    replies = [await complete(p, at) for p in prompts]
    return replies, total(replies)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "llm.py", PIPELINE)
    return tmp_path


def run(project: Path, *words: str, **env: str) -> dict[str, object]:
    result = kiln(
        "run",
        "--json",
        "llm.py:answer",
        'prompts=["hi", "there"]',
        "at=2026-12-05T10:30:00+01:00",
        *words,
        cwd=project,
        COUNTS=str(project / "counts"),
        KILN_LEDGER=str(project / "ledger.db"),
        **env,
    )
    document: dict[str, object] = json.loads(result.stdout)
    return document


def counted(project: Path) -> list[str]:
    path = project / "counts"
    return path.read_text().split() if path.exists() else []


def test_a_pydantic_pipeline_runs_twice_and_the_second_run_is_served_from_the_ledger(
    project: Path,
) -> None:
    first = run(project)
    assert first["ok"], first
    replies, spent = first["result"]  # type: ignore[misc]
    assert spent == "0.0070"
    assert replies[0]["at"] == "2026-12-05T10:30:00+01:00"
    assert sorted(counted(project)) == ["hi", "there"]
    again = run(project)
    assert again["result"] == first["result"], "the same models: ids, times, money"
    assert sorted(counted(project)) == ["hi", "there"]
    assert [node["cache_hits"] for node in again["nodes"]] == [2, 0]  # type: ignore[index,union-attr]


def test_a_durable_run_journals_pydantic_models_and_resumes(project: Path) -> None:
    failed = run(project, "--run-id", "r1", FAIL="there")
    assert not failed["ok"]
    assert sorted(counted(project)) == ["hi", "there"]
    resumed = run(project, "--run-id", "r1")
    assert resumed["ok"], resumed
    assert sorted(counted(project)) == ["hi", "there", "there"], "hi replayed"
    shown = kiln(
        "runs",
        "show",
        "r1",
        "--format",
        "json",
        cwd=project,
        KILN_LEDGER=str(project / "ledger.db"),
    )
    journal = json.loads(shown.stdout)["journal"]
    assert any('"$model"' in json.dumps(row) for row in journal), journal


UNSTORABLE = """\
from kiln import flow, node


class Handle:
    pass


@node(cache=True)
def open_handle(name: str) -> Handle:
    return Handle()


@flow
def handles(name: str) -> Handle:
    return open_handle(name)
"""


def test_a_cached_node_whose_result_cannot_be_stored_is_a_compile_error(
    tmp_path: Path,
) -> None:
    write(tmp_path / "bad.py", UNSTORABLE)
    result = kiln("compile", "bad.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.py:9:31: error: node 'open_handle' has cache=True" in result.stdout
    assert "cannot store a Handle" in result.stdout
    assert "[KLN109]" in result.stdout
    assert not (tmp_path / "build" / "bad.py").exists()
