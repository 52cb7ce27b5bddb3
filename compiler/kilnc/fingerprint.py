"""fingerprint_node: a hash of a cached node's code and of all the project code it reaches.

Example input::

    # pipelines/prices.py                  # pipelines/rates.py
    from .rates import RATE                 RATE = 2
    import pipelines.tax as tax             DEBUG = False

    @node(cache=True)                       # pipelines/tax.py
    def price(x: int) -> int:               def add(x): return x + 1
        return tax.add(x * RATE)

Output: the sha256 of `price` (without its kiln decorator) and the
module-level code of prices.py it uses, then, module by module, of what it
reaches there: `RATE = 2` in rates.py (not `DEBUG`: a `from` import reaches
only the names it imports), and all of tax.py (a module imported whole may
be used in any part). Imports are followed wherever they stand, in function
bodies too, through every module of the project, never into installed
packages. The ledger keys a node's results with it, so editing the node, or
any project code it may run, invalidates exactly that node's entries.

Code is hashed as Python sees it (`ast.dump`): comments, layout and kiln's
own decorator options leave it unchanged. A module that does not parse is
hashed as its bytes.
"""

from __future__ import annotations

import ast
import hashlib
import textwrap
from collections.abc import Iterator, Sequence

import libcst as cst

from kilnc.front import ModuleDefs
from kilnc.ir import NodeDef
from kilnc.names import identifier
from kilnc.project import Project
from kilnc.reach import reached
from kilnc.resolve import absolute_module, module_file
from kilnc.syntax import dotted
from kilnc.walk import walk

Wanted = set[str] | None  # names of a module that code reaches; None: all of it


def fingerprint_node(project: Project, node: NodeDef) -> str:
    """The hash of `node`'s code and of every project module's code it reaches."""
    wanted: dict[str, Wanted] = {node.module: {node.function}}
    texts: dict[str, list[str]] = {}
    queue = [node.module]
    while queue:
        module = queue.pop()
        defs = project.load(module)
        if defs is None:
            path = module_file(project.root, module)
            texts[module] = [] if path is None else [path.read_bytes().hex()]
            continue
        statements = reached(defs.parsed, wanted[module])
        texts[module] = [_dump(defs, s) for s in statements]
        used = None if wanted[module] is None else _used_names(statements)
        for target, names in _imports(project, defs, statements, used):
            if _grow(wanted, target, names):
                queue.append(target)
    digest = hashlib.sha256()
    for module in [node.module, *sorted(set(texts) - {node.module})]:
        if module != node.module:  # the node's own module by its code alone
            digest.update(f"\0{module}\0".encode())
        for text in texts[module]:
            digest.update(text.encode())
    return digest.hexdigest()


def _dump(defs: ModuleDefs, statement: cst.BaseStatement) -> str:
    text = defs.parsed.module.code_for_node(statement)
    return ast.dump(ast.parse(textwrap.dedent(text)))


def _grow(wanted: dict[str, Wanted], module: str, names: Wanted) -> bool:
    """Add `names` of `module` to what is wanted; whether that is more than before."""
    if module not in wanted:
        wanted[module] = None if names is None else set(names)
        return True
    before = wanted[module]
    if before is None:
        return False
    if names is None:
        wanted[module] = None
        return True
    if names <= before:
        return False
    before |= names
    return True


def _imports(
    project: Project,
    defs: ModuleDefs,
    statements: Sequence[cst.BaseStatement],
    used: set[str] | None,
) -> Iterator[tuple[str, Wanted]]:
    """The project modules `statements` import, and the names they take from each.

    A name a `from` import binds is followed only if the code uses it (`used`;
    None: all of them): ``from models import Report, Summary`` in a module whose
    node uses `Summary` alone does not reach `Report`.
    """
    found = _ImportFinder()
    for statement in statements:
        walk(statement, found)
    for node in found.imports:
        if isinstance(node, cst.Import):
            for alias in node.names:
                parts = (dotted(alias.name) or "").split(".")
                # `import a.b` runs a/__init__.py too.
                for end in range(1, len(parts) + 1):
                    yield from _project(project, ".".join(parts[:end]), None)
            continue
        base = dotted(node.module) if node.module is not None else ""
        module = absolute_module(defs.location, base or "", len(node.relative))
        if module is None:
            continue
        if isinstance(node.names, cst.ImportStar):
            yield from _project(project, module, None)
            continue
        for alias in node.names:
            name = dotted(alias.name) or ""
            if used is not None and _bound(alias, name) not in used:
                continue
            submodule = f"{module}.{name}" if module else name
            if module_file(project.root, submodule) is not None:
                yield from _project(project, submodule, None)  # `from . import rates`
            else:
                yield from _project(project, module, {name})


def _project(
    project: Project, module: str, names: Wanted
) -> Iterator[tuple[str, Wanted]]:
    if module_file(project.root, module) is not None:
        yield module, names


def _bound(alias: cst.ImportAlias, name: str) -> str:
    """The name `from m import name [as other]` binds."""
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return identifier(alias.asname.name.value)
    return identifier(name)


def _used_names(statements: Sequence[cst.BaseStatement]) -> set[str]:
    """Every name the statements mention, but in their imports: what they may use."""
    found = _NameFinder()
    for statement in statements:
        walk(statement, found)
    return found.names


class _NameFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(identifier(node.value))

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False


class _ImportFinder(cst.CSTVisitor):
    """Every import statement, at module level or inside a function or class."""

    def __init__(self) -> None:
        self.imports: list[cst.Import | cst.ImportFrom] = []

    def visit_Import(self, node: cst.Import) -> None:
        self.imports.append(node)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.imports.append(node)
