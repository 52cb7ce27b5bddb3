"""A digest of a repository's Markdown: fan-out over paragraphs, and the speedup it buys.

The flow `digest(root)` finds README.md and docs/*.md under `root`, reads
every file, splits each into paragraphs (fenced code blocks stay whole), and
"summarizes" every paragraph with a local, deterministic stand-in for a
language model: the first sentence, shortened, plus the paragraph's three most
frequent keywords, after a few milliseconds of simulated model latency. A
corpus overview (the most frequent keywords of all files) is computed beside
the per-paragraph summaries, and the two are joined into one Markdown digest.

Run as plain Python, the flow summarizes one paragraph after another. Compiled
by `kiln compile`, the comprehensions become concurrent fan-outs: every file
is read at once, every paragraph is summarized at once, and the overview
overlaps with them, so the wall time is about one latency instead of one per
paragraph. The text is the same either way.

    python examples/digest.py [ROOT]     # compiles this file, runs both, compares

Without README.md or docs/*.md under ROOT (the repository by default), it
writes a small sample corpus to a temporary directory and digests that.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _build import compiled_module

from kiln import Limit, flow, node

#: Seconds one simulated model call takes.
LATENCY = 0.005

# A word list reads better as a string than as a hundred quoted items.
STOPWORDS = frozenset("""
    a about above after again all also an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having here how if in into is it its itself just more most no nor
    not now of off on once only or other our out over own same should so some such than
    that the their them then there these they this those through to too under until up
    very was we were what when where which while who why will with would you your
    """.split())  # noqa: SIM905

WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]{2,}")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`*(\[])")


@dataclass(frozen=True, slots=True)
class Document:
    name: str  # path relative to the root, with forward slashes
    text: str


@dataclass(frozen=True, slots=True)
class Paragraph:
    document: str
    index: int  # position in its document, from 1
    kind: str  # "heading", "code", "list", "table" or "prose"
    text: str


@dataclass(frozen=True, slots=True)
class Summary:
    paragraph: Paragraph
    sentence: str
    keywords: tuple[str, ...]


def keywords(text: str, count: int) -> tuple[str, ...]:
    """The `count` most frequent non-stopwords of `text`; ties in alphabetical order."""
    words = Counter(
        w.lower().strip("'-") for w in WORD.findall(text) if w.lower() not in STOPWORDS
    )
    ranked = sorted(words.items(), key=lambda item: (-item[1], item[0]))
    return tuple(word for word, _ in ranked[:count])


def first_sentence(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    sentence = SENTENCE_END.split(flat, maxsplit=1)[0]
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def paragraph_kind(text: str) -> str:
    first = text.lstrip()
    if first.startswith("```"):
        return "code"
    if first.startswith("#"):
        return "heading"
    if first.startswith("|"):
        return "table"
    if first.startswith(("- ", "* ", "1. ")):
        return "list"
    return "prose"


@node
def find_documents(root: str) -> list[str]:
    """README.md and docs/*.md under `root`, as relative paths in a stable order."""
    base = Path(root)
    found = [base / "README.md"] if (base / "README.md").is_file() else []
    found += sorted((base / "docs").glob("*.md"))
    return [path.relative_to(base).as_posix() for path in found]


@node
async def read_document(root: str, name: str) -> Document:
    text = await asyncio.to_thread(Path(root, name).read_text, encoding="utf-8")
    return Document(name, text)


@node
def split_paragraphs(document: Document) -> list[Paragraph]:
    """Blank-line separated blocks; a fenced code block is one block, blank lines and all."""
    blocks: list[str] = []
    current: list[str] = []
    fenced = False
    for line in document.text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                blocks.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return [
        Paragraph(document.name, index, paragraph_kind(block), block)
        for index, block in enumerate(blocks, start=1)
    ]


@node(limit="model")
async def summarize(paragraph: Paragraph, latency: float) -> Summary:
    """The stand-in for a model call: a fixed latency, then a deterministic summary."""
    await asyncio.sleep(latency)
    if paragraph.kind == "code":
        lines = paragraph.text.count("\n") - 1
        return Summary(paragraph, f"(code, {lines} lines)", keywords(paragraph.text, 3))
    return Summary(
        paragraph, first_sentence(paragraph.text), keywords(paragraph.text, 3)
    )


@node
async def overview(documents: list[Document], latency: float) -> str:
    """One more "model call", over the whole corpus."""
    await asyncio.sleep(latency)
    words = sum(len(d.text.split()) for d in documents)
    top = ", ".join(keywords("\n".join(d.text for d in documents), 8))
    return f"{len(documents)} files, {words} words; most frequent: {top}"


@node
def render(summary_of_corpus: str, summaries: list[Summary]) -> str:
    lines = ["# Digest", "", summary_of_corpus]
    document = ""
    for summary in summaries:
        paragraph = summary.paragraph
        if paragraph.document != document:
            document = paragraph.document
            lines += ["", f"## {document}", ""]
        tags = f"  [{', '.join(summary.keywords)}]" if summary.keywords else ""
        lines.append(
            f"{paragraph.index:>3}. {paragraph.kind:<7} {summary.sentence}{tags}"
        )
    return "\n".join(lines) + "\n"


# At most 32 model calls in flight at once, as a provider's concurrency quota allows.
@flow(limits={"model": Limit(32)})
async def digest(root: str, latency: float = LATENCY) -> str:
    """The digest of the Markdown under `root`, one summary per paragraph."""
    names = find_documents(root)
    if names:
        documents = [await read_document(root, name) for name in names]
        split = [split_paragraphs(document) for document in documents]
        paragraphs = [paragraph for block in split for paragraph in block]
        summaries = [await summarize(paragraph, latency) for paragraph in paragraphs]
        corpus = await overview(documents, latency)
        text = render(corpus, summaries)
    else:
        text = render(f"no README.md or docs/*.md under {root}", [])
    return text


# --- running it (not part of the flow, so not copied into the compiled module) ---------

SAMPLE = {
    "README.md": "# Sample\n\nkiln compiles flows. Each node call becomes a step.\n\n"
    "Independent steps overlap. Fan-outs run concurrently.\n",
    "docs/guide.md": "# Guide\n\nWrite a flow with `@flow`. Mark steps with `@node`.\n\n"
    "```python\n@node\ndef load(path: str) -> str:\n\n    return path\n```\n\n"
    "- compile it\n- run it\n\nThe compiled module is typed. It imports no compiler.\n",
}


def write_sample(root: Path) -> Path:
    """A small Markdown corpus, for a root without README.md or docs/*.md."""
    for name, text in SAMPLE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def main() -> None:
    root = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent.parent
    )
    with tempfile.TemporaryDirectory() as scratch:
        if not find_documents(str(root)):
            root = write_sample(Path(scratch))
        compiled = compiled_module(Path(__file__).resolve())
        started = time.perf_counter()
        text = compiled.digest(str(root))
        compiled_seconds = time.perf_counter() - started
        started = time.perf_counter()
        reference = asyncio.run(digest(str(root)))
        source_seconds = time.perf_counter() - started
    print(text)
    speedup = source_seconds / compiled_seconds
    print(
        f"compiled: {compiled_seconds * 1000:.1f} ms   source (one call at a time): "
        f"{source_seconds * 1000:.1f} ms   speedup: {speedup:.1f}x"
    )
    if text != reference:
        raise SystemExit("the compiled flow and the source disagree")
    print("compiled result == source result")


if __name__ == "__main__":
    main()
