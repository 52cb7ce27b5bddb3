"""What kiln knows about Python's own types and functions: which change what.

The effects pass (effects.py) reads the project's code; these tables answer
for the code it cannot read: builtins, the standard library, the methods of
the builtin containers, and the annotations whose values can never change.
A name missing from every table is unknown, and unknown counts as a change.
"""

from __future__ import annotations

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
LOGGING: Final = ("logging.", "structlog.", "loguru.", "warnings.warn")
# Methods of the builtin containers (and str, bytes, numbers) that change the receiver.
MUTATING_METHODS: Final = _words(
    """append extend insert remove pop clear sort reverse update setdefault popitem
    add discard difference_update intersection_update symmetric_difference_update
    appendleft extendleft popleft rotate __setitem__ __delitem__ __iadd__"""
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
# Type names whose values cannot change, and read-only views whose contents may.
IMMUTABLE_TYPES: Final = _words(
    """int float complex bool str bytes None NoneType Decimal Fraction date datetime
    time timedelta timezone UUID Path PurePath PurePosixPath PureWindowsPath range
    Literal LiteralString Pattern Match"""
)
READ_ONLY_VIEWS: Final = _words(
    """tuple Tuple frozenset FrozenSet Mapping Sequence AbstractSet Collection
    Optional Union Annotated Final ClassVar Container Reversible Sized"""
)
CONTAINERS: Final = _words(
    """list List dict Dict set Set tuple Tuple frozenset FrozenSet str bytes Sequence
    MutableSequence Mapping MutableMapping AbstractSet MutableSet Collection deque
    Counter defaultdict OrderedDict ChainMap range bytearray"""
)


def is_immutable(annotation: str) -> bool:
    """Whether a value of this annotation can never change (deeply)."""
    try:
        expression = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return False
    return _immutable(expression)


def _immutable(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.SimpleString | cst.ConcatenatedString):
        return False  # a forward reference: unknown
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        return _immutable(node.left) and _immutable(node.right)
    if isinstance(node, cst.Name | cst.Attribute):
        name = dotted(node)
        return name is not None and name.split(".")[-1] in IMMUTABLE_TYPES
    if isinstance(node, cst.Subscript):
        head = dotted(node.value)
        last = head.split(".")[-1] if head else ""
        if last == "Literal":
            return True
        if last not in READ_ONLY_VIEWS:
            return False
        return all(
            isinstance(element.slice, cst.Index)
            and (
                isinstance(element.slice.value, cst.Ellipsis)
                or _immutable(element.slice.value)
            )
            for element in node.slice
        )
    return False


def is_builtin_type(annotation: str, *, deep: bool) -> bool:
    """Whether a value of this annotation is a builtin container or an immutable
    value, whose methods the tables above describe; `deep`: its items are too."""
    try:
        expression = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return False
    return _builtin(expression, deep)


def _builtin(node: cst.BaseExpression, deep: bool) -> bool:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.BitOr):
        return _builtin(node.left, deep) and _builtin(node.right, deep)
    if isinstance(node, cst.Ellipsis):
        return True
    head = node.value if isinstance(node, cst.Subscript) else node
    name = dotted(head)
    last = name.split(".")[-1] if name else ""
    if last not in CONTAINERS | IMMUTABLE_TYPES | READ_ONLY_VIEWS:
        return False
    if not isinstance(node, cst.Subscript) or last == "Literal":
        return True
    # `Optional[Queue]` is a Queue; `dict[str, Queue]` holds them.
    if not deep and last not in ("Optional", "Union", "Annotated"):
        return True
    elements = node.slice[:1] if last == "Annotated" else node.slice
    return all(
        isinstance(element.slice, cst.Index) and _builtin(element.slice.value, deep)
        for element in elements
    )


def may_be_iterator(annotation: str | None) -> bool:
    """Whether iterating a value of this annotation may consume it."""
    if annotation is None:
        return True
    try:
        expression = cst.parse_expression(annotation)
    except cst.ParserSyntaxError:
        return True
    head = expression.value if isinstance(expression, cst.Subscript) else expression
    name = dotted(head)
    return name is None or name.split(".")[-1] not in CONTAINERS


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
