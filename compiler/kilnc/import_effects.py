"""runs_code: whether a module-level definition runs code that may change state.

Example input (module-level statements)::

    @handles("greet")                 # a project decorator: it may register
    def _greet(x: str) -> str: ...

    class SearchTool(BaseTool): ...   # BaseTool defines __init_subclass__
    PLANNER = Agent("planner")        # Agent.__init__ may register `self`
    N_PROMPTS = load_prompts()        # fills PROMPTS as it runs

    @dataclass(frozen=True)
    class Config: ...                 # a decorator that only makes the class
    LOG = logging.getLogger(__name__) # a call that changes nothing kiln keeps
    TOTAL = sum(range(10))

Output: True for the first four, False for the last three. A definition
that runs code is an effect to `reach.py`: kept when what that code reaches
may be seen by the kept code (a registry a node reads), even though nothing
kept reads the name it binds; dropped otherwise, as a plain definition is.

An import runs code too, the first time a module is imported (`loads_code`):
every module of the project's and of an installed library's may register,
configure or patch as it loads, so an import of one is kept though nothing
kept reads the name it binds (`from . import plugins  # registers handlers`).
The standard library's modules load nothing kept code sees, but for the few
named in `_LOUD_LIBRARY`, and neither do kiln's or typing's helpers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

import libcst as cst

from kilnc.front import KILN_DECORATORS, ParsedModule
from kilnc.mutability import (
    EXTERNAL_BUILTINS,
    FRESH_BUILTINS,
    ITERATING_BUILTINS,
    PURE_BUILTINS,
    is_pure,
)
from kilnc.names import identifier
from kilnc.resolve import module_file
from kilnc.syntax import calls_made

# Decorators that make the function or class they are given and do no more.
_MAKING: Final = frozenset(
    {
        "dataclasses.dataclass",
        "functools.total_ordering",
        "functools.cache",
        "functools.lru_cache",
        "functools.cached_property",
        "functools.singledispatch",
        "functools.wraps",
        "typing.final",
        "typing.overload",
        "typing.runtime_checkable",
        "typing.no_type_check",
        "typing_extensions.final",
        "typing_extensions.override",
        "typing.override",
        "abc.abstractmethod",
        "contextlib.contextmanager",
        "contextlib.asynccontextmanager",
        "enum.unique",
        "builtins.staticmethod",
        "builtins.classmethod",
        "builtins.property",
    }
)
# Standard-library calls that make an object and change nothing kept code reads.
_MAKERS: Final = frozenset(
    {
        "logging.getLogger",
        "contextvars.ContextVar",
        "dataclasses.field",
        "threading.Lock",
        "threading.RLock",
        "threading.Event",
        "asyncio.Lock",
        "asyncio.Event",
        "asyncio.Semaphore",
    }
)
_BUILTIN_MAKERS: Final = (
    PURE_BUILTINS | FRESH_BUILTINS | ITERATING_BUILTINS | {"object"}
) - EXTERNAL_BUILTINS


def runs_code(parsed: ParsedModule, statement: cst.CSTNode) -> bool:
    """Whether the definition `statement` runs code that may change state when
    it runs: a decorator not known to only make what it is given, a class's
    `__init_subclass__` or metaclass, a call in an assigned value."""
    if isinstance(statement, cst.FunctionDef):
        return _decorated(parsed, statement)
    if isinstance(statement, cst.ClassDef):
        return _decorated(parsed, statement) or _hooked(parsed, statement, 0)
    if isinstance(statement, cst.SimpleStatementLine):
        return any(
            isinstance(small, cst.Assign | cst.AnnAssign)
            and small.value is not None
            and _calls_code(parsed, small.value)
            for small in statement.body
        )
    return any(runs_code(parsed, child) for child in _blocks(statement))


def _decorated(
    parsed: ParsedModule, definition: cst.FunctionDef | cst.ClassDef
) -> bool:
    for decorator in definition.decorators:
        made = decorator.decorator
        func = made.func if isinstance(made, cst.Call) else made
        names = parsed.qualified_names(func)
        if not names & (_MAKING | KILN_DECORATORS):
            return True
        if isinstance(made, cst.Call) and any(
            _calls_code(parsed, arg.value) for arg in made.args
        ):
            return True
    return False


def _hooked(parsed: ParsedModule, cls: cst.ClassDef, depth: int) -> bool:
    """A class whose making runs code: class keywords (`metaclass=`, what
    `__init_subclass__` takes), a base of this module's that defines
    `__init_subclass__` or is itself so made, or a base imported from a module
    kiln does not read here (`class Csv(Plugin)`, where the project's `Plugin`
    registers each subclass), but the standard library's plain kinds."""
    if cls.keywords or depth > 8:
        return bool(cls.keywords)
    local = {
        identifier(statement.name.value): statement
        for statement in parsed.module.body
        if isinstance(statement, cst.ClassDef)
    }
    for base in cls.bases:
        value = (
            base.value.value if isinstance(base.value, cst.Subscript) else base.value
        )
        found = (
            local.get(identifier(value.value)) if isinstance(value, cst.Name) else None
        )
        if found is None:
            names = parsed.qualified_names(value)
            if not names or not all(name.startswith(_PLAIN_BASES) for name in names):
                return True
            continue
        if found is not cls and (
            _defines_hook(found) or _hooked(parsed, found, depth + 1)
        ):
            return True
    return False


