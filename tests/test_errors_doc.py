"""docs/errors.md documents every diagnostic code, and its examples say what kiln says.

Each `### KLNnnn` section holds a `python` block (saved as example.py) or a
`toml` block (saved as pyproject.toml), and a `console` block: `$ kiln ...`
commands, each followed by lines it must print. A section without a runnable
example says why in an `<!-- no example: ... -->` comment.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from kilnc.diagnostics import Code
from tests.test_cli import kiln, write

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
HEADING = re.compile(r"^### (KLN\d{3}): ", re.MULTILINE)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILES = {"python": "example.py", "toml": "pyproject.toml"}
# Codes no single source can trigger: they come from the file system, from a bug
# in kiln, or from a compile of several modules (tests/test_packages.py has those).
WITHOUT_EXAMPLE = {"KLN003", "KLN313", "KLN404", "KLN702", "KLN704", "KLN999"}


@dataclass(frozen=True)
class Section:
    code: str
    text: str

    @property
    def blocks(self) -> list[tuple[str, str]]:
        return [(m[1], m[2]) for m in FENCE.finditer(self.text)]


def sections() -> list[Section]:
    text = DOC.read_text(encoding="utf-8")
    starts = list(HEADING.finditer(text))
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return [
        Section(m[1], text[m.start() : end].split("\n## ")[0])
        for m, end in zip(starts, ends, strict=True)
    ]


SECTIONS = sections()
RUNNABLE = [s for s in SECTIONS if s.code not in WITHOUT_EXAMPLE]


def test_every_code_is_documented_once() -> None:
    documented = [s.code for s in SECTIONS]
    assert len(documented) == len(set(documented))
    assert set(documented) == {code.value for code in Code}


def test_only_the_codes_without_a_source_have_no_example() -> None:
    for section in SECTIONS:
        has_comment = "<!-- no example:" in section.text
        assert has_comment == (section.code in WITHOUT_EXAMPLE), section.code
        assert "**Fix:**" in section.text, section.code


def commands(console: str) -> list[tuple[list[str], list[str]]]:
    """Each `$ kiln ...` line of a console block, with the lines shown after it."""
    found: list[tuple[list[str], list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            argv = shlex.split(line[2:])
            assert argv[0] == "kiln", line
            found.append((argv[1:], []))
        elif line.strip():
            found[-1][1].append(line.rstrip())
    return found


@pytest.mark.parametrize("section", RUNNABLE, ids=lambda s: s.code)
def test_the_example_gives_its_code_and_message(
    tmp_path: Path, section: Section
) -> None:
    blocks = section.blocks
    written = [
        write(tmp_path / FILES[kind], body) for kind, body in blocks if kind in FILES
    ]
    assert written, f"{section.code}: no python or toml example"
    (console,) = [body for kind, body in blocks if kind == "console"]
    runs = commands(console)
    assert runs, f"{section.code}: no command"
    for args, shown in runs:
        result = kiln(*args, cwd=tmp_path)
        printed = (result.stdout + result.stderr).splitlines()
        missing = [line for line in shown if line not in printed]
        assert not missing, f"{section.code}: not printed {missing}:\n{result.stdout}"
    assert result.returncode == 1, result
    assert f"[{section.code}]" in result.stdout
