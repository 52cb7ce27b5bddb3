"""What a durable run replays: its journal read back, and each call's key in it.

`Journal` is the state one durable run shares with its subflows' runs: the
outcomes it journaled before (`kiln.durable.journal.open_run`), and a count
of the calls of each site in each place, which gives every call its key
(`kiln.durable` shows the keys). A call whose key the journal holds is
answered from it once the journal says it was the same call: the same node,
and arguments of the same digest (`digest`), when both can be written.
"""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NoReturn, final

from kiln.durable.journal import Entry
from kiln.errors import DurableRunError, runs_command
from kiln.ledger.codec import STORED_TYPES, Undecodable, Unencodable, encode
from kiln.ledger.decoding import decode
from kiln.ledger.keys import Shape
from kiln.run import PLACE

if TYPE_CHECKING:
    from kiln.ledger import Ledger
    from kiln.site_table import Site
    from kiln.sites import Run

__all__ = [
    "DIGEST_LENGTH",
    "JOURNAL",
    "NO_DIGEST",
    "Journal",
    "classes_in",
    "digest",
    "journal_of",
]

# The journal of the durable run the current task belongs to.
JOURNAL: ContextVar[Journal | None] = ContextVar("kiln_journal", default=None)

# The digest of arguments the journal cannot write: the node name is checked alone.
NO_DIGEST: Final = ""
# A digest's length: a sha256 in hex, cut. A shorter text of arguments is its own
# digest; it always holds a ":", which a hex digest never does.
DIGEST_LENGTH: Final = 32
# Values whose codec text always decodes to an equal value of the same type.
_EXACT: Final = frozenset({str, int, bool, type(None)})


@final
@dataclass(eq=False, slots=True)
class Journal:
    """The state one durable run shares with its subflows' runs: its journal, its counts."""

    ledger: Ledger
    run: str
    entries: dict[str, Entry]
    # The flow's module: the codec names its classes without it in the digests of
    # arguments and in answers. A result is written with its node's module
    # (`Shape.home`), as the node's Shape reads it back.
    home: str
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def key(self, index: int) -> str:
        """The key of the call about to happen at site `index` of the flow in this place."""
        place = PLACE.get() or ""
        slot = (place, index)
        count = self.counts.get(slot, 0)
        self.counts[slot] = count + 1
        return f"{place}{index}.{count}"

    def look_up(
        self,
        run: Run,
        index: int,
        site: Site,
        shape: Shape,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> tuple[str, str, Entry | None]:
        """The call's key, its arguments' digest, and its journaled outcome if any.

        An outcome found is checked to be of this call, and counted as the
        run's replay of it.
        """
        key = self.key(index)
        checked = digest(shape, self.home, args, kwargs)
        entry = self.entry(key, site.node, checked)
        if entry is not None:
            run.replay(index, site)
        return key, checked, entry

    def entry(self, key: str, node: str, checked: str = NO_DIGEST) -> Entry | None:
        """The journaled outcome at `key`, checked to be of this call; None if there is none.

        This call: one of `node` (a question's is ``?name``), with arguments of
        digest `checked` when both digests are known.
        """
        entry = self.entries.get(key)
        if entry is not None and (
            entry.node != node or (checked and entry.digest and entry.digest != checked)
        ):
            self.refuse(key, entry, node)
        return entry

    def refuse(self, key: str, entry: Entry, node: str) -> NoReturn:
        """Raise that the journal holds another call at `key` than the one the flow makes."""
        what = (
            f"a call of {entry.node!r}"
            if entry.node != node
            else f"a call of {node!r} with other arguments"
        )
        # The one change that needs neither: a set of str or bytes iterated in
        # another process (kiln check's KLN315 says where a flow does).
        order = (
            ""
            if entry.node != node
            else " (or the flow iterates a set of str or bytes, whose order hash "
            "randomization changes from process to process: PYTHONHASHSEED)"
        )
        raise DurableRunError(
            f"run {self.run!r} journaled {what} at {key!r}, where the flow now calls "
            f"{node!r}: the flow's source or its inputs changed before this point"
            f"{order}. "
            "Start a new run id, or forget the run from there on with "
            f"`{runs_command(self.ledger.path, f'forget {self.run} --from {key}')}`",
            run=self.run,
        )

    def text(self, node: str, shape: Shape, value: object) -> str:
        """The journal's text of `value`, which must come back from it as it is."""
        try:
            text = encode(value, shape.home)
            if type(value) in _EXACT:
                return text  # JSON gives these back as they were
            again = decode(text, shape.allowed)
        except (Unencodable, Undecodable) as error:
            problem = str(error)
        else:
            if type(again) is type(value) and encode(again, shape.home) == text:
                return text
            problem = "it would not come back from the journal as it is"
        raise DurableRunError(
            f"run {self.run!r} cannot journal the result of {node!r}, a "
            f"{type(value).__qualname__}: {problem}. A durable run journals what every "
            f"call returns, as the ledger stores it ({STORED_TYPES}); return such a "
            "value, or run the flow without a run id",
            run=self.run,
        )

    def value(self, entry: Entry, shape: Shape) -> Any:
        try:
            return shape.decode(entry.text)
        except Undecodable as error:
            raise DurableRunError(
                f"run {self.run!r} journaled a value of {entry.node!r} that the node "
                f"cannot return now ({error}); start a new run id",
                run=self.run,
            ) from None


def digest(
    shape: Shape, home: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> str:
    """A digest of a call's arguments by parameter name; empty if they cannot be written."""
    names = shape.names
    try:
        if names is not None and not kwargs and len(args) == len(names):
            # Every parameter given by position, as most call sites give them: no binding.
            pairs = [(names[i], args[i]) for i in shape.by_name]
        else:
            arguments = shape.bind(args, kwargs)
            pairs = [(name, arguments[name]) for name in sorted(arguments)]
        text = ",".join([f"{name}:{encode(value, home)}" for name, value in pairs])
    except (TypeError, Unencodable):
        return NO_DIGEST
    if len(text) < DIGEST_LENGTH:
        return text  # shorter than its hash, and as exact: one hash less per call
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:DIGEST_LENGTH]


def journal_of(run: Run) -> Journal:
    """The journal of durable run `run`: its calls are bound with one."""
    journal = run.journal
    assert journal is not None, "a durable run's calls are bound with its journal"
    return journal


def classes_in(hint: object) -> list[type]:
    """The classes a type names, all the way down: those an answer of it may rebuild."""
    found: list[type] = []
    stack = [hint]
    while stack:
        current = stack.pop()
        if isinstance(current, type):
            found.append(current)
        stack.extend(typing.get_args(current))
    return found
