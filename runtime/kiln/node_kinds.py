"""The rules between a node's options and the function it decorates.

Example input: ``@node(timeout=5)`` on ``def parse(text)``, a sync node
without ``thread=True``. Output: a `KindProblem` at ``timeout``: a timeout
cannot interrupt a sync node running in the event loop; add thread=True.

The decorators refuse a node with any of these (`OptionError`), and `kiln
compile` reports each at its option (`kilnc.node_checks`, KLN104), in the same
words: `tests/test_options_agree.py` holds them to it. A sync node without
``thread=True`` runs in the event loop, where nothing else of the run goes on
while it does: it may not wait there for capacity, nor be bounded by a
timeout that could not interrupt it. (Between its retries it may wait: the
compiled call awaits the pause, kind "waiting" in `kiln.site_table`.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from typing import Final

from kiln.options import NodeOptions

__all__ = ["KindProblem", "node_kind_problems"]

# The options a stream node refuses: each is about one call that returns.
_NOT_FOR_STREAMS: Final = ("retries", "timeout", "fallback", "thread", "limit", "cache")

# A node's options when not given: NodeOptions' own defaults.
_DEFAULTS: Final[Mapping[str, object]] = {
    option.name: option.default for option in fields(NodeOptions)
}


@dataclass(frozen=True, slots=True)
class KindProblem:
    """An option the decorated function's kind rules out, what is wrong, what to do."""

    option: str
    message: str
    hint: str


def node_kind_problems(
    options: Mapping[str, object],
    *,
    is_async: bool,
    streams: bool,
    parameters: Collection[str],
    fallback_async: bool = False,
) -> list[KindProblem]:
    """The rules between a node's options and its function, in the order of the table.

    `options` holds the values given (others are the defaults); `is_async` and
    `streams` say whether the function is `async def` and whether it yields;
    `fallback_async` whether its fallback is.
    """

    def given(option: str) -> object:
        return options.get(option, _DEFAULTS.get(option))

    problems = []
    if streams:
        problems += [
            KindProblem(
                option,
                f"option '{option}' applies to sync and async nodes, not streams",
                f"drop {option}=, or make the node return its values",
            )
            for option in _NOT_FOR_STREAMS
            if given(option) != _DEFAULTS[option]
        ]
        return problems
    thread = given("thread") is True
    if thread and is_async:
        problems.append(
            KindProblem(
                "thread",
                "thread=True applies to sync nodes, and this node is async: "
                "it already runs without blocking the event loop",
                "drop thread=True",
            )
        )
    if not is_async and not thread and given("timeout") is not None:
        problems.append(
            KindProblem(
                "timeout",
                "a timeout cannot interrupt a sync node running in the event loop",
                "add thread=True to run it in a worker thread",
            )
        )
    if not is_async and not thread and given("limit") is not None:
        problems.append(
            KindProblem(
                "limit",
                "a sync node runs in the event loop and cannot wait there for capacity",
                "add thread=True to run it in a worker thread, or make it async def",
            )
        )
    if not is_async and not thread and fallback_async:
        problems.append(
            KindProblem(
                "fallback",
                "a sync node's fallback stands in for it in the event loop, where "
                "nothing awaits it: it must be a def too",
                "make the fallback a def, or the node async def or thread=True",
            )
        )
    if given("fallback") is not None and "error" in parameters:
        problems.append(
            KindProblem(
                "fallback",
                "a node with a fallback cannot take a parameter named 'error': "
                "its fallback is called as fallback(*args, error=exc)",
                "rename the parameter",
            )
        )
    return problems
