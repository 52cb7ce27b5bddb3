"""OpenTelemetry: a run as a span, each node call and subflow call a child span of it.

Imported only when a flow is traced: ``F(tracer=tracer)``, or an instance made
once a tracer provider is configured (`tracing_for` looks at
``opentelemetry.trace`` only if the program imported it). Needs the
``opentelemetry-api`` package (``pip install 'kiln[otel]'``); kiln imports
nothing of it otherwise.

A run of flow ``digest`` is the span ``flow digest``; each call of node
``summarize`` inside it is the span ``node summarize``, current while the node
runs, so the spans its own code makes (an LLM client's instrumentation) are
its children. A node span carries::

    code.filepath, code.lineno   the call site in the flow's source
    kiln.node, kiln.visit        the node's name, the call's visit of its site
    kiln.attempts                attempts started; each retry is an event "retry"
    kiln.cache_hit               the ledger (or a durable run's journal) answered
    kiln.limit                   the capacity group it took from, if any

and the error status with the exception when the call fails. A subflow's call
is a span ``flow NAME`` nested in the run's. Metrics, through the global
meter provider: ``kiln.node.duration`` (a histogram of seconds) and
``kiln.node.calls`` (a counter), both by node and status.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, final

from kiln.errors import OptionError, Suspended
from kiln.events import EventStatus, NodeEvent

if TYPE_CHECKING:
    from kiln.calls import Flow
    from kiln.site_table import Site

__all__ = ["Tracing", "tracing_for"]

_STATUS: Final = {
    EventStatus.COMPLETED: "ok",
    EventStatus.FAILED: "error",
    EventStatus.CANCELLED: "cancelled",
}


def tracing_for(tracer: object) -> Tracing | None:
    """The tracing of a flow given `tracer` (None: the global provider's, if configured).

    One per tracer (or provider), whatever the number of instances: a flow
    instance made per request shares its wrapped calls with the others.
    """
    if tracer is not None:
        return _tracing(tracer)
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None  # nothing imported OpenTelemetry: it cannot be configured
    provider = api.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None
    return _provided(provider)


@functools.lru_cache(maxsize=16)
def _tracing(tracer: object) -> Tracing:
    return Tracing(tracer)


@functools.lru_cache(maxsize=4)
def _provided(provider: Any) -> Tracing:
    return Tracing(provider.get_tracer("kiln"))


@final
class Tracing:
    """Spans and metrics of the runs of one flow instance, and of the subflows it calls."""

    def __init__(self, tracer: Any) -> None:
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415
        except ImportError:
            raise OptionError(
                "tracer= needs OpenTelemetry's API: pip install 'kiln[otel]'"
            ) from None
        if not callable(getattr(tracer, "start_as_current_span", None)):
            raise OptionError(
                f"tracer must be an OpenTelemetry Tracer (provider.get_tracer(...)); "
                f"got {tracer!r}"
            )

        self.tracer = tracer
        self.trace = trace
        meter = metrics.get_meter("kiln")
        self.duration = meter.create_histogram(
            "kiln.node.duration", unit="s", description="node call duration"
        )
        self.calls = meter.create_counter(
            "kiln.node.calls", description="node calls, by node and status"
        )

    # --- runs and subflow calls ------------------------------------------------------

    @contextmanager
    def flow_span(self, name: str, run_id: str | None = None) -> Iterator[Any]:
        """A span ``flow NAME``, current inside; a durable run's carries its id."""
        attributes = {"kiln.flow": name}
        if run_id is not None:
            attributes["kiln.run_id"] = run_id
        with self.tracer.start_as_current_span(
            f"flow {name}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as error:
                self.failed_run(span, error)
                raise

    def entry(self, flow: Flow, name: str) -> None:
        """Make the instance's entry points run in a span of their own."""
        run_id = flow.run_id
        wrappers: dict[str, Callable[[str, Callable[..., Any]], Callable[..., Any]]] = {
            "aforward": functools.partial(
                self.spanned, asynchronous=True, run_id=run_id
            ),
            "forward": functools.partial(
                self.spanned, asynchronous=False, run_id=run_id
            ),
            "astream": self.spanned_async_stream,
            "stream": self.spanned_stream,
        }
        for method, wrap in wrappers.items():
            inner: Callable[..., Any] | None = flow.__dict__.get(method)
            if inner is None:
                found = getattr(type(flow), method, None)
                if found is None:
                    continue
                inner = functools.partial(found, flow)
            flow.__dict__[method] = wrap(name, inner)

    # A streaming flow's run is a span from its first item to its end, current
    # only while the flow's own code runs: between items the consumer's runs.

    def spanned_async_stream(
        self, name: str, inner: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def traced_astream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            if self.inside(name):
                async for item in inner(*args, **kwargs):
                    yield item
                return
            span = self.tracer.start_span(
                f"flow {name}", attributes={"kiln.flow": name}
            )
            stream = inner(*args, **kwargs)
            try:
                while True:
                    with self.trace.use_span(span, end_on_exit=False):
                        try:
                            item = await anext(stream)
                        except StopAsyncIteration:
                            return
                    yield item
            except BaseException as error:
                self.failed_run(span, error)
                raise
            finally:
                span.end()

        return traced_astream

    def spanned_stream(
        self, name: str, inner: Callable[..., Iterator[Any]]
    ) -> Callable[..., Iterator[Any]]:
        def traced_stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            if self.inside(name):
                yield from inner(*args, **kwargs)
                return
            span = self.tracer.start_span(
                f"flow {name}", attributes={"kiln.flow": name}
            )
            stream = inner(*args, **kwargs)
            try:
                while True:
                    with self.trace.use_span(span, end_on_exit=False):
                        try:
                            item = next(stream)
                        except StopIteration:
                            return
                    yield item
            except BaseException as error:
                self.failed_run(span, error)
                raise
            finally:
                span.end()

        return traced_stream

    def failed_run(self, span: Any, error: BaseException) -> None:
        """A run's end by `error`: an error, unless it stopped at a question to a person."""
        if isinstance(error, Suspended):  # it waits: no alert should fire
            span.set_attribute("kiln.suspended", error.question)
        elif isinstance(error, Exception):  # not a consumer's break (GeneratorExit)
            span.record_exception(error)
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, str(error)))

    def spanned(
        self,
        name: str,
        inner: Callable[..., Any],
        *,
        asynchronous: bool,
        run_id: str | None = None,
    ) -> Callable[..., Any]:
        """`inner` in a span ``flow NAME`` (a run)."""
        if asynchronous:

            async def traced_aforward(*args: Any, **kwargs: Any) -> Any:
                if self.inside(name):  # forward() running aforward(), say
                    return await inner(*args, **kwargs)
                with self.flow_span(name, run_id):
                    return await inner(*args, **kwargs)

            return traced_aforward

        def traced_forward(*args: Any, **kwargs: Any) -> Any:
            if self.inside(name):
                return inner(*args, **kwargs)
            with self.flow_span(name, run_id):
                return inner(*args, **kwargs)

        return traced_forward

    def inside(self, name: str) -> bool:
        """Whether the current span is this flow's run already (one entry point in another)."""
        span = self.trace.get_current_span()
        attributes = getattr(span, "attributes", None) or {}
        return bool(attributes.get("kiln.flow") == name and span.is_recording())

    # --- node calls ------------------------------------------------------------------

    def wrap(self, site: Site, inner: Callable[..., Any]) -> Callable[..., Any]:
        """A site's wrapped call, in a span current while the node runs."""
        path, _, line = site.where.rpartition(":")
        attributes: dict[str, Any] = {
            "kiln.node": site.node,
            "code.filepath": path,
            "code.lineno": int(line) if line.isdigit() else 0,
        }
        if site.limit is not None:
            attributes["kiln.limit"] = site.limit
        name = f"node {site.node}"
        node = {"kiln.node": site.node}
        if inspect.iscoroutinefunction(inner) or site.kind != "sync":

            async def traced(run: Any, /, *args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                with self.tracer.start_as_current_span(
                    name, attributes=attributes, record_exception=False
                ) as span:
                    try:
                        value = await inner(run, *args, **kwargs)
                    except BaseException as error:
                        self.failed(span, error, node, start)
                        raise
                    self.done(node, start)
                    return value

            return traced

        def traced_sync(run: Any, /, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            with self.tracer.start_as_current_span(
                name, attributes=attributes, record_exception=False
            ) as span:
                try:
                    value = inner(run, *args, **kwargs)
                except BaseException as error:
                    self.failed(span, error, node, start)
                    raise
                self.done(node, start)
                return value

        return traced_sync

    def failed(
        self, span: Any, error: BaseException, node: dict[str, str], start: float
    ) -> None:
        cancelled = type(error).__name__ == "CancelledError"
        if not cancelled:
            span.record_exception(error)
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, str(error)))
        self.measure(node, start, "cancelled" if cancelled else "error")

    def done(self, node: dict[str, str], start: float) -> None:
        self.measure(node, start, "ok")

    def measure(self, node: dict[str, str], start: float, status: str) -> None:
        labels = {**node, "kiln.status": status}
        self.duration.record(time.perf_counter() - start, labels)
        self.calls.add(1, labels)

    def observe(self, event: NodeEvent) -> None:
        """An event of a call: its details on the span current in the call, the node's."""
        span = self.trace.get_current_span()
        if not span.is_recording():
            return
        if event.status is EventStatus.PROCESSING:
            span.set_attribute("kiln.visit", event.visit)
            return
        if event.status in _STATUS:
            span.set_attribute("kiln.visit", event.visit)
            span.set_attribute("kiln.attempts", event.attempts)
            span.set_attribute("kiln.cache_hit", event.cache_hit)
            for attempt in range(2, event.attempts + 1):
                span.add_event("retry", {"kiln.attempt": attempt})
