"""`kiln compile` on a project of several modules, one of them wrong, through the
installed `kiln` command: each error reported once, in the file it is in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.diagnostic_shape import parse_report
from tests.test_cli import kiln, write

NODES = """\
from kiln import node


@node(limit="net")
async def fetch(url: str) -> str:
    return url.upper()


@node
def count(pages: list[str]) -> int:
    return len(pages)
"""

CRAWLER = """\
from kiln import Limit, flow

from .nodes import count, fetch


@flow(limits={"net": Limit(2)})
async def crawl(urls: list[str]) -> int:
    got = [await fetch(u) for u in urls]
    return count(got)
"""

SINGLE = """\
from kiln import Limit, flow

from .nodes import fetch


@flow(limits={"net": Limit(2)})
async def single(url: str) -> str:
    return await fetch(url)
"""


def crawl_package(root: Path, **changed: str) -> Path:
    """`crawl/`: nodes, and two flow modules that import them; `changed` by stem."""
    files = {"__init__": "", "nodes": NODES, "crawler": CRAWLER, "single": SINGLE}
    for stem, text in {**files, **changed}.items():
        write(root / "crawl" / f"{stem}.py", text)
    return root


def test_an_error_of_a_module_two_others_import_is_reported_once(
    tmp_path: Path,
) -> None:
    crawl_package(
        tmp_path,
        nodes=NODES.replace('limit="net"', 'limit="net", retrys=3'),
        crawler=CRAWLER.replace("    return count(got)", "    with x:\n        pass"),
    )
    done = kiln("compile", "crawl", "-o", "build", cwd=tmp_path)
    assert done.returncode == 1, done
    found = [(r.path, r.line, r.code) for r in parse_report(done.stdout)]
    assert found == [("crawl/crawler.py", 9, "KLN305"), ("crawl/nodes.py", 4, "KLN101")]
    assert done.stdout.splitlines()[-1] == "Found 2 errors in 2 files; nothing written"


APP_SUB = """\
from kiln import flow, node


@node
def split(t: str) -> list[str]:
    return t.split()


@flow
async def inner(texts: list[str]) -> list[str]:
    return [w for t in texts for w in split(t)]
"""

APP_MAIN = """\
from kiln import flow

from .sub import inner


@flow
async def outer(texts: list[str]) -> int:
    return len(await inner(texts))
