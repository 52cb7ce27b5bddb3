"""`name=value` words of `kiln run`, converted by the flow's annotations and bound to it.

Example input: the words ``["path=notes.md", "top=3", "tags=[\\"a\\", \\"b\\"]"]``
for ``async def digest(path: Path, top: int = 5, tags: list[str] | None = None)``.
``bind_arguments(signature, hints, parse_assignments(words, signature))`` gives
the call's arguments ``((), {"path": Path("notes.md"), "top": 3, "tags": ["a", "b"]})``.
A word that does not fit is an `ArgumentError` naming its mistake and what
the flow takes: ``notes.md`` alone has no '=' (``path=notes.md``, say), ``topp=3``
is unknown (did you mean 'top'?), ``top=3 top=4`` gives it twice, no ``path`` at
all leaves a required argument missing.

How each value is read, by its parameter's annotation, is values.py's.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import shlex
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kilnc.run.mismatch import Mismatch, Unreadable, type_name
from kilnc.run.values import read_value

__all__ = [
    "ArgumentError",
    "bind_arguments",
    "convert",
    "parse_assignments",
    "type_hints",
]


class ArgumentError(Exception):
    """A `name=value` word that does not fit the flow; the message says how."""


def parse_assignments(
    words: Sequence[str], signature: inspect.Signature
) -> dict[str, str]:
    """``name=value`` words as a mapping; the value is everything after the first ``=``.

    A name that is not one of the flow's is left for `bind_arguments` to name.
    """
    given: dict[str, str] = {}
    first: dict[str, str] = {}  # the word that gave each name
    for index, word in enumerate(words):
        name, equals, value = word.partition("=")
        name = name.strip()
        if not equals:
            raise ArgumentError(_no_equals(word, words[:index], signature))
        if not name:
            raise ArgumentError(
                f"argument {word!r} has no name before '=' ({_takes(signature)})"
            )
        if name in given:
            raise ArgumentError(
                f"argument {name!r} is given twice ({first[name]!r}, then {word!r});"
                " give it once"
            )
        given[name], first[name] = value, word
    return given


def _no_equals(word: str, before: Sequence[str], signature: inspect.Signature) -> str:
    """What a word without '=' most likely is, said with what the flow takes.

    A parameter's name without its value, the rest of a value the shell split
    at a space, or a value without its name.
    """
    parameters = _named(signature)
    previous = before[-1] if before else ""
    if word.strip() in {p.name for p in parameters}:
        hint = f"; give its value as {word.strip()}=VALUE"
    elif "=" in previous and not any(c.isspace() for c in word):
        joined = shlex.quote(f"{previous} {word}")
        hint = f"; if it is the rest of the value before it, quote both: {joined}"
    else:
        named = {w.partition("=")[0].strip() for w in before}
        free = [p for p in parameters if p.name not in named]
        free.sort(key=lambda p: p.default is not p.empty)  # a required one first
        hint = f", such as {shlex.quote(f'{free[0].name}={word}')}" if free else ""
    return (
        f"argument {word!r} has no '=': arguments are name=value{hint}"
        f" ({_takes(signature)})"
    )


def _named(signature: inspect.Signature) -> list[inspect.Parameter]:
    """The parameters an argument can name: all but ``*args`` and ``**kwargs``."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p for p in signature.parameters.values() if p.kind not in variadic]


def _takes(signature: inspect.Signature) -> str:
    names = [p.name for p in _named(signature)]
    starred = ""
    for p in signature.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            names.append(f"any other name (**{p.name})")
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            starred = f"its *{p.name} cannot be given as name=value"
    takes = f"the flow takes: {', '.join(names)}" if names else ""
    if not (takes or starred):
        return "the flow takes no arguments"
    return "; ".join(part for part in (takes, starred) if part)


