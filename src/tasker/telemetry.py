"""Observability shared by every process: Prometheus metrics, OpenTelemetry spans, structured JSON logs.

Metrics live in prometheus_client's default registry with tasker-core's names (``tasker_<what>_total``, durations
in ``_milliseconds`` histograms); orchestrators and workers serve them on ``--metrics-port`` and the API adds them
to ``/metrics``. High-cardinality ids never become labels.

Spans: a task's correlation id *is* its trace id. Every process starts its spans as children of a remote parent
whose trace id is the correlation id, so the spans of task creation (API or CLI), enqueueing and result processing
(orchestrator) and step execution (worker) form one trace without any trace header in the queue messages. With no
exporter configured, the OpenTelemetry API is a no-op.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, ProxyTracerProvider, Span, SpanContext, TraceFlags
from prometheus_client import Counter, Gauge, Histogram, start_http_server

MS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)

TASKS_REQUESTED = Counter("tasker_tasks_requests", "Tasks created", ["namespace"])
TASKS_COMPLETED = Counter("tasker_tasks_completions", "Tasks that completed (seen by this process)")
TASKS_FAILED = Counter("tasker_tasks_failures", "Tasks that blocked on failed steps (seen by this process)")
STEPS_ENQUEUED = Counter("tasker_steps_enqueued", "Steps enqueued for workers", ["namespace"])
STEP_RESULTS_PROCESSED = Counter("tasker_step_results_processed", "Step results applied", ["result_type"])
STEP_RESULTS_APPLIED_BY_WORKER = Counter(
    "tasker_step_results_applied_by_worker", "Step results a worker applied itself (the fast path)"
)
RESULT_STORES_FLOWN_AGAIN = Counter(
    "tasker_worker_result_stores_flown_again",
    "Result stores sent in one flight with their commit that left a task to plan, so rolled back and stored again",
)
STEP_RESULT_PROCESSING = Histogram(
    "tasker_step_result_processing_duration_milliseconds", "Time to apply a batch of step results", buckets=MS_BUCKETS
)
STEPS_CLAIMED = Counter("tasker_steps_claimed", "Steps claimed by workers", ["namespace", "claim_method"])
STEPS_EXECUTED = Counter("tasker_steps_executions", "Step handler runs", ["namespace"])
STEPS_SUCCEEDED = Counter("tasker_steps_successes", "Step handler runs that succeeded", ["namespace"])
STEPS_FAILED = Counter("tasker_steps_failures", "Step handler runs that failed", ["namespace", "error_type"])
STEP_EXECUTION = Histogram(
    "tasker_step_execution_duration_milliseconds", "Step handler run time", ["namespace"], buckets=MS_BUCKETS
)
STEPS_ACTIVE = Gauge("tasker_steps_active_executions", "Step handlers running now")
QUEUE_DEPTH = Gauge("tasker_queue_depth", "Messages waiting per queue", ["queue"])
DLQ_PENDING = Gauge("tasker_dlq_pending_investigations", "Pending dead-letter queue entries", ["dlq_reason"])

_TRACER_NAME = "tasker"


def serve_metrics(port: int | None) -> None:
    """Serve this process's metrics on ``port`` (a daemon thread); None serves nothing."""
    if port:
        start_http_server(port)


def configure_tracing(exporter: str | None) -> None:
    """Install an OpenTelemetry SDK tracer provider: ``console`` prints spans, ``otlp`` sends them to
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (needs the ``opentelemetry-exporter-otlp`` package), None leaves tracing off."""
    if not exporter:
        return
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    elif exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore
        except ImportError as exc:
            raise RuntimeError("TASKER_OTEL_EXPORTER=otlp needs `pip install opentelemetry-exporter-otlp`") from exc
        span_exporter = OTLPSpanExporter()
    else:
        raise ValueError(f"unknown OpenTelemetry exporter {exporter!r}: use 'console' or 'otlp'")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)


def _task_context(correlation_id: UUID) -> Any:
    """A remote parent in the task's trace: trace id = correlation id, span id from its low 64 bits."""
    span_id = (correlation_id.int & 0xFFFF_FFFF_FFFF_FFFF) or 1
    parent = SpanContext(
        trace_id=correlation_id.int, span_id=span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _tracing_off() -> bool:
    """No tracer provider is installed: spans would go to OpenTelemetry's no-op tracer."""
    return isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def _span_identity(correlation_id: UUID | str, attributes: dict[str, Any]) -> tuple[UUID, dict[str, str]]:
    """The task's correlation id and the span's attributes (None values left out, the correlation id added)."""
    cid = correlation_id if isinstance(correlation_id, UUID) else UUID(str(correlation_id))
    attrs = {f"tasker.{k}": str(v) for k, v in attributes.items() if v is not None}
    attrs["tasker.correlation_id"] = str(cid)
    return cid, attrs


@contextmanager
def task_span(name: str, correlation_id: UUID | str, **attributes: Any) -> Iterator[Span]:
    """A span in the trace of the task with this correlation id; attributes with None values are left out. With no
    tracer provider installed (tracing off, the default) nothing is built: this runs several times per step."""
    if _tracing_off():
        yield INVALID_SPAN
        return
    cid, attrs = _span_identity(correlation_id, attributes)
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(name, context=_task_context(cid), attributes=attrs) as span:
        yield span


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the ids a record carries in ``extra``."""

    FIELDS = ("action", "task_uuid", "step_uuid", "correlation_id", "worker_uuid", "processor_uuid", "namespace")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in self.FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Root logging for a Tasker process: ``text`` for people, ``json`` for log pipelines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def record_task_span(name: str, correlation_id: UUID | str, start_ns: int, end_ns: int, **attributes: Any) -> None:
    """A finished span in a task's trace, for work done in a batch (one span per task, same start and end)."""
    if _tracing_off():
        return
    cid, attrs = _span_identity(correlation_id, attributes)
    span = trace.get_tracer(_TRACER_NAME).start_span(
        name, context=_task_context(cid), attributes=attrs, start_time=start_ns
    )
    span.end(end_time=end_ns)
