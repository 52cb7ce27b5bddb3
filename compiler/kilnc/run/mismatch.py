"""What `kiln run` says of a value that does not fit its annotation.

Example input: the JSON ``{"k": "x"}`` for ``class Cfg(TypedDict): k: int``.
Output: ``Mismatch("the JSON is str, not int", ("k",))``, shown as ``k: the
JSON is str, not int``, where `type_name(Cfg)` is ``Cfg``. An annotation
kiln run could not evaluate at all is an `Unreadable`: its text, and why.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, final


class Mismatch(ValueError):
    """A JSON value of the wrong shape: its message is worth showing.

    `path` is where in the value it is, the fields and items above it
    (``jobs.0.k``), as pydantic names a place.
    """

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(f"{'.'.join(path)}: {message}" if path else message)
        self.message = message
        self.path = path

    def within(self, key: object) -> Mismatch:
        """The same mismatch, inside the field or item `key`."""
        return Mismatch(self.message, (str(key), *self.path))


@final
@dataclass(frozen=True, slots=True)
class Unreadable:
    """An annotation kiln run could not evaluate where it is written: its text, and why.

    An argument it annotates is refused (`args.convert`): read without its
    type, ``code=123`` for ``code: "Optional[str]"`` would be the int 123.
    """

    text: str
    reason: str


def type_name(annotation: Any) -> str:
    """An annotation as the user wrote it, short: ``list[Path]``, ``int | None``."""
    if annotation is inspect.Parameter.empty:
        return "any value"
    if isinstance(annotation, Unreadable):
        return annotation.text
    if isinstance(annotation, str):
        return annotation
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(map(type_name, args))
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join(map(type_name, args))}]"
    name = getattr(annotation, "__qualname__", None) or getattr(
        annotation, "__name__", None
    )
    return name if isinstance(name, str) else repr(annotation)
