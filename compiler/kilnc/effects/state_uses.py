"""How one body uses each piece of module state: reads, changes, adds to or fills it.

Example input (a node's body, in the module `app`)::

    global _client
    if _client is None:            # a fill: a store the body guards by a test
        _client = make_client()    #   of the same name's absence
    LOG.append(key)                # an accumulation: it commutes with others
    if key not in CACHE:
        CACHE[key] = await compute(key)        # a fill
    SEEN[key] = 1                  # a write
    return Config.mode             # a read of the class `Config`'s state

Output, on the `Body`: `app._client` and `app.CACHE` FILL, `app.LOG`
ACCUMULATE, `app.SEEN` WRITE, `app.Config` READ. The visitor reports each
read and change as it meets it (`record`); `Idioms` (`idioms.py`), found
first, says which of those are part of an accumulation or a fill, whose
access it is then.
A name the body declares `global`, and a local bound to a piece of module
state (`cache = CACHE`), are that state.

Accumulations and fills are read from their syntax: `LOG.append(x)` is an
accumulation unless `LOG`'s `append` is a method of the project's, which
kiln reads instead, and so are the folds `COUNTS[k] = COUNTS.get(k, 0) + 1`
and `PEAK[1] = max(PEAK)` (a high-water mark: what it reads is the fold's).
A fill is a store inside an `if` that tests the same state's absence, or
after an `if` that returns when it is present (a memo); it assumes the
value filled does not depend on who fills it (two memoised calls of one
function fill in the same value).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeGuard

import libcst as cst

from kilnc.effect_ir import RECEIVER, Access, Change, StateUse, on_object, part_of
from kilnc.effects.closures import wrapped_state
from kilnc.effects.module_state import holds_state, of_instance_class
from kilnc.effects.receivers import type_of
from kilnc.effects.reflection import unreflected
from kilnc.effects.seeds import seeded
from kilnc.effects.shared_items import item_of
from kilnc.mutability import is_pure
from kilnc.names import identifier
from kilnc.syntax import chain_root, code, dotted

# The process's environment variables: state every module and node shares.
ENVIRONMENT: Final = "os.environ"
_ENVIRONMENT_CALLS: Final = {
    "os.getenv": Access.READ,
    "os.putenv": Access.WRITE,
    "os.unsetenv": Access.WRITE,
}

# The process's working directory, which a relative path is resolved against:
# `os.chdir` changes it, and a call that may be given a relative path reads it
# (`open("report.csv")`, `os.listdir()`, `shutil.copy`, `subprocess.run`).
WORKING_DIRECTORY: Final = "os.getcwd"
_CHANGES_DIRECTORY: Final = frozenset({"os.chdir", "os.fchdir", "contextlib.chdir"})
_TAKES_PATHS: Final = (
    "builtins.open",
    "io.open",
    "os.",
    "shutil.",
    "glob.",
    "subprocess.",
    "pathlib.",
    "sqlite3.connect",
)

if TYPE_CHECKING:  # the body asks this module what it uses: a cycle
    from kilnc.effects.body import Body
    from kilnc.effects.idioms import Idioms
    from kilnc.effects.methods import Target


def state_of(
    body: Body,
    node: cst.BaseExpression,
    idioms: Idioms | None = None,
    called: bool = False,
    seen: frozenset[str] = frozenset(),
) -> str | None:
    """The piece of module state `node` is, or is part of (`app.cache.SEEN` of
    `SEEN[key]`, `c.SEEN.get`), by its defining module's name; None for none."""
    node = unreflected(node)  # `getattr(Config, "items")`, `vars(m)["SEEN"]`
    head = node
    while isinstance(head, cst.Subscript) or (
        isinstance(head, cst.Attribute) and dotted(head) is None
    ):
        head = head.value
    root = chain_root(head)
    if isinstance(root, cst.Name) and _in_environment(body, head):
        return ENVIRONMENT  # `os.environ["KEY"]`: the process's, every module's
    pieces = body.reader.classes.pieces  # a class's, with its bases' (class_pieces.py)
    if _own_class(body, root) and body.owner is not None:  # `type(self).count`
        return pieces.of_class(body.defs, body.owner)
    if _type_call(root):  # `type(cfg).level`, `cfg` of a project class
        typed = type_of(body, root.args[0].value)
        return pieces.of_class(*typed) if typed is not None else None
    if isinstance(root, cst.Call):  # `get_store()[key]`, of `return STORE`
        imported = _imported(body, root)
        if imported is not None:  # `importlib.import_module("app.store").CACHE`
            return _in_module(body, imported, _attributes(head, root), called)
        return _returned(body, root, idioms or body.idioms)
    if not isinstance(root, cst.Name):
        return None
    idioms = idioms or body.idioms
    name = identifier(root.value)
    if name in body.defaults and name not in body.local_names:
        return body.defaults[name]  # `_seen[key]` of `def f(key, _seen={})`
    if name in (body.receiver, body.made) and name not in body.local_names:
        piece = _of_receiver(head, called)
        # An `__init__`'s object is no state yet, but what its class holds is.
        own = piece if name == body.receiver else None
        if piece == f"{RECEIVER}.__class__" and body.owner is not None:
            return pieces.of_class(body.defs, body.owner)  # `self.__class__.registry`
        if piece is None or body.owner is None:
            return own
        attribute = piece.removeprefix(f"{RECEIVER}.")
        return pieces.of_attribute(body.defs, body.owner, attribute) or own
    shared = (
        _of_typed_instance(body, root, head)
        if name in body.params or name in body.local_names
        else None
    )
    if shared is not None:
        # `bot.history`, `bot` a `Bot` whose body assigns `history = []`: the
        # class's, which every instance shares until one sets its own.
        return shared
    if name in idioms.declared or body.is_module_state(root):
        if isinstance(head, cst.Attribute) and head.value is root:  # `STORE.mode`
            shared = of_instance_class(body, name, identifier(head.attr.value))
            if shared is not None:
                return shared
        # A constant too: another module may rebind it (`settings.LIMIT = 5`).
        called = called and head is node
        piece = body.reader.state_name(body.defs, head, called, constants=True)
        if piece is None and isinstance(head, cst.Attribute) and not called:
            return wrapped_state(body, name)  # `first.log`, `first` decorated
        return piece
    if name in idioms.imported:  # `from app.store import CACHE` in the body
        module, imported = idioms.imported[name]
        rest = (dotted(head) or name).partition(".")[2]
        return _in_module(body, module, [imported, *rest.split(".")], called)
    held = idioms.aliases.get(name)
    if held is None and node is not root:  # `vals[0]` of a copy of state's items
        held = idioms.copies.get(name)
    if held is None or name in seen or name in body.params:
        return None
    return state_of(body, held, idioms, seen=seen | {name})


