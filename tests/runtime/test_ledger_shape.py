"""`Shape.bind`, the arguments of a call by parameter name, agrees with `inspect`.

Cache keys and durable runs' digests are written from it, so a call must bind
to the same names and values by its fast path as by `Signature.bind`, and
fail where that fails.
"""

from __future__ import annotations

import inspect
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.durable import digest
from kiln.ledger.keys import Shape

_KINDS = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)
_NAMES = ("a", "b", "c", "d", "e")


class _Unequal:
    """An argument that cannot be compared, as a numpy array cannot be with `==`."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value is ambiguous")

    __hash__ = object.__hash__


@st.composite
def signatures(draw: st.DrawFn) -> inspect.Signature:
    """A signature of up to five parameters, in an order Python accepts."""
    count = draw(st.integers(0, len(_NAMES)))
    kinds = sorted(
        draw(st.lists(st.sampled_from(_KINDS), min_size=count, max_size=count))
    )
    parameters: list[inspect.Parameter] = []
    defaulted = False
    for name, kind in zip(_NAMES, kinds, strict=False):
        # A positional parameter after one with a default needs a default too.
        default = draw(st.booleans()) or (defaulted and kind is not _KINDS[2])
        defaulted = defaulted or (default and kind is not _KINDS[2])
        parameters.append(
            inspect.Parameter(
                name, kind, default=0 if default else inspect.Parameter.empty
            )
        )
    return inspect.Signature(parameters)


def _function(signature: inspect.Signature) -> Any:
    def fn(*args: Any, **kwargs: Any) -> None:
        """Takes whatever its signature says."""

    fn.__signature__ = signature  # type: ignore[attr-defined]
    return fn


def _bound(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return TypeError
    bound.apply_defaults()
    return dict(bound.arguments)


@settings(max_examples=300)
@given(signatures(), st.data())
def test_bind_agrees_with_inspect(
    signature: inspect.Signature, data: st.DataObject
) -> None:
    shape = Shape(_function(signature))
    args = tuple(data.draw(st.lists(st.integers(1, 9), max_size=6), label="args"))
    keywords = st.sampled_from((*signature.parameters, "z"))
    kwargs = data.draw(
        st.dictionaries(keywords, st.integers(1, 9), max_size=4), label="kwargs"
    )
    expected = _bound(signature, args, kwargs)
    try:
        got: Any = shape.bind(args, kwargs)
    except TypeError:
        got = TypeError
    assert got == expected


def test_bind_never_compares_arguments() -> None:
    def node(a: object, b: object = None) -> None:
        """Two parameters, the second with a default."""

    odd = _Unequal()
    assert Shape(node).bind((odd,), {"b": odd}) == {"a": odd, "b": odd}


@given(signatures(), st.data())
def test_digest_is_by_name(signature: inspect.Signature, data: st.DataObject) -> None:
    """One call's digest, whichever of its arguments are given by keyword."""
    shape = Shape(_function(signature))
    names = list(signature.parameters)
    values = {name: data.draw(st.integers(1, 9), label=name) for name in names}
    positional = [
        name for name, p in signature.parameters.items() if p.kind is not _KINDS[2]
    ]
    cut = data.draw(st.integers(0, len(positional)), label="by position")
    if any(signature.parameters[n].kind is _KINDS[0] for n in positional[cut:]):
        cut = len(positional)  # a positional-only parameter cannot be a keyword
    args = tuple(values[name] for name in positional[:cut])
    kwargs = {name: values[name] for name in names if name not in positional[:cut]}
    everything = tuple(values[name] for name in positional)
    rest = {name: values[name] for name in names if name not in positional}
    assert digest(shape, "m", args, kwargs) == digest(shape, "m", everything, rest)
    # Empty says "no digest": only a call without arguments has nothing to check.
    assert (digest(shape, "m", args, kwargs) == "") == (not names)
