"""What reading one body asks of the project's other functions (the effects reader).

`Body` reads a function or a flow's statement through this protocol; the
reader in `__init__.py` answers from the project's modules and the effects
it has read so far.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import libcst as cst

from kilnc.effect_ir import Effects
from kilnc.effects.methods import Classes, Method, Target
from kilnc.front import ModuleDefs

if TYPE_CHECKING:  # a body asks the reader; the reader reads bodies
    from kilnc.effects.body import Body
    from kilnc.effects.closures import Passed
    from kilnc.project import Project


class Lookup(Protocol):
    """What reading a body asks of the project's other functions."""

    project: Project  # its modules, read on demand
    classes: Classes  # its classes, found by name

    def resolve(self, defs: ModuleDefs, func: cst.BaseExpression) -> str | None: ...

    def project_function(self, qualified: str) -> tuple[str, str] | None: ...

    def of_function(self, module: str, name: str) -> Effects: ...

    def of_lambda(
        self, defs: ModuleDefs, function: cst.Lambda | cst.FunctionDef
    ) -> Effects: ...

    def escaped(self) -> Effects: ...

    def log_handlers(self) -> Effects: ...

    def closures(
        self, module: str, name: str, made: str, passed: Passed = (), of: str = ""
    ) -> Effects | None: ...

    def is_logger(self, defs: ModuleDefs, node: cst.BaseExpression) -> bool: ...

    def state_name(
        self,
        defs: ModuleDefs,
        node: cst.BaseExpression,
        called: bool,
        constants: bool = False,
    ) -> str | None: ...

    def is_typed_dict(self, defs: ModuleDefs, annotation: str) -> bool: ...

    def library_name(self, module: str, name: str) -> str | None: ...

    def attribute_type(
        self, defs: ModuleDefs, annotation: str, attribute: str
    ) -> tuple[ModuleDefs, str] | None: ...

    def method(
        self, defs: ModuleDefs, annotation: str, name: str, skip: int = 0
    ) -> Method | None: ...

    def is_class(self, defs: ModuleDefs, name: str) -> bool: ...

    def class_of(
        self, defs: ModuleDefs, name: str
    ) -> tuple[ModuleDefs, str] | None: ...

    def module_defs(self, module: str) -> ModuleDefs | None: ...

    def returns(self, module: str, name: str) -> tuple[ModuleDefs, str] | None: ...

    def called(self, body: Body, func: cst.Attribute) -> Target | None: ...

    def overrides(
        self, defs: ModuleDefs, annotation: str | None, name: str
    ) -> list[Method]: ...
