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
configuration of kiln's (``--strict``, the sources' import roots on the search
path), so the user's mypy settings neither loosen nor break the check of
generated code. mypy finds `kiln` as users' own mypy does: an installed, typed
package (PEP 561) on this interpreter's path; only a checkout that an editable
install maps through an import hook, which mypy cannot follow, is added to the
search path. A mypy that stops before checking (a refused setting, a crash,
exit status 2) raises `MypyFailed`: never a pass. mypy's cache is kept
between checks (`mypy_cache`).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import os
import re
import site
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from mypy import api
from mypy.version import __version__ as mypy_version

from kilnc.diagnostics import Code, Diagnostic, Severity
from kilnc.pinpoint import Expressions, pinpoint
from kilnc.source import Span

_REPORT = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|note): "
    r"(?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)
_ERROR = re.compile(r"^.+?:\d+(?::\d+)?: error: ", re.MULTILINE)


class MypyFailed(Exception):
    """mypy stopped before it checked the modules; the message is mypy's."""


def typecheck_modules(
    modules: Sequence[tuple[str, str, tuple[Span | None, ...]]],
    markers: Sequence[str],
    roots: Sequence[Path],
    sources: Mapping[str, str] | None = None,
) -> list[Diagnostic]:
    """Check `(path, text, line map)` modules, each path relative to the directory
    above the output tree (`build/app/main.py`), with the tree's package `markers`;
    each error where its line came from, at the expression of the source that
    the generated one copies (`pinpoint`) when `sources` has the source's text
    by the path its line map names.

    `roots` are the sources' import roots, in any order and with repeats: the
    search path is the same for every order of the sources.
    """
    with tempfile.TemporaryDirectory(prefix="kiln-check-") as scratch:
        directory = Path(scratch)
        files: dict[str, tuple[str, str, tuple[Span | None, ...]]] = {}
        for marker in markers:
            (directory / marker).parent.mkdir(parents=True, exist_ok=True)
            (directory / marker).touch()
        for name, text, line_map in modules:
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            files[str(path.resolve())] = (name, text, line_map)
        config = directory / "mypy.ini"
        # The scratch tree first: the real output tree under a root may be stale.
        search = ":".join(str(p) for p in (directory, *_search_path(roots)))
        config.write_text(f"[mypy]\nmypy_path = {search}\n", encoding="utf-8")
        report = _run_mypy(
            [
                "--strict",
                "--config-file",
                str(config),
                "--python-executable",
                sys.executable,
                "--cache-dir",
                str(mypy_cache(directory)),
                # Files written whole and swapped in: two checks at once share it.
                "--no-sqlite-cache",
                *_checked_afresh(files, directory),
                "--show-column-numbers",
                "--show-absolute-path",
                "--show-error-codes",
                "--no-error-summary",
                "--no-color-output",
                "--no-pretty",
                *sorted(files),
            ]
        )
    return _diagnostics(report, files, sources or {})


def _checked_afresh(files: Iterable[str], scratch: Path) -> list[str]:
    """`--cache-map` of each checked module to cache files in the scratch
    directory: mypy checks them every time. Under the kept cache, a module of
    the same name and text as one checked before (another project's
    `build.example`, in another scratch directory) would be taken as checked,
    and its errors, found under the other path, not reported."""
    mapped: list[str] = []
    for number, path in enumerate(sorted(files)):
        stem = scratch / ".kiln-cache" / str(number)
        mapped += [path, f"{stem}.meta.ff", f"{stem}.data.ff"]
    return ["--cache-map", *mapped] if mapped else []


