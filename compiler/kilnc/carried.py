"""carried: what a compiled module's own name holds that its output copies.

Example input: `count` of app/reports.py, which returns `len(OUTBOX)`, where
`OUTBOX: list[str] = []` is bound at the module's top level. Output:
`Carried("app.reports", "OUTBOX", "state")`: the compiled module's `count`
reads the output's copy of `OUTBOX`, the source's `count` the source's list.

A name carries nothing of its own when the output's copy behaves as the
source's: a constant (a number, a string, a tuple of them, never rebound), a
function (kiln's decorators aside) whose code reads nothing else that does,
and a name the module imports from a module without output, which both
import. Anything else does: module state, a class (an instance or an
exception of the copy is none of the source's class), a function another
decorator wraps (`functools.cache` keeps state) or that declares `global`.
`check_copies` (copies.py) asks this of each name it finds imported from a
compiled module's source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, final

import libcst as cst

from kilnc.facts import is_future, is_kiln, module_facts, without_kiln_decorators
from kilnc.front import ParsedModule
from kilnc.mutability import immutable_literal
from kilnc.names import identifier, imported_names, name_uses
from kilnc.project import Project
from kilnc.syntax import dotted
from kilnc.walk import walk

Kind = Literal["state", "class", "module"]
NOUNS: Final[Mapping[Kind, str]] = {
    "state": "object",
    "class": "class",
    "module": "module",
}


@final
@dataclass(frozen=True, slots=True)
class Carried:
    """A compiled module's own object that a name reaches: `name` of `module`."""

    module: str
    name: str
    kind: Kind


class Objects:
    """Which names of the compiled modules carry objects of their own, read once each."""

    def __init__(self, project: Project, compiled: Mapping[str, str]) -> None:
        self.project = project
        self.compiled = compiled
        self._tables: dict[str, _Table | None] = {}
        self._answers: dict[tuple[str, str], Carried | None] = {}

    def carried(self, module: str, name: str) -> Carried | None:
        """The object of its own `name` of compiled `module` reaches, if any."""
        key = (module, name)
        if key not in self._answers:
            self._answers[key] = None  # a cycle of imports or calls reaches nothing
            self._answers[key] = self._carried(module, name)
        return self._answers[key]

    def _carried(self, module: str, name: str) -> Carried | None:
        table = self._table(module)
        if table is None:
            return None
        needed: set[str] = set()
        todo = [name]
        while todo:
            wanted = todo.pop()
            if wanted in needed:
                continue
            needed.add(wanted)
            for statement in table.binding.get(wanted, ()):
                kind = _kind(table, statement, wanted)
                if kind == "import":
                    found = self._imported(module, wanted)
                    if found is not None:
                        return found
                elif kind == "function":
                    assert isinstance(statement, cst.FunctionDef)
                    todo += sorted(_reads(table.parsed, statement) & set(table.binding))
                elif kind != "constant":
                    return Carried(module, wanted, kind)
        return None

    def _imported(self, module: str, name: str) -> Carried | None:
        """What a name the module imports carries: another compiled module's own."""
        target = self.project.attribute(module, name)
        if target is None or target.module not in self.compiled:
            return None  # one object for the source and the compiled modules
        if target.attribute is None:
            return Carried(target.module, target.module, "module")
        return self.carried(target.module, target.attribute.split(".")[0])

    def _table(self, module: str) -> _Table | None:
        if module not in self._tables:
            defs = self.project.load(module)
            self._tables[module] = None if defs is None else _Table(defs.parsed)
        return self._tables[module]


Statement = Literal["import", "function", "constant", "state", "class"]


class _Table:
    """A module's top-level statements by the names they bind."""

    def __init__(self, parsed: ParsedModule) -> None:
        self.parsed = parsed
        self.binding: dict[str, list[cst.BaseStatement]] = {}
        self.rebound: set[str] = set()  # by `global`, or `+=` at the top level
        for statement in parsed.module.body:
            facts = module_facts(parsed, statement)
            if is_future(statement) or facts.main_guard:
                continue
            for name in facts.binds:
                self.binding.setdefault(name, []).append(statement)
        rebinders = _Rebinders()
        walk(parsed.module, rebinders)
        self.rebound = rebinders.names


def _kind(table: _Table, statement: cst.BaseStatement, name: str) -> Statement:
    """What the statement binds `name` to, as far as the copies go."""
    if isinstance(statement, cst.ClassDef):
        return "class"
    if isinstance(statement, cst.FunctionDef):
        # Another decorator may keep state (`functools.cache`), or register it.
        decorated = not all(is_kiln(table.parsed, d) for d in statement.decorators)
        return "state" if decorated or _rebinds(statement) else "function"
    if name in imported_names(statement):
        return "import"
    if (
        isinstance(statement, cst.SimpleStatementLine)
        and name not in table.rebound
        and all(_constant(small, name) for small in statement.body)
    ):
        return "constant"
    return "state"


def _constant(small: cst.BaseSmallStatement, name: str) -> bool:
    """Whether the small statement binds `name` to an immutable literal, if at all."""
    if name not in name_uses(small).writes:
        return True
    if isinstance(small, cst.Assign | cst.AnnAssign) and small.value is not None:
        return immutable_literal(small.value)
    return False


def _rebinds(function: cst.FunctionDef) -> bool:
    finder = _Rebinders()
    walk(function, finder)
    return bool(finder.names)


def _reads(parsed: ParsedModule, function: cst.FunctionDef) -> set[str]:
    """The names a function's code reads when it is defined and called, kiln's
    decorators and its annotations aside (the copies run neither)."""
    return set(read_paths(without_kiln_decorators(parsed, function)))


def read_paths(code: cst.CSTNode | ParsedModule) -> dict[str, list[tuple[str, ...]]]:
    """By name, the attribute paths code reads through it (`r.OUTBOX.append` is
    `("OUTBOX", "append")` of `r`; a bare `r` is `()`), annotations aside."""
    finder = _Uses()
    walk(code.module if isinstance(code, ParsedModule) else code, finder)
    return finder.found


class _Uses(cst.CSTVisitor):
    """Names as code reads them: not a definition's, a parameter's or a keyword's."""

    def __init__(self) -> None:
        self.found: dict[str, list[tuple[str, ...]]] = {}

    def visit_Annotation(self, node: cst.Annotation) -> bool:
        return False

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._each(*node.decorators, node.params, node.body)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self._each(*node.decorators, *node.bases, *node.keywords, node.body)
        return False

    def visit_Param(self, node: cst.Param) -> bool:
        if node.default is not None:  # its name and annotation read nothing
            walk(node.default, self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        walk(node.value, self)
        return False

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        name = dotted(node)
        if name is None:
            walk(node.value, self)
            return False
        head, *path = name.split(".")
        self.found.setdefault(identifier(head), []).append(tuple(path))
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.found.setdefault(identifier(node.value), []).append(())

    def _each(self, *nodes: cst.CSTNode) -> None:
        for node in nodes:
            walk(node, self)


class _Rebinders(cst.CSTVisitor):
    """The names a function declares `global`, and those `+=` changes at the top."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.depth = 0

    def visit_Global(self, node: cst.Global) -> None:
        self.names |= {identifier(item.name.value) for item in node.names}

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if not self.depth and isinstance(node.target, cst.Name):
            self.names.add(identifier(node.target.value))
