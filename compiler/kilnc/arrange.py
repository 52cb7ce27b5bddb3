"""arrange_module: the output module in source order, with what its flows' calls need.

Example input, shaken (the kept statements, in source order)::

    from .nodes import fetch             # a resilient node of another module
    @flow
    async def crawl(urls): ...           # calls fetch and summarize
    @node(retries=3)
    async def summarize(text): ...

Output: a `ModulePlan` whose body is the import, the Policy constant of the
imported `fetch` (placed before the first flow, after every kept import),
`summarize` and its Policy constant right after its definition, and the
compiled `crawl` below both: a flow's class names the nodes and subflows it
calls, so it comes out below every one of this module that it calls
(flows never call each other in a cycle: KLN401). A class a node's results
may hold is named as the module imports it, or imported under a reserved
name (`place_classes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import final

import libcst as cst

from kilnc.front import ImportedName, ModuleDefs
from kilnc.ir import Callee, FlowIR, NodeDef
from kilnc.names import BUILTINS, identifier, mentioned_names, target_names
from kilnc.plan import (
    ClassRef,
    Compiled,
    FallbackImport,
    FlowPlan,
    Kept,
    ModulePlan,
    PolicyConstant,
    Shaken,
)
from kilnc.resolve import locate
from kilnc.source import SourceFile, Span
from kilnc.syntax import chain_root, dotted
from kilnc.writer import Names


@final
@dataclass(frozen=True, slots=True)
class Classes:
    """The classes the module names for its callees: each callee's result classes,
    and each retrying node's `retry_on` classes, by name, where they are defined."""

    results: Mapping[Callee, tuple[ClassRef, ...]]
    retry_on: Mapping[NodeDef, Mapping[str, ClassRef]]


def arrange_module(
    source: SourceFile,
    defs: ModuleDefs,
    shaken: Shaken,
    plans: list[FlowPlan],
    lowered: list[FlowIR],
    sources: dict[str, SourceFile],
    fingerprints: dict[NodeDef, str],
    live: dict[NodeDef, str],
    found: Classes,
    ledger: str | None,
    outputs: Mapping[str, str],
) -> ModulePlan:
    """The output in source order, with each resilient node's Policy after its definition.

    A node imported from another module gets its Policy (and its fallback, imported
    under a reserved name) just before the first flow, after every kept import; so
    do the classes a cached node's results may hold that the module does not name.
    A flow comes after the nodes, flows and classes its call sites name (their
    last bindings: a flow finds what they hold once the module has run). What
    it imports of a module compiled with it (`outputs`: by source name, the
    output's name) comes from that output, as the nodes it calls do.
    """
    # A flow's class must hide nothing: not a builtin, nor a name of unknown origin.
    parsed = defs.parsed
    paths = {shown: _project_path(Path(shown)) for shown in sources}
    names = Names(parsed.global_names | BUILTINS | mentioned_names(parsed.module))
    called = {
        c.callee for ir in lowered for c in ir.calls if isinstance(c.callee, NodeDef)
    }
    local = {node.function: node for node in called if node.module == source.module}
    policies = {
        node: names.plain(f"_KILN_POLICY_{node.function.upper()}")
        for node in sorted(called, key=lambda n: (n.module, n.function))
        if node.options.resilient
    }
    fallbacks: dict[NodeDef, str] = {}
    imported: list[PolicyConstant | FallbackImport] = []
    class_imports: dict[tuple[str, str], FallbackImport] = {}
    kept = kept_names(shaken.body)
    for node in sorted(called, key=lambda n: (n.module, n.function)):
        fallback = node.options.fallback
        if fallback is not None and node.module == source.module:
            fallbacks[node] = fallback
        elif fallback is not None:
            fallbacks[node] = names.plain(f"_KILN_FALLBACK_{fallback.upper()}")
            imported.append(FallbackImport(fallbacks[node], node.module, fallback))
        if node in policies and node.module != source.module:
            where = found.retry_on.get(node, {})
            retry_on = tuple(
                _retry_class(
                    name, node, where.get(name), defs, kept, class_imports, names
                )
                for name in node.options.retry_on
            )
            imported += [i for i in class_imports.values() if i not in imported]
            imported.append(
                PolicyConstant(policies[node], node, _where(paths, node.span), retry_on)
            )
    classes = {
        node: place_classes(found.results[node], defs, kept, class_imports, names)
        for node in sorted(found.results, key=lambda n: (n.module, n.name))
    }
    imported += [line for line in class_imports.values() if line not in imported]
    by_identifier = {plan.flow.flow.identifier: plan for plan in plans}
    body: list[Kept | PolicyConstant | FallbackImport | Compiled] = []
    # A flow's class lists its call sites, which name its nodes and subflows when
    # the module runs: a flow written above one it calls comes out below it.
    # (Flows never call each other in a cycle: KLN401.)
    waiting: list[tuple[Compiled, set[str]]] = []
    emitted: set[str] = set()  # the nodes and flows of this module defined so far
    last = _last_bindings(shaken.body)
    for index, (item, span) in enumerate(zip(shaken.body, shaken.spans, strict=True)):
        if isinstance(item, str):
            body += imported
            imported = []
            plan = by_identifier[item]
            compiled = Compiled(plan, names.plain(_class_name(item)))
            needs = _local_callees(plan, local, by_identifier)
            needs |= _aliases_called(plan, defs)
            needs |= _local_classes(plan, found.results, source.module)
            waiting.append((compiled, needs - emitted))
        else:
            body.append(Kept(item, span))
            defined = (
                local.get(item.name.value)
                if isinstance(item, cst.FunctionDef)
                else None
            )
            if defined is not None and defined in policies:
                body.append(
                    PolicyConstant(
                        policies[defined],
                        defined,
                        _where(paths, defined.span),
                        defined.options.retry_on,
                    )
                )
            _define([b for b in _binds(item) if last[b] == index], emitted, waiting)
        while ready := [item for item in waiting if not item[1]]:
            waiting = [item for item in waiting if item[1]]
            for compiled, _ in ready:
                body.append(compiled)
                _define([compiled.plan.flow.flow.identifier], emitted, waiting)
    body += [compiled for compiled, _ in waiting]
    return ModulePlan(
        source,
        paths[source.path],
        tuple(sources.values()),
        shaken.prelude,
        tuple(_from_outputs(item, outputs) for item in body),
        paths,
        policies,
        fallbacks,
        fingerprints,
        classes,
        live=live,
        ledger=ledger,
        module_names=parsed.global_names,
        star_import=parsed.star_import,
    )


