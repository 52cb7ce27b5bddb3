"""OpenTelemetry (issue 17): a traced run is a span, its node and subflow calls child spans.

Through the SDK's in-memory exporter: `F(tracer=...)` makes one span per run
(``flow NAME``), one per node call (``node NAME``) as its child, current
while the node runs (a span the node's own code makes is the node span's
child), one per subflow call with that subflow's node calls inside; each
node span has the call site, visit, attempts, cache hit and limit group,
and a failed call the error status. A tracer provider configured globally
traces instances made after it; with none, `kiln.otel` is never imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.test_differential import compiled_and_source

FLOWS = """\
import asyncio
from collections.abc import AsyncIterator

from opentelemetry import trace

from kiln import Limit, flow, node

tried: dict[int, int] = {}


@node(limit="api", retries=2, retry_on=(ConnectionError,))
async def fetch(x: int) -> int:
    tried[x] = tried.get(x, 0) + 1
    if x == 2 and tried[x] == 1:
        raise ConnectionError("flaky")
    with trace.get_tracer("user").start_as_current_span("inside fetch"):
        await asyncio.sleep(0)
    return x * 10


@node(cache=True)
def square(x: int) -> int:
    return x * x


@node
async def fail(x: int) -> int:
    raise ValueError(f"no {x}")


@flow(limits={"api": Limit(4)})
async def inner(x: int) -> int:
    return square(await fetch(x))


@flow(limits={"api": Limit(4)})
async def outer(xs: list[int]) -> int:
    parts = [await fetch(x) for x in xs]
    return sum(parts) + await inner(1)


@flow
async def failing(x: int) -> int:
    return await fail(x)


