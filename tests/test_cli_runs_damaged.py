"""A damaged or crafted run record in a ledger, seen through `kiln runs` (trial Q6b).

A ledger is data and may come from elsewhere: a `durable` row whose
question is not JSON, whose start time is text, whose payload is nested
thousands deep, or whose arguments are not those of their digest, is no
internal error. `kiln runs list` lists the other runs and names the damaged
one; `show`, `answer`, `resume` say that the record is damaged and how to
forget it, as a journal row whose checksum fails is said; `forget` forgets it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.test_cli_runs import REVIEW, document, kiln, one_error
from tests.test_cli_runs import write as write_file

DEEP = "[" * 5000 + "]" * 5000

# A column of run 'q1' set to a crafted value, and what the message says of it.
DAMAGE = [
    ("question", "not json", "its question is not JSON"),
    ("question", '{"name": "review"}', "its question is not an object of text"),
    ("question", json.dumps(DEEP), "its question is not an object of text"),
    ("question", "[" * 5000, "its question is nested too deeply"),
    ("started", "abc", "its started time is 'abc', not a time"),
    ("updated", 1e300, "its updated time is 1e+300, not a time"),
    ("state", "exploded", "its state is 'exploded', none of"),
    ("flow", b"Publish", "its flow is of type bytes, not text"),
    ("outcome", b"\x00", "its outcome column is of type bytes, not text"),
]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """Two runs waiting at a question, q1 and q2, in .kiln/ledger.db."""
    write_file(tmp_path / "build" / "review.py", REVIEW)
    for run in ("q1", "q2"):
        asked = kiln(
            "run",
            "build/review.py:publish",
            f"doc={run}",
            "--run-id",
            run,
            cwd=tmp_path,
        )
        assert asked.returncode == 3, asked
    return tmp_path / ".kiln" / "ledger.db"


def damage(ledger: Path, column: str, value: object) -> None:
    with sqlite3.connect(ledger) as connection:
        connection.execute(
            f"UPDATE durable SET {column} = ? WHERE run = 'q1'", (value,)
        )
    connection.close()


def assert_damaged(result: subprocess.CompletedProcess[str], what: str) -> None:
    line = one_error(result)
    assert line.startswith("kiln: error: the record of run 'q1' in "), line
    assert f" is damaged ({what}" in line
    assert "forget the run with `kiln runs forget q1`" in line
    assert result.returncode == 1, result


@pytest.mark.parametrize(("column", "value", "what"), DAMAGE)
def test_list_names_the_damaged_run_and_lists_the_others(
    ledger: Path, column: str, value: object, what: str
) -> None:
    damage(ledger, column, value)
    project = ledger.parent.parent
    listed = kiln("runs", "list", cwd=project)
    assert_damaged(listed, what)
    rows = listed.stdout.splitlines()
    assert [row.split()[0] for row in rows] == ["run", "q2"], listed.stdout
    as_json = kiln("runs", "list", "--format", "json", cwd=project)
    assert as_json.returncode == 1
    found = document(as_json)
    assert [r["run"] for r in found["runs"]] == ["q2"]
    assert [d["run"] for d in found["damaged"]] == ["q1"]


@pytest.mark.parametrize(("column", "value", "what"), DAMAGE)
@pytest.mark.parametrize(
    "command", [["show", "q1"], ["answer", "q1", "review=yes"], ["resume", "q1"]]
)
def test_show_answer_and_resume_say_the_record_is_damaged(
    ledger: Path, column: str, value: object, what: str, command: list[str]
) -> None:
    damage(ledger, column, value)
    assert_damaged(kiln("runs", *command, cwd=ledger.parent.parent), what)


def test_a_damaged_run_is_forgotten_as_its_message_says(ledger: Path) -> None:
    damage(ledger, "question", "not json")
    project = ledger.parent.parent
    forgot = kiln("runs", "forget", "q1", cwd=project)
    assert forgot.returncode == 0, forgot
    listed = kiln("runs", "list", cwd=project)
    assert listed.returncode == 0, listed
    assert [row.split()[0] for row in listed.stdout.splitlines()] == ["run", "q2"]


def test_a_deep_payload_is_shown_as_its_text(ledger: Path) -> None:
    """The payload is the flow's, as codec text: too deep to be JSON, it is shown as is."""
    question = {
        "name": "review",
        "key": "1.0",
        "where": "review.py:9",
        "expected": "bool",
        "payload": DEEP,
    }
    damage(ledger, "question", json.dumps(question))
    project = ledger.parent.parent
    shown = kiln("runs", "show", "q1", cwd=project)
    assert shown.returncode == 0, shown
    assert f"  payload: {DEEP}\n" in shown.stdout
    as_json = kiln("runs", "show", "q1", "--format", "json", cwd=project)
    assert as_json.returncode == 0, as_json
    assert document(as_json)["question"]["payload"] == DEEP


def test_arguments_that_are_not_those_of_their_digest(ledger: Path) -> None:
    """`kiln runs resume q1` never tells the user to run `kiln runs resume q1`."""
    damage(ledger, "arguments", '{"doc": "other"}')
    result = kiln("runs", "resume", "q1", cwd=ledger.parent.parent)
    assert_damaged(result, "its arguments are not those of its digest")
    assert "kiln runs resume q1" not in result.stderr