def _last_bindings(body: Iterable[cst.CSTNode | str]) -> dict[str, int]:
    """Where each name is bound last among the kept statements. A site names what
    the name holds once the module has run: a flow waits for its last binding."""
    return {
        name: index
        for index, item in enumerate(body)
        if not isinstance(item, str)
        for name in _binds(item)
    }


def _define(
    names: Iterable[str], emitted: set[str], waiting: list[tuple[Compiled, set[str]]]
) -> None:
    """`names` are bound for good: the flows waiting for them need them no more."""
    for name in names:
        emitted.add(name)
        for _, needs in waiting:
            needs.discard(name)


def _local_classes(
    plan: FlowPlan, results: Mapping[Callee, tuple[ClassRef, ...]], module: str
) -> set[str]:
    """The classes of this module that a flow's call sites name (their module-level names)."""
    return {
        ref.path.partition(".")[0]
        for call in plan.flow.calls
        for ref in results.get(call.callee, ())
        if ref.module == module
    }


def _local_callees(
    plan: FlowPlan, nodes: dict[str, NodeDef], flows: dict[str, FlowPlan]
) -> set[str]:
    """The names of the nodes and flows of this module that a flow calls."""
    return {
        name
        for call in plan.flow.calls
        for name in (
            [call.callee.function]
            if isinstance(call.callee, NodeDef)
            else [call.callee.identifier] if call.local else []
        )
        if name in nodes or name in flows
    }


def _aliases_called(plan: FlowPlan, defs: ModuleDefs) -> set[str]:
    """The module's names a flow calls a node by that are no def of its own (`get`
    of `get = fetch`, `Ops` of `Ops.fetch`): the call sites name them too."""
    heads = {alias.partition(".")[0] for alias in defs.aliases}
    return {
        identifier(root.value)
        for call in plan.flow.calls
        if isinstance(root := chain_root(call.call.func), cst.Name)
        and identifier(root.value) in heads
    }


def _binds(item: cst.CSTNode) -> set[str]:
    """The names a kept definition or assignment binds."""
    if isinstance(item, cst.FunctionDef | cst.ClassDef):
        return {item.name.value}
    if not isinstance(item, cst.SimpleStatementLine):
        return set()
    return set().union(
        *(
            target_names(target.target)
            for small in item.body
            if isinstance(small, cst.Assign)
            for target in small.targets
        ),
        *(
            target_names(small.target)
            for small in item.body
            if isinstance(small, cst.AnnAssign)
        ),
    )


