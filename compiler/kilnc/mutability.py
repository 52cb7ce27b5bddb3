"""What kiln knows about Python's own types and functions: which change what.

The effects pass (effects.py) reads the project's code; these tables answer
for the code it cannot read: builtins, the standard library, the methods of
the builtin containers, and the annotations whose values can never change.
A name missing from every table is unknown, and unknown counts as a change.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Final

import libcst as cst

from kilnc.syntax import dotted


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Builtins that neither change their arguments nor touch the world. Those that
# iterate an argument consume an iterator, which is a change of that iterator.
PURE_BUILTINS: Final = _words(
    "abs ascii bin bool bytes callable chr complex divmod float format getattr hasattr "
    "hash hex id int isinstance issubclass iter len oct ord pow range repr round slice "
    "str type vars"
)
# The builtin exception classes: making one (`raise KeyError(key)`) keeps its
# arguments in `args`, and neither changes them nor touches the world.
BUILTIN_EXCEPTIONS: Final = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
# Builtins whose result shares no object with their arguments.
FRESH_BUILTINS: Final = _words(
    "abs ascii bin bool bytes callable chr complex divmod float format hasattr hash "
    "hex id int isinstance issubclass len oct ord pow range repr round str all any sum "
    "print input open"
)
ITERATING_BUILTINS: Final = _words(
    "all any dict enumerate filter frozenset list map max min reversed set sorted sum "
    "tuple zip bytearray"
)
EXTERNAL_BUILTINS: Final = _words(
    "print open input exec eval breakpoint exit quit compile __import__ help"
)
# Standard-library functions that are pure (module prefixes end with a dot).
PURE_LIBRARY: Final = _words(
    """math. cmath. json.dumps json.loads copy.copy copy.deepcopy re. operator.
    statistics. textwrap. string. itertools. functools.reduce functools.partial
    dataclasses.asdict dataclasses.astuple dataclasses.replace dataclasses.fields
    dataclasses.is_dataclass collections. decimal. fractions. datetime. uuid.UUID
    hashlib. base64. urllib.parse. os.path.join os.path.basename os.path.dirname
    os.path.split os.path.splitext os.path.normpath os.path.normcase os.path.isabs
    pathlib.PurePath pathlib.Path typing. enum. html.escape html.unescape
    unicodedata. shlex.quote shlex.split difflib. binascii. zlib.crc32 struct.pack
    struct.unpack time.sleep asyncio.sleep heapq.nlargest heapq.nsmallest
    heapq.merge bisect.bisect bisect.bisect_left bisect.bisect_right kiln.Memory
    kiln.memory.Memory kiln.ask kiln.decorators.ask"""
)
# Reads of the world under pure prefixes: a clock read where the source reads it.
_WORLD_READS: Final = _words(
    """datetime.datetime.now datetime.datetime.utcnow datetime.datetime.today
    datetime.date.today"""
)
# Standard-library functions that iterate their arguments, as `list` does: what
# they are given, an iterator, is consumed.
ITERATING_LIBRARY: Final = _words(
    """itertools. collections.deque collections.Counter collections.OrderedDict
    statistics. heapq.merge heapq.nlargest heapq.nsmallest functools.reduce math.fsum
    math.prod operator.countOf operator.indexOf"""
)
# Standard-library functions whose result shares no object with their arguments.
FRESH_LIBRARY: Final = _words(
    """copy.deepcopy json.dumps json.loads math. statistics. hashlib. base64.
    textwrap. html.escape html.unescape shlex.quote uuid.UUID decimal.Decimal"""
)
# Standard-library functions that change their first argument.
# The rest of `operator` is pure: these are its item stores and in-place operators.
_OPERATOR_CHANGES = _words(
    """setitem delitem iadd iand iconcat ifloordiv ilshift imod imul imatmul ior ipow
    irshift isub itruediv ixor"""
)
MUTATING_LIBRARY: Final = _words(
    "heapq.heappush heapq.heappop heapq.heapify heapq.heapreplace heapq.heappushpop "
    "bisect.insort bisect.insort_left bisect.insort_right random.shuffle"
) | {f"operator.{n}" for w in _OPERATOR_CHANGES for n in (w, f"__{w}__")}
# Methods, whatever their object, that change the first argument they are passed
# (`random.Random(seed).shuffle(deck)`, `stream.readinto(buffer)`).
ARGUMENT_MUTATING_METHODS: Final = _words("shuffle readinto recv_into pack_into")
LOGGING: Final = ("logging.", "structlog.", "loguru.", "warnings.warn")
# Standard-library types (and the functions that make them) whose methods compute
# from the object or coordinate through it, and keep no data a caller reads back:
# a compiled pattern, a logger, locks, executors, paths, dates, connections.
READING_LIBRARY: Final = _words(
    """re. logging. string. struct. threading.Lock threading.RLock threading.Semaphore
    threading.BoundedSemaphore threading.Condition threading.Barrier threading.local
    asyncio.Barrier asyncio.Lock contextvars.
    asyncio.Semaphore asyncio.BoundedSemaphore asyncio.Condition asyncio.get_event_loop
    asyncio.get_running_loop asyncio.new_event_loop concurrent.futures. ssl. zoneinfo.
    datetime. decimal. fractions. uuid. ipaddress. pathlib. http.client. urllib.
    smtplib. socket. selectors. subprocess. tempfile. textwrap. json.
    functools. operator. types. enum. typing. contextlib. email.utils. mimetypes.
    os. sys. time. platform. locale. warnings. inspect. importlib. codecs.
    unicodedata. math. cmath. statistics. shlex. fnmatch. glob. difflib."""
)
# Methods of the standard library's data-holding objects that only read them back.
READING_METHODS: Final = _words(
    """getvalue get getint getfloat getboolean has_section has_option sections options
    items keys values qsize empty full is_set tell hexdigest digest"""
)
# Methods of the builtin containers (and str, bytes, numbers) that change the receiver.
MUTATING_METHODS: Final = _words(
    """append extend insert remove pop clear sort reverse update setdefault popitem
    add discard difference_update intersection_update symmetric_difference_update
    appendleft extendleft popleft rotate __setitem__ __delitem__ __iadd__"""
)
# Verbs a method's name is, or starts with and an underscore, when it stores what
# it is given in its object (`upsert`, `add_documents`, `save_context`) or drops
# what it holds: on an object kiln cannot see into, a change. Not `create`, a
# client's request.
STORING_VERBS: Final = _words(
    """add append cache_clear clear delete drop extend insert persist pop push put
    remove reset save store update upsert write"""
)
# Methods whose result shares no object with the receiver or the arguments.
FRESH_METHODS: Final = _words(
    """count index startswith endswith join split rsplit splitlines strip lstrip rstrip
    lower upper title capitalize casefold swapcase replace format format_map find rfind
    rindex encode decode isdigit isalpha isalnum isspace islower isupper isnumeric
    isdecimal isidentifier partition rpartition zfill center ljust rjust expandtabs
    removeprefix removesuffix issubset issuperset isdisjoint hex bit_length to_bytes
    as_integer_ratio is_integer isoformat strftime timestamp weekday model_dump_json"""
)
# Methods that read the receiver and return a new value: the fresh ones, and these,
# whose result may hold what the receiver or the arguments hold (`get`, `union`).
PURE_METHODS: Final = FRESH_METHODS | _words(
    """get keys values items copy union intersection difference symmetric_difference
    fromkeys conjugate most_common total date time model_dump model_copy _asdict
    _replace"""
)
# Methods of these names mean the same on any type that has them: a pydantic
# model's dump, a namedtuple's `_replace`, a date's `isoformat`.
DISTINCTIVE_METHODS: Final = _words(
    """model_dump model_copy model_dump_json _asdict _replace isoformat strftime
    timestamp weekday startswith endswith"""
)
# What a dotted name in an annotation means outside the project: its qualified
# name (`builtins.int`, `collections.Counter` of `Counter` after `from collections
# import Counter`), or None for a class the project defines or imports from its own
# modules, and for a name the source cannot tell. The type tables below hold
# qualified names, so a project class named `Counter` or `Path` is in none of them.
Qualify = Callable[[str], str | None]


def names_in(modules: str, names: str) -> frozenset[str]:
    """Each of `names` as each of `modules` defines it: `typing.Sequence`."""
    return frozenset(f"{m}.{n}" for m in modules.split() for n in names.split())


_TYPING = "typing typing_extensions"
_ABSTRACT = "typing typing_extensions collections.abc"
# Types whose values cannot change, whatever their type arguments (`re.Match[str]`).
IMMUTABLE_TYPES: Final = (
    names_in("builtins", "int float complex bool str bytes None range")
    | names_in("types", "NoneType")
    | names_in("decimal", "Decimal")
    | names_in("fractions", "Fraction")
    | names_in("datetime", "date datetime time timedelta timezone")
    | names_in("uuid", "UUID")
    | names_in(
        "pathlib", "Path PurePath PurePosixPath PureWindowsPath PosixPath WindowsPath"
    )
    | names_in("re typing", "Pattern Match")
    | names_in(_TYPING, "LiteralString")
)
LITERALS: Final = names_in(_TYPING, "Literal")
# Containers that cannot change, and the type forms around a type: either is
# immutable when what it holds is.
IMMUTABLE_CONTAINERS: Final = names_in("builtins", "tuple frozenset") | names_in(
    _TYPING, "Tuple FrozenSet Optional Union Annotated Final ClassVar"
)
# Read-only views: code cannot change a value through one, but the value it views
# may be a list or a dict that other code changes: a node returning `Sequence[str]`
# may return a list it was given.
VIEWS: Final = (
    names_in(_ABSTRACT, "Mapping Sequence Collection Container Reversible Sized")
    | names_in(_ABSTRACT, "KeysView ValuesView ItemsView")
    | names_in(_TYPING, "AbstractSet")
    | names_in("collections.abc", "Set")
)
CONTAINERS: Final = (
    names_in("builtins", "list dict set tuple frozenset str bytes range bytearray")
    | names_in(_TYPING, "List Dict Set Tuple FrozenSet Deque DefaultDict OrderedDict")
    | names_in(_TYPING, "Counter ChainMap")
    | names_in(_ABSTRACT, "Sequence MutableSequence Mapping MutableMapping MutableSet")
    | names_in(_ABSTRACT, "Collection")
    | names_in(_TYPING, "AbstractSet")
    | names_in("collections.abc", "Set")
    | names_in("collections", "deque Counter defaultdict OrderedDict ChainMap")
)
DEFAULT_DICTS: Final = names_in("collections", "defaultdict") | names_in(
    _TYPING, "DefaultDict"
)
# `Optional[Queue]` is a Queue: these forms are what they hold.
_FORMS: Final = names_in(_TYPING, "Optional Union Annotated")
_ANNOTATED: Final = names_in(_TYPING, "Annotated")
# Every type whose methods the method tables above describe.
DESCRIBED_TYPES: Final = (
    CONTAINERS | IMMUTABLE_TYPES | IMMUTABLE_CONTAINERS | VIEWS | LITERALS
)


def _parsed(annotation: str) -> cst.BaseExpression | None:
    try:
        return cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return None


def type_name(annotation: str, qualify: Qualify) -> str | None:
    """The qualified name of the type an annotation names: `collections.defaultdict`
    of `defaultdict[str, int]`; None for the project's own types and the unknown."""
    expression = _parsed(annotation)
    if expression is None:
        return None
    return _head(expression, qualify)


