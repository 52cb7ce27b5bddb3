"""Text on its way to a person's terminal: never raw control characters, never a crash.

Example input: a node named ``"evil\\x1b]0;owned\\x07"`` (a string literal in
the source, or a row of a crafted ledger) and a flow result whose `__repr__`
raises. ``printable(name)`` is ``'evil\\\\x1b]0;owned\\\\x07'``, so the terminal shows
the escape instead of obeying it; ``safe_repr(result)`` is
``"<Odd object: repr() failed: RuntimeError: no>"`` instead of a traceback.

What is escaped: every control character (Unicode category Cc: C0, DEL and
C1, which includes the 8-bit CSI) and the bidirectional overrides and
isolates that make text read in another order than it runs ("Trojan
Source"). Line ends and tabs are kept where a message has several lines.
"""

from __future__ import annotations

import builtins
import reprlib
import unicodedata
from typing import Final

__all__ = ["LINES", "json_text", "printable", "safe_repr", "safe_str"]

_BIDI: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
LINES: Final = "\n\t"  # kept in a message of several lines


def _escaped(character: str) -> str:
    return repr(character)[1:-1] if character.isascii() else f"\\u{ord(character):04x}"


def _unsafe(character: str, keep: str) -> bool:
    if character in keep:
        return False
    return character in _BIDI or unicodedata.category(character) == "Cc"


def printable(text: str, keep: str = "") -> str:
    """`text` with control characters written as escapes, except those in `keep` (`LINES`)."""
    if text.isprintable() and not any(c in _BIDI for c in text):
        return text
    return "".join(_escaped(c) if _unsafe(c, keep) else c for c in text)


def json_text(text: str) -> str:
    """JSON from `json.dumps(..., ensure_ascii=False)` with DEL, C1 and bidi controls escaped.

    json escapes C0 itself; the others can only stand inside JSON strings, where
    a ``\\uXXXX`` escape means the same character.
    """
    return "".join(
        f"\\u{ord(c):04x}" if c in _BIDI or (0x7F <= ord(c) <= 0x9F) else c
        for c in text
    )


def _type_name(value: object) -> str:
    try:
        return str(type(value).__qualname__)
    except Exception:  # a metaclass's __qualname__ that raises
        return "object"


def _failed(value: object, what: str, error: BaseException) -> str:
    return f"<{_type_name(value)} object: {what} failed: {type(error).__name__}>"


def safe_str(value: object) -> str:
    """`str(value)`, or a stand-in naming its type when that raises (an exception's message)."""
    try:
        return builtins.str(value)
    except ValueError as error:  # an int beyond sys.get_int_max_str_digits()
        if isinstance(value, int):
            return hex(value)
        return _failed(value, "str()", error)
    except Exception as error:
        return _failed(value, "str()", error)


class _Fallback(reprlib.Repr):
    """reprlib without its abbreviations, but with its depth limit, for what repr() refuses.

    Used only when the builtin `repr` raised: a structure nested deeper than
    Python's recursion limit, an int longer than Python prints in decimal
    (written in hexadecimal, the same value), an object whose `__repr__` raises.
    """

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 24
        self.maxstring = self.maxlong = self.maxother = 1 << 20
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = 1 << 20
        self.maxset = self.maxfrozenset = self.maxdeque = 1 << 20

    def repr_int(self, x: object, level: int) -> str:
        try:
            return builtins.repr(x)
        except ValueError:
            return hex(x) if isinstance(x, int) else _failed(x, "repr()", ValueError())

    def repr_instance(self, x: object, level: int) -> str:
        try:
            text = builtins.repr(x)
        except Exception as error:
            return _failed(x, "repr()", error)
        return text if isinstance(text, str) else _failed(x, "repr()", TypeError())


_FALLBACK: Final = _Fallback()


def safe_repr(value: object) -> str:
    """`repr(value)`; when that raises, as close to it as can be made without raising."""
    try:
        text = builtins.repr(value)
    except Exception:
        pass
    else:
        return text
    try:
        return _FALLBACK.repr(value)
    except Exception as error:
        return _failed(value, "repr()", error)
