"""A durable run of `kiln run --run-id ID` (and `kiln runs resume|answer ID`): what it needs.

Example: ``kiln run flows.py:publish doc=a.md --run-id r1``. The flow must
have a ledger file to journal in (`check_durable`); a streaming flow's
items are printed as they come, replayed ones first. The run records the file given to kiln (not
the temporary module a source is compiled to) before it claims its id
(`kiln.durable.started_by`), so that ``kiln runs resume r1`` starts
``/abs/flows.py:publish`` again, compiled again, however the run ended. A run
that stopped at a question is `Suspended`; `suspension` gives the question
as the run's record keeps it, its payload in the journal's text::

    Question(name="review", key="1.0", where="flows.py:9", expected="bool",
             payload='"DRAFT"')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from kiln import Flow, Suspended
from kiln.durable import questions_of, recorded_name
from kiln.durable.journal import Question, run_record
from kiln.errors import LedgerError
from kiln.ledger import Ledger
from kiln.ledger.types import describe
from kilnc.run.args import ArgumentError
from kilnc.terminal import safe_repr

__all__ = ["Durable", "check_asks", "check_durable", "recorded_name", "suspension"]


@final
@dataclass(frozen=True, slots=True)
class Durable:
    """A durable run: its id, its flow and ledger, what starts it again.

    `flow` is the flow class's name as the run records it (`recorded_name`);
    `target` (``"/abs/flows.py:publish"``: the file given to kiln, a source
    or a module it generated, and the flow's name there) is recorded as the
    run's once it ends; `ledger_option` goes into the `kiln runs` commands
    the output suggests (``" --ledger run.db"``, or "").
    """

    run: str
    flow: str
    ledger: Ledger
    target: str
    ledger_option: str = ""


def check_asks(flow: Flow, target: str) -> None:
    """Refuse, before anything runs, a flow that asks questions run without --run-id."""
    asked = sorted(questions_of(type(flow)))
    if asked:
        raise ArgumentError(
            f"{target} asks {', '.join(map(repr, asked))}, and a question suspends "
            "a durable run: run it with --run-id ID"
        )


def check_durable(flow: Flow) -> None:
    """Refuse, as bad `--run-id` use, a flow that cannot run durably."""
    name = type(flow).__name__
    if flow.ledger is False:
        raise ArgumentError(
            f"--run-id: flow {name} runs without a ledger (ledger=False), and a"
            " durable run journals its calls in the ledger file; drop --run-id"
        )


def suspension(durable: Durable | None, error: BaseException | None) -> Question | None:
    """The question a durable run stopped at, as its record keeps it; None if it did not."""
    if durable is None or not isinstance(error, Suspended):
        return None
    try:
        record = run_record(durable.ledger, durable.run)
    except LedgerError:
        record = None
    if record is not None and record.question is not None:
        return record.question
    return Question(
        error.question,
        error.key,
        error.where,
        describe(error.expected),
        safe_repr(error.payload),
    )
