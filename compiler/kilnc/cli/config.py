"""load_config and settle: `[tool.kiln]` in pyproject.toml, and the command line over it.

Example input (pyproject.toml)::

    [tool.kiln]
    sources = ["pipelines/*.py"]
    output = "build"
    max_visit = 10

Output: `Config(sources=("pipelines/*.py",), output="build")` and a diagnostic
at the key, `pyproject.toml:4:1: error: unknown key 'max_visit' in [tool.kiln]
[KLN601]`, with the hint "did you mean 'max_visits'?". The file is the
nearest pyproject.toml above the sources named on the command line (or above
the working directory); paths in it are relative to its directory. A flag on
the command line wins over the file, the file over kiln's defaults.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Final, final

from kilnc.cli.inputs import output_inside, real_path
from kilnc.diagnostics import Code, Diagnostic, error
from kilnc.source import SourceFile, Span, display_path, is_generated_module

TABLE: Final = "[tool.kiln]"
GLOB_MAGIC: Final = re.compile(r"[*?\[]")
EXAMPLE: Final = '[tool.kiln]\nsources = ["pipelines/*.py"]\noutput = "build"'


class UsageError(Exception):
    """Bad command-line use: the command prints the message and exits 2."""


def _non_empty_string(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _relative_patterns(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(_non_empty_string(v) and not Path(v).is_absolute() for v in value)
    )


def _keys() -> dict[str, tuple[Callable[[object], bool], str]]:
    """Each key of [tool.kiln], the check its value must pass, and what it must be.

    `max_visits` is every flow's default `@flow(max_visits=...)`: the runtime's
    rule for that option, read when a config is checked (the runtime is no
    import of `kiln --help`, which imports this module).
    """
    from kiln.options import FLOW_RULES  # noqa: PLC0415 - see above

    visits = FLOW_RULES["max_visits"]
    return {
        "sources": (
            _relative_patterns,
            "a non-empty list of files or globs relative to pyproject.toml,"
            ' e.g. ["pipelines/*.py"]',
        ),
        "output": (_non_empty_string, 'a directory, e.g. "build"'),
        "max_visits": (visits.accepts, visits.requirement),
        "ledger": (_non_empty_string, 'a file path, e.g. ".kiln/ledger.db"'),
    }


@final
@dataclass(frozen=True, slots=True)
class Config:
    """The `[tool.kiln]` table as written; `pyproject` is None when there is none.

    `ledger` is the default ledger path of generated flows (relative to the
    pyproject.toml's directory), which `kiln compile` writes into them.
    """

    pyproject: Path | None = None
    sources: tuple[str, ...] = ()
    output: str | None = None
    max_visits: int | None = None
    ledger: str | None = None
    source: SourceFile | None = field(default=None, repr=False, compare=False)

    @property
    def root(self) -> Path | None:
        return None if self.pyproject is None else self.pyproject.parent

    @property
    def output_dir(self) -> Path | None:
        return (
            None
            if self.root is None or self.output is None
            else self.root / self.output
        )

    @property
    def ledger_path(self) -> Path | None:
        return (
            None
            if self.root is None or self.ledger is None
            else self.root / self.ledger
        )


@final
@dataclass(frozen=True, slots=True)
class Settings:
    """What `kiln compile` runs with, after the command line and the file are settled."""

    sources: tuple[Path, ...]
    output: Path | None  # None only for a command that writes nothing
    max_visits: int | None
    ledger: Path | None  # absolute


def ledger_beside(ledger: Path | None, module: Path) -> str | None:
    """The configured ledger as a generated module at `module` names it: from its folder.

    Relative, so that the project can move; the runtime resolves it against the
    module's file.
    """
    if ledger is None:
        return None
    return Path(os.path.relpath(ledger.resolve(), module.resolve().parent)).as_posix()


def config_start(sources: Sequence[Path]) -> Path:
    """Where to look for pyproject.toml: above the named sources, else the working directory."""
    if not sources:
        return Path.cwd()
    folders = [p.resolve() if p.is_dir() else p.resolve().parent for p in sources]
    return Path(os.path.commonpath(folders))


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start: Path) -> tuple[Config, list[Diagnostic]]:
    """`[tool.kiln]` of the nearest pyproject.toml above `start`; errors at their keys."""
    pyproject = find_pyproject(start)
    if pyproject is None:
        return Config(), []
    try:
        data = pyproject.read_bytes()
    except OSError as exc:
        span = Span.at(display_path(pyproject), 1)
        return Config(), [
            error(span, Code.BAD_PYPROJECT, f"cannot read: {exc.strerror}")
        ]
    source = SourceFile.from_bytes(display_path(pyproject), "", data)
    try:
        data.decode("utf-8-sig")  # SourceFile replaces what is not UTF-8; TOML is
    except UnicodeDecodeError as exc:
        return Config(pyproject, source=source), [_not_utf8(source, data, exc)]
    try:
        document = tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as exc:
        return Config(pyproject, source=source), [_invalid_toml(source, exc)]
    tool = document.get("tool")
    table = tool.get("kiln") if isinstance(tool, dict) else None
    if table is None:
        return Config(), []
    if not isinstance(table, dict):
        span = key_span(source, "kiln")
        problem = error(span, Code.CONFIG_VALUE, f"{TABLE} must be a table")
        return Config(pyproject, source=source), [problem]
    diagnostics = list(_check(source, table))
    if diagnostics:
        return Config(pyproject, source=source), diagnostics
    return (
        Config(
            pyproject,
            tuple(table.get("sources", ())),
            table.get("output"),
            table.get("max_visits"),
            table.get("ledger"),
            source,
        ),
        [],
    )


def _check(source: SourceFile, table: dict[str, object]) -> Iterator[Diagnostic]:
    keys = _keys()
    for key, value in table.items():
        span = key_span(source, key)
        rule = keys.get(key)
        if rule is None:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"the keys are: {', '.join(keys)}"
            )
            yield error(
                span, Code.UNKNOWN_CONFIG_KEY, f"unknown key '{key}' in {TABLE}", hint
            )
        elif not rule[0](value):
            yield error(
                span, Code.CONFIG_VALUE, f"'{key}' in {TABLE} must be {rule[1]}"
            )
        elif _holds_nul(value):  # no path can: a file name's end in C
            yield error(
                span,
                Code.CONFIG_VALUE,
                f"'{key}' in {TABLE} holds a NUL byte (\\u0000), which no path can",
            )


def _holds_nul(value: object) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and "\0" in v for v in values)


def _invalid_toml(source: SourceFile, exc: tomllib.TOMLDecodeError) -> Diagnostic:
    """tomllib says where in its message: "... (at line 3, column 10)", or "(at end
    of document)": the end of the last line that holds anything (an array left
    open there)."""
    where = re.search(r"\(at line (\d+), column (\d+)\)$", str(exc))
    end = re.search(r"\(at end of document\)$", str(exc))
    found = where or end
    message = str(exc) if found is None else str(exc)[: found.start()].rstrip()
    line, column = (int(where[1]), int(where[2])) if where else (1, 1)
    if end is not None:
        line = next(
            (n for n in range(len(source.lines), 0, -1) if source.lines[n - 1].strip()),
            1,
        )
        column = len(source.lines[line - 1].rstrip("\r\n")) + 1 if source.lines else 1
    return error(
        Span.at(source.path, line, column),
        Code.BAD_PYPROJECT,
        f"invalid TOML: {message}",
    )


def _not_utf8(source: SourceFile, data: bytes, exc: UnicodeDecodeError) -> Diagnostic:
    """At the first byte that is not UTF-8, as tomllib and pip refuse the file."""
    start = data.rfind(b"\n", 0, exc.start) + 1
    before = data[start : exc.start].decode("utf-8-sig", errors="replace")
    return error(
        Span.at(source.path, data.count(b"\n", 0, exc.start) + 1, len(before) + 1),
        Code.BAD_PYPROJECT,
        f"invalid TOML: not UTF-8 (byte 0x{data[exc.start]:02x})",
        "TOML files are UTF-8: save the file as UTF-8",
    )


def key_span(source: SourceFile, key: str) -> Span:
    """The key in the [tool.kiln] table; else wherever the file sets it; else the table."""
    name = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    assignment = re.compile(rf"(\s*)({name})\s*=")
    subtable = re.compile(rf"(\s*\[\s*tool\s*\.\s*kiln\s*\.\s*)({name})")
    dotted = re.compile(rf"(\s*(?:tool\s*\.\s*)?kiln\s*\.\s*)({name})\s*=")
    in_table, header = False, 1
    for number, line in enumerate(source.lines, start=1):
        if line.lstrip().startswith("["):
            in_table = re.match(r"\s*\[\s*tool\s*\.\s*kiln\s*\]", line) is not None
            header = number if in_table else header
        found = (
            subtable.match(line)
            or (in_table and assignment.match(line))
            or dotted.match(line)
        )
        if found:
            return Span(
                source.path, number, found.start(2) + 1, number, found.end(2) + 1
            )
    return Span.at(source.path, header)


def expand_sources(config: Config) -> tuple[list[Path], list[Diagnostic]]:
    """The configured sources: each entry a file, a directory or a glob under the root.

    A glob's matches are, like a directory's files, those that mention `flow`,
    less modules kiln generated and the output directory when it lies inside
    the glob's fixed part. An entry that matches
    nothing is an error at the `sources` key.
    """
    assert config.root is not None
    assert config.source is not None
    found: list[Path] = []
    diagnostics: list[Diagnostic] = []
    for entry in config.sources:
        matches = _matches(config, entry)
        if not matches:
            diagnostics.append(
                error(
                    key_span(config.source, "sources"),
                    Code.CONFIG_VALUE,
                    f"no file matches '{entry}' of 'sources' in {TABLE}",
                    f"entries are relative to {display_path(config.root)}",
                )
            )
        found += [path for path in matches if path not in found]
    return found, diagnostics


def _matches(config: Config, entry: str) -> list[Path]:
    assert config.root is not None
    if not GLOB_MAGIC.search(entry):
        path = config.root / entry
        return [path] if path.exists() else []
    try:
        matched = sorted(config.root.glob(entry))
    except (ValueError, NotImplementedError, IndexError):
        return []  # a pattern pathlib cannot use matches nothing
    # The output is no source when it lies inside the glob's fixed part ("**/*.py"
    # and output = "build"); one the glob points into is the user's choice, and
    # writing over its sources is refused (KLN701) rather than hidden here.
    fixed = PurePath(entry).parts
    base = config.root.joinpath(*itertools.takewhile(_plain_part, fixed))
    output = output_inside(config.output_dir, base)
    return [
        path
        for path in matched
        if (path.is_dir() or (_mentions_flow(path) and not is_generated_module(path)))
        and (output is None or not real_path(path).is_relative_to(output))
    ]


def _plain_part(part: str) -> bool:
    return GLOB_MAGIC.search(part) is None


def _mentions_flow(path: Path) -> bool:
    """The cheap filter a directory argument gets too; the compiler decides for real."""
    try:
        return path.is_file() and b"flow" in path.read_bytes()
    except OSError:
        return False


def settle(
    config: Config,
    sources: Sequence[Path],
    output: Path | None,
    max_visits: int | None,
    *,
    writes: bool = True,
) -> tuple[Settings | None, list[Diagnostic]]:
    """Command-line values over the file's; raises UsageError when something is missing.

    A command that `writes` nothing (`kiln compile --dump`) needs no output directory.
    """
    where = display_path(config.pyproject) if config.pyproject else "pyproject.toml"
    diagnostics: list[Diagnostic] = []
    if not sources and not config.sources:
        raise UsageError(
            "nothing to compile: name the sources (kiln compile SRC... -o OUTDIR) "
            f"or configure them in {where}:\n\n{EXAMPLE}"
        )
    if not sources:
        found, diagnostics = expand_sources(config)
        sources = [Path(display_path(path)) for path in found]
    configured = config.output_dir
    chosen = output or (Path(display_path(configured)) if configured else None)
    if chosen is None and writes:
        raise UsageError(
            f'no output directory: give -o OUTDIR, or set output = "build" in {TABLE} of {where}'
        )
    if diagnostics:
        return None, diagnostics
    visits = max_visits if max_visits is not None else config.max_visits
    return Settings(tuple(sources), chosen, visits, config.ledger_path), []