"""


def test_a_compile_with_an_error_in_one_module_writes_none(tmp_path: Path) -> None:
    """`build/app/main.py` alone would import `inner` from a module never written."""
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "sub.py", APP_SUB)
    write(tmp_path / "app" / "main.py", APP_MAIN)
    done = kiln("compile", "app", "-o", "build", cwd=tmp_path)
    assert done.returncode == 1, done
    assert [r.code for r in parse_report(done.stdout)] == ["KLN306"]
    assert " -> " not in done.stdout
    assert done.stdout.splitlines()[-1] == "Found 1 error in 1 file; nothing written"
    assert not (tmp_path / "build").exists()
    fixed = "    words = [split(t) for t in texts]\n    return [w for ws in words for w in ws]\n"
    write(
        tmp_path / "app" / "sub.py",
        APP_SUB.replace(APP_SUB.splitlines(True)[-1], fixed),
    )
    done = kiln("compile", "app", "-o", "build", cwd=tmp_path)
    assert done.returncode == 0, done
    ran = subprocess.run(
        [sys.executable, "-c", RUN_OUTER],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.stdout == "3\n", ran.stderr


RUN_OUTER = "from build.app.main import outer; print(outer(['a b', 'c']))"


def test_kiln_run_stops_at_the_module_with_an_error_too(tmp_path: Path) -> None:
    write(tmp_path / "app" / "__init__.py", "")
    write(tmp_path / "app" / "sub.py", APP_SUB)
    write(tmp_path / "app" / "main.py", APP_MAIN)
    done = kiln("run", "app/main.py:outer", 'texts=["a b"]', cwd=tmp_path)
    assert done.returncode == 1, done
    assert [r.code for r in parse_report(done.stderr)] == ["KLN306"]
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app"]


def test_a_relative_import_in_a_module_in_no_package_is_refused(
    tmp_path: Path,
) -> None:
    """Compiled, `from missing import thing` would run; the source cannot be imported."""
    write(tmp_path / "missing.py", "def thing(x: int) -> int:\n    return x\n")
    write(
        tmp_path / "b4.py",
        "from kiln import flow, node\nfrom .missing import thing\n\n\n@node\n"
        "async def a(x: int) -> int:\n    return thing(x)\n\n\n@flow\n"
        "async def f(x: int) -> int:\n    return await a(x)\n",
    )
    done = kiln("compile", "b4.py", "-o", "out", cwd=tmp_path)
    assert done.returncode == 1, done
    [found] = parse_report(done.stdout)
    assert (found.path, found.line, found.column, found.code) == (
        "b4.py",
        2,
        1,
        "KLN402",
    )
    assert "in a module that is in no package" in found.message
    assert not (tmp_path / "out").exists()


def test_a_flow_of_a_namespace_package_is_called_by_the_name_it_is_imported_by(
    tmp_path: Path,
) -> None:
    """`from ns.flows import inner`, `ns/` without `__init__.py`: Python imports it
    as a namespace package. kiln read the module as the top-level `flows` and
    crashed (KLN999); now it reads it by the name it is imported by, and says
    what makes it compile with its caller (trial M)."""
    write(
        tmp_path / "ns" / "flows.py",
        "from kiln import flow\n\n\n@flow\nasync def inner(s: str) -> str:\n"
        "    return s + '!'\n",
    )
    write(
        tmp_path / "top.py",
        "from kiln import flow\nfrom ns.flows import inner\n\n\n@flow\n"
        "async def top(s: str) -> str:\n    return await inner(s)\n",
    )
    done = kiln("compile", "top.py", "ns/flows.py", "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done
    [said] = parse_report(done.stdout)
    assert (said.path, said.line, said.code) == ("top.py", 7, "KLN313")
    assert "note: add ns/__init__.py and compile ns/flows.py together" in done.stdout
    ran = subprocess.run(
        [sys.executable, "-c", "from out.top import top; print(top('x'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stdout) == (0, "x!\n"), ran.stderr


def test_a_module_that_is_a_link_is_the_module_its_path_names(tmp_path: Path) -> None:
    """`app/current.py -> impl.py` is `app.current` to Python: imported through the
    link, its node was once read twice, as `app.impl` too (a false KLN202); given
    as a source, it was written as `build/app/impl.py` (trial M)."""
    write(tmp_path / "app" / "__init__.py", "")
    write(
        tmp_path / "app" / "impl.py",
        "from kiln import flow, node\n\n\n@node\nasync def inc(x: int) -> int:\n"
        "    return x + 1\n\n\n@flow\nasync def twice(x: int) -> int:\n"
        "    return await inc(await inc(x))\n",
    )
    (tmp_path / "app" / "current.py").symlink_to("impl.py")
    write(
        tmp_path / "app" / "main.py",
        "from kiln import flow\nfrom .current import inc\n\n\n@flow\n"
        "async def outer(x: int) -> int:\n    return await inc(x)\n",
    )
    done = kiln("compile", "app/main.py", "app/current.py", "-o", "build", cwd=tmp_path)
    assert done.returncode == 0, done
    built = sorted(p.name for p in (tmp_path / "build" / "app").iterdir())
    assert built == ["__init__.py", "current.py", "main.py"]
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            "from build.app.main import outer\n"
            "from build.app.current import twice\n"
            "print(outer(1), twice(1))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stdout) == (0, "2 3\n"), ran.stderr


def test_a_module_that_does_not_parse_is_the_one_error_of_its_importers(
    tmp_path: Path,
) -> None:
    """The user trial's crawler: its flow's while loop meets calls of `fetch` and
    `count`, which only a module that does not parse defines."""
    loop = (
        "    got: list[str] = []\n    while urls:\n"
        "        pages = [await fetch(u) for u in urls]\n        got.extend(pages)\n"
        "        urls = urls[len(pages) :]\n    return count(got)\n"
    )
    crawl_package(
        tmp_path,
        nodes=NODES + "\n\ndef broken(:\n    pass\n",
        crawler=CRAWLER.split("    got = ", maxsplit=1)[0] + loop,
    )
    done = kiln("compile", "crawl", "-o", "build", cwd=tmp_path)
    assert done.returncode == 1, done
    found = [(r.path, r.line, r.code) for r in parse_report(done.stdout)]
    assert found == [("crawl/nodes.py", 14, "KLN001")]
    assert done.stdout.splitlines()[-1] == "Found 1 error in 1 file; nothing written"


def test_a_name_the_imported_module_does_not_define_is_refused_at_the_import(
    tmp_path: Path,
) -> None:
    """Compiled as a call of a function kiln cannot see, `fetch(u)` would lose the
    node's limit; the source would not import at all."""
    crawl_package(tmp_path, nodes=NODES.replace("def fetch(", "def fetch_page("))
    done = kiln("compile", "crawl", "-o", "build", cwd=tmp_path)
    assert done.returncode == 1, done
    found = [(r.path, r.line, r.column, r.code) for r in parse_report(done.stdout)]
    assert found == [
        ("crawl/crawler.py", 3, 27, "KLN402"),
        ("crawl/single.py", 3, 20, "KLN402"),
    ]
    assert "error: name 'fetch' is not defined in crawl/nodes.py  [KLN402]" in (
        done.stdout
    )
    assert "crawl/crawler.py:3:27: note: did you mean 'fetch_page'?" in done.stdout
    assert not (tmp_path / "build").exists()


def test_a_directory_s_virtual_environment_is_no_source(tmp_path: Path) -> None:
    """`kiln compile . -o build` beside a `venv/` (no dot) searched every module
    of its site-packages that says `flow` (trial Q6); a folder with a
    `pyvenv.cfg`, `site-packages` and `node_modules` hold no project sources."""
    flow = "from kiln import flow\n\n\n@flow\nasync def main(x: int) -> int:\n    return x\n"
    (tmp_path / "app.py").write_text(flow, encoding="utf-8")
    for folder in ("venv", "env/lib/site-packages/pkg", "web/node_modules/x"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "flowish.py").write_text(flow, encoding="utf-8")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    done = kiln("compile", ".", "-o", "build", cwd=tmp_path)
    assert done.returncode == 0, done
    assert sorted(p.name for p in (tmp_path / "build").rglob("*.py")) == [
        "__init__.py",
        "app.py",
    ]
