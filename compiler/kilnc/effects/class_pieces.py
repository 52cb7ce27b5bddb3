"""Which piece of module state a class is across the project: a class and its bases are one.

Example input::

    # app/base.py
    class BaseAgent:
        turns = 0

        def take_turn(self) -> int:
            type(self).turns += 1
            return type(self).turns

    # app/workers.py
    from app.base import BaseAgent

    class Coder(BaseAgent): ...

    CODER = Coder()

Output: the piece `app.base.BaseAgent` for `Coder` as for `BaseAgent`, so
`Coder.turns` reads what `type(self).turns += 1` changes (`self` may be
`CODER`), and `app.base.BaseAgent.turns` for `CODER.turns`, and for
`self.turns` in a method of `Coder`: the attribute its base's body assigns.

Within one module, `module_state.py` makes a class and its bases one piece
(`shared`). Across modules, each class of the program's modules
(`program.py`) whose base is another module's class joins that base's piece;
the pieces so joined are named by the first, in name order, of those whose
classes have no base of another module's (the hierarchy's roots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import libcst as cst

from kilnc.effects.module_state import class_state, module_state, of_class_body
from kilnc.syntax import code

if TYPE_CHECKING:
    from kilnc.effects.methods import Classes, ClassFound
    from kilnc.front import ModuleDefs

_DEPTH: Final = 8  # how many modules deep a class's bases are followed


class ClassPieces:
    """The project's classes as pieces of module state, each with its bases'."""

    def __init__(self, classes: Classes) -> None:
        self.classes = classes
        self._joined: dict[str, str] | None = None

    def canonical(self, piece: str, depth: int = _DEPTH) -> str:
        """The piece `piece` (one module's own name for it, `app.workers.Coder`)
        is in the project: its hierarchy's (`app.base.BaseAgent`)."""
        module, _, name = piece.rpartition(".")
        defs = self.classes.project.modules.get(module)
        if defs is None or not _of_class(defs, name):
            return piece  # a value's, of no class
        if self._joined is None:
            self._joined = self._join()
        if piece in self._joined or depth == 0:
            return self._joined.get(piece, piece)
        # A module outside the program's (read by reflection, say): its class
        # is its first base's of another module, where it has one.
        statement = _class(defs, name)
        if module in self.classes.program.found or statement is None:
            return piece
        bases = self._bases(defs, statement)
        return self.canonical(bases[0], depth - 1) if bases else piece

    def of_class(self, defs: ModuleDefs, name: str) -> str | None:
        """The piece the class `name` (as `defs`' module names it) is, if its
        attributes may be assigned: `app.base.BaseAgent` of `Coder`."""
        found = self.classes.find(defs, name)
        piece = class_state(found[0], found[1].name.value) if found else None
        piece = piece or class_state(defs, name)  # a class bound again, say
        return self.canonical(piece) if piece is not None else None

    def of_attribute(self, defs: ModuleDefs, name: str, attribute: str) -> str | None:
        """`app.base.BaseAgent.turns`: the piece `attribute` of an object of
        the class `name` is, where the body of the class or of a base assigns it
        (`turns = 0`): the class's, until the object sets its own."""
        found = self.classes.find(defs, name)
        if found is None:  # a class bound again, say: its own body, in its module
            own = of_class_body(defs, name, attribute)
            whole = own.removesuffix(f".{attribute}") if own else None
            return f"{self.canonical(whole)}.{attribute}" if whole else None
        for owner, cls in self.classes.linearize(found)[0]:
            assigned = module_state(owner.parsed.module).class_attributes
            if attribute in assigned.get(cls.name.value, ()):
                piece = self.of_class(owner, cls.name.value)
                return f"{piece}.{attribute}" if piece is not None else None
        return None

    def _join(self) -> dict[str, str]:
        """Each class piece of the program's modules joined with its bases of
        other modules, by its hierarchy's name."""
        linked: dict[str, set[str]] = {}
        based: set[str] = set()  # pieces with a base of another module's
        for module in self.classes.program.subclassing():
            defs = self.classes.project.load(module)
            for statement in defs.parsed.module.body if defs is not None else ():
                if not isinstance(statement, cst.ClassDef) or defs is None:
                    continue
                piece = class_state(defs, statement.name.value)
                for other in self._bases(defs, statement) if piece else []:
                    assert piece is not None
                    linked.setdefault(piece, set()).add(other)
                    linked.setdefault(other, set()).add(piece)
                    based.add(piece)
        joined: dict[str, str] = {}
        for start in sorted(linked):
            if start in joined:
                continue
            group, todo = {start}, [start]
            while todo:
                for other in linked[todo.pop()] - group:
                    group.add(other)
                    todo.append(other)
            roots = sorted(group - based) or sorted(group)
            joined |= dict.fromkeys(group, roots[0])
        return joined

    def _bases(self, defs: ModuleDefs, statement: cst.ClassDef) -> list[str]:
        """The pieces of the class's bases that other modules define."""
        found: list[str] = []
        for base in statement.bases:
            if base.keyword is not None:
                continue  # `metaclass=...`
            read: ClassFound | None = self.classes.find(
                defs, code(base.value).partition("[")[0]
            )
            if read is None or read[0] is defs:
                continue
            piece = class_state(read[0], read[1].name.value)
            if piece is not None:
                found.append(piece)
        return found


def _of_class(defs: ModuleDefs, name: str) -> bool:
    """Whether the module's piece `name` holds a class (with values, maybe)."""
    state = module_state(defs.parsed.module)
    return any(state.shared.get(cls, cls) == name for cls in state.classes)


def _class(defs: ModuleDefs, name: str) -> cst.ClassDef | None:
    for statement in defs.parsed.module.body:
        if isinstance(statement, cst.ClassDef) and statement.name.value == name:
            return statement
    return None