@node
async def count(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@flow(limits={"api": Limit(2)})
async def streaming(n: int) -> AsyncIterator[int]:
    async for i in count(n):
        yield await fetch(i)
"""


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    compiled, _ = compiled_and_source(FLOWS, tmp_path_factory.mktemp("otel"))
    return compiled


@pytest.fixture
def traced(tmp_path: Path) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def parent_of(
    span: ReadableSpan, spans: tuple[ReadableSpan, ...]
) -> ReadableSpan | None:
    assert span.parent is None or span.parent.span_id is not None
    return next(
        (s for s in spans if span.parent and s.context.span_id == span.parent.span_id),
        None,
    )


def test_a_run_is_a_span_and_its_calls_child_spans(
    module: ModuleType, traced: tuple[Any, InMemorySpanExporter], tmp_path: Path
) -> None:
    tracer, exporter = traced
    module.tried.clear()
    flow = type(module.outer)(tracer=tracer, ledger=tmp_path / "l.db")
    assert flow([1, 2, 3]) == 60 + 100
    spans = exporter.get_finished_spans()
    (run,) = by_name(spans, "flow Outer")
    assert run.parent is None
    fetches = by_name(spans, "node fetch")
    assert len(fetches) == 4  # three in outer, one in inner
    (subflow,) = by_name(spans, "flow Inner")
    assert parent_of(subflow, spans) is run
    inside = [s for s in fetches if parent_of(s, spans) is subflow]
    assert len(inside) == 1
    (square,) = by_name(spans, "node square")
    assert parent_of(square, spans) is subflow
    outer_fetches = [s for s in fetches if parent_of(s, spans) is run]
    assert sorted(s.attributes["kiln.visit"] for s in outer_fetches) == [1, 2, 3]
    retried = [s for s in outer_fetches if s.attributes["kiln.attempts"] == 2]
    assert len(retried) == 1
    assert [e.name for e in retried[0].events] == ["retry"]
    for span in fetches:
        assert span.attributes["kiln.limit"] == "api"
        assert span.attributes["code.filepath"].endswith(".py")
        assert span.attributes["code.lineno"] > 0
        assert span.attributes["kiln.cache_hit"] is False
    # The node's own spans are the node span's children.
    for user in by_name(spans, "inside fetch"):
        assert parent_of(user, spans) in fetches

    exporter.clear()
    assert flow([1, 2, 3]) == 160
    (square,) = by_name(exporter.get_finished_spans(), "node square")
    assert square.attributes["kiln.cache_hit"] is True


def test_a_failed_call_has_the_error_status(
    module: ModuleType, traced: tuple[Any, InMemorySpanExporter]
) -> None:
    tracer, exporter = traced
    with pytest.raises(ValueError, match="no 3"):
        type(module.failing)(tracer=tracer)(3)
    spans = exporter.get_finished_spans()
    (node,) = by_name(spans, "node fail")
    assert node.status.status_code is StatusCode.ERROR
    assert [e.name for e in node.events] == ["exception"]
    (run,) = by_name(spans, "flow Failing")
    assert parent_of(node, spans) is run


SCRIPT = """\
import sys
sys.path.insert(0, sys.argv[1])
{setup}
import out
print(out.outer([1]) , "kiln.otel" in sys.modules, flush=True)
"""

GLOBAL = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, ConsoleSpanExporter
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
trace.set_tracer_provider(provider)
"""


@pytest.mark.parametrize(("setup", "imported"), [("", False), (GLOBAL, True)])
def test_a_configured_provider_traces_and_none_imports_nothing(
    module: ModuleType, setup: str, imported: bool
) -> None:
    directory = Path(module.__file__ or "").parent
    script = SCRIPT.format(setup=setup)
    if not setup:  # the module imports opentelemetry itself: leave it out here
        script = script.replace("import out", "import out_plain as out")
        source = (
            (directory / "out.py")
            .read_text()
            .replace("from opentelemetry import trace\n", "")
        )
        (directory / "out_plain.py").write_text(
            source.replace(
                'with trace.get_tracer("user").start_as_current_span("inside fetch"):\n'
                "        await asyncio.sleep(0)",
                "await asyncio.sleep(0)",
            )
        )
    result = subprocess.run(
        [sys.executable, "-c", script, str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == ["110", str(imported)]
    assert ('"name": "flow Outer"' in result.stderr) is imported
    # The module's subflow instance is traced too: its call is one span, not two.
    assert result.stderr.count('"name": "flow Inner"') == int(imported)


METRICS = """\
import json
import sys

sys.path.insert(0, sys.argv[1])
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
import out

flow = type(out.outer)(tracer=TracerProvider().get_tracer("t"), ledger=False)
flow([1, 2, 3])
try:
    type(out.failing)(tracer=TracerProvider().get_tracer("t"))(1)
except ValueError:
    pass
found = {}
for resource in reader.get_metrics_data().resource_metrics:
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            for point in metric.data.data_points:
                labels = dict(point.attributes)
                key = f"{metric.name} {labels['kiln.node']} {labels['kiln.status']}"
                found[key] = getattr(point, "value", None) or point.count
print(json.dumps(found, sort_keys=True))
"""


def test_calls_are_counted_and_timed_by_node_and_status(module: ModuleType) -> None:
    directory = Path(module.__file__ or "").parent
    result = subprocess.run(
        [sys.executable, "-c", METRICS, str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found = json.loads(result.stdout)
    assert found["kiln.node.calls fetch ok"] == 4
    assert found["kiln.node.duration fetch ok"] == 4  # the histogram's count
    assert found["kiln.node.calls square ok"] == 1
    assert found["kiln.node.calls fail error"] == 1


def test_a_streaming_run_is_a_span_current_only_while_the_flow_runs(
    module: ModuleType, traced: tuple[Any, InMemorySpanExporter]
) -> None:
    tracer, exporter = traced
    module.tried.clear()
    flow = type(module.streaming)(tracer=tracer)
    outside = tracer.start_span("consumer")
    items = []
    for item in flow.stream(3):
        items.append(item)
    outside.end()
    assert items == [0, 10, 20]
    spans = exporter.get_finished_spans()
    (run,) = by_name(spans, "flow Streaming")
    fetches = by_name(spans, "node fetch")
    assert len(fetches) == 3
    assert all(parent_of(span, spans) is run for span in fetches)


ASKING = """\
from kiln import ask, flow, node


@node
async def draft(doc: str) -> str:
    return doc.upper()


@flow
async def review(doc: str) -> str:
    text = await draft(doc)
    if await ask("ok", bool, text):
        return text
    return "no"
"""


def test_a_run_stopped_at_a_question_is_no_error_and_names_its_run(
    tmp_path: Path, traced: tuple[Any, InMemorySpanExporter]
) -> None:
    import kiln  # noqa: PLC0415

    tracer, exporter = traced
    compiled, _ = compiled_and_source(ASKING, tmp_path / "asking")
    flow = type(compiled.review)(tracer=tracer, run_id="q1", ledger=tmp_path / "l.db")
    with pytest.raises(kiln.Suspended):
        flow("hi")
    (run,) = by_name(exporter.get_finished_spans(), "flow Review")
    assert run.status.status_code is StatusCode.UNSET
    assert run.attributes["kiln.suspended"] == "ok"
    assert run.attributes["kiln.run_id"] == "q1"
    assert [e.name for e in run.events] == []


def test_a_tracer_that_is_not_one_is_an_option_error(module: ModuleType) -> None:
    from kiln import OptionError  # noqa: PLC0415

    with pytest.raises(OptionError, match="tracer must be an OpenTelemetry Tracer"):
        type(module.failing)(tracer="jaeger")
