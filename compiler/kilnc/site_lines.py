"""place_site_lines: write into each call site the lines of its flow's body that call it.

Example input: black's text of a module, in which `Digest.aforward` starts
at line 40 and binds its sites first::

    with self._kiln_bind(self._kiln_sites) as (load, summarize):
        text = load(root)                            # line 42
        return await summarize(                      # lines 43-45
            text, short=True
        )

With it, the class's sites as the emitter wrote them, each one line:
``_kiln.site(load, 'load', 'digest.py:18', 'digest.py:7', kind='sync')``.
Output: the text, with the class's ``_kiln_sites = ()`` replaced by its
table, ``(2,)`` after the four leading fields of the first site, and
``(3, 4, 5)`` in the second. A failure's handler finds the call it left by
its frame's line (`kiln.notes`).

Lines can only be known once black has placed the code, hence a pass after
`format_module`. They are counted from the body's ``def``, so they stay right
when the table above the body grows. Black never formats a table: it is
laid out here as black would (`black_stable`).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, final

from kilnc.black_stable import black_stable
from kilnc.source import Span

SITES: Final = "_kiln_sites"
BIND: Final = "_kiln_bind"


@final
@dataclass(frozen=True, slots=True)
class Splice:
    """Lines `start` to `start + removed - 1` (from 1) became `added` lines."""

    start: int
    removed: int
    added: int


def place_site_lines(
    text: str, origins: Sequence[Span | None], tables: Mapping[str, Sequence[str]]
) -> tuple[str, tuple[Span | None, ...]]:
    """`text` with each class's `tables` and their lines written in, and `origins`
    (its line map) for it."""
    lines = text.split("\n")
    splices: list[Splice] = []
    for table, calls in reversed(list(_tables(ast.parse(text), tables))):
        indent = " " * table.col_offset
        written = _formatted(calls, indent)
        lines[table.lineno - 1 : table.end_lineno] = written
        removed = (table.end_lineno or table.lineno) - table.lineno + 1
        splices.append(Splice(table.lineno, removed, len(written)))
    return "\n".join(lines), _spliced(origins, splices[::-1])


def _spliced(
    origins: Sequence[Span | None], splices: Sequence[Splice]
) -> tuple[Span | None, ...]:
    """The line map of the text before `place_site_lines`, for the text after it."""
    moved: list[Span | None] = []
    done = 0
    for splice in splices:
        moved += origins[done : splice.start - 1]
        moved += [origins[splice.start - 1]] * splice.added
        done = splice.start - 1 + splice.removed
    moved += origins[done:]
    return tuple(moved)


def _tables(
    module: ast.Module, tables: Mapping[str, Sequence[str]]
) -> Iterator[tuple[ast.Assign, list[ast.Call]]]:
    """Each flow class's `_kiln_sites = ()`, and its sites with their lines added."""
    for cls in module.body:
        if not isinstance(cls, ast.ClassDef) or cls.name not in tables:
            continue
        table = next((s for s in cls.body if _assigns(s, SITES)), None)
        bodies = [
            (method, bound)
            for method in cls.body
            if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef)
            for bound in [_bound_sites(method)]
            if bound
        ]
        if table is None or not bodies:
            continue
        assert isinstance(table, ast.Assign)
        [(method, bound)] = bodies
        sites = [ast.parse(written, mode="eval").body for written in tables[cls.name]]
        streams = {
            local
            for local, site in zip(bound, sites, strict=True)
            if isinstance(site, ast.Call) and _streams(site)
        }
        called = _lines_calling(method.body, set(bound), method.lineno)
        for holder, local in _stream_holders(method, set(bound), streams).items():
            held = _lines_calling(method.body, {holder}, method.lineno)[holder]
            called[local] |= held
        calls = []
        for site, local in zip(sites, bound, strict=True):
            assert isinstance(site, ast.Call), "a site is a `_kiln.site(...)`"
            found = tuple(sorted(called[local]))
            calls.append(_with(site, _literal(found)) if found else site)
        yield table, calls


def _streams(site: ast.Call) -> bool:
    """Whether the site's call makes a stream: a stream node's generator."""
    return any(
        keyword.arg == "kind"
        and isinstance(keyword.value, ast.Constant)
        and keyword.value.value in ("stream", "astream")
        for keyword in site.keywords
    )


def _stream_holders(
    method: ast.FunctionDef | ast.AsyncFunctionDef, sites: set[str], streams: set[str]
) -> dict[str, str]:
    """By name, the site whose stream it holds: ``_kiln_rows_value = rows(n)``, or
    a subflow's, ``_kiln_sub_value = sub.astream(n)``. A stream runs its node's
    code where it is read (`for v in _kiln_rows_value:`), not where it is made: a
    line reading it makes the call too."""
    found = {}
    for statement in ast.walk(method):
        match statement:
            case ast.Assign([ast.Name(holder)], ast.Call(ast.Name(local))) if (
                local in streams
            ):
                found[holder] = local
            case ast.Assign(
                [ast.Name(holder)], ast.Call(ast.Attribute(ast.Name(local), attr))
            ) if local in sites and attr in ("stream", "astream"):
                found[holder] = local
    return found


