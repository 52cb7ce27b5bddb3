"""Durable runs: a run with an id journals every call it finishes, and replays them.

``Publish(run_id="r1")(doc)`` claims run id "r1" in the flow's ledger file
(`journal.open_run`) and reads back what the run journaled before. Each node
call, subflow call and question of the run then has a *key*, its place in
the run, the same however the run's tasks interleave:

    0.0           the first call at site 0 (the flow's sites, in source order)
    2.1           the second call at site 2: the visit of a loop
    [3]4.0        the call at site 4 in element 3 of a fan-out
    1.0/0.0       the call at site 0 of the subflow called at site 1
    3.0#2         item 2 of the stream node called at site 3 (3.0: its end)

A call of one site happens once at a time in one place (a loop's visits run
one after another; each element of a fan-out is a place of its own, which
`kiln.run` gives it), so counting a site's calls per place names each call
once. A call whose key the journal holds returns the journaled value
without running, once the journal says it was the same call (the same node;
arguments of the same digest, when they can be written): anything else means
the flow's source or its inputs changed before this point, and is refused.
A call the journal lacks runs live, and its value is committed to the
journal before the run uses it. A call that fails is not journaled: resuming
a run that failed runs the failed call again, and what comes after.

`ask` is a question to a person: its answer is journaled at its key like a
call's value, and while there is none the run stops with `Suspended`; the
steps before it in the source finish (and are journaled) first. Stream
nodes' items are journaled one by one (`streams`).
"""

from kiln.durable.entry import (
    aclose_stream,
    close_stream,
    durable_entry,
    recorded_name,
    started_by,
)
from kiln.durable.replay import JOURNAL, Journal, digest, journal_of
from kiln.durable.resume import (
    UNANSWERED,
    Unanswered,
    answer_text,
    questions_of,
    resume,
    resume_arguments,
    resume_run,
)
from kiln.durable.sites import DurableSubflow, journaled, question, undurable

__all__ = [
    "JOURNAL",
    "UNANSWERED",
    "DurableSubflow",
    "Journal",
    "Unanswered",
    "aclose_stream",
    "answer_text",
    "close_stream",
    "digest",
    "durable_entry",
    "journal_of",
    "journaled",
    "question",
    "questions_of",
    "recorded_name",
    "resume",
    "resume_arguments",
    "resume_run",
    "started_by",
    "undurable",
]