def _of_typed_instance(
    body: Body, root: cst.Name, head: cst.BaseExpression
) -> str | None:
    """The class attribute `head` reads of an object of a project class (`bot.history`)."""
    attributes = _attributes(head, root)
    typed = type_of(body, root) if attributes else None
    if typed is None:
        return None
    pieces = body.reader.classes.pieces
    if attributes[0] == "__class__":  # `cfg.__class__.level`
        return pieces.of_class(*typed)
    return pieces.of_attribute(*typed, attributes[0])


def _in_module(
    body: Body, module: str, attributes: list[str], called: bool
) -> str | None:
    """The piece `module.a.b` is, of a project module: the whole module's state
    where no attribute is named (as `globals()` is)."""
    defs = body.reader.module_defs(module)
    named = [attribute for attribute in attributes if attribute]
    if defs is None or not named:
        return module if defs is not None else None
    return body.reader.state_name(defs, cst.parse_expression(".".join(named)), called)


def _imported(body: Body, call: cst.Call) -> str | None:
    """The project module `importlib.import_module("app.store")` names."""
    # Named so in the module, or so by `unreflected` (`sys.modules["app.store"]`).
    resolved = body.reader.resolve(body.defs, call.func) or dotted(call.func)
    if resolved != "importlib.import_module" or len(call.args) != 1:
        return None
    name = call.args[0].value
    if isinstance(name, cst.Name) and name.value == "__name__":
        return body.defs.location.name  # `sys.modules[__name__]`: its own module
    if not isinstance(name, cst.SimpleString):
        return None
    module = name.evaluated_value
    return module if isinstance(module, str) else None


def _attributes(head: cst.BaseExpression, root: cst.BaseExpression) -> list[str]:
    """The attribute names from `root` out to `head`: `["CACHE"]` of `m(...).CACHE`."""
    names: list[str] = []
    node = head
    while node is not root and isinstance(node, cst.Attribute | cst.Subscript):
        if isinstance(node, cst.Attribute):
            names.append(identifier(node.attr.value))
        node = node.value
    return names[::-1]