def _with(call: ast.Call, lines: ast.expr) -> ast.Call:
    """The site with its lines after its four leading fields (`kiln.site`)."""
    return ast.Call(call.func, [*call.args, lines], call.keywords)


def _assigns(statement: ast.stmt, name: str) -> bool:
    return (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and statement.targets[0].id == name
    )


def _bound_sites(method: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The locals the body binds to its sites, in the table's order; [] if none.

    They are bound by ``with self._kiln_bind(...) as (a, b):``, by
    ``with self._kiln_bind(...) as calls:`` and, first in its body, ``a, b =
    calls`` or its items a line at a time (``a, b = calls[:2]``, ``c =
    calls[2]``), or by ``a, b = self._kiln_bind(...).calls`` in a body with no
    room for a `with`.
    """
    for statement in method.body:
        match statement:
            case ast.With(items=[ast.withitem(bind, ast.Tuple(names))]) if _binds(bind):
                return [name.id for name in names if isinstance(name, ast.Name)]
            case ast.With(items=[ast.withitem(bind, ast.Name(calls))]) if _binds(bind):
                return _unpacked(statement.body, calls)
            case ast.Assign(
                targets=[ast.Tuple(names)], value=ast.Attribute(bind, "calls")
            ) if _binds(bind):
                return [name.id for name in names if isinstance(name, ast.Name)]
    return []


def _unpacked(body: Sequence[ast.stmt], calls: str) -> list[str]:
    """The names the leading assignments of `body` unpack from the tuple `calls`."""
    found: list[str] = []
    for statement in body:
        match statement:
            case ast.Assign([ast.Tuple(names)], ast.Name(whole)) if whole == calls:
                found += [name.id for name in names if isinstance(name, ast.Name)]
            case ast.Assign(
                [ast.Tuple(names)], ast.Subscript(ast.Name(whole), ast.Slice())
            ) if (whole == calls):
                found += [name.id for name in names if isinstance(name, ast.Name)]
            case ast.Assign(
                [ast.Name(name)], ast.Subscript(ast.Name(whole), ast.Constant())
            ) if (whole == calls):
                found.append(name)
            case _:
                break
    return found


def _binds(expression: ast.expr) -> bool:
    return (
        isinstance(expression, ast.Call)
        and isinstance(expression.func, ast.Attribute)
        and expression.func.attr == BIND
    )


def _lines_calling(
    statements: Sequence[ast.stmt], sites: set[str], base: int
) -> defaultdict[str, set[int]]:
    """By site local: the lines, from `base`, of the statements (or headers) reading it."""
    found: defaultdict[str, set[int]] = defaultdict(set)
    pending = list(statements)
    while pending:
        statement = pending.pop()
        parts, blocks = _parts(statement)
        for part in parts:
            read = {
                node.id
                for node in ast.walk(part)
                if isinstance(node, ast.Name)
                and isinstance(node.ctx, ast.Load)
                and node.id in sites
            }
            end = part.end_lineno or part.lineno
            for name in read:
                found[name].update(range(part.lineno - base, end - base + 1))
        for block in blocks:
            pending += block
    return found


def _parts(
    statement: ast.stmt,
) -> tuple[list[ast.expr | ast.stmt], list[list[ast.stmt]]]:
    """What of a statement runs as itself (its header), and the blocks it holds."""
    match statement:
        case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef():
            return [], [statement.body]
        case ast.If() | ast.While():
            return [statement.test], [statement.body, statement.orelse]
        case ast.For() | ast.AsyncFor():
            return [statement.iter], [statement.body, statement.orelse]
        case ast.With() | ast.AsyncWith():
            return [item.context_expr for item in statement.items], [statement.body]
        case ast.Try() | ast.TryStar():
            handlers = [handler.body for handler in statement.handlers]
            return [], [
                statement.body,
                *handlers,
                statement.orelse,
                statement.finalbody,
            ]
        case ast.Match():
            guards: list[ast.expr] = [c.guard for c in statement.cases if c.guard]
            return [statement.subject, *guards], [c.body for c in statement.cases]
    return [statement], []


def _literal(lines: tuple[int, ...]) -> ast.Tuple:
    return ast.Tuple([ast.Constant(line) for line in lines], ast.Load())


def _formatted(calls: list[ast.Call], indent: str) -> list[str]:
    """The table as black writes it at `indent`: one site a line, or more if long."""
    return black_stable(f"{SITES} = ", ast.Tuple(list(calls), ast.Load()), indent)
