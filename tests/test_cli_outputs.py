"""kiln writes only files it owns (issue 12.1): `kiln compile`'s output paths, attacked.

Every case runs the installed `kiln` command. The sources, the links to them
and the user's other files must come out byte for byte as they went in; a
refusal writes nothing at all (no file, no directory) and exits 1 with a
located diagnostic; nothing ever prints a traceback (`kiln` asserts that).
The property at the end draws random layouts of sources, output directories
and what already stands at the output paths.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kilnc.cli import outputs
from kilnc.cli.outputs import write_atomically
from kilnc.source import is_generated_module
from tests.test_cli import kiln, write
from tests.unprivileged import kiln_as_user, place

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and FIFOs")

FLOW = """\
from kiln import flow, node


@node
def double(x: int) -> int:
    return 2 * x


@flow
async def {name}(x: int) -> int:
    return double(x)
"""


def source(path: Path, name: str = "digest") -> Path:
    return write(path, FLOW.format(name=name))


def snapshot(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every entry under `root`: a link's target, a file's bytes, a directory, a FIFO."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            key = str(path.relative_to(root))
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISREG(mode):
                found[key] = ("file", path.read_bytes())
            else:
                found[key] = ("dir" if stat.S_ISDIR(mode) else "other", "")
    return found


def refused(result: subprocess.CompletedProcess[str], code: str) -> None:
    assert result.returncode == 1, result
    assert f"[{code}]" in result.stdout, result


def test_dash_o_dot_never_overwrites_the_source(tmp_path: Path) -> None:
    source(tmp_path / "digest.py")
    before = snapshot(tmp_path)
    for out in (".", "./", str(tmp_path), f"{tmp_path}/."):
        result = kiln("compile", "digest.py", "-o", out, cwd=tmp_path)
        refused(result, "KLN701")
        assert "would overwrite the source" in result.stdout
        assert snapshot(tmp_path) == before


def test_force_never_overwrites_a_source(tmp_path: Path) -> None:
    source(tmp_path / "digest.py")
    before = snapshot(tmp_path)
    refused(kiln("compile", "digest.py", "-o", ".", "--force", cwd=tmp_path), "KLN701")
    assert snapshot(tmp_path) == before


@POSIX
def test_an_output_that_links_to_the_source(tmp_path: Path) -> None:
    source(tmp_path / "src" / "digest.py")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "digest.py").symlink_to("../src/digest.py")
    before = snapshot(tmp_path)
    result = kiln("compile", "src/digest.py", "-o", "out", "--force", cwd=tmp_path)
    refused(result, "KLN701")
    assert "through a symbolic link" in result.stdout
    assert snapshot(tmp_path) == before


@POSIX
def test_an_output_directory_that_links_to_the_sources(tmp_path: Path) -> None:
    source(tmp_path / "src" / "digest.py")
    (tmp_path / "out").symlink_to("src")
    before = snapshot(tmp_path)
    refused(kiln("compile", "src/digest.py", "-o", "out", cwd=tmp_path), "KLN701")
    assert snapshot(tmp_path) == before


@POSIX
def test_an_output_that_is_a_hard_link_of_the_source(tmp_path: Path) -> None:
    source(tmp_path / "src" / "digest.py")
    (tmp_path / "out").mkdir()
    os.link(tmp_path / "src" / "digest.py", tmp_path / "out" / "digest.py")
    before = snapshot(tmp_path)
    result = kiln("compile", "src/digest.py", "-o", "out", "--force", cwd=tmp_path)
    refused(result, "KLN701")
    assert "hard link" in result.stdout
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "config",
    [
        'sources = ["pipes"]\noutput = "pipes"',
        'sources = ["pipes/*.py"]\noutput = "pipes"',
        'sources = ["pipes/digest.py"]\noutput = "pipes/"',
        'sources = ["pipes", "pipes/digest.py"]\noutput = "pipes"',
        'sources = ["pipes/**/*.py"]\noutput = "pipes/"',
    ],
)
def test_configured_output_over_the_sources(tmp_path: Path, config: str) -> None:
    source(tmp_path / "pipes" / "digest.py")
    write(tmp_path / "pyproject.toml", f"[tool.kiln]\n{config}\n")
    before = snapshot(tmp_path)
    result = kiln("compile", cwd=tmp_path)
    refused(result, "KLN701")
    # Located at the `output` key of pyproject.toml, with its line shown.
    assert result.stdout.startswith("pyproject.toml:3:1: error: "), result.stdout
    assert "    output = " in result.stdout
    assert snapshot(tmp_path) == before


def test_an_output_over_a_module_the_flow_imports(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[project]\nname = 'p'\n")
    write(tmp_path / "lib" / "__init__.py", "")
    write(
        tmp_path / "lib" / "digest.py",
        "from kiln import node\n\n\n@node\ndef double(x: int) -> int:\n    return 2 * x\n",
    )
    write(
        tmp_path / "src" / "digest.py",
        "from kiln import flow\n\nfrom lib.digest import double\n\n\n@flow\n"
        "async def digest(x: int) -> int:\n    return double(x)\n",
    )
    before = snapshot(tmp_path)
    result = kiln("compile", "src/digest.py", "-o", "lib", "--force", cwd=tmp_path)
    refused(result, "KLN701")
    assert "a module the generated module imports" in result.stdout
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "text",
    [
        b"print('mine')\n",
        b"",
        b"# Generated by kiln 0.1.0 from digest.py; do not edit.\nprint('mine')\n",
        b"\xff\xfe not even UTF-8",
    ],
    ids=["a-module", "empty", "half-a-header", "binary"],
)
def test_a_file_kiln_did_not_write_is_kept_even_forced(
    tmp_path: Path, text: bytes
) -> None:
    """An output is a module: at its path, a file kiln did not write is Python
    code of the user's, which --force never replaces."""
    source(tmp_path / "digest.py")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "digest.py").write_bytes(text)
    before = snapshot(tmp_path)
    for flags in ((), ("--force",)):
        result = kiln("compile", "digest.py", "-o", "build", *flags, cwd=tmp_path)
        refused(result, "KLN702")
        assert "never Python code of yours, even with --force" in result.stdout
        assert "--force replaces it" not in result.stdout
        assert snapshot(tmp_path) == before