def environment_call(body: Body, node: cst.Call, qualified: str) -> bool:
    """`os.getenv(k)` reads the process's environment, `os.putenv(k, v)` changes
    it (True: nothing more to read); `random.randint(0, 9)` draws from the
    process's one generator, which a seed makes give the same numbers in the
    same order, so it changes it (False: the call is read on)."""
    span = body.defs.parsed.span(node)
    module, _, name = qualified.rpartition(".")
    if (
        module in _GENERATORS
        and name not in _GENERATORS[module]
        and _seeded(body, module)
    ):  # Read on as any call: `random.shuffle(deck)` changes `deck` too.
        merge(body, module, StateUse(Access.WRITE, Change(f"calls {qualified}", span)))
        return False
    access = _ENVIRONMENT_CALLS.get(qualified)
    if access is None:
        working_directory(body, node, qualified)
        return False
    merge(body, ENVIRONMENT, StateUse(access, Change(f"calls {qualified}", span)))
    return True


def working_directory(body: Body, node: cst.Call, qualified: str) -> None:
    """`os.chdir(path)` changes the process's working directory; `open(name)`,
    `os.path.abspath(name)`, `shutil.copy(a, b)` may resolve a relative path
    against it, and read it. `os.path.join` and other pure calls do not."""
    if qualified in _CHANGES_DIRECTORY:
        access = Access.WRITE
    elif qualified.startswith(_TAKES_PATHS) and not is_pure(qualified):
        access = Access.READ
    else:
        return
    shown = qualified.removeprefix("builtins.")
    change = Change(f"calls {shown}", body.defs.parsed.span(node))
    merge(body, WORKING_DIRECTORY, StateUse(access, change))


# Modules whose functions draw from one generator of the process's, each with
# the names that make a generator of its own instead.
_GENERATORS: Final = {
    "random": frozenset({"Random", "SystemRandom"}),
    "numpy.random": frozenset(
        {"default_rng", "Generator", "RandomState", "SeedSequence", "PCG64"}
    ),
}


def _seeded(body: Body, module: str) -> bool:
    """Whether a module of the project kiln has read seeds `module`'s generator
    (`random.seed(42)`): unseeded, its draws are no more the source's in one
    order than in another, and nodes that draw (a jittered wait) overlap.
    Read from what calls name through their imports (seeds.py), not their text."""
    return seeded(body.reader, module)


def _in_environment(body: Body, head: cst.BaseExpression) -> bool:
    resolved = body.reader.resolve(body.defs, head) or ""
    return resolved == ENVIRONMENT or resolved.startswith(f"{ENVIRONMENT}.")


def names_whole(
    body: Body,
    node: cst.BaseExpression,
    idioms: Idioms,
    seen: frozenset[str] = frozenset(),
) -> bool:
    """Whether `node` names a whole piece of state (`GAUGE`, `c.GAUGE`, `self`, a
    local bound to one), not a part of one (`GAUGE.inner`, `CACHE[key]`)."""
    if isinstance(node, cst.Name):
        name = identifier(node.value)
        held = idioms.aliases.get(name)
        return held is None or (
            name not in seen and names_whole(body, held, idioms, seen | {name})
        )
    if not isinstance(node, cst.Attribute):
        return False
    return state_of(body, node.value, idioms) is None


def on_called(
    body: Body,
    argument: cst.BaseExpression | None,
    name: str,
    idioms: Idioms | None = None,
) -> str | None:
    """The piece a method's use of its object (`<self>.now`) is, the method called
    on `argument`: `app.GAUGE.now` on `GAUGE` itself, `app.GAUGE` on a part of it
    (`GAUGE.inner`); None on what is no module state."""
    if argument is None:
        return None
    idioms = idioms or body.idioms
    piece = state_of(body, argument, idioms)
    if piece is None or not names_whole(body, argument, idioms):
        return piece
    return on_object(name, piece)