def _from_outputs(
    item: Kept | PolicyConstant | FallbackImport | Compiled, outputs: Mapping[str, str]
) -> Kept | PolicyConstant | FallbackImport | Compiled:
    """A fallback or a class of a module compiled with this one, from its output:
    the compiled node raises the compiled module's `Flaky` and returns its
    `Report`, and its fallback reads the state the compiled node changes."""
    if isinstance(item, FallbackImport) and item.module in outputs:
        return FallbackImport(item.alias, outputs[item.module], item.function)
    return item


def _where(paths: dict[str, str], span: Span) -> str:
    return f"{paths.get(span.path, span.path)}:{span.line}"


def _class_name(identifier: str) -> str:
    words = [w for w in identifier.split("_") if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Flow"


def _project_path(path: Path) -> str:
    """The source path relative to the project root: the nearest pyproject.toml, else the
    directory imports start from."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if (parent / "pyproject.toml").is_file():
            return resolved.relative_to(parent).as_posix()
    return resolved.relative_to(locate(resolved).root).as_posix()


def place_classes(
    refs: tuple[ClassRef, ...],
    main: ModuleDefs,
    kept: frozenset[str],
    imports: dict[tuple[str, str], FallbackImport],
    names: Names,
) -> tuple[str, ...]:
    """How the module compiled from `main` names each class, adding imports it needs.

    `kept` are the names the generated module binds at module level; `imports`
    collects the ``from ... import ... as _KILN_CLASS_...`` lines, one per class.
    A class of the compiled module that its output does not keep is left out.
    """
    placed: list[str] = []
    for ref in refs:
        head, _, rest = ref.path.partition(".")
        tail = f".{rest}" if rest else ""
        if ref.module == main.location.name:
            if head in kept:
                placed.append(ref.path)
            continue
        local = _imported_as(main.imports, ref.module, head, kept)
        if local is not None:
            placed.append(local + tail)
            continue
        whole = _imported_as(main.imports, ref.module, None, kept)
        if whole is not None:
            placed.append(f"{whole}.{ref.path}")
            continue
        placed.append(_class_import(ref.module, ref.path, imports, names))
    return tuple(placed)


def _retry_class(
    name: str,
    node: NodeDef,
    defined: ClassRef | None,
    main: ModuleDefs,
    kept: frozenset[str],
    imports: dict[tuple[str, str], FallbackImport],
    names: Names,
) -> str:
    """A `retry_on` class of an imported node, as the generated module names it.

    A builtin as it is; a class whose definition kiln found (`defined`) as
    `place_classes` names a result class, so the flow's module need not
    import it itself; else through the node's module, where the decorator
    found it.
    """
    if name.partition(".")[0] in BUILTINS:
        return name
    placed = place_classes((defined,), main, kept, imports, names) if defined else ()
    return placed[0] if placed else _class_import(node.module, name, imports, names)


def _class_import(
    module: str,
    path: str,
    imports: dict[tuple[str, str], FallbackImport],
    names: Names,
) -> str:
    """`path` (a class of `module`, dotted or not) through the module's import of its
    first part, ``from module import head as _KILN_CLASS_HEAD``, made once."""
    head, _, rest = path.partition(".")
    line = imports.get((module, head))
    if line is None:
        alias = names.plain(f"_KILN_CLASS_{identifier(head).upper()}")
        line = imports[module, head] = FallbackImport(alias, module, head)
    return f"{line.alias}.{rest}" if rest else line.alias


def kept_names(body: Iterable[cst.CSTNode | str]) -> frozenset[str]:
    """The module-level names that the kept statements of a shaken module bind."""
    names: set[str] = set()
    for statement in body:
        if isinstance(statement, cst.ClassDef | cst.FunctionDef):
            names.add(identifier(statement.name.value))
        elif isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Import | cst.ImportFrom) and not isinstance(
                    small.names, cst.ImportStar
                ):
                    names.update(_bound_by(alias) for alias in small.names)
    return frozenset(names)


def _bound_by(alias: cst.ImportAlias) -> str:
    """The name an import binds: its `as` name, else the first part of what it names."""
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return identifier(alias.asname.name.value)
    return identifier((dotted(alias.name) or "").partition(".")[0])


def _imported_as(
    imports: Mapping[str, ImportedName],
    module: str,
    attribute: str | None,
    kept: frozenset[str],
) -> str | None:
    for local, imported in imports.items():
        whole = attribute is None and (
            f"{imported.module}.{imported.attribute}"
            == module  # from pkg import geometry
        )
        if (whole or imported == ImportedName(module, attribute)) and local in kept:
            return local
    return None
