"""parse_source: bytes on disk to a libcst module with positions and qualified names.

Example input: `examples/digest.py` as bytes (a byte-order mark, CRLF line ends
and tabs are all fine). Output: a `ParsedModule` whose `span()` turns any node
into a `Span`, and whose `qualified_names()` says that `@step` is `kiln.node`
after `from kiln import node as step`. Python's own parser runs first, so a
source it rejects (a syntax error, nesting too deep for the interpreter) is a
located diagnostic rather than a crash in a later pass.
"""

from __future__ import annotations

import functools
import warnings

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from kilnc.depth import largest_statement, python_limits
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.front import ParsedModule
from kilnc.scopes import QualifiedNames, resolve_scopes
from kilnc.source import SourceFile, Span


# A command parses a file more than once: to plan the output tree, to compile
# it, and as a module each other module it compiles imports from. The result
# is immutable, and keyed by the whole source, its text included.
@functools.lru_cache(maxsize=16)
def parse_source(source: SourceFile) -> ParsedModule | Diagnostic:
    text = source.text
    problem = _python_rejects(source, text)
    if problem is not None:
        return problem
    try:
        module = cst.parse_module(text)
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        positions = wrapper.resolve(PositionProvider)
        scopes = resolve_scopes(wrapper)
        scope = scopes.get(module)
    except cst.ParserSyntaxError as exc:
        return error(
            Span.at(source.path, exc.raw_line, exc.raw_column + 1),
            Code.SYNTAX,
            _invalid(exc.message),
        )
    except RecursionError:  # Python compiled it: the limit is kiln's own
        return error(
            Span.at(source.path, largest_statement(source.text)),
            Code.TOO_COMPLEX,
            "this statement is nested too deeply for kiln to read, though Python "
            "compiles it",
            "split the deepest expression into smaller statements",
        )
    names = (
        frozenset(a.name for a in scope.assignments)
        if scope is not None
        else frozenset()
    )
    star = any(
        isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar)
        for line in module.body
        if isinstance(line, cst.SimpleStatementLine)
        for small in line.body
    )
    return ParsedModule(source, module, positions, QualifiedNames(scopes), names, star)


def _invalid(message: str) -> str:
    """`invalid syntax: expected ':'`; Python's own `invalid syntax` (`. Perhaps
    you forgot a comma?`) once."""
    return (
        message
        if message.startswith("invalid syntax")
        else f"invalid syntax: {message}"
    )


def _python_rejects(source: SourceFile, text: str) -> Diagnostic | None:
    undecodable = source.undecodable
    if undecodable is not None:
        return error(
            Span.at(source.path, undecodable.line, undecodable.column),
            Code.SYNTAX,
            _invalid(undecodable.message),
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # SyntaxWarnings belong to the user's linter
            # Compiled, never run: Python's compiler rejects what its parser
            # accepts (`return` outside a function, 21 nested blocks).
            with python_limits():
                compile(text, source.path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = exc.lineno or 1
        column = exc.offset or 1
        message = exc.msg
        if "nested" in message or "too complex" in message:
            return error(Span.at(source.path, line, column), Code.TOO_COMPLEX, message)
        return error(
            Span.at(source.path, line, column),
            Code.SYNTAX,
            _invalid(message),
        )
    except (RecursionError, MemoryError):
        return _too_complex(source)
    return None


def _too_complex(source: SourceFile) -> Diagnostic:
    return error(
        Span.at(source.path, largest_statement(source.text)),
        Code.TOO_COMPLEX,
        "this statement is nested too deeply for Python to compile "
        "(CPython itself refuses it)",
        "split the deepest expression into smaller statements",
    )