def test_a_generated_module_is_replaced(tmp_path: Path) -> None:
    source(tmp_path / "digest.py")
    assert kiln("compile", "digest.py", "-o", "build", cwd=tmp_path).returncode == 0
    target = tmp_path / "build" / "digest.py"
    first = target.read_bytes()
    target.chmod(0o640)
    source(tmp_path / "digest.py", name="renamed")
    again = kiln("compile", "digest.py", "-o", "build", cwd=tmp_path)
    assert again.returncode == 0, again
    assert target.read_bytes() != first
    assert stat.S_IMODE(target.stat().st_mode) == 0o640, "the file's mode is kept"
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "__init__.py",
        "digest.py",
    ], "no temporary left"


@POSIX
def test_a_link_to_a_generated_module_is_written_through(tmp_path: Path) -> None:
    source(tmp_path / "digest.py")
    assert kiln("compile", "digest.py", "-o", "real", cwd=tmp_path).returncode == 0
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "digest.py").symlink_to("../real/digest.py")
    source(tmp_path / "digest.py", name="renamed")
    result = kiln("compile", "digest.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 0, result
    assert (tmp_path / "build" / "digest.py").is_symlink()
    assert "class Renamed" in (tmp_path / "real" / "digest.py").read_text()


@POSIX
def test_force_never_writes_through_a_link_to_a_file_kiln_did_not_write(
    tmp_path: Path,
) -> None:
    source(tmp_path / "digest.py")
    (tmp_path / "precious.txt").write_text("the user's data\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "digest.py").symlink_to("../precious.txt")
    before = snapshot(tmp_path)
    for flags in ((), ("--force",)):
        result = kiln("compile", "digest.py", "-o", "build", *flags, cwd=tmp_path)
        refused(result, "KLN702")
        assert "is a symbolic link to" in result.stdout
        assert "precious.txt" in result.stdout
        assert snapshot(tmp_path) == before
    assert (tmp_path / "precious.txt").read_text() == "the user's data\n"


@POSIX
@pytest.mark.parametrize("kind", ["directory", "fifo", "dangling-link", "link-loop"])
def test_an_output_path_that_is_no_file(tmp_path: Path, kind: str) -> None:
    source(tmp_path / "digest.py")
    target = tmp_path / "build" / "digest.py"
    target.parent.mkdir()
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "dangling-link":
        target.symlink_to("nowhere/digest.py")
    else:
        target.symlink_to("digest.py")
    before = snapshot(tmp_path)
    result = kiln("compile", "digest.py", "-o", "build", "--force", cwd=tmp_path)
    refused(result, "KLN703")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("notes.txt", "the output directory notes.txt is a regular file"),
        ("notes.txt/build", "cannot be made: notes.txt is a regular file"),
        ("digest.py", "is the source digest.py"),
        ("digest.py/deep/er", "cannot be made: digest.py is the source digest.py"),
    ],
)
def test_an_output_directory_that_is_a_file(
    tmp_path: Path, output: str, message: str
) -> None:
    source(tmp_path / "digest.py")
    write(tmp_path / "notes.txt", "mine\n")
    before = snapshot(tmp_path)
    result = kiln("compile", "digest.py", "-o", output, cwd=tmp_path)
    refused(result, "KLN703")
    assert message in result.stdout
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_an_output_directory_that_cannot_be_made(tmp_path: Path) -> None:
    source(tmp_path / "digest.py")
    result = kiln("compile", "digest.py", "-o", "/proc/kiln-cannot-make", cwd=tmp_path)
    refused(result, "KLN703")
    assert "cannot write" in result.stdout


