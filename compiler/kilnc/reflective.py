"""reads_namespace: whether code reaches its own module's names by a name it computes.

Example input (module-level statements, or a node's body)::

    return globals()[f"handle_{kind}"](x)
    return getattr(sys.modules[__name__], f"handle_{kind}")(x)
    return eval(f"handle_{kind}")(x)
    HANDLERS = {k: v for k, v in vars().items() if k.startswith("handle_")}
    exec("LIMIT = 3")

Output: True for each. Which module-level name such code reads or binds is
known only when it runs, so the tree shaker keeps every definition of a
module that holds it (reach.py). The forms: `globals()`; `vars()`,
`locals()` and `dir()` with no argument outside a function; `eval` and
`exec` given no namespace of their own; `sys.modules` looked up by
anything but the name of another module; `importlib.import_module` or
`__import__` of a name computed or the module's own; a frame's globals
(`sys._getframe`, `inspect.currentframe`, `inspect.stack`); and an import of
the module itself (`from app import flows` in app/flows.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import libcst as cst

from kilnc.front import ParsedModule
from kilnc.syntax import dotted
from kilnc.walk import walk

_ALWAYS: Final = frozenset(
    {"builtins.globals", "sys._getframe", "inspect.currentframe", "inspect.stack"}
)
# With no argument, the module's namespace where no function's is around.
_BARE: Final = frozenset({"builtins.vars", "builtins.locals", "builtins.dir"})
# Run in the caller's globals unless given a namespace: the second argument.
_RUNNERS: Final = frozenset({"builtins.eval", "builtins.exec"})
_IMPORTERS: Final = frozenset({"importlib.import_module", "builtins.__import__"})
_MODULES: Final = "sys.modules"
_MODULES_TAIL: Final = frozenset({"modules"})
# The last part of each name above: what a call's callee must end in.
_TAILS: Final = frozenset(
    name.rpartition(".")[2] for name in (*_ALWAYS, *_BARE, *_RUNNERS, *_IMPORTERS)
)


def _imported_names(module: cst.Module) -> frozenset[str]:
    """The names `from ... import` statements bind anywhere in the module."""
    finder = _ImportedNames()
    walk(module, finder)
    return frozenset(finder.names)


class _ImportedNames(cst.CSTVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                bound = alias.asname.name if alias.asname is not None else alias.name
                if isinstance(bound, cst.Name):
                    self.names.add(bound.value)


def reads_namespace(parsed: ParsedModule, node: cst.CSTNode) -> bool:
    """Whether `node` (a module-level statement) reaches its module's names by a
    computed name, at import or in the functions it defines."""
    finder = _Reflection(parsed)
    walk(node, finder)
    return finder.found


class _Reflection(cst.CSTVisitor):
    def __init__(self, parsed: ParsedModule) -> None:
        self.parsed = parsed
        self.functions = 0  # functions around the code visited
        self.found = False
        self.imported: frozenset[str] | None = None  # the names imports bind

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.functions -= 1

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self.functions += 1

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self.functions -= 1

    def visit_Import(self, node: cst.Import) -> bool:
        own = self.parsed.source.module
        self.found |= any(dotted(alias.name) == own for alias in node.names)
        return False  # `from sys import modules` names it, and reads nothing

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        """`from app import flows` in app/flows.py: the module itself, as an object."""
        if isinstance(node.names, cst.ImportStar):
            return False
        own = self.parsed.source.module
        base = dotted(node.module) if node.module is not None else ""
        package = (
            own
            if self.parsed.source.path.endswith("__init__.py")
            else own.rpartition(".")[0]
        )
        if node.relative:
            parts = package.split(".") if package else []
            up = len(node.relative) - 1
            if up > len(parts):
                return False
            base = ".".join([*parts[: len(parts) - up], *([base] if base else [])])
        self.found |= any(f"{base}.{dotted(alias.name)}" == own for alias in node.names)
        return False

    def visit_Call(self, node: cst.Call) -> bool:
        if self._modules(node.func, "get") and self._another_module(node.args):
            return False  # `sys.modules.get("app.settings")`: that module
        self.found |= self._reflects(node)
        return not self.found

    def _reflects(self, call: cst.Call) -> bool:
        if not self._may_be(call.func, _TAILS):
            return False
        names = self.parsed.qualified_names(call.func)
        if names & _BARE:
            return not call.args and not self.functions
        if names & _RUNNERS:
            return len([arg for arg in call.args if arg.keyword is None]) < 2
        if names & _IMPORTERS:
            return not self._another_module(call.args)
        return bool(names & _ALWAYS)

    def visit_Subscript(self, node: cst.Subscript) -> bool:
        if self._modules(node.value) and len(node.slice) == 1:
            index = node.slice[0].slice
            if isinstance(index, cst.Index) and self._named(index.value):
                return False  # `sys.modules["app.settings"]`: that module
        return not self.found

    def visit_Name(self, node: cst.Name) -> None:
        if self._modules(node):
            self.found = True

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if self._modules(node):
            self.found = True
            return False
        return not self.found

    def _may_be(self, node: cst.BaseExpression, tails: frozenset[str]) -> bool:
        """Whether `node` may name one of the functions or objects asked about:
        it ends in one of their names, or is a name an import binds. Asked
        first, as a name's qualified names link its every assignment (a flow
        rebinding `x` at each step would cost each `x` all of them)."""
        if isinstance(node, cst.Attribute):
            return node.attr.value in tails
        if not isinstance(node, cst.Name):
            return False
        if self.imported is None:
            self.imported = _imported_names(self.parsed.module)
        return node.value in tails or node.value in self.imported

    def _modules(self, node: cst.BaseExpression, method: str | None = None) -> bool:
        """Whether `node` is `sys.modules` (or its `method`), however it was imported."""
        if method is not None:
            if not (isinstance(node, cst.Attribute) and node.attr.value == method):
                return False
            node = node.value
        return self._may_be(node, _MODULES_TAIL) and _MODULES in (
            self.parsed.qualified_names(node)
        )

    def _another_module(self, args: Sequence[cst.Arg]) -> bool:
        """Whether the first argument is a literal name of another module."""
        return bool(args) and self._named(args[0].value)

    def _named(self, key: cst.BaseExpression) -> bool:
        """A literal name of a module other than this one."""
        if not isinstance(key, cst.SimpleString):
            return False
        value = key.evaluated_value
        return isinstance(value, str) and value != self.parsed.source.module
