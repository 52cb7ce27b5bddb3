"""Which names generated code may write, allocated around the user's.

Generated code names its own things with the reserved prefix `_kiln`, which
user code cannot use (KLN203). The few names it writes without the prefix
are chosen here so that none of them means something else than it should:

    name                      | a user name that would collide     | what the emitter writes
    self, item                | the flow uses the name             | _kiln_self, _kiln_item
    Exception, int, range,    | a module or flow name binds it     | _kiln_builtins.X
      len, dict, zip, set     |                                    |
    forward, aforward,        | the flow's signature uses it (read | _kiln_outer_forward, a
      stream, astream         |   in the class's scope)            |   module-level alias
    a name of a node's        | the flow binds it (the annotation  | _kiln_outer_X, a
      annotation              |   is read in the flow's method)    |   module-level alias

A flow's class takes no name of the module and no builtin (`pipeline._arrange`).
"""

from __future__ import annotations

from typing import Final

import libcst as cst

from kilnc.ir import FlowDef
from kilnc.names import all_params, name_uses
from kilnc.plan import ModulePlan
from kilnc.renaming import renamed

RUNTIME = "_kiln"  # the generated module's name for the kiln runtime
BUILTINS = "_kiln_builtins"  # the builtins module, when a user name hides one we call
# The methods of a flow's class: its signatures are read in the class's scope,
# where these names mean the methods.
METHODS: Final = frozenset(
    {"forward", "aforward", "stream", "astream", "__call__", "resume", "aresume"}
)
# The builtins generated code calls: a user name may hide them.
CALLED_BUILTINS: Final = frozenset({"int", "dict", "zip", "set", "next"})
# Every name generated code writes without the reserved prefix (the table above);
# tests/test_generated_names.py gives the user each of them, in every role.
GENERATED_NAMES: Final = (
    frozenset({"self", "item", "calls"}) | METHODS | CALLED_BUILTINS
)


def hidden_builtins(flow: FlowDef, module: ModulePlan) -> frozenset[str]:
    """The builtins generated code calls that a name of the module or the flow hides."""
    if module.star_import:  # it may bind any name
        return CALLED_BUILTINS
    return CALLED_BUILTINS & (module.module_names | flow.bound)


def signature_aliases(flow: FlowDef) -> dict[str, str]:
    """Module-level aliases for the names in a flow's signature that its methods hide.

    A method's annotations and defaults are read in the class's scope, where
    `forward` is the method: `def forward(self, x: forward)` would not mean the
    user's `forward`. `emit_module` writes the aliases before the class.
    """
    function = flow.function
    parts: list[cst.CSTNode] = [
        part
        for param in all_params(function.params)
        for part in (param.annotation, param.default)
        if part is not None
    ]
    if function.returns is not None:
        parts.append(function.returns)
    used = set().union(*(name_uses(part).read_names for part in parts))
    return {name: outer_alias(name) for name in sorted(used & METHODS)}


def outer_alias(name: str) -> str:
    """A module-level name for `name`, where generated code cannot write `name` itself."""
    return f"{RUNTIME}_outer_{name}"


def renamed_in_signature(
    function: cst.FunctionDef, names: dict[str, str]
) -> cst.FunctionDef:
    """The function with `names` renamed in its annotations and defaults, not its parameters."""
    if not names:
        return function

    def param(node: cst.Param) -> cst.Param:
        annotation = node.annotation
        default = node.default
        return node.with_changes(
            annotation=renamed(annotation, names) if annotation else None,
            default=renamed(default, names) if default else None,
        )

    params = function.params
    stars = {
        field: param(value)
        for field in ("star_arg", "star_kwarg")
        if isinstance(value := getattr(params, field), cst.Param)
    }
    return function.with_changes(
        params=params.with_changes(
            posonly_params=[param(p) for p in params.posonly_params],
            params=[param(p) for p in params.params],
            kwonly_params=[param(p) for p in params.kwonly_params],
            **stars,
        ),
        returns=renamed(function.returns, names) if function.returns else None,
    )