# Where the bases come from whose subclasses' making changes nothing kept code reads.
_PLAIN_BASES: Final = tuple(
    f"{module}."
    for module in (
        "builtins",
        "typing",
        "typing_extensions",
        "abc",
        "enum",
        "collections",
        "dataclasses",
        "numbers",
        "contextlib",
        "kiln",
        "json",
        "asyncio",
    )
)


def _defines_hook(cls: cst.ClassDef) -> bool:
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    return any(
        isinstance(statement, cst.FunctionDef)
        and statement.name.value == "__init_subclass__"
        for statement in body
    )


def _calls_code(parsed: ParsedModule, value: cst.BaseExpression) -> bool:
    """Whether evaluating `value` calls anything not known to only make a value."""
    for call in calls_made(value):
        names = parsed.qualified_names(call.func)
        if not names or not all(_makes_only(name) for name in names):
            return True
    return False


def _makes_only(name: str) -> bool:
    if name.startswith("builtins."):
        return name.removeprefix("builtins.") in _BUILTIN_MAKERS
    return name in _MAKERS or is_pure(name) or name.startswith("kiln.")


def _blocks(statement: cst.CSTNode) -> list[cst.CSTNode]:
    """The statements inside an `if` or `try` of definitions (`if TYPE_CHECKING:`)."""
    found: list[cst.CSTNode] = []
    for child in statement.children:
        if isinstance(child, cst.IndentedBlock):
            found += child.body
        elif isinstance(child, cst.SimpleStatementSuite):
            found.append(cst.SimpleStatementLine(body=child.body))
        elif isinstance(child, cst.If | cst.Else | cst.ExceptHandler | cst.Finally):
            found += _blocks(child)
    return found


# Standard-library modules whose import does something: a prompt's line editing,
# a text printed, a browser opened, the site hooks run.
_LOUD_LIBRARY: Final = frozenset(
    {"readline", "rlcompleter", "this", "antigravity", "__hello__", "__phello__"}
    | {"site", "sitecustomize", "usercustomize"}
)
# Libraries outside the standard one whose import defines and changes nothing.
_QUIET_LIBRARIES: Final = frozenset(
    {"kiln", "typing_extensions", "mypy_extensions", "__future__"}
)


def loads_code(module: str, root: Path) -> bool:
    """Whether importing `module` (absolute) may run code that changes what kept
    code sees: a module of the project under `root` (its package's too), or of
    an installed library, unless one of the standard library's or a helper's
    that only defines names."""
    top = module.partition(".")[0]
    if module_file(root, top) is not None:
        return True  # the project's: it may shadow a library's name
    if top in _QUIET_LIBRARIES:
        return False
    return top not in sys.stdlib_module_names or top in _LOUD_LIBRARY