@POSIX
def test_an_unwritable_output_directory() -> None:
    with place() as root:
        source(root / "digest.py")
        (root / "build").mkdir(mode=0o555)
        (root / "build").chmod(0o555)
        before = snapshot(root)
        result = kiln_as_user("compile", "digest.py", "-o", "build", cwd=root)
        refused(result, "KLN703")
        assert "Permission denied" in result.stdout
        assert snapshot(root) == before


def test_one_refused_output_writes_none(tmp_path: Path) -> None:
    source(tmp_path / "a.py", "first")
    source(tmp_path / "b.py", "second")
    write(tmp_path / "build" / "b.py", "# mine\n")
    before = snapshot(tmp_path)
    result = kiln("compile", "a.py", "b.py", "-o", "build", cwd=tmp_path)
    refused(result, "KLN702")
    assert snapshot(tmp_path) == before, "a.py's output is not written either"


def test_refusals_in_json(tmp_path: Path) -> None:
    source(tmp_path / "digest.py")
    result = kiln("compile", "digest.py", "-o", ".", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result
    [diagnostic] = json.loads(result.stdout)
    assert diagnostic["code"] == "KLN701"
    assert diagnostic["path"] == "digest.py"


@pytest.mark.parametrize(
    "name",
    ["with space", "quo'te", 'dou"ble', "new\nline", "tab\there", "esc\x1b[2Jape"],
    ids=["space", "quote", "double-quote", "newline", "tab", "escape"],
)
def test_odd_file_names(tmp_path: Path, name: str) -> None:
    if sys.platform == "win32" and any(c in name for c in '"\n\t\x1b'):
        pytest.skip("not a Windows file name")
    source(tmp_path / f"{name}.py")
    result = kiln("compile", f"{name}.py", "-o", f"out {name}", cwd=tmp_path)
    assert result.returncode == 0, result
    assert is_generated_module(tmp_path / f"out {name}" / f"{name}.py")
    # One line per output, controls escaped: the name cannot break a line or a terminal.
    [line] = result.stdout.splitlines()
    assert "\x1b" not in result.stdout
    assert line.endswith(".py"), line
    again = kiln("compile", f"{name}.py", "-o", ".", cwd=tmp_path)
    refused(again, "KLN701")
    assert len(again.stdout.splitlines()) == 3, again.stdout  # error, note, summary


def test_a_directory_of_sources_compiled_twice(tmp_path: Path) -> None:
    """The outputs under a searched directory are no sources the second time."""
    source(tmp_path / "digest.py")
    source(tmp_path / "pipes" / "etl.py", "etl")
    write(tmp_path / "build" / "flow_mention.py", "# a flow? no\n")
    for _ in range(2):
        result = kiln("compile", ".", "-o", "build/out", cwd=tmp_path)
        assert result.returncode == 0, result
        assert sorted(p.name for p in (tmp_path / "build" / "out").iterdir()) == [
            "__init__.py",
            "digest.py",
            "etl.py",
        ]
    # A generated module elsewhere in the tree is skipped too, and a hidden directory.
    (tmp_path / "build" / "out" / "digest.py").rename(tmp_path / "copied.py")
    source(tmp_path / ".venv" / "lib" / "site.py", "site")
    result = kiln("compile", ".", "-o", "build/out", cwd=tmp_path)
    assert result.returncode == 0, result
    assert "copied.py" not in result.stdout
    assert "site.py" not in result.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("fifo", "is a FIFO, not a source file"),
        ("empty-dir", "is a directory with no flow sources"),
        ("no-flows", "is a directory with no flow sources"),
        ("generated", "is a module kiln generated; name its source instead"),
        ("dangling", "is a symbolic link to a path that does not exist"),
        ("missing", "no such file or directory"),
    ],
)
def test_sources_that_are_not_sources(tmp_path: Path, make: str, message: str) -> None:
    thing = tmp_path / "thing"
    if make == "fifo":
        if sys.platform == "win32":
            pytest.skip("POSIX FIFOs")
        os.mkfifo(thing)
    elif make == "empty-dir":
        thing.mkdir()
    elif make == "no-flows":
        write(thing / "helpers.py", "x = 1\n")
    elif make == "generated":
        source(tmp_path / "digest.py")
        assert kiln("compile", "digest.py", "-o", "out", cwd=tmp_path).returncode == 0
        (tmp_path / "out" / "digest.py").rename(thing)
    elif make == "dangling":
        thing.symlink_to("nowhere.py")
    before = snapshot(tmp_path)
    result = kiln("compile", "thing", "-o", "build", cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stderr.startswith("kiln: error: "), result.stderr
    assert message in result.stderr, result.stderr
    assert snapshot(tmp_path) == before


def test_dev_null_is_a_device(tmp_path: Path) -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    result = kiln("compile", "/dev/null", "-o", "build", cwd=tmp_path)
    assert result.returncode == 2, result
    assert "/dev/null is a character device, not a source file" in result.stderr
    assert not (tmp_path / "build").exists()


@POSIX
@pytest.mark.parametrize("command", ["compile --check", "check --no-mypy"])
def test_stale_checks_read_odd_outputs_without_hanging(
    tmp_path: Path, command: str
) -> None:
    source(tmp_path / "a.py", "first")
    source(tmp_path / "b.py", "second")
    (tmp_path / "build").mkdir()
    os.mkfifo(tmp_path / "build" / "a.py")
    (tmp_path / "build" / "b.py").write_bytes(b"\xff\xfe")
    result = kiln(*command.split(), "a.py", "b.py", "-o", "build", cwd=tmp_path)
    assert result.returncode == 1, result
    assert result.stdout.count("[KLN502]") == 2, result.stdout


# --- the writer itself -----------------------------------------------------------------


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "digest.py"
    target.write_bytes(b"old")

    def crash(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["digest.py"]


def test_an_interrupted_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "digest.py"
    target.write_bytes(b"old")

    def interrupted(descriptor: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, b"new" * 100_000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["digest.py"]


# --- the property: random layouts, and no file of the user's ever changes --------------

HOMES = (".", "a", "b", "a/sub")
OUTPUTS = (".", "a", "b", "a/sub", "out", "out/deep", "link_to_a", "a/out")
PLANTS = (
    "nothing",
    "user-file",
    "empty",
    "generated",
    "source-link",
    "hard-link",
    "directory",
    "dangling-link",
)
HEADER = (
    "# Generated by kiln 0.1.0 from old.py; do not edit.\n"
    f"# sources sha256: {'0' * 64}\n"
    "import kiln as _kiln\n"
)


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, object]:
    stems = draw(
        st.lists(
            st.sampled_from(["digest", "etl", "crawl"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    return {
        "homes": {stem: draw(st.sampled_from(HOMES)) for stem in stems},
        "plants": {stem: draw(st.sampled_from(PLANTS)) for stem in stems},
        "output": draw(st.sampled_from(OUTPUTS)),
        "mode": draw(st.sampled_from(["files", "directories", "config"])),
        "force": draw(st.booleans()),
        "orphan": draw(st.booleans()),
    }


def orphan_header(root: Path, layout: dict[str, object]) -> str:
    """A module kiln wrote from `gone.py` beside the first source, which is gone."""
    homes: dict[str, str] = layout["homes"]  # type: ignore[assignment]
    gone = root / next(iter(homes.values())) / "gone.py"
    here = os.path.realpath(root / str(layout["output"]))
    at = os.path.relpath(os.path.realpath(gone), here)
    return HEADER.replace("from old.py;", f"from gone.py (at {at});")


def build(root: Path, layout: dict[str, object]) -> tuple[list[str], dict[str, Path]]:
    """The layout on disk; the command's arguments and each stem's source."""
    homes: dict[str, str] = layout["homes"]  # type: ignore[assignment]
    plants: dict[str, str] = layout["plants"]  # type: ignore[assignment]
    output = str(layout["output"])
    for directory in ("a", "b", "a/sub"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "link_to_a").symlink_to("a")
    sources = {
        stem: source(root / home / f"{stem}.py", stem) for stem, home in homes.items()
    }
    for stem, plant in plants.items():
        target = root / output / f"{stem}.py"
        if plant == "nothing" or os.path.lexists(target):
            continue  # the source itself, or a link to its directory, is there
        target.parent.mkdir(parents=True, exist_ok=True)
        if plant == "user-file":
            target.write_text("# mine\n", encoding="utf-8")
        elif plant == "empty":
            target.touch()
        elif plant == "generated":
            target.write_text(HEADER, encoding="utf-8")
        elif plant == "source-link":
            target.symlink_to(os.path.relpath(sources[stem], target.parent))
        elif plant == "hard-link":
            os.link(sources[stem], target)
        elif plant == "directory":
            target.mkdir()
        else:
            target.symlink_to("nowhere.py")
    if layout["orphan"] and not os.path.lexists(root / output / "gone.py"):
        write(root / output / "gone.py", orphan_header(root, layout))
    names = [str(path.relative_to(root)) for path in sources.values()]
    force = ["--force"] if layout["force"] else []
    if layout["mode"] == "files":
        return ["compile", *names, "-o", output, *force], sources
    if layout["mode"] == "directories":
        folders = sorted({str(Path(name).parent) for name in names})
        return ["compile", *folders, "-o", output, *force], sources
    listed = ", ".join(json.dumps(name) for name in names)
    write(
        root / "pyproject.toml",
        f"[tool.kiln]\nsources = [{listed}]\noutput = {output!r}\n",
    )
    return ["compile", *force], sources


def _nothing_in_the_way(root: Path, layout: dict[str, object]) -> bool:
    """Whether every output may be written: no source and no file of the user's in the way."""
    homes: dict[str, str] = layout["homes"]  # type: ignore[assignment]
    plants: dict[str, str] = layout["plants"]  # type: ignore[assignment]
    allowed = {"nothing", "generated"}  # --force never replaces a module of the user's
    output = os.path.realpath(root / str(layout["output"]))
    return all(plant in allowed for plant in plants.values()) and all(
        os.path.realpath(root / home) != output for home in homes.values()
    )


@POSIX
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(layout=layouts())
def test_no_file_of_the_users_is_ever_changed(layout: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory(prefix="kiln-layout-") as directory:
        root = Path(directory)
        args, sources = build(root, layout)
        before = snapshot(root)
        result = kiln(*args, cwd=root)
        after = snapshot(root)
        writable = _nothing_in_the_way(root, layout)
        # The orphan by its real path: an output directory may be a link.
        orphan = os.path.relpath(
            os.path.realpath(root / str(layout["output"]) / "gone.py"),
            os.path.realpath(root),
        )
    assert result.returncode in (0, 1, 2), result
    if writable:
        assert result.returncode == 0, ("kiln refused a layout it may write", result)
    for path in sources.values():
        key = str(path.relative_to(root))
        assert after[key] == before[key], (key, result)
    if result.returncode != 0:
        assert after == before, ("a refusal writes nothing", result)
        return
    for key in before.keys() - after.keys():  # removed: an orphan kiln wrote, only
        assert before[key][0] == "file", (key, result)
        assert bytes(before[key][1]).startswith(b"# Generated by kiln"), (key, result)
    if layout["orphan"]:
        assert orphan in before, result
        assert orphan not in after, ("an orphan stays", result)
    changed = {key for key in after if after[key] != before.get(key)}
    for key in changed:
        old = before.get(key)
        if old is None or old[0] == "dir":
            continue  # made by kiln: a directory, or an output where nothing was
        assert old[0] == "file", (key, result)
        assert old[1].startswith(b"# Generated by kiln"), (key, result)
    output = root / str(layout["output"])
    for stem in sources:
        written = after.get(str((output / f"{stem}.py").relative_to(root)))
        if written is not None and written[0] == "file":
            assert bytes(written[1]).startswith(b"# Generated by kiln"), result
