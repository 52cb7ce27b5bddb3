"""`kiln compile` on a project of several modules, one of them wrong, through the
installed `kiln` command: each error reported once, in the file it is in."""

from __future__ import annotations

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
    assert done.stdout.splitlines()[-1] == "Found 2 errors in 2 files"
