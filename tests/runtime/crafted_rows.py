"""Crafted ledger rows for the tests of decoding: random JSON texts full of tags, class
names that lead somewhere dangerous, and a way to see whether decoding ran anything."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from hypothesis import strategies as st

# What the audit hook saw while `audited` was on: every import, exec, open,
# subprocess, os.system... that decoding might have caused.
_AUDIT: list[list[str]] = []


def _hook(event: str, args: tuple[object, ...]) -> None:
    if _AUDIT:
        _AUDIT[-1].append(event)


sys.addaudithook(_hook)


@contextmanager
def audited() -> Iterator[list[str]]:
    """The audit events raised inside the block, in this thread and any other."""
    _AUDIT.append([])
    try:
        yield _AUDIT[-1]
    finally:
        _AUDIT.pop()


# Names a crafted row may give a class: allowed ones, others of the same name, and
# attribute paths to what runs code (the module names are those of the tests).
CLASS_NAMES = (
    "Point",
    "Pair",
    "Color",
    "Shape",
    "Trap",
    "crafted_rows:Trap",
    "test_ledger_codec:Point",
    "test_ledger_answers:Point",
    "geometry:Point",
    "subprocess:Popen",
    "subprocess.Popen",
    "os:system",
    "builtins:eval",
    "Point.__init__",
    "Point.__class__",
    "__builtins__",
    "_kiln.run.asyncio.subprocess.subprocess.Popen",
)
FIELD_NAMES = (
    "x",
    "y",
    "n",
    "left",
    "right",
    "__class__",
    "__reduce__",
    "__dict__",
    "z",
)

names = st.sampled_from(CLASS_NAMES)
field_names = st.sampled_from(FIELD_NAMES)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3) | field_names, inner, max_size=3)
    | st.builds(
        lambda tag, name, body: {tag: [name, body]},
        st.sampled_from(["$dataclass", "$namedtuple", "$enum"]),
        names | inner,
        st.dictionaries(field_names, inner, max_size=3) | inner,
    )
    | st.builds(
        lambda tag, body: {tag: body},
        st.sampled_from(["$tuple", "$set", "$frozenset", "$dict", "$bytes", "$float"])
        | st.text(max_size=4).map(lambda t: "$" + t),
        inner,
    ),
    max_leaves=12,
)

TRAPPED: list[object] = []


@dataclass
class Trap:
    """A module-level class no decoder may build: building it is noticed."""

    x: object = None

    def __post_init__(self) -> None:
        TRAPPED.append(self)


def only_of(value: object, classes: set[type]) -> bool:
    """Whether `value` holds nothing but plain values and instances of `classes`."""
    kind = type(value)
    if kind in (type(None), bool, int, float, str, bytes):
        return True
    if kind in (list, tuple, set, frozenset):
        return all(only_of(item, classes) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(
            only_of(k, classes) and only_of(v, classes)
            for k, v in value.items()  # type: ignore[attr-defined]
        )
    if isinstance(value, Enum):
        return kind in classes
    if kind in classes:
        fields = vars(value) if hasattr(value, "__dict__") else value._asdict()  # type: ignore[attr-defined]
        return all(only_of(v, classes) for v in fields.values())
    return False