def _head(node: cst.BaseExpression, qualify: Qualify) -> str | None:
    name = dotted(node.value if isinstance(node, cst.Subscript) else node)
    return qualify(name) if name is not None else None


def _arguments(node: cst.Subscript, head: str | None) -> list[cst.BaseExpression]:
    """The type arguments that say what a value holds (`Annotated`'s first alone)."""
    elements = node.slice[:1] if head in _ANNOTATED else node.slice
    return [e.slice.value for e in elements if isinstance(e.slice, cst.Index)]


def _all_index(node: cst.Subscript) -> bool:
    """Whether every argument is a type: a slice (`x[1:2]`) is none."""
    return all(isinstance(element.slice, cst.Index) for element in node.slice)


def is_immutable(annotation: str, qualify: Qualify) -> bool:
    """Whether a value of this annotation can never change (deeply): it shares
    nothing any code may change. A view (`Sequence[str]`) is not: what it views may."""
    expression = _parsed(annotation)
    return expression is not None and _immutable(expression, qualify, views=False)


def holds_immutable(annotation: str, qualify: Qualify) -> bool:
    """Whether every item of a value of this annotation can never change: a
    builtin container or a view of deeply immutable items (`dict[str, int]`,
    `list[str]`, `Mapping[str, tuple[int, ...]]`), or an immutable value. Its
    items, and a shallow copy of it, share nothing any code may change."""
    expression = _parsed(annotation)
    if expression is None:
        return False
    if _immutable(expression, qualify, views=False):
        return True
    head = _head(expression, qualify)
    return (
        isinstance(expression, cst.Subscript)
        and (head in CONTAINERS or head in VIEWS)
        and _all_index(expression)
        and all(
            _immutable(a, qualify, views=False) for a in _arguments(expression, head)
        )
    )


