"""Report: where a command's diagnostics go, as text while it runs or as one JSON document.

With `--format text` (the default) diagnostics are printed as they come, in
mypy's shape, and progress lines (`pipeline.py -> build/pipeline.py`) between
them. With `--format json`, stdout holds one JSON list of every diagnostic of
the run, printed when it ends (`close`), and nothing else, so an editor or a
CI annotator can read it whole; progress lines are left out. A diagnostic is
reported once: two modules that import a broken one each meet its error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Final

from kilnc.diagnostics import Diagnostic, render_all, render_json
from kilnc.source import SourceFile

FORMATS: Final = ("text", "json")


class Report:
    def __init__(self, form: str, *, aside: bool = False) -> None:
        self.json = form == "json"
        # `aside`: stdout holds what the command prints (`--dump schema`'s JSON),
        # so the diagnostics and progress lines go to stderr.
        self._out = sys.stderr if aside else sys.stdout
        self._kept: list[Diagnostic] = []
        self._seen: set[Diagnostic] = set()

    def add(
        self, diagnostics: Iterable[Diagnostic], sources: dict[str, SourceFile]
    ) -> list[Diagnostic]:
        """Report the diagnostics not reported before; returns them."""
        new = [d for d in dict.fromkeys(diagnostics) if d not in self._seen]
        self._seen.update(new)
        if self.json:
            self._kept += new
        elif new:
            print(render_all(new, sources), file=self._out)
        return new

    def say(self, text: str) -> None:
        """A progress line or a summary: text output only."""
        if not self.json:
            print(text, file=self._out)

    def close(self) -> None:
        if self.json:
            print(render_json(self._kept))
            sys.stdout.flush()
