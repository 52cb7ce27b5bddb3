"""Which of the project's modules the program may run: where kiln looks for overrides.

Example input: the flow's module `app/m.py` does `from app.agents.base import
load_agent`; `app/agents/__init__.py` does `from app.agents import loud`; and
`load_agent` does `importlib.import_module(f"app.agents.{kind}")`.

Output: `app.m`, `app`, `app.agents` (Python runs a package's `__init__.py`
before any module in it), `app.agents.base`, `app.agents.loud` (the package
imports it), and every other module under `app/agents/` (the call may import
any of them). A class one of them defines may be what a node's object is, so
its overrides are the call's (`Classes.overrides`), and a subclass's state is
its base's (`class_pieces.py`).

The modules are found with `ast`, which reads a file in a millisecond: a
module is read in full (`Project.load`) only where it defines what a question
asks for (a method of that name, a class with a base of another module's).
An import of a name kiln cannot tell (`import_module(name)`, no package
written) may import any module of the project: it is `unread`, and a call of
a method that a class of such a module could override keeps its place
(`unread_effects`), with a warning (KLN405).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from kilnc.diagnostics import Code, Diagnostic, warning
from kilnc.effect_ir import EVERY_PIECE, Access, Change, Effects, StateUse
from kilnc.resolve import ModuleLocation, absolute_module, module_file
from kilnc.source import SourceFile, Span, is_generated_module

if TYPE_CHECKING:
    from kilnc.project import Project

# The module name of a method no module kiln read defines: one a module whose
# name kiln cannot tell may (`Classes.overrides`).
UNREAD: Final = "<unread>"
_LOADERS: Final = frozenset({"import_module", "importlib.import_module", "__import__"})


@dataclass(frozen=True, slots=True)
class Unread:
    """An import whose module kiln cannot tell: where it is, as `ast` says."""

    module: str
    line: int
    offset: int  # in UTF-8 bytes, as `ast` counts
    end_line: int
    end_offset: int


@dataclass(slots=True)
class _Module:
    """What `ast` shows of one module: the modules it imports, and its classes."""

    imports: set[str] = field(default_factory=set)
    # By class, the names its body defines (a method), and whether it names a
    # base the module does not define itself (another module's class, maybe).
    methods: dict[str, frozenset[str]] = field(default_factory=dict)
    based_elsewhere: bool = False


class Program:
    """The modules the program may run, from the module compiled (`found`, in
    the order they were found), and the imports kiln cannot tell (`unread`)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.root = project.root
        self.unread: list[Unread] = []
        self.consulted = False  # a call's overrides took in what `unread` may define
        self._found: dict[str, _Module] | None = None

    @property
    def found(self) -> dict[str, _Module]:
        if self._found is None:
            self._found = self._scan(self.project.main.location.name)
        return self._found

    def defining(self, method: str) -> list[str]:
        """The modules with a class whose body defines `method` (`mode` of
        `mode.setter`), in the order they were found."""
        name = method.partition(".")[0]
        return [
            module
            for module, seen in self.found.items()
            if any(name in names for names in seen.methods.values())
        ]

    def subclassing(self) -> list[str]:
        """The modules with a class whose base may be another module's."""
        return [module for module, seen in self.found.items() if seen.based_elsewhere]

    def unread_methods(self) -> bool:
        """Whether a module kiln cannot tell may define an override (noted)."""
        _ = self.found
        self.consulted |= bool(self.unread)
        return bool(self.unread)

    def _scan(self, main: str) -> dict[str, _Module]:
        found: dict[str, _Module] = {}
        todo = [*_parents(main), main]
        while todo:
            name = todo.pop(0)
            if name in found:
                continue
            path = module_file(self.root, name)
            if path is None or is_generated_module(path):
                continue
            try:
                tree = ast.parse(path.read_bytes())
            except (SyntaxError, ValueError, OSError, RecursionError):
                continue  # reported where the module is read, if it is
            location = ModuleLocation(name, self.root, path.name == "__init__.py")
            found[name] = seen = _read(tree, location, self)
            todo += sorted(m for i in seen.imports for m in (*_parents(i), i))
        return found

    def dynamic(self, location: ModuleLocation, call: ast.Call) -> set[str]:
        """The modules `import_module(...)` may import: the one it names, every
        one under the package it names (`f"app.agents.{kind}"`), or, where kiln
        cannot tell, none (noted as `unread`)."""
        prefix = _prefix(location, call)
        if prefix is None:
            self.unread.append(_unread(location.name, call))
            return set()
        if prefix.complete:
            return {prefix.text}
        package = prefix.text.rpartition(".")[0]
        directory = self.root.joinpath(*package.split(".")) if package else None
        if directory is None or not directory.is_dir():
            if not package or module_file(self.root, package.partition(".")[0]):
                self.unread.append(_unread(location.name, call))
            return set()  # an installed package's, which kiln does not read
        return {
            name
            for name in _modules_under(directory, package)
            if name.startswith(prefix.text)
        }


