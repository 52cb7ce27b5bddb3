"""Report: where a command's diagnostics go, as text while it runs or as one JSON document.

With `--format text` (the default) diagnostics are printed as they come, in
mypy's shape, and progress lines (`pipeline.py -> build/pipeline.py`) between
them. With `--format json`, stdout holds one JSON list of every diagnostic of
the run, printed when it ends (`close`), and nothing else, so an editor or a
CI annotator can read it whole; progress lines are left out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Final

from kilnc.diagnostics import Diagnostic, render_all, render_json
from kilnc.source import SourceFile

FORMATS: Final = ("text", "json")


class Report:
    def __init__(self, form: str) -> None:
        self.json = form == "json"
        self._kept: list[Diagnostic] = []

    def add(
        self, diagnostics: Iterable[Diagnostic], sources: dict[str, SourceFile]
    ) -> None:
        diagnostics = list(diagnostics)
        if self.json:
            self._kept += diagnostics
        elif diagnostics:
            print(render_all(diagnostics, sources))

    def say(self, text: str) -> None:
        """A progress line or a summary: text output only."""
        if not self.json:
            print(text)

    def close(self) -> None:
        if self.json:
            print(render_json(self._kept))
            sys.stdout.flush()
