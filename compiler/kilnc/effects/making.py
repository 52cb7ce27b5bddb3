"""What making an object of a project class runs besides the `__init__` (or
`__new__`) its construction is read from: its metaclass's `__call__`, and the
`__init__` Python runs after a `__new__`.

Example input (the module `app`)::

    CREATED: list[str] = []

    class Registered(type):
        def __call__(cls, *args, **kwargs):
            CREATED.append(cls.__name__)
            return super().__call__(*args, **kwargs)

    class Tracked(metaclass=Registered):
        pass

    class Client:
        _instance = None

        def __new__(cls) -> "Client":
            if cls._instance is None:
                cls._instance = super().__new__(cls)
            return cls._instance

        def __init__(self) -> None:
            CREATED.append("client")

Output: `Tracked()` adds to `app.CREATED` as `Registered.__call__` does
(what it does to `cls` it does to the class `app.Tracked`), and `Client()`
runs `Client.__init__` after `Client.__new__`, so it adds to `app.CREATED`
too (what `__init__` does to `self`, it may do to the one object `__new__`
keeps in the class). A metaclass kiln cannot read the `__call__` of (one a
decorator wraps) may do what any code of it may (class_code.py); one of an
installed package (`ABCMeta`) runs what making the class runs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from kilnc.effect_ir import Change, Effects, join_state
from kilnc.effects.class_code import any_code, defines, on_instance
from kilnc.effects.method_defs import method_def
from kilnc.syntax import code

if TYPE_CHECKING:  # the reader reads what making an object runs with this module
    from kilnc.effects.lookup import Lookup
    from kilnc.effects.methods import ClassFound


def made_also(reader: Lookup, module: str, name: str, effects: Effects) -> Effects:
    """`effects`, of the function or class `name` of `module`, with what making
    an object of it runs besides the code they were read from."""
    found = reader.classes.find_in(module, name) if "." not in name else None
    if found is None:
        return effects
    piece = reader.classes.pieces.of_class(found[0], name) or f"{module}.{name}"
    for extra in (
        _of_metaclass(reader, found, piece),
        _after_new(reader, found, piece),
    ):
        if extra is not None:
            effects = _joined(effects, extra)
    return effects


def _of_metaclass(reader: Lookup, found: ClassFound, piece: str) -> Effects | None:
    """What the project metaclass's `__call__` does, `cls` the class made."""
    meta = _metaclass(reader, found)
    if meta is None:
        return None
    method = reader.classes.method(meta, "__call__")
    if method is None:
        if not defines(reader, meta, "__call__"):
            return None  # `type.__call__`: what making the class runs
        made = Change(
            f"makes an object of a class whose metaclass {meta[1].name.value} "
            "has a __call__ kiln cannot read",
            meta[0].parsed.span(meta[1]),
        )
        return any_code(reader, meta, piece, made)
    return on_instance(reader.of_function(method.module, method.qualname), piece)


def _metaclass(reader: Lookup, found: ClassFound) -> ClassFound | None:
    """The project class named as the metaclass of `found` or of its first
    base that names one (a subclass's class is its base's metaclass)."""
    order, _ = reader.classes.linearize(found)
    for defs, cls in order:
        for keyword in cls.keywords:
            if keyword.keyword is not None and keyword.keyword.value == "metaclass":
                return reader.classes.find(defs, code(keyword.value))
    return None


def _after_new(reader: Lookup, found: ClassFound, piece: str) -> Effects | None:
    """The `__init__` run after the class's own `__new__` (read in its place),
    on an object `__new__` may keep in the class: the class's state."""
    if method_def(found[1], "__new__") is None:
        return None
    init = reader.classes.method(found, "__init__")
    if init is None:
        return None
    return on_instance(reader.of_function(init.module, init.qualname), piece)


def _joined(effects: Effects, extra: Effects) -> Effects:
    """`effects` and what `extra`, code run with them, does beyond its arguments."""
    return replace(
        effects,
        external=effects.external or extra.external,
        reads_state=effects.reads_state or extra.reads_state,
        context=effects.context or extra.context,
        state=effects.state or extra.state,
        state_uses=join_state(effects.state_uses, extra.state_uses),
        result_state=effects.result_state or bool(extra.result_pieces),
        result_pieces=effects.result_pieces | extra.result_pieces,
    )