def _read(tree: ast.Module, location: ModuleLocation, program: Program) -> _Module:
    seen = _Module()
    # The names the module's imports bind to a project module's (`BaseAgent`,
    # `base` of `from app import base`), or every name after a star import.
    project: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            seen.imports |= {alias.name for alias in node.names}
            project |= {
                alias.asname or alias.name.partition(".")[0]
                for alias in node.names
                if module_file(location.root, alias.name)
            }
        elif isinstance(node, ast.ImportFrom):
            module = absolute_module(location, node.module or "", node.level)
            if module is None:
                continue
            seen.imports.add(module)
            ours = module_file(location.root, module) is not None
            for alias in node.names:  # `from . import loud`: the submodule
                whole = f"{module}.{alias.name}"
                if alias.name != "*" and module_file(location.root, whole):
                    seen.imports.add(whole)
                if ours:
                    project.add(alias.asname or alias.name)
        elif isinstance(node, ast.Call) and _dotted(node.func) in _LOADERS:
            seen.imports |= program.dynamic(location, node)
    for statement in tree.body:
        if isinstance(statement, ast.ClassDef):
            seen.methods[statement.name] = frozenset(
                name for line in statement.body for name in _defined(line)
            )
            heads = {_head(base) for base in statement.bases}
            starred = "*" in project and bool(heads - {None})
            seen.based_elsewhere |= bool(heads & project) or starred
    return seen


def _defined(line: ast.stmt) -> list[str]:
    """The method a line of a class's body defines, if it does."""
    if isinstance(line, ast.FunctionDef | ast.AsyncFunctionDef):
        return [line.name]
    return []


def _head(base: ast.expr) -> str | None:
    while isinstance(base, ast.Attribute | ast.Subscript | ast.Call):
        base = base.func if isinstance(base, ast.Call) else base.value
    return base.id if isinstance(base, ast.Name) else None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head is not None else None
    return None


