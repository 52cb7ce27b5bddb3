"""Which objects of installed libraries are clients, and which hold data.

A client (an HTTP session, an LLM SDK's client, a logger, a pool) is shared
by design: its requests read it, and nodes that call it overlap. An object
that holds the program's data (a numpy array, a pandas frame, a random
generator, a fitted model, an in-process database) changes under calls whose
names say nothing of it: `ARR.fill(0)`, `RNG.normal()`, `DF.sort_values(...,
inplace=True)`, `np.copyto(ARR, x)`. kiln cannot see into either, so it goes
by what it can read: the package the object's type (or the callable that
made it) comes from, and the type's name. A client is one of a package on
`CLIENT_PACKAGES` or of a type named as one (`...Client`, `...Session`);
any other installed library's object holds data, and only its methods named
as reads (`sum`, `describe`, `predict`) read it, unless the call says it
works in place (`inplace=True`, `out=`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

import libcst as cst

from kilnc.effects.receivers import type_of
from kilnc.syntax import dotted

if TYPE_CHECKING:  # the body asks this module about its stores: a cycle
    from kilnc.effects.body import Body

__all__ = [
    "DATA_READING_METHODS",
    "change_views",
    "computes_data",
    "in_place",
    "is_client",
    "library_type",
    "reads_data",
    "standard",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Packages whose objects talk to something outside the program: HTTP, LLM and
# cloud SDKs, RPC, remote databases (what a remote service holds is outside
# what kiln orders, README), logging and tracing.
CLIENT_PACKAGES: Final = _words(
    """httpx requests aiohttp urllib3 httpcore websockets grpc openai anthropic
    google cohere mistralai groq together litellm ollama replicate huggingface_hub
    langchain langchain_core langchain_openai langchain_anthropic
    langchain_google_genai langchain_mistralai langchain_ollama langchain_groq
    langgraph boto3 botocore aiobotocore s3fs gcsfs azure redis motor pymongo
    elasticsearch asyncpg psycopg psycopg2 aiomysql pymysql sqlalchemy
    structlog loguru opentelemetry prometheus_client sentry_sdk aiolimiter"""
)

# The names of client types, whatever their package: `acme.ApiClient`,
# `aiohttp.ClientSession`, `somedb.ConnectionPool`.
CLIENT_KINDS: Final = (
    "Client",
    "Session",
    "Pool",
    "Executor",
    "Logger",
    "Tracer",
    "Limiter",
    "Lock",
    "Semaphore",
)

# Packages whose functions compute new values from what they are given, but
# for `FILLING_FUNCTIONS` and an `out=` argument.
NUMERICAL_PACKAGES: Final = _words("numpy pandas scipy polars pyarrow")
FILLING_FUNCTIONS: Final = _words(
    """copyto place put putmask put_along_axis fill_diagonal shuffle at
    setflags resize"""
)

# Methods of data-holding objects that read them and return a new value: an
# array's or a frame's reductions and conversions, a model's predictions.
# Those that may work in place say so in the call (`in_place`).
DATA_READING_METHODS: Final = _words(
    """sum mean median min max std var prod ptp cumsum cumprod any all argmax
    argmin argsort nonzero round dot copy astype tolist to_list to_dict to_numpy
    to_records to_json to_string to_csv to_parquet to_markdown head tail describe
    info count nunique unique value_counts isna isnull notna notnull isin equals
    between duplicated groupby agg aggregate merge join query sort_values
    sort_index fillna dropna drop drop_duplicates rename replace reset_index
    set_index where mask clip reshape ravel flatten transpose squeeze take
    searchsorted diff pct_change rolling expanding resample shift mode corr cov
    quantile memory_usage nlargest nsmallest select_dtypes filter items iterrows
    itertuples keys values get predict predict_proba predict_log_proba
    decision_function score transform get_params tobytes item abs"""
)


def is_client(library: str) -> bool:
    """Whether an installed library's type, or the callable that made an object
    (`openai.AsyncOpenAI`, `langchain.chat_models.init_chat_model`), is a client's."""
    package = library.partition(".")[0]
    return package in CLIENT_PACKAGES or library.rpartition(".")[2].endswith(
        CLIENT_KINDS
    )


