"""Diagnostics are values: every pass returns them, only the CLI prints them.

Rendered in mypy's shape so editors and CI annotators already understand it::

    flows/digest.py:12:5: error: call to async node 'summarize' is not awaited  [KLN301]
        summaries = [summarize(p) for p in paragraphs]
                     ^~~~~~~~~~~~
    flows/digest.py:12:5: note: write 'await summarize(...)'
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, final

from kilnc.source import SourceFile, Span
from kilnc.terminal import json_text, printable

EXCERPT_KEPT: Final = "\t\x0b\x0c"


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


class Code(enum.Enum):
    """Stable diagnostic codes; docs/errors.md lists each with an example and the fix."""

    SYNTAX = "KLN001"
    TOO_COMPLEX = "KLN002"
    UNREADABLE = "KLN003"
    UNKNOWN_OPTION = "KLN101"
    NOT_LITERAL = "KLN102"
    OPTION_TYPE = "KLN103"
    OPTION_RANGE = "KLN104"
    # KLN105 (an option read but not run yet) is retired: every option runs.
    DECORATOR_SHAPE = "KLN106"
    UNKNOWN_FALLBACK = "KLN107"
    UNDECLARED_LIMIT = "KLN108"
    UNSTORABLE_RESULT = "KLN109"
    CACHED_CHANGE = "KLN110"
    RETRIED_CHANGE = "KLN111"
    CACHED_STATE_CHANGE = "KLN112"
    NOT_MODULE_LEVEL = "KLN201"
    DUPLICATE_NODE = "KLN202"
    RESERVED_NAME = "KLN203"
    NOT_A_FUNCTION = "KLN204"
    NODE_AND_FLOW = "KLN205"
    NODE_FORM = "KLN206"
    UNAWAITED = "KLN301"
    AWAITED_SYNC = "KLN302"
    ASYNC_IN_SYNC_FLOW = "KLN303"
    UNDEFINED_NAME = "KLN304"
    UNSUPPORTED = "KLN305"
    UNORDERED_CALL = "KLN306"
    STREAMING_FLOW = "KLN308"
    FAN_OUT_SHAPE = "KLN309"
    UNKNOWN_TYPE = "KLN310"
    EFFECT_ORDER = "KLN311"
    ASYNCIO_IDIOM = "KLN312"
    UNCOMPILED_FLOW = "KLN313"
    QUESTION_SHAPE = "KLN314"
    NONDETERMINISTIC = "KLN315"
    FLOW_AS_VALUE = "KLN316"
    NODE_AS_VALUE = "KLN317"
    CLOSED_STREAM = "KLN318"
    FLOW_CYCLE = "KLN401"
    UNRESOLVED_IMPORT = "KLN402"
    FLOW_AT_IMPORT = "KLN403"
    SOURCE_COPY = "KLN404"
    UNREAD_IMPORT = "KLN405"
    TYPE_ERROR = "KLN501"
    STALE_OUTPUT = "KLN502"
    UNKNOWN_CONFIG_KEY = "KLN601"
    CONFIG_VALUE = "KLN602"
    BAD_PYPROJECT = "KLN603"
    OUTPUT_IS_SOURCE = "KLN701"
    OUTPUT_NOT_OURS = "KLN702"
    OUTPUT_UNWRITABLE = "KLN703"
    OUTPUT_NOT_PACKAGE = "KLN704"
    INTERNAL = "KLN999"


@final
@dataclass(frozen=True, slots=True)
class Diagnostic:
    span: Span
    severity: Severity
    code: Code
    message: str
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def error(span: Span, code: Code, message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(span, Severity.ERROR, code, message, hint)


def warning(
    span: Span, code: Code, message: str, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(span, Severity.WARNING, code, message, hint)


def render(diagnostic: Diagnostic, source: SourceFile | None) -> str:
    """`path:line:col: error: message  [KLNnnn]`, the excerpt with a caret, then the hint."""
    span = diagnostic.span
    where = f"{printable(span.path)}:{span.line}:{span.column}"
    message = printable(diagnostic.message)
    text = f"{where}: {diagnostic.severity.value}: {message}  [{diagnostic.code.value}]"
    excerpt = _excerpt(span, source) if source is not None else []
    hint = [f"{where}: note: {printable(diagnostic.hint)}"] if diagnostic.hint else []
    return "\n".join([text, *excerpt, *hint])


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    span = diagnostic.span
    return (span.path, span.line, span.column, diagnostic.code.value)


def render_all(
    diagnostics: Iterable[Diagnostic], sources: dict[str, SourceFile]
) -> str:
    ordered = sorted(set(diagnostics), key=sort_key)
    return "\n".join(render(d, sources.get(d.span.path)) for d in ordered)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    """One JSON list for editors and CI: each diagnostic's place, severity, code and text.

    Lines and columns are 1-based, as in the text form; the end is exclusive.
    """
    records = [
        {
            "path": d.span.path,
            "line": d.span.line,
            "column": d.span.column,
            "end_line": d.span.end_line,
            "end_column": d.span.end_column,
            "severity": d.severity.value,
            "code": d.code.value,
            "message": d.message,
            "hint": d.hint,
        }
        for d in sorted(set(diagnostics), key=sort_key)
    ]
    return json_text(json.dumps(records, indent=2, ensure_ascii=False))


def _excerpt(span: Span, source: SourceFile) -> list[str]:
    raw = source.line(span.line)
    if not raw.strip():
        return []
    # Tabs are expanded so the caret lands under the character the column names;
    # control characters are shown as escapes, and the caret counts them so.
    prefix = _shown(raw[: span.column - 1])
    line = _shown(raw)
    width = 1
    if span.end_line == span.line and span.end_column > span.column:
        width = len(_shown(raw[span.column - 1 : span.end_column - 1]))
    width = max(1, min(width, len(line) - len(prefix)))
    indent = len(line) - len(line.lstrip())
    shown = line[indent:]
    caret = " " * (len(prefix) - indent) + "^" + "~" * (width - 1)
    return [f"    {shown}", f"    {caret}"]


def _shown(text: str) -> str:
    """A source line as the excerpt prints it: tabs expanded, other controls escaped.

    Form feeds and vertical tabs are whitespace Python allows in indentation, and
    stay so that the excerpt's indentation is the line's.
    """
    return printable(text, EXCERPT_KEPT).expandtabs()