def _parents(module: str) -> list[str]:
    """`a` and `a.b` of `a.b.c`: the packages Python runs first."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


@dataclass(frozen=True, slots=True)
class _Prefix:
    text: str
    complete: bool  # the whole name, not only how it starts


def _prefix(location: ModuleLocation, call: ast.Call) -> _Prefix | None:
    """How the module name `call` imports starts, as far as it is written:
    `f"app.agents.{kind}"`, `"app.agents." + kind`, `f"{__name__}.{kind}"`; a
    relative name (`"." + kind`, `package=__name__`) made absolute."""
    if not call.args:
        return None
    text = _written(location, call.args[0])
    if text is None:
        return None
    written, complete = text
    if written.startswith("."):
        package = call.args[1] if len(call.args) > 1 else None
        for keyword in call.keywords:
            if keyword.arg == "package":
                package = keyword.value
        base = _written(location, package) if package is not None else None
        if base is None or not base[1]:
            return None
        dots = len(written) - len(written.lstrip("."))
        anchor = ModuleLocation(base[0], location.root, True)
        resolved = absolute_module(anchor, written[dots:], dots)
        if resolved is None:
            return None
        written = resolved if complete or written[dots:] else f"{resolved}."
    return _Prefix(written, complete) if written else None


def _written(location: ModuleLocation, node: ast.expr) -> tuple[str, bool] | None:
    """The literal start of a string expression, and whether it is all of it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, True
    if isinstance(node, ast.Name) and node.id in ("__name__", "__package__"):
        own = location.name
        package = own if location.is_package else own.rpartition(".")[0]
        return (own if node.id == "__name__" else package), True
    if isinstance(node, ast.JoinedStr):
        text = ""
        for part in node.values:
            piece = (
                _written(location, part.value)
                if isinstance(part, ast.FormattedValue) and not part.format_spec
                else _written(location, part)
            )
            if piece is None or not piece[1]:
                return text, False
            text += piece[0]
        return text, True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _written(location, node.left)
        if left is None or not left[1]:
            return left
        right = _written(location, node.right)
        if right is None:
            return left[0], False
        return left[0] + right[0], right[1]
    return None


def _modules_under(directory: Path, package: str) -> Iterator[str]:
    """Every module of the package in `directory`, its subpackages' too."""
    try:
        paths = sorted(directory.iterdir())
    except OSError:
        return
    for path in paths:
        if path.is_dir() and (path / "__init__.py").is_file():
            yield from _modules_under(path, f"{package}.{path.name}")
        elif path.suffix == ".py" and path.stem.isidentifier():
            if path.name == "__init__.py":
                yield package
            elif not is_generated_module(path):
                yield f"{package}.{path.stem}"


def _unread(module: str, call: ast.Call) -> Unread:
    end_line = call.end_lineno or call.lineno
    end = call.end_col_offset if call.end_col_offset is not None else call.col_offset
    return Unread(module, call.lineno, call.col_offset, end_line, end)


def unread_effects(program: Program, name: str) -> Effects:
    """What a method `name` a module kiln cannot tell defines may do: anything to
    its object and its arguments, and to any module state (`EVERY_PIECE`)."""
    where = program.unread[0]
    defs = program.project.load(where.module)
    span = _span(defs.parsed.source, where) if defs is not None else None
    change = Change(
        f"may run a method {name} of a module imported by a name kiln cannot tell",
        span or Span.at(where.module, where.line),
    )
    return Effects(
        params=("self",),
        changes=(("self", change),),
        external=change,
        variadic=True,
        state=True,
        state_uses=((EVERY_PIECE, StateUse(Access.WRITE, change)),),
    )


def unread_warnings(program: Program) -> list[Diagnostic]:
    """KLN405 at each import kiln cannot tell, where a call's overrides may be
    what it imports (a flow's order kept for it)."""
    if not program.consulted:
        return []
    found = []
    for where in program.unread:
        defs = program.project.load(where.module)
        if defs is None:
            continue
        found.append(
            warning(
                _span(defs.parsed.source, where),
                Code.UNREAD_IMPORT,
                "kiln cannot tell which module this imports: a method a class"
                " there overrides is not read, so a call that may run one keeps"
                " its place among the nodes that use module state",
                "write the module's name, or its package's"
                ' (`import_module(f"app.plugins.{name}")`): kiln reads every'
                " module under that package",
            )
        )
    return found


def _span(source: SourceFile, where: Unread) -> Span:
    """`ast`'s byte offsets as the characters diagnostics count, from 1."""

    def column(line: int, offset: int) -> int:
        text = source.lines[line - 1] if line <= len(source.lines) else ""
        return len(text.encode()[:offset].decode(errors="ignore")) + 1

    return Span(
        source.path,
        where.line,
        column(where.line, where.offset),
        where.end_line,
        column(where.end_line, where.end_offset),
    )
