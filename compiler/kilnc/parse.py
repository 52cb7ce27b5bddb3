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
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, final

import libcst as cst
from libcst.metadata import (
    CodeRange,
    MetadataWrapper,
    PositionProvider,
    QualifiedName,
    QualifiedNameProvider,
    ScopeProvider,
)

from kilnc.depth import largest_statement, python_limits
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.names import identifier
from kilnc.source import SourceFile, Span

MEMORY_TYPES: Final = frozenset({"kiln.Memory", "kiln.memory.Memory"})
ASK_NAMES: Final = frozenset({"kiln.ask", "kiln.decorators.ask"})


@final
@dataclass(frozen=True, slots=True)
class StarName:
    """A name `from module import *` binds: where it comes from, what it is there."""

    module: str  # the module the star import names, absolute
    qualified: str  # `kiln.node` when that module imported `node` from kiln


@final
@dataclass(frozen=True, slots=True)
class ParsedModule:
    source: SourceFile
    module: cst.Module = field(repr=False)
    positions: Mapping[cst.CSTNode, CodeRange] = field(repr=False)
    qualified: Mapping[cst.CSTNode, Collection[QualifiedName]] = field(repr=False)
    global_names: frozenset[str]  # every name bound at module level
    # `from x import *` at module level that kiln could not resolve (see `stars`):
    # any name may be defined.
    star_import: bool
    # The names resolved star imports bind (`resolve_star_imports`), and which
    # names each of those imports binds.
    stars: Mapping[str, StarName] = field(default_factory=dict, repr=False)
    star_imports: Mapping[cst.ImportFrom, frozenset[str]] = field(
        default_factory=dict, repr=False
    )

    def span(self, node: cst.CSTNode) -> Span:
        found = self.positions.get(node)
        if found is None:  # a node the compiler made itself: no position of its own
            return Span.at(self.source.path, 1)
        start, end = found.start, found.end
        column = self.source.column
        return Span(
            self.source.path,
            start.line,
            column(start.line, start.column) + 1,
            end.line,
            column(end.line, end.column) + 1,
        )

    def is_memory(self, annotation: cst.Annotation | None) -> bool:
        """Whether an annotation names `kiln.Memory`, however it was imported."""
        if annotation is None:
            return False
        return bool(self.qualified_names(annotation.annotation) & MEMORY_TYPES)

    def is_ask(self, func: cst.BaseExpression) -> bool:
        """Whether a call's function is `kiln.ask`, however it was imported."""
        return bool(self.qualified_names(func) & ASK_NAMES)

    def qualified_names(self, node: cst.CSTNode) -> frozenset[str]:
        found: object = self.qualified.get(node, ())
        if callable(found):  # newer libcst computes qualified names lazily
            found = found()
        assert isinstance(found, Collection)
        names = frozenset(q.name for q in found if isinstance(q, QualifiedName))
        if not names and isinstance(node, cst.Name):
            # libcst sees no assignment of a name a star import binds.
            star = self.stars.get(identifier(node.value))
            if star is not None:
                return frozenset({star.qualified})
        return names


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
        qualified = wrapper.resolve(QualifiedNameProvider)
        scope = wrapper.resolve(ScopeProvider).get(module)
    except cst.ParserSyntaxError as exc:
        return error(
            Span.at(source.path, exc.raw_line, exc.raw_column + 1),
            Code.SYNTAX,
            f"invalid syntax: {exc.message}",
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
    return ParsedModule(source, module, positions, qualified, names, star)


def _python_rejects(source: SourceFile, text: str) -> Diagnostic | None:
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
            f"invalid syntax: {message}",
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
