"""Prometheus metrics of one API instance: request counts and latencies, state and DLQ counts read at scrape time,
and the engine's own counters (``tasker.telemetry``: tasks created through this process, steps enqueued)."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tasker_http_requests", "HTTP requests served", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tasker_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
            registry=self.registry,
        )  # fmt: skip
        self.tasks = Gauge(
            "tasker_tasks", "tasks by namespace and current state", ["namespace", "state"], registry=self.registry
        )
        self.steps = Gauge(
            "tasker_steps", "workflow steps by namespace and current state", ["namespace", "state"],
            registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge("tasker_queue_depth", "messages waiting per queue", ["queue"], registry=self.registry)
        self.dlq = Gauge(
            "tasker_dlq_entries", "dead-letter queue entries by reason and resolution",
            ["dlq_reason", "resolution_status"], registry=self.registry,
        )  # fmt: skip

    def render(self, states: list[dict[str, Any]], queues: dict[str, int], dlq: list[dict[str, Any]]) -> bytes:
        for gauge in (self.tasks, self.steps, self.queue_depth, self.dlq):
            gauge.clear()
        for row in states:
            gauge = self.tasks if row["kind"] == "task" else self.steps
            gauge.labels(namespace=row["namespace"], state=row["state"]).set(row["count"])
        for queue, depth in queues.items():
            self.queue_depth.labels(queue=queue).set(depth)
        for row in dlq:
            self.dlq.labels(dlq_reason=row["dlq_reason"], resolution_status=row["resolution_status"]).set(row["count"])
        return generate_latest(self.registry) + generate_latest(REGISTRY)
