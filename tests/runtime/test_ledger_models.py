"""pydantic v2 models in the ledger: stored by their fields, rebuilt exactly, never validated twice.

kiln imports no pydantic: the codec knows a model class by `model_fields`
and `model_construct`. A model comes back of its class, with its fields,
its extra fields and the set of fields it was given (so that
``model_dump(exclude_unset=True)`` is unchanged), its nested models and the
standard values in it (datetimes, Decimals, UUIDs) of their types; its
validators do not run again (one that changes a value would change it twice).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kiln.ledger.codec import Undecodable, encode
from kiln.ledger.decoding import Allowed, decode
from kiln.ledger.types import checker, unstorable

HOME = __name__


class Citation(BaseModel):
    url: str
    seen: datetime.datetime
    id: uuid.UUID = Field(default_factory=uuid.uuid4)


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    text: str = Field(alias="Text")
    cost: decimal.Decimal = decimal.Decimal("0.00")
    citations: list[Citation] = []
    parent: Answer | None = None

    @field_validator("text")
    @classmethod
    def marked(cls, text: str) -> str:
        return text + "!"  # changes the value: it must run once


@dataclass(frozen=True)
class Envelope:
    answer: Answer
    tries: int


class Handle:
    """A class the ledger cannot store."""


class Holder(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    handle: Handle


CLASSES = (Answer, Citation, Envelope)


def back(value: object) -> Any:
    return decode(encode(value, HOME), Allowed(CLASSES, HOME))


def exactly(a: object, b: object) -> bool:
    """The same model: class, fields, extras, fields given, all the way down."""
    if isinstance(a, BaseModel):
        return (
            type(a) is type(b)
            and isinstance(b, BaseModel)
            and a.model_fields_set == b.model_fields_set
            and a.__pydantic_extra__ == b.__pydantic_extra__
            and all(
                exactly(getattr(a, name), getattr(b, name))
                for name in type(a).model_fields
            )
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(exactly, a, b))
    if isinstance(a, decimal.Decimal):
        return isinstance(b, decimal.Decimal) and str(a) == str(b)
    return type(a) is type(b) and a == b and repr(a) == repr(b)


citations = st.builds(
    Citation,
    url=st.text(max_size=5),
    seen=st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    id=st.uuids(),
)


@st.composite
def answers(draw: st.DrawFn, depth: int = 2) -> Answer:
    given: dict[str, Any] = {"Text": draw(st.text(max_size=8))}
    if draw(st.booleans()):
        given["cost"] = draw(
            st.decimals(allow_nan=False, allow_infinity=False, places=2)
        )
    if draw(st.booleans()):
        given["citations"] = draw(st.lists(citations, max_size=2))
    if depth and draw(st.booleans()):
        given["parent"] = draw(answers(depth - 1))
    if draw(st.booleans()):
        given["note"] = draw(st.integers() | st.text(max_size=3))  # an extra field
    return Answer(**given)


@settings(max_examples=200)
@given(answers())
def test_a_model_comes_back_exactly(answer: Answer) -> None:
    again = back(answer)
    assert exactly(again, answer)
    assert again.model_dump(exclude_unset=True) == answer.model_dump(exclude_unset=True)
    assert encode(again, HOME) == encode(answer, HOME)


@given(answers(), st.integers())
def test_models_inside_dataclasses_and_lists_come_back(
    answer: Answer, tries: int
) -> None:
    value = [Envelope(answer, tries), {"k": answer}]
    again = back(value)
    assert exactly(again[0].answer, answer)
    assert again[0].tries == tries
    assert exactly(again[1]["k"], answer)


def test_validators_run_once() -> None:
    answer = Answer(Text="hi")
    assert answer.text == "hi!"
    assert back(answer).text == "hi!"


def test_a_model_class_not_named_by_the_annotation_is_refused() -> None:
    text = encode(Answer(Text="x"), HOME)
    with pytest.raises(Undecodable, match="'Answer' is not one the node's return"):
        decode(text, Allowed((Citation,), HOME))


def test_what_a_model_holds_decides_whether_it_is_stored() -> None:
    assert unstorable(Answer) is None
    assert unstorable(list[Answer] | None) is None
    assert unstorable(Holder) == "Handle"
    assert checker(Answer)(Answer(Text="a"))
    assert not checker(Answer)(Citation(url="u", seen=datetime.datetime(2026, 1, 1)))
