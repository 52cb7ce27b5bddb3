"""typecheck_modules: mypy --strict on generated modules, its errors moved to the source.

Example input: the compilation of a flow whose `produce` returns `list[str]`
into a `consume` that takes `list[int]`. mypy, run through its API on the
generated module, says::

    edge.py:33:33: error: Argument 1 has incompatible type "list[str]"; expected
        "list[int]"  [arg-type]

and the compilation's line map (`linemap`) says line 33 was written for the call
of `consume` at pipelines/edge.py:17:13, so the output is a diagnostic there, in
kiln's shape, with mypy's message and code.

The modules are checked in a temporary directory under their own names, with a
configuration of kiln's (``--strict``, the project's import root and the
runtime on the search path), so the user's mypy settings neither loosen nor
break the check of generated code.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mypy import api

from kilnc.diagnostics import Code, Diagnostic, Severity
from kilnc.source import Span

_REPORT = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|note): "
    r"(?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)


def typecheck_modules(
    modules: Sequence[tuple[str, str, tuple[Span | None, ...]]],
    markers: Sequence[str],
    root: Path,
) -> list[Diagnostic]:
    """Check `(path, text, line map)` modules, each path relative to the directory
    above the output tree (`build/app/main.py`), with the tree's package `markers`;
    each error where its line came from."""
    with tempfile.TemporaryDirectory(prefix="kiln-check-") as scratch:
        directory = Path(scratch)
        files: dict[str, tuple[str, tuple[Span | None, ...]]] = {}
        for marker in markers:
            (directory / marker).parent.mkdir(parents=True, exist_ok=True)
            (directory / marker).touch()
        for name, text, line_map in modules:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            files[str(path.resolve())] = (name, line_map)
        config = directory / "mypy.ini"
        # The scratch tree first: the real output tree under `root` may be stale.
        search = ":".join(str(p) for p in (directory, root, *_runtime_roots()))
        config.write_text(f"[mypy]\nmypy_path = {search}\n", encoding="utf-8")
        stdout, stderr, _ = api.run(
            [
                "--strict",
                "--config-file",
                str(config),
                "--cache-dir",
                str(directory / ".mypy_cache"),
                "--show-column-numbers",
                "--show-absolute-path",
                "--show-error-codes",
                "--no-error-summary",
                "--no-color-output",
                "--no-pretty",
                *sorted(files),
            ]
        )
    if stderr.strip():
        raise RuntimeError(f"mypy could not run: {stderr.strip()}")
    return _diagnostics(stdout, files)


def _diagnostics(
    report: str, files: dict[str, tuple[str, tuple[Span | None, ...]]]
) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for text in report.splitlines():
        match = _REPORT.match(text)
        if match is None or match["path"] not in files:
            continue
        name, line_map = files[match["path"]]
        line = int(match["line"])
        origin = line_map[line - 1] if line <= len(line_map) else None
        where = f"{name}:{line}:{match['column']}"
        if match["severity"] == "note":
            if diagnostics:  # a note explains the error before it
                last = diagnostics[-1]
                hint = (
                    f"{last.hint}; {match['message']}"
                    if last.hint
                    else match["message"]
                )
                diagnostics[-1] = Diagnostic(
                    last.span, last.severity, last.code, last.message, hint
                )
            continue
        code = f" (mypy: {match['code']})" if match["code"] else ""
        diagnostics.append(
            Diagnostic(
                origin if origin is not None else Span.at(name, line),
                Severity.ERROR,
                Code.TYPE_ERROR,
                f"{match['message']}{code}",
                None if origin is not None else f"in generated code at {where}",
            )
        )
    return diagnostics


def _runtime_roots() -> list[Path]:
    """Where `import kiln` is found, for an editable install mypy cannot follow."""
    spec = importlib.util.find_spec("kiln")
    if spec is None or spec.origin is None:
        return []
    return [Path(spec.origin).parent.parent]
