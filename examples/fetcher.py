"""A concurrent site checker: independent branches of HTTP requests overlap.

`main()` starts a small documentation site on 127.0.0.1 (the standard
library's ThreadingHTTPServer on a free port, in a background thread; every
response is delayed a little, like a real network). The flow
`site_report(base)` then checks the site the way a polite crawler would:

1. fetch /robots.txt and stop if crawling is disallowed;
2. otherwise, in four independent branches: the home page and every page it
   links to; the blog index and every post it links to; /sitemap.txt; and the
   server's /status.json;
3. join what they found into a `Report`: page titles, broken links, and
   pages the sitemap lists that no crawled page links to.

Run as plain Python, the flow makes one request after another. Compiled, each
branch starts as soon as robots.txt has been read, the branches overlap, and
the pages of a fan-out are fetched concurrently, so the wall time is about
three round trips instead of one per request. The report is the same.

Requests use asyncio streams rather than `urllib` in a worker thread: the
default thread pool holds only a few threads, which would cap the fan-out.

    python examples/fetcher.py           # compiles this file, runs both, compares
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from _build import compiled_module

from kiln import flow, node


@dataclass(frozen=True, slots=True)
class Page:
    path: str
    status: int
    title: str
    links: tuple[str, ...]  # site-local hrefs, in document order


@dataclass(frozen=True, slots=True)
class Report:
    crawled: tuple[Page, ...]  # every page fetched, home and blog branches in order
    broken: tuple[str, ...]  # "page -> link" for every link that answered with an error
    orphans: tuple[str, ...]  # in the sitemap, linked from no crawled page
    server: str  # what /status.json says about the server

    def render(self) -> str:
        lines = [f"server: {self.server}", f"{len(self.crawled)} pages crawled:"]
        lines += [
            f"  {page.status} {page.path:<16} {page.title}" for page in self.crawled
        ]
        lines.append(f"broken links: {', '.join(self.broken) or 'none'}")
        lines.append(
            f"orphans (listed in the sitemap, linked from nowhere): {', '.join(self.orphans)}"
        )
        return "\n".join(lines)


class _PageParser(HTMLParser):
    """The <title> text and the site-local <a href> targets of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.links: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        href = dict(attrs).get("href")
        if tag == "a" and href is not None and href.startswith("/"):
            self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data.strip()


async def http_get(url: str) -> tuple[int, str]:
    """GET `url` over a plain asyncio connection; the status code and the body."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        request = f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n"
        writer.write(request.encode("ascii"))
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode("utf-8")


@node
async def fetch_text(base: str, path: str) -> str:
    status, body = await http_get(base + path)
    return body if status == 200 else ""


@node
async def fetch_page(base: str, path: str) -> Page:
    status, body = await http_get(base + path)
    parser = _PageParser()
    parser.feed(body)
    return Page(path, status, parser.title, tuple(parser.links))


@node
async def fetch_status(base: str) -> str:
    status, body = await http_get(base + "/status.json")
    if status != 200:
        return f"no status (HTTP {status})"
    info = json.loads(body)
    return f"{info['service']} {info['version']}"


def allows_crawling(robots: str) -> bool:
    """Whether robots.txt lets every user agent read the whole site."""
    return "Disallow: /\n" not in robots + "\n"


@node
def make_report(
    home: Page,
    pages: list[Page],
    blog: Page,
    posts: list[Page],
    sitemap: str,
    server: str,
) -> Report:
    crawled = (home, *pages, blog, *posts)
    status = {page.path: page.status for page in crawled}
    broken = tuple(
        f"{page.path} -> {link}"
        for page in crawled
        for link in page.links
        if status.get(link, 200) >= 400
    )
    linked = {link for page in crawled for link in page.links} | {home.path}
    orphans = tuple(path for path in sitemap.split() if path not in linked)
    return Report(crawled, broken, orphans, server)


@flow
async def site_report(base: str) -> Report:
    """Crawl the site at `base`, with four independent branches after robots.txt."""
    robots = await fetch_text(base, "/robots.txt")
    if allows_crawling(robots):
        home = await fetch_page(base, "/")
        pages = [await fetch_page(base, link) for link in home.links if link != "/blog"]
        blog = await fetch_page(base, "/blog")
        posts = [await fetch_page(base, link) for link in blog.links]
        sitemap = await fetch_text(base, "/sitemap.txt")
        server = await fetch_status(base)
        report = make_report(home, pages, blog, posts, sitemap, server)
    else:
        report = Report((), (), (), "robots.txt disallows crawling")
    return report


# --- the local site, and running the example (not part of the compiled module) --------


def _html(title: str, *links: str) -> str:
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    return f"<html><head><title>{title}</title></head><body><ul>{anchors}</ul></body></html>"


def site() -> dict[str, tuple[str, str]]:
    """The documentation site: path -> (content type, body)."""
    docs = [f"/docs/{n}" for n in range(1, 9)]
    posts = [f"/blog/{n}" for n in range(1, 7)]
    pages: dict[str, tuple[str, str]] = {
        "/robots.txt": ("text/plain", "User-agent: *\nAllow: /\n"),
        "/status.json": (
            "application/json",
            json.dumps({"service": "docs", "version": "1.4"}),
        ),
        "/sitemap.txt": (
            "text/plain",
            "\n".join(["/", *docs, "/blog", *posts, "/docs/legacy"]),
        ),
        "/": (
            "text/html",
            _html("Home", *docs, "/changelog", "/blog"),
        ),  # no /changelog
        "/blog": ("text/html", _html("Blog", *posts)),
        "/docs/legacy": ("text/html", _html("Legacy docs")),
    }
    for n, path in enumerate(docs, start=1):
        pages[path] = ("text/html", _html(f"Docs, part {n}", "/"))
    for n, path in enumerate(posts, start=1):
        pages[path] = ("text/html", _html(f"Post {n}", "/blog", f"/docs/{n}"))
    return pages


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections of a wide fan-out


@contextmanager
def serve_site(delay: float = 0.02) -> Iterator[str]:
    """Serve `site()` on a free port of 127.0.0.1; yield the base URL."""
    pages = site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay)  # the network's latency, in the server's own thread
            content_type, body = pages.get(self.path, ("text/html", _html("Not found")))
            data = body.encode("utf-8")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the example's output to the report

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main() -> None:
    compiled = compiled_module(Path(__file__).resolve())
    with serve_site() as base:
        started = time.perf_counter()
        report = compiled.site_report(base)
        compiled_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reference = asyncio.run(site_report(base))
        source_seconds = time.perf_counter() - started
    print(report.render())
    print(
        f"compiled: {compiled_seconds * 1000:.0f} ms   source (one request at a time): "
        f"{source_seconds * 1000:.0f} ms   speedup: {source_seconds / compiled_seconds:.1f}x"
    )
    # The compiled module has its own Report class: compare the values field by field.
    if asdict(report) != asdict(reference):
        raise SystemExit("the compiled flow and the source disagree")
    print("compiled result == source result")


if __name__ == "__main__":
    main()
