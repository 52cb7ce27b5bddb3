"""What `kiln run` shows a person: a live line of node calls, and a table per node at the end.

The live line, redrawn ten times a second from the observer's counts::

    ⠼ digest ━━━━━━━━━━╺━━━━━ 14/20 calls · 5 running · 1 failed · 2 cached · 23.4/s · 0:00:01

and the summary, after the run (plain text when the console is not a terminal)::

                          kiln run digest: 0.62 s
     node       calls  failed  retries  cache hits   total      p50      p95
     load           1       0        0           0  5.1 ms   5.1 ms   5.1 ms
     summarize     20       1        3           2  1.94 s  101 ms   180 ms

Only `kilnc` uses rich; the runtime `kiln` never imports it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final, final

from rich import box
from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from kilnc.run.observe import Counts, NodeSummary
from kilnc.terminal import printable

__all__ = ["RunProgress", "format_seconds", "summary_table"]

_REFRESH_PER_SECOND: Final = 10


@final
class RunProgress:
    """A live display of a run's node calls on `console`, while the `with` block runs.

    Text the flow prints to stdout while it runs goes above the display when
    stdout is a terminal too; printed to a pipe or a file, it stays there.
    """

    def __init__(
        self,
        flow: str,
        counts: Callable[[], Counts],
        console: Console,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._flow = flow
        self._counts = counts
        self._clock = clock
        self._began = clock()
        self._ended: float | None = None
        self._spinner = Spinner("dots", style="progress.spinner")
        self._live = Live(
            console=console,
            get_renderable=self._render,
            refresh_per_second=_REFRESH_PER_SECOND,
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=True,
        )

    def __enter__(self) -> RunProgress:
        self._began = self._clock()
        self._live.start(refresh=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._ended = self._clock()
        self._live.stop()  # draws the final counts once more, and leaves them

    def _render(self) -> RenderableType:
        counts = self._counts()
        elapsed = (self._ended or self._clock()) - self._began
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            self._status(counts),
            Text(printable(self._flow), style="bold"),
            ProgressBar(
                total=counts.calls or None, completed=counts.finished, width=24
            ),
            _tally(counts, elapsed),
        )
        return grid

    def _status(self, counts: Counts) -> RenderableType:
        if self._ended is None:
            return self._spinner
        if counts.failed:
            return Text("✗", style="red")
        return Text("✓", style="green")


def _tally(counts: Counts, elapsed: float) -> Text:
    text = Text(f"{counts.finished}/{counts.calls} calls")
    for number, label, style in (
        (counts.waiting, "waiting", "dim"),
        (counts.running, "running", "cyan"),
        (counts.failed, "failed", "red"),
        (counts.stopped, "cancelled", "yellow"),
        (counts.cache_hits, "cached", "green"),
    ):
        if number:
            text.append(" · ")
            text.append(f"{number} {label}", style=style)
    rate = counts.finished / elapsed if elapsed > 0 else 0.0
    text.append(f" · {rate:.1f}/s · {_clock_time(elapsed)}", style="progress.elapsed")
    return text


def _clock_time(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}"


def summary_table(
    flow: str, summaries: Sequence[NodeSummary], wall_seconds: float
) -> Table:
    """One row per node: its calls, failures, retries, cache hits and times."""
    calls = sum(s.calls for s in summaries)
    # Text, not markup: a node named "[/b]" is a name, and its controls are escaped.
    table = Table(
        title=Text(
            f"kiln run {printable(flow)}: {calls} node call{'s' * (calls != 1)}"
            f" in {format_seconds(wall_seconds)}"
        ),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_justify="left",
    )
    table.add_column("node", no_wrap=True)
    numbers = ["calls", "failed", "retries", "cache hits"]
    cancelled = any(s.cancelled for s in summaries)
    if cancelled:
        numbers.insert(2, "cancelled")
    for heading in [*numbers, "total", "p50", "p95"]:
        table.add_column(heading, justify="right", no_wrap=True)
    for s in summaries:
        counted = [s.calls, s.failures, s.retries, s.cache_hits]
        if cancelled:
            counted.insert(2, s.cancelled)
        table.add_row(
            Text(printable(s.node)),
            *map(str, counted),
            format_seconds(s.total_seconds),
            format_seconds(s.p50_seconds),
            format_seconds(s.p95_seconds),
            style="red" if s.failures else None,
        )
    return table


def format_seconds(seconds: float | None) -> str:
    """A duration to three significant digits: ``12.3 µs``, ``20.1 ms``, ``1.94 s``."""
    if seconds is None:
        return "-"
    # Each unit while "%.3g" writes it without an exponent (999.5 would be 1e+03).
    if seconds < 999.5e-6:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 999.5e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.2f} s"
