"""What a module's names are bound to: the one binding of each, what it is declared
or made as, and which are loggers.

Example input::

    STORE: Store = Store()
    CLIENT = make_client()
    log = logging.getLogger(__name__)

Output: `declared_types` gives `STORE` the type `Store` and `CLIENT` the
callee `make_client` (which may be no class); `loggers` holds `log`.
`declared_global` asks it for a body, through the module that defines a
name the body's module imports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import libcst as cst

from kilnc.names import identifier, name_uses, target_names
from kilnc.syntax import code, dotted

if TYPE_CHECKING:  # the body asks this module what its names are: a cycle
    from kilnc.effects.body import Body
    from kilnc.front import ModuleDefs


@lru_cache(maxsize=256)
def declared_types(module: cst.Module) -> Mapping[str, str]:
    """By name, the type a module-level name is declared (`STORE: Store = ...`) or
    made (`STORE = Store()`, the call's callee, which may be no class) as, where
    the module binds it once: a method called on it is found through that."""
    found: dict[str, str] = {}
    for name, binding in bound_once(module).items():
        if isinstance(binding, cst.AnnAssign):
            annotation = binding.annotation.annotation
            written = code(annotation)
            if isinstance(annotation, cst.SimpleString):  # `STORE: "Store"`
                written = written.strip("'\"")
            found[name] = written
        elif isinstance(binding.value, cst.Call):
            found[name] = code(binding.value.func)
    return {name: kind for name, kind in found.items() if kind}


@lru_cache(maxsize=256)
def bound_once(module: cst.Module) -> Mapping[str, cst.Assign | cst.AnnAssign]:
    """By name, the one statement that binds a module-level name to a value,
    where the module binds it once (`HOOK = on_start`, `STORE: Store = ...`)."""
    return {
        name: binding for name, (binding, whole) in _bound_once(module).items() if whole
    }


@lru_cache(maxsize=256)  # every attribute read of a module-level name asks
def module_functions(module: cst.Module) -> Mapping[str, cst.FunctionDef]:
    """The module's own functions, by name."""
    return {
        identifier(statement.name.value): statement
        for statement in module.body
        if isinstance(statement, cst.FunctionDef)
    }


@lru_cache(maxsize=256)
def made_by_calls(module: cst.Module) -> Mapping[str, cst.Call]:
    """By name, the call whose value, or an item of it, a module-level name is
    bound to, where the module binds it once (`put, get = make_store()`)."""
    return {
        name: binding.value
        for name, (binding, _) in _bound_once(module).items()
        if isinstance(binding.value, cst.Call)
    }


def _bound_once(
    module: cst.Module,
) -> dict[str, tuple[cst.Assign | cst.AnnAssign, bool]]:
    """By name, the one statement binding a module-level name, where the module
    binds it once, and whether to the whole value (`x = v`, not `x, y = v`)."""
    found: dict[str, tuple[cst.Assign | cst.AnnAssign, bool]] = {}
    bound: Counter[str] = Counter()
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            for name in _defined(statement):
                bound[name] += 2  # a def, a class, or bound in a block: not one value
            continue
        for small in statement.body:
            if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                name = identifier(small.target.value)
                found[name] = (small, True)
                bound[name] += 1
            elif isinstance(small, cst.Assign):
                for target in small.targets:
                    whole = isinstance(target.target, cst.Name)
                    for name in target_names(target.target):
                        bound[name] += 1
                        found.setdefault(name, (small, whole))
    return {name: binding for name, binding in found.items() if bound[name] == 1}


def _defined(statement: cst.BaseStatement) -> set[str]:
    """The names a compound statement at module level binds."""
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        return {identifier(statement.name.value)}
    return set(name_uses(statement).writes)


def loggers(module: cst.Module) -> frozenset[str]:
    """The names a module assigns a logger to: `log = logging.getLogger(...)`."""
    found: set[str] = set()
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                made_by = dotted(small.value.func) or ""
                last = made_by.split(".")[-1]
                if last in ("getLogger", "get_logger", "getChild"):
                    for target in small.targets:
                        found |= target_names(target.target)
    return frozenset(found)


def declared_global(body: Body, name: str) -> tuple[ModuleDefs, str] | None:
    """What a module-level name of the body's module, or one it imports from a
    project module (`from app.clients import CLIENT`), is declared or made as,
    with the definitions of the module that says so."""
    defining = defining_module(body, name)
    if defining is None:
        return None
    defs, name = defining
    kind = declared_types(defs.parsed.module).get(name)
    return (defs, kind) if kind is not None else None


def annotated_global(body: Body, name: str) -> tuple[ModuleDefs, str] | None:
    """The annotation a module-level name is declared with (`AGENTS: dict[str,
    Agent] = ...`), in this module or one it imports it from."""
    defining = defining_module(body, name)
    if defining is None:
        return None
    defs, name = defining
    binding = bound_once(defs.parsed.module).get(name)
    if not isinstance(binding, cst.AnnAssign):
        return None
    return defs, declared_types(defs.parsed.module)[name]


def defining_module(body: Body, name: str) -> tuple[ModuleDefs, str] | None:
    """The module that binds a name the body reads as module-level, and its name there."""
    imported = body.defs.imports.get(name)
    if imported is None or imported.attribute is None:
        return body.defs, name
    defs = body.reader.module_defs(imported.module)
    return (defs, imported.attribute) if defs is not None else None


def bounded_deque(module: cst.Module, node: cst.BaseExpression) -> bool:
    """Whether `node` names a module-level `deque(maxlen=n)`: an append to it
    drops its oldest item, so which it keeps depends on the order."""
    if not isinstance(node, cst.Name):
        return False
    binding = bound_once(module).get(identifier(node.value))
    made = binding.value if binding is not None else None
    return (
        isinstance(made, cst.Call)
        and (dotted(made.func) or "").rpartition(".")[2] == "deque"
        and (len(made.args) > 1 or any(a.keyword is not None for a in made.args))
    )