# Builtins whose result holds their argument's items, not the argument itself:
# a shallow copy (`dict(counts)`), which shares nothing that can change when
# the items cannot (`holds_immutable`).
COPYING_BUILTINS: Final = _words("dict list set frozenset tuple sorted")


def is_read_only(annotation: str, qualify: Qualify) -> bool:
    """Whether code given a value under this annotation cannot change it (deeply):
    an immutable type, or a view of one (`Mapping[str, int]`)."""
    expression = _parsed(annotation)
    return expression is not None and _immutable(expression, qualify, views=True)


def _immutable(node: cst.BaseExpression, qualify: Qualify, *, views: bool) -> bool:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        return _immutable(node.left, qualify, views=views) and _immutable(
            node.right, qualify, views=views
        )
    if isinstance(node, cst.Ellipsis):
        return True  # `tuple[str, ...]`: more of the same
    if not isinstance(node, cst.Name | cst.Attribute | cst.Subscript):
        return False  # a forward reference (a string), or no type: unknown
    head = _head(node, qualify)
    if head in IMMUTABLE_TYPES or head in LITERALS:
        return True
    if not isinstance(node, cst.Subscript):
        return False
    if head not in IMMUTABLE_CONTAINERS and not (views and head in VIEWS):
        return False
    return _all_index(node) and all(
        _immutable(a, qualify, views=views) for a in _arguments(node, head)
    )