def type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The evaluated annotations of `function`; an `Unreadable` for each that does not evaluate.

    `typing.get_type_hints` gives up on the whole function when one name is
    only imported under TYPE_CHECKING; then each annotation is evaluated alone,
    in the function's module, so the others still read their arguments.
    """
    try:
        return typing.get_type_hints(function)
    except Exception:
        pass
    namespace = getattr(function, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in inspect.get_annotations(function).items():
        alone = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            hints[name] = typing.get_type_hints(alone, namespace)[name]
        except Exception as exc:
            hints[name] = Unreadable(
                _unquoted(annotation), f"{type(exc).__name__}: {exc}"
            )
    return hints


def _unquoted(annotation: Any) -> str:
    """An annotation as written: ``"Decimal"`` under ``from __future__ import
    annotations`` is the string ``'"Decimal"'``, which shows as ``Decimal``."""
    text = type_name(annotation)
    while True:
        try:
            inner = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if not isinstance(inner, str):
            return text
        text = inner


def bind_arguments(
    signature: inspect.Signature, hints: Mapping[str, Any], given: Mapping[str, str]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments of the call that `given` asks for."""
    kinds = inspect.Parameter
    named = _named(signature)
    extra = next(
        (p for p in signature.parameters.values() if p.kind is kinds.VAR_KEYWORD), None
    )
    unknown = [name for name in given if name not in {p.name for p in named}]
    if unknown and extra is None:
        raise ArgumentError(_unknown(unknown[0], signature))
    missing = [p for p in named if p.default is p.empty and p.name not in given]
    if missing:
        listed = ", ".join(
            f"{p.name} ({type_name(hints.get(p.name, p.empty))})" for p in missing
        )
        how = f"{missing[0].name}=VALUE" if len(missing) == 1 else "name=value"
        raise ArgumentError(
            f"missing required argument{'s' * (len(missing) > 1)}: {listed};"
            f" give {'it' if len(missing) == 1 else 'each'} as {how}"
        )
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    skipped: str | None = None
    for parameter in named:
        if parameter.name not in given:
            skipped = skipped or parameter.name
            continue
        value = convert(
            parameter.name,
            hints.get(parameter.name, parameter.empty),
            given[parameter.name],
        )
        if parameter.kind is kinds.POSITIONAL_ONLY:
            if skipped is not None:
                raise ArgumentError(
                    f"{parameter.name!r} is positional-only: give {skipped!r} too"
                )
            args.append(value)
        else:
            kwargs[parameter.name] = value
    for name in unknown:
        assert extra is not None
        kwargs[name] = convert(name, hints.get(extra.name, extra.empty), given[name])
    return tuple(args), kwargs


def _unknown(name: str, signature: inspect.Signature) -> str:
    names = [p.name for p in _named(signature)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown argument {name!r} ({_takes(signature)}){hint}"


def convert(name: str, annotation: Any, text: str, what: str = "argument") -> Any:
    """`text` read as `annotation` asks; ArgumentError naming the parameter when it cannot be.

    `what` is what the message calls the value (an "answer" to a question, say).
    An annotation kiln cannot evaluate (`Unreadable`, or a string) reads no
    value: guessed without its type, `123` for `"Optional[str]"` is an int.
    """
    if isinstance(annotation, Unreadable | str):
        why = f" ({annotation.reason})" if isinstance(annotation, Unreadable) else ""
        raise ArgumentError(
            f"{what} {name!r} is annotated {type_name(annotation)!r}, which kiln"
            f" cannot evaluate{why}, so it cannot tell how to read {text!r}; make"
            " the names the annotation uses importable when its module runs (not"
            " only under TYPE_CHECKING)"
        )
    try:
        return read_value(annotation, text)
    except (ValueError, TypeError, OverflowError) as exc:  # a timedelta of 1e300 s
        reason = f": {exc}" if isinstance(exc, Mismatch) else ""
        raise ArgumentError(
            f"{what} {name!r} expects {type_name(annotation)}; got {text!r}{reason}"
        ) from None
