"""resolve_star_imports: the names `from module import *` binds, read from the module.

Example input: `from pipelines.nodes import *` in a flow module, where
pipelines/nodes.py defines `fetch` and `_cache` and does `from kiln import node`.
Output: the `ParsedModule` with `stars` `fetch` (`pipelines.nodes.fetch`) and
`node` (`kiln.node`, so `@node` is recognised), without `_cache` (as Python, a
star import skips names that start with an underscore unless the module's
`__all__` lists them), and its `global_names` grown by them. `from kiln import
*` binds kiln's `__all__`.

A module kiln cannot read (not the project's, not kiln, or one whose names
depend on another such module) is returned as unresolved: which names it binds
is unknown, and the module keeps `star_import` set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, final

import libcst as cst

import kiln
from kilnc.front import Located, ParsedModule, StarName
from kilnc.names import identifier
from kilnc.resolve import ModuleLocation, absolute_module
from kilnc.syntax import dotted
from kilnc.walk import walk

KILN: Final = "kiln"


# The project's modules by absolute name, parsed with their own star imports
# resolved; None for a module that is not the project's (or does not parse).
Reader = Callable[[str], Located | None]


@final
@dataclass(frozen=True, slots=True)
class Unresolved:
    """A star import whose names kiln cannot know."""

    statement: cst.ImportFrom = field(repr=False)
    module: str  # as written, dots and all


def resolve_star_imports(
    parsed: ParsedModule, location: ModuleLocation, read: Reader
) -> tuple[ParsedModule, list[Unresolved]]:
    stars: dict[str, StarName] = {}
    per_import: dict[cst.ImportFrom, frozenset[str]] = {}
    unresolved: list[Unresolved] = []
    for statement in _star_imports(parsed.module):
        base = (dotted(statement.module) if statement.module else None) or ""
        written = "." * len(statement.relative) + base
        module = absolute_module(location, base, len(statement.relative))
        names = _exported(module, read) if module is not None else None
        if names is None:
            unresolved.append(Unresolved(statement, written))
            continue
        assert module is not None
        for name, qualified in names.items():
            stars[name] = StarName(module, qualified)
        per_import[statement] = frozenset(names)
    if not per_import:
        return parsed, unresolved
    return (
        replace(
            parsed,
            global_names=parsed.global_names | frozenset(stars),
            star_import=bool(unresolved),
            stars=stars,
            star_imports=per_import,
        ),
        unresolved,
    )


def _star_imports(module: cst.Module) -> Iterator[cst.ImportFrom]:
    for line in module.body:
        if isinstance(line, cst.SimpleStatementLine):
            for small in line.body:
                if isinstance(small, cst.ImportFrom) and isinstance(
                    small.names, cst.ImportStar
                ):
                    yield small


def _exported(module: str, read: Reader) -> Mapping[str, str] | None:
    """What `from module import *` binds, each name with what it is; None if unknown."""
    if module == KILN:
        return {name: f"{KILN}.{name}" for name in kiln.__all__}
    found = read(module)
    if found is None:
        return None
    parsed = found.parsed
    listed = _all(parsed.module)
    if isinstance(listed, frozenset):
        names = listed
    elif listed is _UNKNOWN or parsed.star_import:
        return None  # its names depend on code or on a module kiln cannot read
    else:
        names = frozenset(n for n in parsed.global_names if not n.startswith("_"))
    imported = _imported(parsed.module, found.location)
    exported: dict[str, str] = {}
    for name in names:
        star = parsed.stars.get(name)
        if name in imported:
            exported[name] = imported[name]
        elif star is not None:
            exported[name] = star.qualified
        else:
            exported[name] = f"{module}.{name}"
    return exported


class _Unknown:
    pass


_UNKNOWN: Final = _Unknown()


def _all(module: cst.Module) -> frozenset[str] | _Unknown | None:
    """The module's `__all__`: None when it has none, unknown unless it is a literal."""
    listed: frozenset[str] | _Unknown | None = None
    for line in module.body:
        if not isinstance(line, cst.SimpleStatementLine):
            if "__all__" in _assigned_in(line):
                return _UNKNOWN  # assigned under an `if`, a `try`...
            continue
        for small in line.body:
            if isinstance(small, cst.Assign) and any(
                isinstance(t.target, cst.Name) and t.target.value == "__all__"
                for t in small.targets
            ):
                listed = _strings(small.value)
            elif isinstance(small, cst.AugAssign | cst.AnnAssign) and (
                isinstance(small.target, cst.Name) and small.target.value == "__all__"
            ):
                value = small.value
                more = _strings(value) if value is not None else _UNKNOWN
                if isinstance(small, cst.AnnAssign):
                    listed = more
                elif isinstance(listed, frozenset) and isinstance(more, frozenset):
                    listed = listed | more
                else:
                    listed = _UNKNOWN
    return listed


def _strings(node: cst.BaseExpression) -> frozenset[str] | _Unknown:
    if not isinstance(node, cst.List | cst.Tuple):
        return _UNKNOWN
    names: set[str] = set()
    for element in node.elements:
        value = element.value
        if not isinstance(value, cst.SimpleString) or not isinstance(
            value.evaluated_value, str
        ):
            return _UNKNOWN
        names.add(identifier(value.evaluated_value))
    return frozenset(names)


def _assigned_in(node: cst.CSTNode) -> set[str]:
    finder = _NameFinder()
    walk(node, finder)
    return finder.names


class _NameFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)


def _imported(module: cst.Module, location: ModuleLocation) -> dict[str, str]:
    """The module-level names a module imports, each with what it names."""
    table: dict[str, str] = {}
    for line in module.body:
        if not isinstance(line, cst.SimpleStatementLine):
            continue
        for small in line.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    name = dotted(alias.name) or ""
                    if alias.asname is not None and isinstance(
                        alias.asname.name, cst.Name
                    ):
                        table[identifier(alias.asname.name.value)] = name
                    else:
                        head = name.split(".")[0]
                        table[identifier(head)] = head
            elif isinstance(small, cst.ImportFrom) and not isinstance(
                small.names, cst.ImportStar
            ):
                base = dotted(small.module) if small.module is not None else ""
                source = absolute_module(location, base or "", len(small.relative))
                if source is None:
                    continue
                for alias in small.names:
                    attribute = dotted(alias.name) or ""
                    local = attribute
                    if alias.asname is not None and isinstance(
                        alias.asname.name, cst.Name
                    ):
                        local = alias.asname.name.value
                    table[identifier(local)] = f"{source}.{attribute}"
    return table