def is_builtin_type(annotation: str, qualify: Qualify, *, deep: bool) -> bool:
    """Whether a value of this annotation is a builtin container or an immutable
    value, whose methods the tables above describe; `deep`: its items are too."""
    expression = _parsed(annotation)
    return expression is not None and _builtin(expression, qualify, deep)


def _builtin(node: cst.BaseExpression, qualify: Qualify, deep: bool) -> bool:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        return _builtin(node.left, qualify, deep) and _builtin(
            node.right, qualify, deep
        )
    if isinstance(node, cst.Ellipsis):
        return True
    head = _head(node, qualify)
    if head not in DESCRIBED_TYPES:
        return False
    if not isinstance(node, cst.Subscript) or head in LITERALS:
        return True
    # `Optional[Queue]` is a Queue; `dict[str, Queue]` holds them.
    if not deep and head not in _FORMS:
        return True
    return _all_index(node) and all(
        _builtin(a, qualify, deep) for a in _arguments(node, head)
    )


def may_be_iterator(annotation: str | None, qualify: Qualify) -> bool:
    """Whether iterating a value of this annotation may consume it."""
    if annotation is None:
        return True
    return type_name(annotation, qualify) not in CONTAINERS


def fresh_builtin(name: str, call: cst.Call) -> bool:
    """Whether a call of the builtin `name` makes a value that shares nothing it
    read: not `sum(groups, [])`, a list of the groups' items, where `sum(costs)`
    is a number."""
    if name == "sum" and (len(call.args) > 1 or any(a.keyword for a in call.args)):
        start = call.args[-1].value
        return isinstance(start, cst.BaseNumber | cst.UnaryOperation)
    return name in FRESH_BUILTINS


def immutable_literal(value: cst.BaseExpression) -> bool:
    """A number, string, bool or None, or a tuple or frozen set made of them."""
    if isinstance(
        value,
        cst.BaseNumber | cst.SimpleString | cst.ConcatenatedString | cst.Ellipsis,
    ):
        return True
    if isinstance(value, cst.Name):
        return value.value in ("True", "False", "None")
    if isinstance(value, cst.UnaryOperation):
        return immutable_literal(value.expression)
    if isinstance(value, cst.BinaryOperation):
        return immutable_literal(value.left) and immutable_literal(value.right)
    if isinstance(value, cst.Tuple):
        return all(
            isinstance(element, cst.Element) and immutable_literal(element.value)
            for element in value.elements
        )
    if isinstance(value, cst.Call) and dotted(value.func) == "frozenset":
        return not value.args or immutable_literal(value.args[0].value)
    return False


def is_pure(qualified: str) -> bool:
    """Whether a standard-library function neither changes its arguments nor the world,
    nor reads it (a clock, the file system): such a call may go anywhere."""
    return _listed(qualified, PURE_LIBRARY) and not _listed(qualified, _WORLD_READS)


def consumes(qualified: str) -> bool:
    """Whether a standard-library function iterates what it is passed."""
    return _listed(qualified, ITERATING_LIBRARY)


def is_fresh(qualified: str) -> bool:
    """Whether a standard-library function's result shares nothing with its arguments."""
    return _listed(qualified, FRESH_LIBRARY)


def _listed(qualified: str, names: frozenset[str]) -> bool:
    """`names` holds functions and whole modules (`math.`)."""
    return any(
        qualified.startswith(name) if name.endswith(".") else qualified == name
        for name in names
    )