def _returned(body: Body, call: cst.Call, idioms: Idioms) -> str | None:
    """The piece of module state a project function's or method's result is part
    of, where it returns one piece (`def get_store(): return STORE`)."""
    func = call.func
    builtin = body.reader.resolve(body.defs, func)
    if builtin == "builtins.vars" and call.args:  # `vars(CFG)[key] = value`
        attribute = cst.Attribute(call.args[0].value, cst.Name("__dict__"))
        return state_of(body, attribute, idioms)
    if builtin == "builtins.globals":  # every piece of the module
        return body.defs.location.name
    container = item_of(body, call)  # `BUFFERS.get(k, [])`, `max(MODELS, key=f)`
    if container is not None:
        return state_of(body, container, idioms)
    target = called_target(body, func)
    if target is None:
        return None
    module, name, receiver = target
    effects = body.reader.of_function(module, name)
    pieces = effects.result_pieces
    if not pieces:  # `Session(LOG)`, whose `__init__` keeps `log`: LOG's, in part
        pieces = frozenset(
            piece
            for param, argument in effects.bind(call, receiver)
            if param in effects.returns
            and (piece := state_of(body, argument, idioms)) is not None
        )
    if len(pieces) != 1:
        return None
    [piece] = pieces
    if not part_of(piece, RECEIVER):
        return piece
    return on_called(body, receiver, piece, idioms)


def called_target(body: Body, func: cst.BaseExpression) -> Target | None:
    """The project function or method a call of `func` runs, and its receiver."""
    target = body.reader.called(body, func) if isinstance(func, cst.Attribute) else None
    if target is None:
        qualified = body.reader.resolve(body.defs, func)
        found = body.reader.project_function(qualified) if qualified else None
        target = (*found, None) if found else None
    return target


def _own_class(body: Body, node: cst.BaseExpression) -> bool:
    """Whether `node` is `type(self)` in a method or an `__init__`."""
    return (
        _type_call(node)
        and isinstance(node.args[0].value, cst.Name)
        and node.args[0].value.value in (body.receiver, body.made)
    )


def _type_call(node: cst.BaseExpression) -> TypeGuard[cst.Call]:
    return (
        isinstance(node, cst.Call)
        and dotted(node.func) == "type"
        and len(node.args) == 1
    )


def _of_receiver(head: cst.BaseExpression, called: bool) -> str | None:
    """The part of a method's object `head` is: `<self>.data` of `self.data[k]`
    and `self.data.get`, `<self>` of `self` itself; None for a method it calls
    (`self.flush()`), whose own uses are the call's."""
    first = None
    node = head
    while isinstance(node, cst.Attribute | cst.Subscript):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            first = identifier(node.attr.value)
            if called and node is head:
                return None
        node = node.value
    return RECEIVER if first is None else f"{RECEIVER}.{first}"


def record(
    body: Body,
    node: cst.BaseExpression,
    access: Access,
    reason: str,
    where: cst.CSTNode,
    idioms: Idioms | None = None,
    called: bool = False,
    guessed: bool = False,
) -> None:
    """A read (or a change) of what `node` is, if it is module state: the
    access of the idiom it is part of, if any. A change kiln only `guessed`
    (`StateUse.guessed`) gives way to one it reads."""
    idioms = idioms or body.idioms
    name = state_of(body, node, idioms, called)
    if name is None:
        return
    access = idioms.kinds.get(id(chain_root(node)), access)
    guessed = guessed and access is not Access.READ
    before = body.found.state_uses.get(name)
    # A change it reads, where it had only guessed one so far.
    seen = access is not Access.READ and not guessed
    read = seen and before is not None and before.guessed
    if before is None or before.access.join(access) is not before.access or read:
        where_found = Change(reason, body.defs.parsed.span(where))
        merge(body, name, StateUse(access, where_found, guessed))


def returned_state(body: Body, value: cst.BaseExpression) -> None:
    """`return value`: the module state the result is, or holds. `return STORE`:
    `get_store()[k] = v`; `return cls._instance`, a class's; `return
    self.items`, its object's (`<self>.items`), module state's only where the
    object it is called on is."""
    piece = state_of(body, value)
    own = piece is not None and part_of(piece, RECEIVER)
    state = holds_state(body, value) or (piece is not None and not own)
    body.found.result_state |= state
    if piece is not None and (own or state):
        body.found.result_pieces.add(piece)


def read_reflected(body: Body, node: cst.Subscript) -> None:
    """A read of the state a reflective subscript names (`globals()["BOX"]`,
    `vars(app.cache)["SEEN"]`), which no name in the code is."""
    if unreflected(node) is not node:
        record(body, node, Access.READ, f"reads {code(node)}", node)


def merge(body: Body, name: str, use: StateUse) -> None:
    """Another use of the piece of module state `name`: the first place of
    each kind stays, so a reason is the same in every round of a fixed point."""
    uses = body.found.state_uses
    uses[name] = uses[name].join(use) if name in uses else use
