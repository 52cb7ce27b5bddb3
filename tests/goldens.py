"""Golden cases of generated code: `tests/data/*.test`, read and rewritten.

A file holds cases in mypyc's style::

    [case independent_calls]
    <a source module>
    [out]
    <the module kiln generates from it>

A case whose source carries `# E: message  [KLNnnn]` comments is a
diagnostics case: the compiler must report exactly those errors, on those
lines, and write nothing. `pytest --update-goldens` rewrites every `[out]`
with what the compiler produces now; read the diff before committing it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data"
ERROR_MARK = re.compile(r"#\s*E:\s*(?P<message>.*)$")


@dataclass(frozen=True)
class Case:
    file: Path
    name: str
    source: str
    expected: str

    @property
    def expected_errors(self) -> list[tuple[int, str]]:
        errors = []
        for number, line in enumerate(self.source.splitlines(), start=1):
            match = ERROR_MARK.search(line)
            if match:
                errors.append((number, match["message"].strip()))
        return errors


def load_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    name: str | None = None
    section = ""
    parts: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        header = re.fullmatch(r"\[case (?P<name>\w+)\]", line)
        if header:
            if name is not None:
                cases.append(_case(path, name, parts))
            name, section, parts = header["name"], "source", {"source": [], "out": []}
        elif line == "[out]" and name is not None:
            section = "out"
        elif name is not None:
            parts[section].append(line)
    if name is not None:
        cases.append(_case(path, name, parts))
    return cases


def _case(path: Path, name: str, parts: dict[str, list[str]]) -> Case:
    source = "\n".join(parts["source"]).strip("\n") + "\n"
    out = "\n".join(parts["out"]).strip("\n")
    return Case(path, name, source, out + "\n" if out else "")


def write_cases(path: Path, cases: list[Case]) -> None:
    chunks = []
    for case in cases:
        chunk = f"[case {case.name}]\n{case.source}"
        if case.expected:
            chunk += f"[out]\n{case.expected}"
        chunks.append(chunk)
    path.write_text("\n".join(chunks), encoding="utf-8")
