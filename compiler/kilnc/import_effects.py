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
"""

from __future__ import annotations

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
    `__init_subclass__` takes), or a base of this module's that defines
    `__init_subclass__` or is itself so made."""
    if cls.keywords or depth > 8:
        return bool(cls.keywords)
    local = {
        identifier(statement.name.value): statement
        for statement in parsed.module.body
        if isinstance(statement, cst.ClassDef)
    }
    for base in cls.bases:
        found = (
            local.get(identifier(base.value.value))
            if isinstance(base.value, cst.Name)
            else None
        )
        if found is None or found is cls:
            continue
        if _defines_hook(found) or _hooked(parsed, found, depth + 1):
            return True
    return False


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