def in_place(call: cst.Call) -> bool:
    """Whether a call says it changes its object or an argument: `inplace=True`,
    an `out=` array."""
    for arg in call.args:
        keyword = arg.keyword.value if arg.keyword is not None else None
        if keyword == "out":
            return True
        if (
            keyword == "inplace"
            and isinstance(arg.value, cst.Name)
            and arg.value.value == "True"
        ):
            return True
    return False


def change_views(
    body: Body, target: cst.Attribute | cst.Subscript, reason: str
) -> None:
    """A store into `target` changes what it may be a view of (`views`)."""
    for viewed in views(body, target.value):
        body.change(viewed, reason, target, itself=True)


def views(body: Body, node: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    """What a store into `node` may change besides it: the objects whose library
    methods made it, each of which it may be a view of (`T` of `T.reshape(2,
    2)`, for `T.reshape(2, 2)[0, 0] = x`). Not a project method's result,
    which says what it returns."""
    while True:
        while isinstance(node, cst.Attribute | cst.Subscript):
            node = node.value
        if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Attribute):
            return
        if body.reader.called(body, node.func) is not None:
            return
        node = node.func.value
        yield node


def reads_data(body: Body, func: cst.Attribute, call: cst.Call) -> bool:
    """Whether `call` of the method `func` only reads its object and what it is
    given: a method named as a read (`df.sum()`, `model.predict(x)`), of an
    object of an installed library's type that holds data, not told to work in
    place. A parameter's `DataFrame` read so by several nodes is changed by
    none of them, and they overlap."""
    if func.attr.value not in DATA_READING_METHODS or in_place(call):
        return False
    # What it reads may be a part of the data, or what a read made of it:
    # `df["v"].sum()`, `df.groupby("g")["v"].mean()`.
    node = func.value
    while True:
        if isinstance(node, cst.Attribute | cst.Subscript):
            node = node.value
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in DATA_READING_METHODS
            and not in_place(node)
        ):
            node = node.func.value
        else:
            break
    if isinstance(node, cst.Call) and _computed(body, node):
        return True  # `np.tanh(a).sum()`: a new value's
    library = library_type(body, node)
    return library is not None and not standard(library) and not is_client(library)


def library_type(body: Body, node: cst.BaseExpression) -> str | None:
    """The qualified name of the type kiln reads `node` as, where that is no
    class of the project's (`pandas.DataFrame`, `builtins.list`); else None."""
    typed = type_of(body, node)
    if typed is None:
        return None
    defs, annotation = typed
    return body.reader.library_name(defs.location.name, annotation.partition("[")[0])


def standard(library: str) -> bool:
    """Whether a qualified name is the standard library's."""
    return library.partition(".")[0] in sys.stdlib_module_names


def computes_data(qualified: str, call: cst.Call) -> bool:
    """Whether a function of a numerical library only computes: it makes a new
    value of what it is given (`np.zeros(3)`, `np.tanh(x)`, `pd.concat(frames)`),
    where it is not one of the few that fill what they are given
    (`np.copyto(dst, src)`) and is not told to (`out=`)."""
    package, _, name = qualified.partition(".")
    return (
        package in NUMERICAL_PACKAGES
        and qualified.rpartition(".")[2] not in FILLING_FUNCTIONS
        and bool(name)
        and not in_place(call)
    )


def _computed(body: Body, call: cst.Call) -> bool:
    named = dotted(call.func)
    qualified = (
        body.reader.library_name(body.defs.location.name, named) if named else None
    )
    return qualified is not None and computes_data(qualified, call)