def mypy_cache(scratch: Path) -> Path:
    """Where mypy keeps what it learned between checks: a warm cache spares it
    reading the standard library's stubs again, most of a check's seconds.

    `$KILN_CACHE_DIR`, or kiln's directory in the user's cache directory
    (`$XDG_CACHE_HOME/kiln`, `~/.cache/kiln`), by mypy's version; the check's
    scratch directory, a cold cache, where that cannot be made. mypy checks
    each entry against its file before it trusts it.
    """
    root = os.environ.get("KILN_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = str(Path(base) / "kiln")
    cache = Path(root) / f"mypy-{mypy_version}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return scratch / ".mypy_cache"
    return cache if os.access(cache, os.W_OK) else scratch / ".mypy_cache"


def _run_mypy(args: list[str]) -> str:
    """mypy's report on stdout; MypyFailed when mypy could not check.

    mypy says so in several ways: on its stderr, with exit status 2 (a crash,
    a blocking error), by raising, or, for a refused search path, by printing
    to the process's own stderr and exiting 1 with no error reported. What it
    printed to the process's streams while it did check (a library's warning)
    is passed on.
    """
    leaked = io.StringIO()
    try:
        with contextlib.redirect_stderr(leaked), contextlib.redirect_stdout(leaked):
            stdout, stderr, status = api.run(args)
    except Exception as exc:  # mypy's own failure, reported as such
        raise MypyFailed(f"{type(exc).__name__}: {exc}") from exc
    checked = status == 0 or (status == 1 and _ERROR.search(stdout) is not None)
    if stderr.strip() or not checked:
        said = (stderr.strip(), leaked.getvalue().strip(), stdout.strip())
        raise MypyFailed(
            "\n".join(s for s in said if s) or f"mypy exited with {status}"
        )
    sys.stderr.write(leaked.getvalue())
    return stdout


def _search_path(roots: Sequence[Path]) -> list[Path]:
    """mypy_path: the import roots, sorted, then the runtime when mypy cannot find it.

    A site-packages directory is never on it (mypy refuses one): mypy reads
    this interpreter's site-packages by itself.
    """
    installed = _site_packages()
    found = sorted({root.resolve() for root in roots} - installed)
    return found + [p for p in _runtime_root() if p not in found]


def _runtime_root() -> list[Path]:
    """The directory holding `kiln` when an import hook, not a path entry, finds it.

    An installed kiln (a wheel, or an editable install in strict mode) is in a
    directory on sys.path, where mypy finds it as the typed package it is. An
    editable install through setuptools' finder maps `kiln` to the checkout's
    runtime/, which is on no path mypy reads.
    """
    spec = importlib.util.find_spec("kiln")
    if spec is None or spec.origin is None:
        return []
    on_path = importlib.machinery.PathFinder.find_spec("kiln")
    if on_path is not None and on_path.origin == spec.origin:
        return []
    root = Path(spec.origin).resolve().parent.parent
    return [] if root in _site_packages() else [root]


def _site_packages() -> set[Path]:
    found = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        found.append(site.getusersitepackages())
    return {Path(p).resolve() for p in found}


def _diagnostics(
    report: str,
    files: dict[str, tuple[str, str, tuple[Span | None, ...]]],
    sources: Mapping[str, str],
) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    outputs: dict[str, Expressions | None] = {}
    inputs: dict[str, Expressions | None] = {}
    for text in report.splitlines():
        match = _REPORT.match(text)
        if match is None or match["path"] not in files:
            continue
        name, generated, line_map = files[match["path"]]
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
        message = match["message"]
        if origin is not None:
            pinned = pinpoint(
                origin,
                message,
                _parsed(outputs, name, generated),
                line_map,
                (line, int(match["column"])),
                _parsed(inputs, origin.path, sources.get(origin.path)),
            )
            origin, message = pinned.span, pinned.message
        code = f" (mypy: {match['code']})" if match["code"] else ""
        diagnostics.append(
            Diagnostic(
                origin if origin is not None else Span.at(name, line),
                Severity.ERROR,
                Code.TYPE_ERROR,
                f"{message}{code}",
                None if origin is not None else f"in generated code at {where}",
            )
        )
    return diagnostics


def _parsed(
    parsed: dict[str, Expressions | None], path: str, text: str | None
) -> Expressions | None:
    """A module's expressions, parsed on first use; None for text that will not parse."""
    if path not in parsed:
        try:
            parsed[path] = None if text is None else Expressions(text)
        except (SyntaxError, ValueError):
            parsed[path] = None
    return parsed[path]
